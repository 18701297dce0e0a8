//! Statements that change something: privileges first (sys, tenant root), the tenants
//! a statement names resolved, then one `MetaService` call each.

use super::{Reply, Session, ok};
use crate::ast::{ManageCall, Statement};
use crate::errors::SqlError;
use crate::views::{Cell, Source};
use backstop_common::BackupSetId;

/// `ER_NONEXISTING_GRANT`.
const ER_NONEXISTING_GRANT: u16 = 1141;
use backstop_common::Code;
use backstop_proto::meta::*;

impl Session {
    pub(super) async fn execute(&mut self, stmt: Statement) -> Result<Reply, SqlError> {
        match stmt {
            Statement::SetParameter {
                name,
                value,
                tenant,
            } => {
                let tenant = match (self.is_sys(), tenant) {
                    (true, t) => t.unwrap_or_default(),
                    (false, _) => return Err(SqlError::no_privilege("set cluster parameters")),
                };
                crate::meta_call!(
                    self.meta,
                    set_parameter,
                    SetParameterRequest {
                        name,
                        value,
                        tenant_name: tenant,
                    }
                )
                .map_err(SqlError::from_client)?;
                Ok(ok())
            }
            Statement::Archivelog { enable, tenants } => {
                self.require_backup_admin().await?;
                let tenants = self.resolve_ids(tenants).await?;
                for tenant in self.targets_or_all(tenants)? {
                    crate::meta_call!(
                        self.meta,
                        archivelog,
                        ArchivelogRequest {
                            tenant_name: tenant,
                            enable,
                        }
                    )
                    .map_err(SqlError::from_client)?;
                }
                Ok(ok())
            }
            Statement::BackupDatabase {
                incremental,
                tenants,
            } => {
                self.require_backup_admin().await?;
                let tenants = self.resolve_ids(tenants).await?;
                for tenant in self.targets_or_all(tenants)? {
                    crate::meta_call!(
                        self.meta,
                        backup_database,
                        BackupDatabaseRequest {
                            tenant_name: tenant,
                            incremental,
                        }
                    )
                    .map_err(SqlError::from_client)?;
                }
                Ok(ok())
            }
            Statement::ValidateBackupset { backup_set_id } => {
                self.require_backup_admin().await?;
                let tenant = if self.is_sys() {
                    self.set_owner(backup_set_id).await?
                } else {
                    self.tenant.clone()
                };
                crate::meta_call!(
                    self.meta,
                    validate_backup_set,
                    ValidateBackupSetRequest {
                        tenant_name: tenant,
                        backup_set_id: backup_set_id.0,
                    }
                )
                .map_err(SqlError::from_client)?;
                Ok(ok())
            }
            Statement::CreateTenant {
                name,
                source,
                comment,
                if_not_exists,
                root_password,
            } => {
                if !self.is_sys() {
                    return Err(SqlError::no_privilege("create tenants"));
                }
                let t = crate::meta_call!(
                    self.meta,
                    create_tenant,
                    CreateTenantRequest {
                        tenant_name: name,
                        source,
                        comment,
                        if_not_exists,
                        root_password,
                    }
                )
                .map_err(SqlError::from_client)?;
                if t.generated_root_password.is_empty() {
                    return Ok(Reply::Ok {
                        affected: 1,
                        info: String::new(),
                    });
                }
                // MySQL's answer to `CREATE USER … IDENTIFIED BY RANDOM PASSWORD`,
                // with the tenant appended: the password is shown this once.
                Ok(super::rows(
                    &["user", "host", "generated password", "tenant"],
                    vec![vec![
                        Cell::from("root"),
                        Cell::from("%"),
                        Cell::from(t.generated_root_password.as_str()),
                        Cell::from(t.tenant_name.as_str()),
                    ]],
                ))
            }
            Statement::AlterTenantSource { name, source } => {
                if !self.is_sys() {
                    return Err(SqlError::no_privilege("change a tenant's source"));
                }
                crate::meta_call!(
                    self.meta,
                    alter_tenant_source,
                    AlterTenantSourceRequest {
                        tenant_name: name,
                        source,
                    }
                )
                .map_err(SqlError::from_client)?;
                Ok(Reply::Ok {
                    affected: 1,
                    info: String::new(),
                })
            }
            Statement::DropTenant { name, if_exists } => {
                if !self.is_sys() {
                    return Err(SqlError::no_privilege("drop tenants"));
                }
                let r = crate::meta_call!(
                    self.meta,
                    drop_tenant,
                    DropTenantRequest {
                        tenant_name: name,
                        if_exists,
                    }
                )
                .map_err(SqlError::from_client)?;
                Ok(Reply::Ok {
                    affected: u64::from(r.dropped),
                    info: String::new(),
                })
            }
            Statement::CreateUser {
                name,
                password,
                if_not_exists,
            } => {
                self.require_tenant_root("create users")?;
                crate::meta_call!(
                    self.meta,
                    create_user,
                    CreateUserRequest {
                        user_name: name,
                        tenant_name: self.tenant.clone(),
                        password,
                        if_not_exists,
                    }
                )
                .map_err(SqlError::from_client)?;
                Ok(ok())
            }
            Statement::AlterUser { name, password } => self.set_password(name, password).await,
            Statement::SetPassword { name, password } => {
                let name = name.unwrap_or_else(|| self.user.clone());
                self.set_password(name, password).await
            }
            Statement::Grant {
                privilege,
                name,
                grant,
            } => {
                self.require_tenant_root(if grant {
                    "grant privileges"
                } else {
                    "revoke privileges"
                })?;
                crate::meta_call!(
                    self.meta,
                    set_user_privilege,
                    SetUserPrivilegeRequest {
                        user_name: name,
                        tenant_name: self.tenant.clone(),
                        privilege,
                        grant,
                    }
                )
                .map_err(SqlError::from_client)?;
                Ok(ok())
            }
            Statement::DropUser { name, if_exists } => {
                self.require_tenant_root("drop users")?;
                crate::meta_call!(
                    self.meta,
                    drop_user,
                    DropUserRequest {
                        user_name: name,
                        tenant_name: self.tenant.clone(),
                        if_exists,
                    }
                )
                .map_err(SqlError::from_client)?;
                Ok(ok())
            }
            Statement::NotYet(what) => {
                Err(SqlError::not_supported(&format!("ALTER SYSTEM {what}")))
            }
            other => {
                let Some(call) = other.manage_call() else {
                    return Err(SqlError::not_supported("this statement"));
                };
                self.backup_manage(call).await
            }
        }
    }

    /// A backup-of-backup or job-control statement: its privileges, its tenants
    /// resolved, then one `BackupManage` call.
    async fn backup_manage(&mut self, mut call: ManageCall) -> Result<Reply, SqlError> {
        if call.verb == BackupVerb::CancelAllBackupForce && !self.is_sys() {
            return Err(SqlError::no_privilege("run CANCEL ALL BACKUP FORCE"));
        }
        // A destination is where a tenant's backups go: root@sys chooses it.
        if !call.dest.is_empty() && !self.is_sys() {
            return Err(SqlError::no_privilege("choose BACKUP_BACKUP_DEST"));
        }
        self.require_backup_admin().await?;
        let tenants = self.resolve_ids(std::mem::take(&mut call.tenants)).await?;
        let mut tenants = self.targets(tenants)?;
        if call.verb == BackupVerb::ValidateCopy && tenants.is_empty() {
            tenants = vec![self.set_owner(BackupSetId(call.id)).await?];
        }
        crate::meta_call!(self.meta, backup_manage, call.into_request(tenants))
            .map_err(SqlError::from_client)?;
        Ok(ok())
    }

    /// The tenant a backup set belongs to (set ids are cluster-wide).
    pub(super) async fn set_owner(
        &mut self,
        backup_set_id: BackupSetId,
    ) -> Result<String, SqlError> {
        if !self.is_sys() {
            return Ok(self.tenant.clone());
        }
        let snap = self.snapshot(&[Source::Tenants, Source::Sets]).await?;
        let owner = snap
            .sets
            .iter()
            .find(|s| s.backup_set_id == backup_set_id.0 && s.copy_id == 0)
            .ok_or_else(|| {
                SqlError::coded(
                    Code::EntryNotExist,
                    format!("backup set {backup_set_id} does not exist"),
                )
            })?;
        snap.tenants
            .iter()
            .find(|t| t.tenant_id == owner.tenant_id)
            .map(|t| t.tenant_name.clone())
            .ok_or_else(|| {
                SqlError::coded(
                    Code::EntryNotExist,
                    format!(
                        "backup set {backup_set_id} belongs to tenant {}, which no longer exists",
                        owner.tenant_id
                    ),
                )
            })
    }

    /// `ALTER USER … IDENTIFIED BY` / `SET PASSWORD`: one's own password, or (the
    /// tenant's root) another user's.
    async fn set_password(&mut self, name: String, password: String) -> Result<Reply, SqlError> {
        if name != self.user {
            self.require_tenant_root("change other users' passwords")?;
        }
        crate::meta_call!(
            self.meta,
            alter_user,
            AlterUserRequest {
                user_name: name,
                tenant_name: self.tenant.clone(),
                password,
            }
        )
        .map_err(SqlError::from_client)?;
        Ok(ok())
    }

    /// Backup statements need `BACKUP_ADMIN`: a tenant's `root` holds it, other
    /// users by `GRANT`. Read from the catalog on each statement, so a `REVOKE`
    /// applies at once.
    ///
    /// Errors: `ER_SPECIFIC_ACCESS_DENIED` (1227) with MySQL's wording.
    pub(super) async fn require_backup_admin(&mut self) -> Result<(), SqlError> {
        if self.user == "root" {
            return Ok(());
        }
        let holds = crate::meta_call!(
            self.meta,
            list_users,
            ListUsersRequest {
                tenant_name: self.tenant.clone(),
            }
        )
        .map_err(SqlError::from_client)?
        .users
        .iter()
        .any(|u| u.user_name == self.user && u.backup_admin);
        if holds {
            return Ok(());
        }
        Err(SqlError {
            errno: crate::errors::ER_SPECIFIC_ACCESS_DENIED,
            message: "Access denied; you need (at least one of) the BACKUP_ADMIN privilege(s) for this operation".into(),
        })
    }

    /// `SHOW GRANTS [FOR 'name'[@'host']]`, in MySQL's form. Another user's grants
    /// are the tenant root's to read.
    pub(super) async fn show_grants(&mut self, text: &str) -> Result<Reply, SqlError> {
        let lower = text.to_ascii_lowercase();
        let name = match lower.find(" for ") {
            Some(i) => {
                let raw = text[i + 5..].trim();
                let user = raw.split('@').next().unwrap_or(raw);
                user.trim()
                    .trim_matches(|c| c == '\'' || c == '`' || c == '"')
                    .to_string()
            }
            None => self.user.clone(),
        };
        if name != self.user {
            self.require_tenant_root("read other users' grants")?;
        }
        let user = crate::meta_call!(
            self.meta,
            list_users,
            ListUsersRequest {
                tenant_name: self.tenant.clone(),
            }
        )
        .map_err(SqlError::from_client)?
        .users
        .into_iter()
        .find(|u| u.user_name == name)
        .ok_or_else(|| SqlError {
            errno: ER_NONEXISTING_GRANT,
            message: format!(
                "There is no such grant defined for user '{}' on host '%'",
                name.chars().take(64).collect::<String>()
            ),
        })?;
        let mut grants = vec![format!("GRANT USAGE ON *.* TO `{name}`@`%`")];
        if user.backup_admin {
            grants.push(format!("GRANT BACKUP_ADMIN ON *.* TO `{name}`@`%`"));
        }
        let column = format!("Grants for {name}@%");
        Ok(super::rows(
            &[column.as_str()],
            grants.into_iter().map(|g| vec![Cell::from(g)]).collect(),
        ))
    }

    /// Users are managed by the `root` user of their tenant.
    pub(super) fn require_tenant_root(&self, what: &str) -> Result<(), SqlError> {
        if self.user == "root" {
            return Ok(());
        }
        Err(SqlError {
            errno: crate::errors::ER_SPECIFIC_ACCESS_DENIED,
            message: format!("Access denied; only root@{} may {what}", self.tenant),
        })
    }

    /// Replaces `#id` (from `TENANT_ID = n`) with the tenant's name.
    pub(super) async fn resolve_ids(
        &mut self,
        named: Vec<String>,
    ) -> Result<Vec<String>, SqlError> {
        if !named.iter().any(|n| n.starts_with('#')) {
            return Ok(named);
        }
        let tenants = crate::meta_call!(self.meta, list_tenants, ListTenantsRequest {})
            .map_err(SqlError::from_client)?
            .tenants;
        named
            .into_iter()
            .map(|n| match n.strip_prefix('#') {
                None => Ok(n),
                Some(id) => tenants
                    .iter()
                    .find(|t| t.tenant_id.to_string() == id)
                    .map(|t| t.tenant_name.clone())
                    .ok_or_else(|| {
                        SqlError::coded(
                            Code::EntryNotExist,
                            format!("tenant id {id} does not exist"),
                        )
                    }),
            })
            .collect()
    }

    /// Tenants a statement may act on: its own for tenant users, any for root@sys.
    pub(super) fn targets(&self, named: Vec<String>) -> Result<Vec<String>, SqlError> {
        if self.is_sys() {
            return Ok(named);
        }
        if named.iter().any(|t| !t.eq_ignore_ascii_case(&self.tenant)) {
            return Err(SqlError::no_privilege("act on another tenant"));
        }
        Ok(vec![self.tenant.clone()])
    }

    /// Named tenants checked against the session; none named means "every user
    /// tenant" for root@sys and "my tenant" for a tenant user.
    pub(super) fn targets_or_all(&self, named: Vec<String>) -> Result<Vec<String>, SqlError> {
        if named.is_empty() {
            return Ok(vec![if self.is_sys() {
                String::new()
            } else {
                self.tenant.clone()
            }]);
        }
        self.targets(named)
    }
}
