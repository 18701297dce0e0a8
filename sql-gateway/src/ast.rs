//! What a statement means once parsed: one [`Statement`] variant per statement
//! Backstop runs (OceanBase's, as `docs/OPERATIONS.md` lists them), and the
//! [`ManageCall`] that the backup-of-backup and job-control ones make. The grammar is
//! in [`crate::statement`].

use backstop_common::{BackupSetId, CopyId};
use backstop_proto::meta::{BackupManageRequest, BackupVerb};

/// A parsed statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `ALTER SYSTEM SET name = 'value' [TENANT [=] t]`.
    SetParameter {
        /// Parameter name.
        name: String,
        /// Value.
        value: String,
        /// Tenant clause.
        tenant: Option<String>,
    },
    /// `ALTER SYSTEM ARCHIVELOG | NOARCHIVELOG [TENANT [=] t]`.
    Archivelog {
        /// true = ARCHIVELOG.
        enable: bool,
        /// Tenants (empty = every user tenant).
        tenants: Vec<String>,
    },
    /// `ALTER SYSTEM BACKUP [INCREMENTAL] DATABASE [TENANT [=] t, …]`.
    BackupDatabase {
        /// Incremental.
        incremental: bool,
        /// Tenants (empty = every user tenant).
        tenants: Vec<String>,
    },
    /// `ALTER SYSTEM VALIDATE BACKUPSET n`.
    ValidateBackupset {
        /// Set.
        backup_set_id: BackupSetId,
    },
    /// `CREATE TENANT [IF NOT EXISTS] name SOURCE [=] 'uri' [COMMENT [=] 'text']`.
    CreateTenant {
        /// Name.
        name: String,
        /// Source URI.
        source: String,
        /// Comment.
        comment: String,
        /// IF NOT EXISTS.
        if_not_exists: bool,
        /// `ROOT PASSWORD [=] 'pw'`; `None`: the metadata service generates one and
        /// the statement answers it once.
        root_password: Option<String>,
    },
    /// `ALTER TENANT name SOURCE [=] 'uri'`: re-points an idle tenant, for example at
    /// a restored PostgreSQL cluster (a new timeline opens the next incarnation).
    AlterTenantSource {
        /// Name.
        name: String,
        /// Source URI.
        source: String,
    },
    /// `DROP TENANT [IF EXISTS] name`.
    DropTenant {
        /// Name.
        name: String,
        /// IF EXISTS.
        if_exists: bool,
    },
    /// `CREATE USER [IF NOT EXISTS] 'name'[@'host'] IDENTIFIED BY 'pw'` (in the
    /// session's tenant).
    CreateUser {
        /// User name.
        name: String,
        /// Password.
        password: String,
        /// IF NOT EXISTS.
        if_not_exists: bool,
    },
    /// `ALTER USER 'name'[@'host'] IDENTIFIED BY 'pw'`.
    AlterUser {
        /// User name.
        name: String,
        /// New password.
        password: String,
    },
    /// `SET PASSWORD [FOR 'name'[@'host']] = 'pw'` (or `= PASSWORD('pw')`): MySQL's
    /// spelling of `ALTER USER … IDENTIFIED BY`; without `FOR`, the session's user.
    SetPassword {
        /// User name (`None`: the session's user).
        name: Option<String>,
        /// New password.
        password: String,
    },
    /// `GRANT priv ON *.* TO 'name'[@'host']` / `REVOKE priv ON *.* FROM 'name'…`
    /// (MySQL's dynamic privilege `BACKUP_ADMIN` is the one Backstop has).
    Grant {
        /// Privilege name, as written.
        privilege: String,
        /// User name (in the session's tenant).
        name: String,
        /// true = GRANT, false = REVOKE.
        grant: bool,
    },
    /// `DROP USER [IF EXISTS] 'name'[@'host']`.
    DropUser {
        /// User name.
        name: String,
        /// IF EXISTS.
        if_exists: bool,
    },
    /// `BACKUP BACKUPSET [=] {n | ALL [NOT BACKED UP n TIMES]} [TENANT …]
    /// [BACKUP_BACKUP_DEST [=] '…']`: copy sets to `backup_backup_dest`.
    BackupBackupset {
        /// The set; `None`: `ALL`.
        backup_set_id: Option<u64>,
        /// `NOT BACKED UP n TIMES`.
        max_backup_times: Option<u64>,
        /// `TENANT …` clause.
        tenants: Vec<String>,
        /// `BACKUP_BACKUP_DEST [=] '…'`; empty: the configured one.
        dest: String,
    },
    /// `BACKUP BACKUPPIECE [=] {n | ALL [NOT BACKED UP n TIMES]} [WITH ACTIVE [PIECE]]
    /// [TENANT …] [BACKUP_BACKUP_DEST [=] '…']`: copy pieces.
    BackupBackuppiece {
        /// The piece; `None`: `ALL`.
        backup_piece_id: Option<u64>,
        /// `NOT BACKED UP n TIMES`.
        max_backup_times: Option<u64>,
        /// `WITH ACTIVE [PIECE]`.
        with_active: bool,
        /// `TENANT …` clause.
        tenants: Vec<String>,
        /// `BACKUP_BACKUP_DEST [=] '…'`; empty: the configured one.
        dest: String,
    },
    /// `VALIDATE BACKUPSET n COPY k` (k > 0): validate a backup-of-backup copy.
    ValidateCopy {
        /// The set.
        backup_set_id: BackupSetId,
        /// The copy.
        copy_id: CopyId,
    },
    /// `START BACKUP ARCHIVELOG [TENANT …]`: the continuous archive copy.
    StartBackupArchivelog {
        /// `TENANT …` clause.
        tenants: Vec<String>,
    },
    /// `STOP BACKUP ARCHIVELOG [TENANT …]`.
    StopBackupArchivelog {
        /// `TENANT …` clause.
        tenants: Vec<String>,
    },
    /// `SUSPEND BACKUP [TENANT …]`.
    SuspendBackup {
        /// `TENANT …` clause.
        tenants: Vec<String>,
    },
    /// `RESUME BACKUP [TENANT …]`.
    ResumeBackup {
        /// `TENANT …` clause.
        tenants: Vec<String>,
    },
    /// `CANCEL BACKUP [TENANT …]`: the running data backups.
    CancelBackup {
        /// `TENANT …` clause.
        tenants: Vec<String>,
    },
    /// `CANCEL BACKUP BACKUPSET [TENANT …]`: the running set copies.
    CancelBackupBackupset {
        /// `TENANT …` clause.
        tenants: Vec<String>,
    },
    /// `CANCEL BACKUP BACKUPPIECE [TENANT …]`: the running piece copies.
    CancelBackupBackuppiece {
        /// `TENANT …` clause.
        tenants: Vec<String>,
    },
    /// `CANCEL ALL BACKUP FORCE` (sys only).
    CancelAllBackupForce,
    /// `CANCEL VALIDATE n [COPY k]`.
    CancelValidate {
        /// The validation job.
        job_id: u64,
    },
    /// `DELETE BACKUPSET n [COPY k] [TENANT …]`.
    DeleteBackupset {
        /// The set.
        backup_set_id: BackupSetId,
        /// The copy (0: the original at `backup_dest`).
        copy_id: CopyId,
        /// `TENANT …` clause.
        tenants: Vec<String>,
    },
    /// A recognised statement whose back end is not built yet.
    NotYet(String),
}

/// The `BackupManage` call a backup-of-backup or job-control statement makes
/// (OceanBase `ObBackupManageArg`): its verb and arguments, unused ones zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageCall {
    /// The statement, as the `BackupManage` RPC names it.
    pub verb: BackupVerb,
    /// `TENANT …` clause.
    pub tenants: Vec<String>,
    /// Set, piece or job id (0 = `ALL`).
    pub id: u64,
    /// `NOT BACKED UP n TIMES`.
    pub max_backup_times: Option<u64>,
    /// `WITH ACTIVE [PIECE]`.
    pub with_active: bool,
    /// `BACKUP_BACKUP_DEST [=] '…'`.
    pub dest: String,
    /// `COPY k`.
    pub copy_id: CopyId,
}

impl ManageCall {
    /// The `BackupManage` request of this call, for `tenants` (the `TENANT` clause
    /// resolved to the names the meta service knows).
    pub fn into_request(self, tenants: Vec<String>) -> BackupManageRequest {
        BackupManageRequest {
            verb: self.verb.into(),
            tenants,
            id: self.id,
            max_backup_times: self.max_backup_times,
            with_active: self.with_active,
            dest: self.dest,
            copy_id: self.copy_id.0,
        }
    }

    fn new(verb: BackupVerb, tenants: Vec<String>) -> ManageCall {
        ManageCall {
            verb,
            tenants,
            id: 0,
            max_backup_times: None,
            with_active: false,
            dest: String::new(),
            copy_id: CopyId(0),
        }
    }
}

impl Statement {
    /// The `BackupManage` call this statement makes; `None` for a statement that has
    /// its own RPC.
    pub fn manage_call(self) -> Option<ManageCall> {
        use BackupVerb as V;
        Some(match self {
            Statement::BackupBackupset {
                backup_set_id,
                max_backup_times,
                tenants,
                dest,
            } => ManageCall {
                id: backup_set_id.unwrap_or(0),
                max_backup_times,
                dest,
                ..ManageCall::new(V::BackupBackupset, tenants)
            },
            Statement::BackupBackuppiece {
                backup_piece_id,
                max_backup_times,
                with_active,
                tenants,
                dest,
            } => ManageCall {
                id: backup_piece_id.unwrap_or(0),
                max_backup_times,
                with_active,
                dest,
                ..ManageCall::new(V::BackupBackuppiece, tenants)
            },
            Statement::ValidateCopy {
                backup_set_id,
                copy_id,
            } => ManageCall {
                id: backup_set_id.0,
                copy_id,
                ..ManageCall::new(V::ValidateCopy, vec![])
            },
            Statement::StartBackupArchivelog { tenants } => {
                ManageCall::new(V::StartBackupArchivelog, tenants)
            }
            Statement::StopBackupArchivelog { tenants } => {
                ManageCall::new(V::StopBackupArchivelog, tenants)
            }
            Statement::SuspendBackup { tenants } => ManageCall::new(V::SuspendBackup, tenants),
            Statement::ResumeBackup { tenants } => ManageCall::new(V::ResumeBackup, tenants),
            Statement::CancelBackup { tenants } => ManageCall::new(V::CancelBackup, tenants),
            Statement::CancelBackupBackupset { tenants } => {
                ManageCall::new(V::CancelBackupBackupset, tenants)
            }
            Statement::CancelBackupBackuppiece { tenants } => {
                ManageCall::new(V::CancelBackupBackuppiece, tenants)
            }
            Statement::CancelAllBackupForce => ManageCall::new(V::CancelAllBackupForce, vec![]),
            Statement::CancelValidate { job_id } => ManageCall {
                id: job_id,
                ..ManageCall::new(V::CancelValidate, vec![])
            },
            Statement::DeleteBackupset {
                backup_set_id,
                copy_id,
                tenants,
            } => ManageCall {
                id: backup_set_id.0,
                copy_id,
                ..ManageCall::new(V::DeleteBackupset, tenants)
            },
            _ => return None,
        })
    }
}
