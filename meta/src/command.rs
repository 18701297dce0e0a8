//! Raft log payloads: what a client asks ([`Command`], wrapped with the leader's clock
//! in [`Request`]) and what the state machine answers ([`Response`]).
//!
//! Commands are validated statelessly before they are proposed (so bad input never
//! reaches the log) and statefully when applied (so every replica reaches the same
//! verdict). A command refused at apply time still occupies a log entry and answers
//! [`Response::Err`] on every replica.

use backstop_common::Code;
use backstop_common::auth::PasswordHash;
use backstop_common::params::Param;
use backstop_common::{BackupSetId, CopyId, TaskId, WorkerId};
use serde::{Deserialize, Serialize};

use backstop_common::JobId;
use backstop_common::task::{
    ArchiveProgress, Assignment, CopyProgress, RestoreOptions, TaskOutcome,
};

use crate::state::catalog::{CopySelection, ParamRecord, SourceIdentity, TenantRecord, UserRecord};

/// What a `CANCEL …` statement ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CancelTarget {
    /// `CANCEL BACKUP`: data backups.
    Backup,
    /// `CANCEL BACKUP BACKUPSET`: every live backupset copy job.
    SetCopy,
    /// `CANCEL BACKUP BACKUPPIECE`: every live backuppiece copy job.
    PieceCopy,
    /// `CANCEL VALIDATE n`.
    Validate(u64),
}

/// One entry of application data in the Raft log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Wall-clock milliseconds since the Unix epoch, read by the leader when it proposed
    /// the command. Applied as `max(time_ms, last applied time)`, so the catalog's clock
    /// never goes back even if the leader's does.
    pub time_ms: u64,
    /// What to do.
    pub command: Command,
}

/// A change to the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Sets the cluster identity once; later proposals are ignored (first one wins).
    InitCluster {
        /// OceanBase `cluster_name`.
        cluster_name: String,
        /// OceanBase `cluster_id`, chosen at random by the proposer.
        cluster_id: u64,
        /// Hash of `root@sys`'s initial password (empty password by default).
        root_password: PasswordHash,
    },
    /// `CREATE TENANT [IF NOT EXISTS] name SOURCE 'dir:///…' [COMMENT '…']`.
    CreateTenant {
        /// Validated tenant name.
        name: String,
        /// Normalized `dir://` source URI.
        source: String,
        /// Free text.
        comment: String,
        /// Answer the existing tenant instead of `OB_ENTRY_EXIST`.
        if_not_exists: bool,
        /// Hash of the new tenant's `root` password (empty by default, as OceanBase).
        root_password: PasswordHash,
    },
    /// `DROP TENANT [IF EXISTS] name`.
    DropTenant {
        /// Tenant name (case-insensitive).
        name: String,
        /// Answer `Dropped(false)` instead of `OB_ENTRY_NOT_EXIST`.
        if_exists: bool,
    },
    /// `ALTER SYSTEM SET param = 'value' [TENANT = t]`; the value is already normalized.
    SetParameter {
        /// Which parameter.
        param: Param,
        /// `None`: cluster level.
        tenant: Option<String>,
        /// Normalized value; empty clears the parameter.
        value: String,
    },
    /// `CREATE USER 'name'` inside a tenant.
    CreateUser {
        /// Tenant name.
        tenant: String,
        /// User name.
        user: String,
        /// Hash computed before proposing.
        password: PasswordHash,
        /// Answer the existing user instead of `OB_ENTRY_EXIST`.
        if_not_exists: bool,
    },
    /// `ALTER USER … IDENTIFIED BY …`.
    AlterUser {
        /// Tenant name.
        tenant: String,
        /// User name.
        user: String,
        /// New hash.
        password: PasswordHash,
    },
    /// Sets or clears a tenant's hot-backup hooks (shell commands).
    SetTenantHooks {
        /// Tenant name.
        name: String,
        /// Run after `start_replay_scn` is recorded, before datafiles are copied.
        begin_backup_hook: Option<String>,
        /// Run after datafiles are copied, before `min_restore_scn` is recorded.
        end_backup_hook: Option<String>,
    },
    /// Jobs, tasks, workers, archive and backup sets.
    Work(WorkCommand),
    /// `DROP USER`.
    DropUser {
        /// Tenant name.
        tenant: String,
        /// User name.
        user: String,
        /// Answer `Dropped(false)` instead of `OB_ENTRY_NOT_EXIST`.
        if_exists: bool,
    },
    /// `ALTER TENANT name SOURCE = '…'`, and the identity `CREATE TENANT` checked.
    ///
    /// A changed source needs the tenant idle (no live job: `OB_BACKUP_IN_PROGRESS`).
    /// The same `system_identifier` on another timeline opens the next incarnation;
    /// another `system_identifier` is another database (`OB_OP_NOT_ALLOW`).
    SetTenantSource {
        /// Tenant name.
        name: String,
        /// Normalized source URI.
        source: String,
        /// What the check of a `postgresql://` source found; `None` for `dir://`.
        identity: Option<SourceIdentity>,
    },
    /// `GRANT|REVOKE BACKUP_ADMIN ON *.* TO|FROM 'user'` (layout 4). A tenant's
    /// `root` keeps it (`OB_OP_NOT_ALLOW` on a revoke).
    SetUserPrivilege {
        /// Tenant name.
        tenant: String,
        /// User name.
        user: String,
        /// true = granted.
        backup_admin: bool,
    },
}

/// Commands of the data plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WorkCommand {
    /// A worker announces itself (again after a restart).
    RegisterWorker {
        /// Id the worker keeps in its data dir.
        worker_id: WorkerId,
        /// Its address (informational).
        addr: String,
        /// Task slots.
        slots: u32,
        /// Tenants it can read; empty = all.
        tenants: Vec<String>,
    },
    /// Leases a pending task to a worker: next attempt.
    AssignTask {
        /// Task.
        task_id: TaskId,
        /// Worker.
        worker_id: WorkerId,
    },
    /// The leader saw no heartbeat for this attempt within the lease.
    ExpireTask {
        /// Task.
        task_id: TaskId,
        /// Attempt whose lease ran out.
        attempt: u32,
        /// Why.
        reason: String,
    },
    /// Batched progress from heartbeats: (task, attempt, bytes done, bytes total).
    UpdateProgress {
        /// Entries.
        entries: Vec<(TaskId, u32, u64, u64)>,
    },
    /// `ALTER SYSTEM ARCHIVELOG` for one tenant.
    StartArchive {
        /// Tenant name.
        tenant: String,
    },
    /// `ALTER SYSTEM NOARCHIVELOG` for one tenant.
    StopArchive {
        /// Tenant name.
        tenant: String,
    },
    /// An archive checkpoint (fenced).
    ArchiveCheckpoint {
        /// Task.
        task_id: TaskId,
        /// Attempt.
        attempt: u32,
        /// Worker.
        worker_id: WorkerId,
        /// What was archived.
        progress: ArchiveProgress,
    },
    /// `ALTER SYSTEM BACKUP [INCREMENTAL] DATABASE` for one tenant.
    StartBackup {
        /// Tenant name.
        tenant: String,
        /// Incremental on the latest successful set.
        incremental: bool,
    },
    /// `ALTER SYSTEM VALIDATE BACKUPSET n` for one tenant.
    StartValidate {
        /// Tenant name.
        tenant: String,
        /// Set.
        backup_set_id: BackupSetId,
    },
    /// `ctl restore` as builds before 2026-12-06 logged it (no options), kept in its
    /// place so their Raft logs still decode; applied as [`WorkCommand::StartRestore`]
    /// with the default options.
    StartRestoreV1 {
        /// Tenant name.
        tenant: String,
        /// Destination to restore from; `None`: the tenant's backup_dest.
        dest: Option<String>,
        /// Directory on the worker's host.
        to: String,
        /// Target SCN.
        until_scn: Option<u64>,
        /// Set to use.
        backup_set: Option<BackupSetId>,
    },
    /// `ALTER SYSTEM BACKUP BACKUPSET …`.
    StartSetCopy {
        /// Selection and destination.
        selection: CopySelection,
    },
    /// `ALTER SYSTEM BACKUP BACKUPPIECE …`.
    StartPieceCopy {
        /// Selection and destination.
        selection: CopySelection,
        /// `WITH ACTIVE [PIECE]`.
        with_active: bool,
    },
    /// `ALTER SYSTEM START | STOP BACKUP ARCHIVELOG`.
    SetArchiveCopy {
        /// START (true) or STOP.
        enable: bool,
        /// Tenants (empty = every user tenant).
        tenants: Vec<String>,
    },
    /// A checkpoint of the continuous archive copy (fenced).
    CopyCheckpoint {
        /// Task.
        task_id: TaskId,
        /// Attempt.
        attempt: u32,
        /// Worker.
        worker_id: WorkerId,
        /// What was copied.
        progress: CopyProgress,
    },
    /// `CANCEL BACKUP`, `CANCEL BACKUP BACKUPSET`, `CANCEL BACKUP BACKUPPIECE`,
    /// `CANCEL VALIDATE n`.
    CancelJobs {
        /// Which jobs.
        target: CancelTarget,
        /// Tenants (empty = every tenant).
        tenants: Vec<String>,
    },
    /// `SUSPEND BACKUP` / `RESUME BACKUP`.
    SuspendBackup {
        /// SUSPEND (true) or RESUME.
        suspend: bool,
        /// Tenants (empty = every tenant).
        tenants: Vec<String>,
    },
    /// `CANCEL ALL BACKUP FORCE`.
    CancelAllForce {
        /// Leftovers wait this long (ms) before the cleaner touches them: the task
        /// lease, after which every fenced attempt has stopped writing.
        clean_after_ms: u64,
    },
    /// `VALIDATE BACKUPSET n COPY k`.
    StartValidateCopy {
        /// Tenant name.
        tenant: String,
        /// Set.
        backup_set_id: BackupSetId,
        /// Copy (0 = the primary).
        copy_id: CopyId,
    },
    /// The leader's scheduler: clean leftovers that are due.
    StartCleaner,
    /// `backstop ctl policy set`.
    SetPolicy {
        /// Tenant name; `None` = cluster.
        tenant: Option<String>,
        /// Full backup interval, ms (0 = none).
        full_interval_ms: u64,
        /// Incremental backup interval, ms (0 = none).
        incremental_interval_ms: u64,
        /// Secondary backup on.
        secondary: bool,
    },
    /// `backstop ctl policy drop`.
    DropPolicy {
        /// Tenant name; `None` = cluster.
        tenant: Option<String>,
    },
    /// A task ended (fenced).
    CompleteTask {
        /// Task.
        task_id: TaskId,
        /// Attempt.
        attempt: u32,
        /// Worker.
        worker_id: WorkerId,
        /// How it ended.
        outcome: TaskOutcome,
    },
    /// `ALTER SYSTEM DELETE BACKUPSET n [COPY k]`: mark the set `DELETING` and hand
    /// its directory and index entry to the cleaner, which marks it `DELETED`.
    DeleteBackupSet {
        /// Tenants named by `TENANT …` (empty: whichever tenant owns the set).
        tenants: Vec<String>,
        /// Set id.
        backup_set_id: BackupSetId,
        /// Copy (0: the original at `backup_dest`).
        copy_id: CopyId,
    },
    /// `ctl restore`: one restore task on a worker (the offline `backstop restore`
    /// needs no command). Last in the enum: bincode numbers variants by position.
    StartRestore {
        /// Tenant name.
        tenant: String,
        /// Destination to restore from; `None`: the tenant's backup_dest.
        dest: Option<String>,
        /// Directory on the worker's host.
        to: String,
        /// Target SCN.
        until_scn: Option<u64>,
        /// Set to use.
        backup_set: Option<BackupSetId>,
        /// Time target, incarnation, owner, tablespaces.
        options: RestoreOptions,
    },
}

impl WorkCommand {
    /// The command in today's shape: a [`WorkCommand::StartRestoreV1`] becomes a
    /// [`WorkCommand::StartRestore`] with the default options; anything else is
    /// unchanged.
    pub fn upgraded(self) -> WorkCommand {
        match self {
            WorkCommand::StartRestoreV1 {
                tenant,
                dest,
                to,
                until_scn,
                backup_set,
            } => WorkCommand::StartRestore {
                tenant,
                dest,
                to,
                until_scn,
                backup_set,
                options: backstop_common::task::RestoreOptions::default(),
            },
            other => other,
        }
    }
}

/// The state machine's answer to one log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Applied.
    Ok(Reply),
    /// Refused by a stateful rule; nothing changed.
    Err {
        /// Stable code.
        code: Code,
        /// What was wrong.
        message: String,
    },
}

/// The payload of a successful [`Response`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Nothing to report (blank and membership entries, `InitCluster`).
    Done,
    /// The tenant created (or the existing one, with `IF NOT EXISTS`).
    Tenant(TenantRecord),
    /// Whether something was dropped.
    Dropped(bool),
    /// The parameter as stored.
    Parameter(ParamRecord),
    /// The user as stored.
    User(UserRecord),
    /// A task leased to the asking worker.
    Assigned(Box<Assignment>),
    /// The job a statement created (or found running).
    Job(JobId),
    /// The jobs a statement created or ended.
    Jobs(Vec<JobId>),
}
