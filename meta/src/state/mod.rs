//! The catalog held by the state machine, and [`MetaState::apply`]: a pure function
//! from (state, request) to (new state, response, touched records). No I/O here; the
//! RocksDB store persists the touched records in the same batch as the applied index.

use backstop_common::{BackupSetId, CopyId, PieceId, RoundId, TaskId, WorkerId};
use std::collections::BTreeMap;

use backstop_common::params::Param;
use backstop_common::{Code, JobId, TenantId};
use serde::{Deserialize, Serialize};

use crate::command::{Command, Reply, Request, Response};

mod archive;
mod archive_copy;
mod backup;
pub mod catalog;
mod clean;
mod coverage;
mod delete;
mod dest;
mod dispatch;
mod ending;
mod piece_copy;
mod policy;
mod records;
mod restore;
mod set_copy;
mod tenant;
#[cfg(test)]
mod test_support;
mod users;
mod validate;
mod work;

pub use backup::{MAX_PARTS, PART_TARGET_BYTES};
pub use catalog::{
    ClusterRecord, CopySelection, ParamRecord, SourceIdentity, TenantRecord, TenantStatus,
    UserRecord,
};
pub use clean::SCRUB_DELAY_MS;
pub use coverage::{Coverage, LOG_COVERAGE_BROKEN};
pub use dest::{dest_root, same_place};
pub use records::{
    ArchiveCopyRecord, BackupSetRecord, CopyArchiveStatus, FILE_AVAILABLE, FILE_DELETED,
    FILE_DELETING, JobKind, JobRecord, JobStatus, LeftoverRecord, MAX_ATTEMPTS, PieceRecord,
    PieceStatus, PolicyRecord, RoundRecord, RoundStatus, SetStatus, TaskRecord, TaskStatus,
    WorkState, WorkerRecord,
};

/// Key of a parameter: tenant 0 stands for cluster level.
pub type ParamKey = (u64, Param);
/// Key of a user: tenant id and user name.
pub type UserKey = (TenantId, String);

/// A record `apply` changed; the store writes its current value (or deletes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Touched {
    /// Cluster identity and counters.
    Cluster,
    /// One tenant.
    Tenant(TenantId),
    /// One parameter.
    Param(ParamKey),
    /// One user.
    User(UserKey),
    /// One worker.
    Worker(WorkerId),
    /// One job.
    Job(JobId),
    /// One task.
    Task(TaskId),
    /// One archive round (tenant, round).
    Round(TenantId, RoundId),
    /// One piece (tenant, round, piece, copy).
    Piece(TenantId, RoundId, PieceId, CopyId),
    /// One backup set (tenant, set, copy).
    Set(TenantId, BackupSetId, CopyId),
    /// One continuous archive copy (tenant, copy_id).
    ArchiveCopy(TenantId, CopyId),
    /// One leftover.
    Leftover(u64),
    /// One policy (tenant; sys = cluster).
    Policy(TenantId),
}

/// The whole catalog. Serialized as a whole for snapshots; persisted record by
/// record otherwise (see `keys.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetaState {
    /// Set by the first `InitCluster`.
    pub cluster: Option<ClusterRecord>,
    /// Next user tenant id to hand out.
    pub next_tenant_id: u64,
    /// Last applied leader time (monotonic).
    pub last_time_ms: u64,
    /// All tenants, sys included.
    pub tenants: BTreeMap<TenantId, TenantRecord>,
    /// Parameters that have been set.
    pub params: BTreeMap<ParamKey, ParamRecord>,
    /// Users.
    pub users: BTreeMap<UserKey, UserRecord>,
    /// Workers, jobs, tasks, archive and backup sets.
    pub work: WorkState,
}

impl Default for MetaState {
    fn default() -> Self {
        let mut tenants = BTreeMap::new();
        tenants.insert(
            TenantId::SYS,
            TenantRecord {
                tenant_id: TenantId::SYS,
                name: "sys".to_string(),
                source: String::new(),
                comment: "system tenant".to_string(),
                status: TenantStatus::Normal,
                incarnation: 1,
                create_time_ms: 0,
                begin_backup_hook: None,
                end_backup_hook: None,
                identity: None,
            },
        );
        MetaState {
            cluster: None,
            next_tenant_id: TenantId::FIRST_USER.0,
            last_time_ms: 0,
            tenants,
            params: BTreeMap::new(),
            users: BTreeMap::new(),
            work: WorkState::default(),
        }
    }
}

pub(crate) type Outcome = Result<(Reply, Vec<Touched>), (Code, String)>;

/// A refusal: the code the client sees and its message.
pub(crate) fn refuse(code: Code, message: impl Into<String>) -> (Code, String) {
    (code, message.into())
}

/// The refusal of a report from an attempt that is no longer the task's current one.
pub(crate) fn stale(task_id: TaskId, attempt: u32) -> (Code, String) {
    refuse(
        Code::TaskStale,
        format!("task {task_id} attempt {attempt} is no longer current"),
    )
}

impl MetaState {
    /// Finds a tenant by name, case-insensitively.
    pub fn tenant_by_name(&self, name: &str) -> Option<&TenantRecord> {
        self.tenants
            .values()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// The value of a parameter at `tenant` level, falling back to cluster level;
    /// empty if never set.
    pub fn param(&self, param: Param, tenant: Option<TenantId>) -> &str {
        tenant
            .and_then(|t| self.params.get(&(t.0, param)))
            .or_else(|| self.params.get(&(0, param)))
            .map_or("", |r| r.value.as_str())
    }

    /// Applies one request. Deterministic: the same state and request give the same
    /// result on every replica. Returns the response and the records to persist.
    pub fn apply(&mut self, req: &Request) -> (Response, Vec<Touched>) {
        let now = req.time_ms.max(self.last_time_ms);
        self.last_time_ms = now;
        let outcome = self.apply_command(&req.command, now);
        match outcome {
            Ok((reply, mut touched)) => {
                touched.push(Touched::Cluster);
                (Response::Ok(reply), touched)
            }
            Err((code, message)) => (Response::Err { code, message }, vec![Touched::Cluster]),
        }
    }

    fn apply_command(&mut self, cmd: &Command, now: u64) -> Outcome {
        match cmd {
            Command::InitCluster {
                cluster_name,
                cluster_id,
                root_password,
            } => {
                if self.cluster.is_none() {
                    self.cluster = Some(ClusterRecord {
                        cluster_name: cluster_name.clone(),
                        cluster_id: *cluster_id,
                        create_time_ms: now,
                    });
                    let key = (TenantId::SYS, "root".to_string());
                    self.users.insert(
                        key.clone(),
                        UserRecord {
                            tenant_id: TenantId::SYS,
                            user: "root".to_string(),
                            password: root_password.clone(),
                            create_time_ms: now,
                            backup_admin: true,
                        },
                    );
                    return Ok((Reply::Done, vec![Touched::User(key)]));
                }
                Ok((Reply::Done, vec![]))
            }
            Command::CreateTenant {
                name,
                source,
                comment,
                if_not_exists,
                root_password,
            } => {
                if let Some(existing) = self.tenant_by_name(name) {
                    if *if_not_exists {
                        return Ok((Reply::Tenant(existing.clone()), vec![]));
                    }
                    return Err((
                        Code::EntryExist,
                        format!("tenant '{}' already exists", existing.name),
                    ));
                }
                let id = TenantId(self.next_tenant_id);
                self.next_tenant_id += 1;
                let record = TenantRecord {
                    tenant_id: id,
                    name: name.clone(),
                    source: source.clone(),
                    comment: comment.clone(),
                    status: TenantStatus::Normal,
                    incarnation: 1,
                    create_time_ms: now,
                    begin_backup_hook: None,
                    end_backup_hook: None,
                    identity: None,
                };
                self.tenants.insert(id, record.clone());
                let root = (id, "root".to_string());
                self.users.insert(
                    root.clone(),
                    UserRecord {
                        tenant_id: id,
                        user: "root".to_string(),
                        password: root_password.clone(),
                        create_time_ms: now,
                        backup_admin: true,
                    },
                );
                Ok((
                    Reply::Tenant(record),
                    vec![Touched::Tenant(id), Touched::User(root)],
                ))
            }
            Command::DropTenant { name, if_exists } => {
                let Some(tenant) = self.tenant_by_name(name) else {
                    if *if_exists {
                        return Ok((Reply::Dropped(false), vec![]));
                    }
                    return Err((
                        Code::EntryNotExist,
                        format!("tenant '{name}' does not exist"),
                    ));
                };
                let id = tenant.tenant_id;
                if id == TenantId::SYS {
                    return Err((Code::NotSupported, "dropping the sys tenant".to_string()));
                }
                if let Some(job) = self
                    .work
                    .jobs
                    .values()
                    .find(|j| j.tenant_id == id && j.status.is_live())
                {
                    return Err((
                        Code::BackupInProgress,
                        format!(
                            "tenant '{name}' has running job {} ({:?}); stop it first",
                            job.job_id, job.kind
                        ),
                    ));
                }
                let mut touched = vec![Touched::Tenant(id)];
                self.tenants.remove(&id);
                let params: Vec<ParamKey> = self
                    .params
                    .keys()
                    .filter(|(t, _)| *t == id.0)
                    .cloned()
                    .collect();
                for key in params {
                    self.params.remove(&key);
                    touched.push(Touched::Param(key));
                }
                let users: Vec<UserKey> = self
                    .users
                    .keys()
                    .filter(|(t, _)| *t == id)
                    .cloned()
                    .collect();
                for key in users {
                    self.users.remove(&key);
                    touched.push(Touched::User(key));
                }
                Ok((Reply::Dropped(true), touched))
            }
            Command::SetParameter {
                param,
                tenant,
                value,
            } => {
                let tenant_id = match tenant {
                    None => None,
                    Some(name) => Some(
                        self.tenant_by_name(name)
                            .ok_or_else(|| {
                                (
                                    Code::EntryNotExist,
                                    format!("tenant '{name}' does not exist"),
                                )
                            })?
                            .tenant_id,
                    ),
                };
                self.check_param_rules(*param, tenant_id, value)?;
                let key = (tenant_id.map_or(0, |t| t.0), *param);
                let record = ParamRecord {
                    param: *param,
                    tenant_id,
                    value: value.clone(),
                    update_time_ms: now,
                };
                self.params.insert(key, record.clone());
                Ok((Reply::Parameter(record), vec![Touched::Param(key)]))
            }
            Command::SetTenantHooks {
                name,
                begin_backup_hook,
                end_backup_hook,
            } => {
                let id = self.tenant_id(name)?;
                let Some(t) = self.tenants.get_mut(&id) else {
                    return Err((
                        Code::EntryNotExist,
                        format!("tenant '{name}' does not exist"),
                    ));
                };
                t.begin_backup_hook = begin_backup_hook.clone();
                t.end_backup_hook = end_backup_hook.clone();
                Ok((Reply::Tenant(t.clone()), vec![Touched::Tenant(id)]))
            }
            Command::Work(work) => self.apply_work(work, now),
            Command::SetTenantSource {
                name,
                source,
                identity,
            } => self.set_tenant_source(name, source, *identity),
            Command::CreateUser {
                tenant,
                user,
                password,
                if_not_exists,
            } => {
                let tenant_id = self.tenant_id(tenant)?;
                let key = (tenant_id, user.clone());
                if let Some(existing) = self.users.get(&key) {
                    if *if_not_exists {
                        return Ok((Reply::User(existing.clone()), vec![]));
                    }
                    return Err((
                        Code::EntryExist,
                        format!("user '{user}@{tenant}' already exists"),
                    ));
                }
                let record = UserRecord {
                    tenant_id,
                    user: user.clone(),
                    password: password.clone(),
                    create_time_ms: now,
                    backup_admin: false,
                };
                self.users.insert(key.clone(), record.clone());
                Ok((Reply::User(record), vec![Touched::User(key)]))
            }
            Command::AlterUser {
                tenant,
                user,
                password,
            } => {
                let tenant_id = self.tenant_id(tenant)?;
                let key = (tenant_id, user.clone());
                let Some(record) = self.users.get_mut(&key) else {
                    return Err((
                        Code::EntryNotExist,
                        format!("user '{user}@{tenant}' does not exist"),
                    ));
                };
                record.password = password.clone();
                Ok((Reply::User(record.clone()), vec![Touched::User(key)]))
            }
            Command::SetUserPrivilege {
                tenant,
                user,
                backup_admin,
            } => self.set_user_privilege(tenant, user, *backup_admin),
            Command::DropUser {
                tenant,
                user,
                if_exists,
            } => {
                let tenant_id = self.tenant_id(tenant)?;
                if tenant_id == TenantId::SYS && user == "root" {
                    return Err((Code::NotSupported, "dropping root@sys".to_string()));
                }
                let key = (tenant_id, user.clone());
                if self.users.remove(&key).is_none() {
                    if *if_exists {
                        return Ok((Reply::Dropped(false), vec![]));
                    }
                    return Err((
                        Code::EntryNotExist,
                        format!("user '{user}@{tenant}' does not exist"),
                    ));
                }
                Ok((Reply::Dropped(true), vec![Touched::User(key)]))
            }
        }
    }

    pub(crate) fn tenant_id(&self, name: &str) -> Result<TenantId, (Code, String)> {
        self.tenant_by_name(name)
            .map(|t| t.tenant_id)
            .ok_or_else(|| {
                (
                    Code::EntryNotExist,
                    format!("tenant '{name}' does not exist"),
                )
            })
    }

    /// A tenant whose archive round is live or whose data backup runs, among those a
    /// `backup_dest` set at `tenant` level (None: cluster level, every tenant without
    /// its own) applies to.
    fn tenant_using_dest(&self, tenant: Option<TenantId>) -> Option<String> {
        use records::{JobKind, RoundStatus};
        self.tenants
            .values()
            .filter(|t| t.tenant_id != TenantId::SYS)
            .filter(|t| match tenant {
                Some(id) => t.tenant_id == id,
                None => !self
                    .params
                    .contains_key(&(t.tenant_id.0, Param::BackupDest)),
            })
            .find(|t| {
                let archiving = self.current_round(t.tenant_id).is_some_and(|r| {
                    matches!(
                        r.status,
                        RoundStatus::Beginning | RoundStatus::Doing | RoundStatus::Stopping
                    )
                });
                archiving
                    || self.work.jobs.values().any(|j| {
                        j.tenant_id == t.tenant_id
                            && j.status.is_live()
                            && matches!(j.kind, JobKind::Backup { .. })
                    })
            })
            .map(|t| t.name.clone())
    }

    /// Stateful rules of OceanBase's destination parameters (`docs/PARAMETERS.md`) that can be checked with
    /// today's catalog. Rules about running jobs join as jobs arrive.
    fn check_param_rules(
        &self,
        param: Param,
        tenant: Option<TenantId>,
        value: &str,
    ) -> Result<(), (Code, String)> {
        let root = |v: &str| {
            backstop_common::BackupDest::parse(v)
                .map(|d| d.root_path())
                .unwrap_or_default()
        };
        match param {
            Param::BackupDest => {
                let current = self.param(Param::BackupDest, tenant);
                let moves = root(current) != root(value);
                if moves && let Some(busy) = self.tenant_using_dest(tenant) {
                    return Err((
                        Code::BackupInProgress,
                        format!(
                            "tenant {busy} is archiving or backing up to the current backup_dest; NOARCHIVELOG and wait for its backups first (sets and their log must stay at one destination)"
                        ),
                    ));
                }
                if !self.param(Param::BackupBackupDest, tenant).is_empty() && moves {
                    return Err((
                        Code::NotSupported,
                        "set backup dest with backup backup dest not empty is not supported (clear backup_backup_dest first)".to_string(),
                    ));
                }
                let copy = self.param(Param::BackupBackupDest, tenant);
                if !value.is_empty() && !copy.is_empty() && root(copy) == root(value) {
                    return Err((
                        Code::InvalidBackupDest,
                        "backup_dest must differ from backup_backup_dest".to_string(),
                    ));
                }
            }
            Param::BackupBackupDest => {
                if value.is_empty() {
                    return Ok(());
                }
                let primary = self.param(Param::BackupDest, tenant);
                if primary.is_empty() {
                    return Err((
                        Code::NotSupported,
                        "set backup backup dest while backup_dest is empty is not supported (set backup_dest first)".to_string(),
                    ));
                }
                if root(primary) == root(value) {
                    return Err((
                        Code::InvalidBackupDest,
                        "backup_backup_dest must differ from backup_dest".to_string(),
                    ));
                }
            }
            Param::BackupDestOption | Param::BackupBackupDestOption | Param::BackupCompression => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "tenant_tests.rs"]
mod tests;
