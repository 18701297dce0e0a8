//! `backstop ctl`: the operator's gRPC client. Tables for people, `--json` for
//! scripts. Every call tries the given meta addresses in order and retries while no
//! leader is reachable (up to `--timeout`).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use backstop_common::Code;
use backstop_meta::MetaError;
use backstop_meta::network::channel;
use backstop_proto::ERROR_CODE_KEY;
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::*;
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::config::DEFAULT_META_ADDR;

/// `backstop ctl` arguments.
#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// Meta node addresses (comma-separated host:port); any member works.
    #[arg(long, env = "BACKSTOP_META", value_delimiter = ',', default_value = DEFAULT_META_ADDR)]
    pub meta: Vec<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up after this many seconds without a reachable leader.
    #[arg(long, default_value_t = 10)]
    pub timeout: u64,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCmd,
}

/// `ctl` subcommands.
#[derive(Debug, Subcommand)]
pub enum CtlCmd {
    /// Cluster identity, leader, term, indexes and members.
    Status,
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Parameters (backup_dest, backup_backup_dest, …).
    #[command(subcommand, name = "param")]
    Param(ParamCmd),
    /// Users (user@tenant).
    #[command(subcommand)]
    User(UserCmd),
    /// Meta group membership.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Start log archiving (ALTER SYSTEM ARCHIVELOG).
    Archivelog {
        /// Only this tenant (default: every user tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Stop log archiving (ALTER SYSTEM NOARCHIVELOG).
    Noarchivelog {
        /// Only this tenant (default: every user tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Take a data backup (ALTER SYSTEM BACKUP [INCREMENTAL] DATABASE).
    Backup {
        /// Only this tenant (default: every user tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Incremental on the latest successful set.
        #[arg(long)]
        incremental: bool,
    },
    /// Validate a backup set (ALTER SYSTEM VALIDATE BACKUPSET n).
    Validate {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Set.
        #[arg(long)]
        backup_set: u64,
    },
    /// Restore a tenant into a directory on a worker's host (records a RESTORE job).
    Restore {
        /// Tenant.
        #[arg(long)]
        tenant: String,
        /// Absolute directory (empty or new) on the worker's host.
        #[arg(long)]
        to: String,
        /// Destination (default: the tenant's backup_dest).
        #[arg(long, default_value = "")]
        dest: String,
        /// Target SCN (default: everything archived).
        #[arg(long)]
        until_scn: Option<u64>,
        /// Set to use.
        #[arg(long)]
        backup_set: Option<u64>,
    },
    /// Archive rounds.
    Archive {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Backup pieces.
    Pieces {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Backup sets.
    Sets {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Jobs (running, or all with --all).
    Jobs {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Include finished jobs.
        #[arg(long)]
        all: bool,
    },
    /// Tasks: which worker runs what (running, or all with --all).
    Tasks {
        /// Only this job.
        #[arg(long, default_value_t = 0)]
        job: u64,
        /// Include finished tasks.
        #[arg(long)]
        all: bool,
    },
    /// Registered workers.
    Workers,
    /// Backup-of-backup: copy sets, pieces, or the archive continuously
    /// (ALTER SYSTEM BACKUP BACKUPSET / BACKUPPIECE, START|STOP BACKUP ARCHIVELOG).
    #[command(subcommand)]
    Copy(CopyCmd),
    /// End jobs early (ALTER SYSTEM CANCEL …).
    #[command(subcommand)]
    Cancel(CancelCmd),
    /// Suspend data backups (ALTER SYSTEM SUSPEND BACKUP); their finished parts are kept.
    Suspend {
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Resume suspended data backups (ALTER SYSTEM RESUME BACKUP).
    Resume {
        /// Only this tenant (default: every tenant).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Continuous archive copies and what the cleaner still has to delete.
    Copies {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Backup policies: schedules and secondary backup (the OCP way).
    #[command(subcommand)]
    Policy(PolicyCmd),
}

/// Selection shared by `ctl copy set` and `ctl copy piece`.
#[derive(Debug, clap::Args)]
pub struct CopySel {
    /// One set or piece id (default: ALL).
    #[arg(long)]
    pub id: Option<u64>,
    /// Only this tenant (a tenant-level copy; default: cluster level).
    #[arg(long)]
    pub tenant: Option<String>,
    /// ALL NOT BACKED UP n TIMES (needs --dest).
    #[arg(long)]
    pub not_backed_up_times: Option<u64>,
    /// BACKUP_BACKUP_DEST (default: the backup_backup_dest parameter).
    #[arg(long, default_value = "")]
    pub dest: String,
}

/// `ctl copy …`.
#[derive(Debug, Subcommand)]
pub enum CopyCmd {
    /// Copy backup sets (ALTER SYSTEM BACKUP BACKUPSET …).
    Set(CopySel),
    /// Copy backup pieces (ALTER SYSTEM BACKUP BACKUPPIECE …).
    Piece {
        #[command(flatten)]
        sel: CopySel,
        /// WITH ACTIVE: also the active piece, up to its checkpoint.
        #[arg(long)]
        with_active: bool,
    },
    /// Start the continuous archive copy (ALTER SYSTEM START BACKUP ARCHIVELOG).
    Start {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Pause the continuous archive copy (ALTER SYSTEM STOP BACKUP ARCHIVELOG).
    Stop {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `ctl cancel …`.
#[derive(Debug, Subcommand)]
pub enum CancelCmd {
    /// Data backups (ALTER SYSTEM CANCEL BACKUP).
    Backup {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Every live backupset copy job (ALTER SYSTEM CANCEL BACKUP BACKUPSET).
    Backupset,
    /// Every live backuppiece copy job (ALTER SYSTEM CANCEL BACKUP BACKUPPIECE).
    Backuppiece,
    /// A validation job (ALTER SYSTEM CANCEL VALIDATE n).
    Validate {
        /// Job id.
        job: u64,
    },
    /// Every backup-related job at once, even with a destination down
    /// (ALTER SYSTEM CANCEL ALL BACKUP FORCE).
    AllForce,
}

/// `ctl policy …`.
#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Create or replace a policy.
    Set {
        /// Tenant (default: the cluster policy, for every tenant without its own).
        #[arg(long)]
        tenant: Option<String>,
        /// A full backup at least this often (e.g. 1d, 12h; default: none).
        #[arg(long, value_parser = humantime::parse_duration)]
        full_every: Option<Duration>,
        /// An incremental backup at least this often (e.g. 1h; default: none).
        #[arg(long, value_parser = humantime::parse_duration)]
        incremental_every: Option<Duration>,
        /// Secondary backup: copy completed sets and the archive to backup_backup_dest.
        #[arg(long, value_parser = ["on", "off"], default_value = "off")]
        secondary: String,
    },
    /// Delete a policy (its secondary backup work stops, as CANCEL/STOP would).
    Drop {
        /// Tenant (default: the cluster policy).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List policies.
    List,
}

/// `ctl tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// Register a tenant and its source.
    Create {
        /// Tenant name.
        name: String,
        /// Source URI, dir:///abs/path.
        #[arg(long)]
        source: String,
        /// Free text.
        #[arg(long, default_value = "")]
        comment: String,
        /// Succeed if it already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Remove a tenant from the catalog.
    Drop {
        /// Tenant name.
        name: String,
        /// Succeed if it does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// List tenants.
    List,
    /// Set the hot-backup hooks (shell commands run around the datafile copy).
    Hooks {
        /// Tenant name.
        name: String,
        /// Run after start_replay_scn is recorded (empty: none).
        #[arg(long, default_value = "")]
        begin: String,
        /// Run after the datafiles are copied (empty: none).
        #[arg(long, default_value = "")]
        end: String,
    },
}

/// `ctl param …`.
#[derive(Debug, Subcommand)]
pub enum ParamCmd {
    /// Set a parameter (an empty value clears it).
    Set {
        /// backup_dest, backup_backup_dest, backup_dest_option or backup_backup_dest_option.
        name: String,
        /// New value.
        value: String,
        /// Tenant-level value instead of cluster level.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show parameters.
    Show {
        /// Only this one.
        name: Option<String>,
    },
}

/// `ctl user …`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create user@tenant.
    Create {
        /// `user@tenant`.
        user: String,
        /// Password.
        #[arg(long, env = "BACKSTOP_PASSWORD", hide_env_values = true)]
        password: String,
        /// Succeed if it already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// Change a password.
    Alter {
        /// `user@tenant`.
        user: String,
        /// New password.
        #[arg(long, env = "BACKSTOP_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Drop user@tenant.
    Drop {
        /// `user@tenant`.
        user: String,
        /// Succeed if it does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// List users.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `ctl node …`.
#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    /// Add a node: learner first, then voter once caught up.
    Add {
        /// Node id.
        #[arg(long)]
        id: u64,
        /// Its gRPC address.
        #[arg(long)]
        addr: String,
        /// Stay a learner.
        #[arg(long)]
        learner: bool,
    },
    /// Promote a learner to voter.
    Promote {
        /// Node id.
        id: u64,
    },
    /// Remove a node from the group.
    Remove {
        /// Node id.
        id: u64,
    },
}

/// Calls one `MetaService` method with `req` through [`Client::call`].
macro_rules! rpc {
    ($client:expr, $method:ident, $req:expr) => {{
        let req = $req;
        $client
            .call(|mut m| {
                let r = req.clone();
                async move { m.$method(r).await }
            })
            .await?
    }};
}

struct Client {
    addrs: Vec<String>,
    timeout: Duration,
}

impl Client {
    async fn call<T, F, Fut>(&self, mut f: F) -> anyhow::Result<T>
    where
        F: FnMut(MetaServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            let mut last = None;
            for addr in &self.addrs {
                let client = MetaServiceClient::new(channel(addr)?)
                    .max_decoding_message_size(backstop_proto::MAX_LIST_MESSAGE_BYTES);
                match f(client).await {
                    Ok(resp) => return Ok(resp.into_inner()),
                    Err(status) => {
                        let err = MetaError::from_status(&status);
                        let from_server = status.metadata().get(ERROR_CODE_KEY).is_some();
                        let retry = err.code == Code::NotMaster || !from_server;
                        if !retry {
                            return Err(anyhow!(err));
                        }
                        last = Some(format!("{addr}: {err}"));
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "no meta node answered within {}s (last: {})",
                    self.timeout.as_secs(),
                    last.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn split_user(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('@') {
        Some((u, t)) if !u.is_empty() && !t.is_empty() => Ok((u.to_string(), t.to_string())),
        _ => bail!("expected user@tenant, got '{s}'"),
    }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY).set_header(header.to_vec());
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn status_json(s: &ClusterStatus) -> Value {
    json!({
        "cluster_name": s.cluster_name, "cluster_id": s.cluster_id, "node_id": s.node_id,
        "state": s.state, "leader_id": s.leader_id, "leader_addr": s.leader_addr, "term": s.term,
        "last_log_index": s.last_log_index, "commit_index": s.commit_index,
        "applied_index": s.applied_index, "snapshot_index": s.snapshot_index,
        "purged_index": s.purged_index, "data_version": s.data_version,
        "members": s.members.iter().map(|m| json!({
            "node_id": m.node_id, "addr": m.addr, "role": m.role, "matched_index": m.matched_index,
        })).collect::<Vec<_>>(),
    })
}

fn status_text(s: &ClusterStatus) -> String {
    let mut out = format!(
        "cluster   {} (id {})\nnode      {} ({})\nleader    {} {}\nterm      {}\nlog       last {}  committed {}  applied {}  snapshot {}  purged {}\n",
        s.cluster_name,
        s.cluster_id,
        s.node_id,
        s.state,
        opt(s.leader_id),
        s.leader_addr,
        s.term,
        opt(s.last_log_index),
        opt(s.commit_index),
        opt(s.applied_index),
        opt(s.snapshot_index),
        opt(s.purged_index),
    );
    out.push_str(&table(
        &["NODE_ID", "ADDR", "ROLE", "LEADER", "MATCHED_INDEX"],
        s.members
            .iter()
            .map(|m| {
                vec![
                    m.node_id.to_string(),
                    m.addr.clone(),
                    m.role.clone(),
                    if Some(m.node_id) == s.leader_id {
                        "*".into()
                    } else {
                        String::new()
                    },
                    opt(m.matched_index),
                ]
            })
            .collect(),
    ));
    out
}

fn tenant_json(t: &Tenant) -> Value {
    json!({"tenant_id": t.tenant_id, "tenant_name": t.tenant_name, "source": t.source,
           "comment": t.comment, "status": t.status, "incarnation": t.incarnation,
           "create_time_ms": t.create_time_ms})
}

fn tenants_text(ts: &[Tenant]) -> String {
    table(
        &["TENANT_ID", "TENANT_NAME", "STATUS", "SOURCE", "COMMENT"],
        ts.iter()
            .map(|t| {
                vec![
                    t.tenant_id.to_string(),
                    t.tenant_name.clone(),
                    t.status.clone(),
                    t.source.clone(),
                    t.comment.clone(),
                ]
            })
            .collect(),
    )
}

fn param_json(p: &Parameter) -> Value {
    json!({"name": p.name, "tenant_name": p.tenant_name, "value": p.value, "info": p.info,
           "update_time_ms": p.update_time_ms})
}

fn params_text(ps: &[Parameter]) -> String {
    table(
        &["NAME", "TENANT", "VALUE", "INFO"],
        ps.iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.tenant_name.clone(),
                    p.value.clone(),
                    p.info.clone(),
                ]
            })
            .collect(),
    )
}

fn user_json(u: &User) -> Value {
    json!({"user_name": u.user_name, "tenant_name": u.tenant_name, "create_time_ms": u.create_time_ms})
}

/// A `BackupManage` request with no selection (cancel, suspend, resume, start/stop).
fn manage_req(action: &str, tenant: Option<String>, id: u64) -> BackupManageRequest {
    BackupManageRequest {
        action: action.to_string(),
        tenants: tenant.into_iter().collect(),
        id,
        max_backup_times: None,
        with_active: false,
        dest: String::new(),
        copy_id: 0,
    }
}

fn policy_json(p: &Policy) -> Value {
    json!({
        "tenant": if p.tenant_name.is_empty() { "(cluster)" } else { p.tenant_name.as_str() },
        "tenant_id": p.tenant_id,
        "full_interval_ms": p.full_interval_ms,
        "incremental_interval_ms": p.incremental_interval_ms,
        "secondary": p.secondary,
    })
}

fn policies_text(ps: &[Policy]) -> String {
    let every = |ms: u64| {
        if ms == 0 {
            "-".to_string()
        } else {
            humantime::format_duration(Duration::from_millis(ms)).to_string()
        }
    };
    table(
        &["TENANT", "FULL_EVERY", "INCREMENTAL_EVERY", "SECONDARY"],
        ps.iter()
            .map(|p| {
                vec![
                    if p.tenant_name.is_empty() {
                        "(cluster)".to_string()
                    } else {
                        p.tenant_name.clone()
                    },
                    every(p.full_interval_ms),
                    every(p.incremental_interval_ms),
                    if p.secondary { "on" } else { "off" }.to_string(),
                ]
            })
            .collect(),
    )
}

fn print(json_mode: bool, value: Value, text: String) -> anyhow::Result<()> {
    if json_mode {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", text.trim_end());
    }
    Ok(())
}

/// Runs one `ctl` command.
pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let c = Client {
        addrs: args
            .meta
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    if c.addrs.is_empty() {
        bail!("--meta needs at least one address");
    }
    let j = args.json;
    let suspend = matches!(args.command, CtlCmd::Suspend { .. });
    match args.command {
        CtlCmd::Status => {
            let s = c
                .call(|mut m| async move {
                    m.get_cluster_status(ClusterStatusRequest { with_digest: false })
                        .await
                })
                .await?;
            print(j, status_json(&s), status_text(&s))
        }
        CtlCmd::Tenant(TenantCmd::Create {
            name,
            source,
            comment,
            if_not_exists,
        }) => {
            let req = CreateTenantRequest {
                tenant_name: name,
                source,
                comment,
                if_not_exists,
            };
            let t = rpc!(c, create_tenant, req);
            print(j, tenant_json(&t), tenants_text(std::slice::from_ref(&t)))
        }
        CtlCmd::Tenant(TenantCmd::Drop { name, if_exists }) => {
            let req = DropTenantRequest {
                tenant_name: name.clone(),
                if_exists,
            };
            let r = rpc!(c, drop_tenant, req);
            let text = if r.dropped {
                format!("dropped tenant {name}")
            } else {
                format!("tenant {name} did not exist")
            };
            print(j, json!({"dropped": r.dropped}), text)
        }
        CtlCmd::Tenant(TenantCmd::List) => {
            let r = c
                .call(|mut m| async move { m.list_tenants(ListTenantsRequest {}).await })
                .await?;
            print(
                j,
                Value::Array(r.tenants.iter().map(tenant_json).collect()),
                tenants_text(&r.tenants),
            )
        }
        CtlCmd::Param(ParamCmd::Set {
            name,
            value,
            tenant,
        }) => {
            let req = SetParameterRequest {
                name,
                value,
                tenant_name: tenant.unwrap_or_default(),
            };
            let p = rpc!(c, set_parameter, req);
            print(j, param_json(&p), params_text(std::slice::from_ref(&p)))
        }
        CtlCmd::Param(ParamCmd::Show { name }) => {
            let req = ShowParametersRequest {
                name: name.unwrap_or_default(),
            };
            let r = rpc!(c, show_parameters, req);
            print(
                j,
                Value::Array(r.parameters.iter().map(param_json).collect()),
                params_text(&r.parameters),
            )
        }
        CtlCmd::User(UserCmd::Create {
            user,
            password,
            if_not_exists,
        }) => {
            let (user_name, tenant_name) = split_user(&user)?;
            let req = CreateUserRequest {
                user_name,
                tenant_name,
                password,
                if_not_exists,
            };
            let u = rpc!(c, create_user, req);
            print(
                j,
                user_json(&u),
                format!("created user {}@{}", u.user_name, u.tenant_name),
            )
        }
        CtlCmd::User(UserCmd::Alter { user, password }) => {
            let (user_name, tenant_name) = split_user(&user)?;
            let req = AlterUserRequest {
                user_name,
                tenant_name,
                password,
            };
            let u = rpc!(c, alter_user, req);
            print(
                j,
                user_json(&u),
                format!("changed password of {}@{}", u.user_name, u.tenant_name),
            )
        }
        CtlCmd::User(UserCmd::Drop { user, if_exists }) => {
            let (user_name, tenant_name) = split_user(&user)?;
            let req = DropUserRequest {
                user_name,
                tenant_name,
                if_exists,
            };
            let r = rpc!(c, drop_user, req);
            let text = if r.dropped {
                format!("dropped user {user}")
            } else {
                format!("user {user} did not exist")
            };
            print(j, json!({"dropped": r.dropped}), text)
        }
        CtlCmd::User(UserCmd::List { tenant }) => {
            let req = ListUsersRequest {
                tenant_name: tenant.unwrap_or_default(),
            };
            let r = rpc!(c, list_users, req);
            let text = table(
                &["USER", "TENANT"],
                r.users
                    .iter()
                    .map(|u| vec![u.user_name.clone(), u.tenant_name.clone()])
                    .collect(),
            );
            print(
                j,
                Value::Array(r.users.iter().map(user_json).collect()),
                text,
            )
        }
        CtlCmd::Tenant(TenantCmd::Hooks { name, begin, end }) => {
            let req = SetTenantHooksRequest {
                tenant_name: name,
                begin_backup_hook: begin,
                end_backup_hook: end,
            };
            let t = rpc!(c, set_tenant_hooks, req);
            print(j, tenant_json(&t), tenants_text(std::slice::from_ref(&t)))
        }
        CtlCmd::Archivelog { tenant } => {
            let req = ArchivelogRequest {
                tenant_name: tenant.unwrap_or_default(),
                enable: true,
            };
            let r = rpc!(c, archivelog, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("archiving started: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Noarchivelog { tenant } => {
            let req = ArchivelogRequest {
                tenant_name: tenant.unwrap_or_default(),
                enable: false,
            };
            let r = rpc!(c, archivelog, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("archiving stopping: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Backup {
            tenant,
            incremental,
        } => {
            let req = BackupDatabaseRequest {
                tenant_name: tenant.unwrap_or_default(),
                incremental,
            };
            let r = rpc!(c, backup_database, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("backup started: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Validate { tenant, backup_set } => {
            let req = ValidateBackupSetRequest {
                tenant_name: tenant,
                backup_set_id: backup_set,
            };
            let r = rpc!(c, validate_backup_set, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("validation started: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Restore {
            tenant,
            to,
            dest,
            until_scn,
            backup_set,
        } => {
            let req = RestoreTenantRequest {
                tenant_name: tenant,
                dest,
                to,
                until_scn,
                backup_set_id: backup_set,
            };
            let r = rpc!(c, restore_tenant, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("restore started: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Copy(cmd) => {
            let manage = |action: &str, sel: Option<CopySel>, tenant: Option<String>| {
                let (id, tenants, times, dest) = match sel {
                    Some(s) => (
                        s.id.unwrap_or(0),
                        s.tenant.into_iter().collect(),
                        s.not_backed_up_times,
                        s.dest,
                    ),
                    None => (0, tenant.into_iter().collect(), None, String::new()),
                };
                BackupManageRequest {
                    tenants,
                    id,
                    max_backup_times: times,
                    dest,
                    ..manage_req(action, None, 0)
                }
            };
            let req = match cmd {
                CopyCmd::Set(sel) => manage("backup_backupset", Some(sel), None),
                CopyCmd::Piece { sel, with_active } => BackupManageRequest {
                    with_active,
                    ..manage("backup_backuppiece", Some(sel), None)
                },
                CopyCmd::Start { tenant } => manage("start_backup_archivelog", None, tenant),
                CopyCmd::Stop { tenant } => manage("stop_backup_archivelog", None, tenant),
            };
            let action = req.action.clone();
            let r = rpc!(c, backup_manage, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("{action}: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Cancel(cmd) => {
            let (action, tenant, id) = match cmd {
                CancelCmd::Backup { tenant } => ("cancel_backup", tenant, 0),
                CancelCmd::Backupset => ("cancel_backup_backupset", None, 0),
                CancelCmd::Backuppiece => ("cancel_backup_backuppiece", None, 0),
                CancelCmd::Validate { job } => ("cancel_validate", None, job),
                CancelCmd::AllForce => ("cancel_all_backup_force", None, 0),
            };
            let req = manage_req(action, tenant, id);
            let r = rpc!(c, backup_manage, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("{action}: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Suspend { tenant: t1 } | CtlCmd::Resume { tenant: t1 } => {
            let action = if suspend {
                "suspend_backup"
            } else {
                "resume_backup"
            };
            let tenant = t1;
            let req = manage_req(action, tenant, 0);
            let r = rpc!(c, backup_manage, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("{action}: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Copies { tenant } => {
            let req = ListRequest {
                tenant_name: tenant.unwrap_or_default(),
                job_id: 0,
                all: true,
            };
            let r = rpc!(c, list_archive, req);
            let rows = r
                .copies
                .iter()
                .map(|x| {
                    vec![
                        x.tenant_id.to_string(),
                        x.copy_id.to_string(),
                        x.status.clone(),
                        x.round_id.to_string(),
                        x.checkpoint_scn.to_string(),
                        x.lag_ms.to_string(),
                        x.output_bytes.to_string(),
                        x.backup_dest.clone(),
                    ]
                })
                .collect();
            let mut text = table(
                &[
                    "TENANT_ID",
                    "COPY_ID",
                    "STATUS",
                    "ROUND",
                    "CHECKPOINT_SCN",
                    "LAG_MS",
                    "BYTES",
                    "BACKUP_DEST",
                ],
                rows,
            );
            if !r.leftovers.is_empty() {
                text.push_str("\nleft for the cleaner:\n");
                text.push_str(&table(
                    &["ID", "TENANT_ID", "DIR", "BACKUP_DEST", "REASON"],
                    r.leftovers
                        .iter()
                        .map(|l| {
                            vec![
                                l.id.to_string(),
                                l.tenant_id.to_string(),
                                l.dir.clone(),
                                l.backup_dest.clone(),
                                l.reason.clone(),
                            ]
                        })
                        .collect(),
                ));
            }
            let v = json!({
                "copies": r.copies.iter().map(|x| json!({
                    "tenant_id": x.tenant_id, "copy_id": x.copy_id, "status": x.status,
                    "round_id": x.round_id, "start_scn": x.start_scn, "checkpoint_scn": x.checkpoint_scn,
                    "checkpoint_time_ms": x.checkpoint_time_ms, "lag_ms": x.lag_ms,
                    "output_bytes": x.output_bytes, "backup_dest": x.backup_dest, "job_id": x.job_id,
                })).collect::<Vec<_>>(),
                "leftovers": r.leftovers.iter().map(|l| json!({
                    "id": l.id, "tenant_id": l.tenant_id, "dir": l.dir, "backup_dest": l.backup_dest,
                    "reason": l.reason, "not_before_ms": l.not_before_ms,
                })).collect::<Vec<_>>(),
            });
            print(j, v, text)
        }
        CtlCmd::Policy(cmd) => match cmd {
            PolicyCmd::Set {
                tenant,
                full_every,
                incremental_every,
                secondary,
            } => {
                let req = SetPolicyRequest {
                    tenant_name: tenant.unwrap_or_default(),
                    full_interval_ms: full_every.map_or(0, |d| d.as_millis() as u64),
                    incremental_interval_ms: incremental_every.map_or(0, |d| d.as_millis() as u64),
                    secondary: secondary == "on",
                };
                let p = rpc!(c, set_policy, req);
                print(j, policy_json(&p), policies_text(std::slice::from_ref(&p)))
            }
            PolicyCmd::Drop { tenant } => {
                let req = DropPolicyRequest {
                    tenant_name: tenant.unwrap_or_default(),
                };
                let r = rpc!(c, drop_policy, req);
                print(
                    j,
                    json!({"dropped": r.dropped}),
                    if r.dropped {
                        "policy dropped".to_string()
                    } else {
                        "no such policy".to_string()
                    },
                )
            }
            PolicyCmd::List => {
                let req = ListRequest {
                    tenant_name: String::new(),
                    job_id: 0,
                    all: true,
                };
                let r = rpc!(c, list_policies, req);
                print(
                    j,
                    Value::Array(r.policies.iter().map(policy_json).collect()),
                    policies_text(&r.policies),
                )
            }
        },
        CtlCmd::Archive { tenant } => {
            let req = ListRequest {
                tenant_name: tenant.unwrap_or_default(),
                job_id: 0,
                all: true,
            };
            let r = rpc!(c, list_archive, req);
            let rows = r
                .rounds
                .iter()
                .map(|x| {
                    vec![
                        x.tenant_id.to_string(),
                        x.round_id.to_string(),
                        x.status.clone(),
                        x.start_scn.to_string(),
                        x.checkpoint_scn.to_string(),
                        x.lag_ms.to_string(),
                        x.input_bytes.to_string(),
                        x.backup_dest.clone(),
                        x.comment.clone(),
                    ]
                })
                .collect();
            let text = table(
                &[
                    "TENANT_ID",
                    "ROUND",
                    "STATUS",
                    "START_SCN",
                    "CHECKPOINT_SCN",
                    "LAG_MS",
                    "INPUT_BYTES",
                    "BACKUP_DEST",
                    "COMMENT",
                ],
                rows,
            );
            let v = r.rounds.iter().map(|x| json!({
                "tenant_id": x.tenant_id, "round_id": x.round_id, "status": x.status, "start_scn": x.start_scn,
                "checkpoint_scn": x.checkpoint_scn, "start_time_ms": x.start_time_ms, "checkpoint_time_ms": x.checkpoint_time_ms,
                "input_bytes": x.input_bytes, "output_bytes": x.output_bytes, "lag_ms": x.lag_ms,
                "backup_dest": x.backup_dest, "comment": x.comment, "job_id": x.job_id,
            })).collect();
            print(j, Value::Array(v), text)
        }
        CtlCmd::Pieces { tenant } => {
            let req = ListRequest {
                tenant_name: tenant.unwrap_or_default(),
                job_id: 0,
                all: true,
            };
            let r = rpc!(c, list_pieces, req);
            let rows = r
                .pieces
                .iter()
                .map(|p| {
                    vec![
                        p.tenant_id.to_string(),
                        p.round_id.to_string(),
                        p.backup_piece_id.to_string(),
                        p.copy_id.to_string(),
                        p.status.clone(),
                        p.file_status.clone(),
                        p.start_scn.to_string(),
                        p.checkpoint_scn.to_string(),
                        p.max_scn.map_or("MAX".into(), |m| m.to_string()),
                    ]
                })
                .collect();
            let text = table(
                &[
                    "TENANT_ID",
                    "ROUND",
                    "PIECE",
                    "COPY",
                    "STATUS",
                    "FILE_STATUS",
                    "START_SCN",
                    "CHECKPOINT_SCN",
                    "MAX_SCN",
                ],
                rows,
            );
            let v = r.pieces.iter().map(|p| json!({
                "tenant_id": p.tenant_id, "round_id": p.round_id, "backup_piece_id": p.backup_piece_id, "copy_id": p.copy_id,
                "status": p.status, "file_status": p.file_status, "start_scn": p.start_scn, "checkpoint_scn": p.checkpoint_scn,
                "max_scn": p.max_scn, "create_time_ms": p.create_time_ms, "checkpoint_time_ms": p.checkpoint_time_ms, "backup_dest": p.backup_dest,
            })).collect();
            print(j, Value::Array(v), text)
        }
        CtlCmd::Sets { tenant } => {
            let req = ListRequest {
                tenant_name: tenant.unwrap_or_default(),
                job_id: 0,
                all: true,
            };
            let r = rpc!(c, list_backup_sets, req);
            let rows = r
                .sets
                .iter()
                .map(|s| {
                    vec![
                        s.tenant_id.to_string(),
                        s.backup_set_id.to_string(),
                        s.copy_id.to_string(),
                        s.backup_type.clone(),
                        s.base_set_id.map_or("-".into(), |b| b.to_string()),
                        s.status.clone(),
                        s.file_status.clone(),
                        s.start_replay_scn.to_string(),
                        s.min_restore_scn.to_string(),
                        s.input_bytes.to_string(),
                        s.output_bytes.to_string(),
                        s.comment.clone(),
                    ]
                })
                .collect();
            let text = table(
                &[
                    "TENANT_ID",
                    "SET",
                    "COPY",
                    "TYPE",
                    "BASE",
                    "STATUS",
                    "FILE_STATUS",
                    "START_REPLAY_SCN",
                    "MIN_RESTORE_SCN",
                    "INPUT_BYTES",
                    "OUTPUT_BYTES",
                    "COMMENT",
                ],
                rows,
            );
            let v = r.sets.iter().map(|s| json!({
                "tenant_id": s.tenant_id, "backup_set_id": s.backup_set_id, "copy_id": s.copy_id, "backup_type": s.backup_type,
                "base_set_id": s.base_set_id, "status": s.status, "file_status": s.file_status,
                "start_replay_scn": s.start_replay_scn, "min_restore_scn": s.min_restore_scn,
                "input_bytes": s.input_bytes, "output_bytes": s.output_bytes, "file_count": s.file_count,
                "start_time_ms": s.start_time_ms, "end_time_ms": s.end_time_ms, "backup_dest": s.backup_dest,
                "comment": s.comment, "job_id": s.job_id,
            })).collect();
            print(j, Value::Array(v), text)
        }
        CtlCmd::Jobs { tenant, all } => {
            let req = ListRequest {
                tenant_name: tenant.unwrap_or_default(),
                job_id: 0,
                all,
            };
            let r = rpc!(c, list_jobs, req);
            let rows = r
                .jobs
                .iter()
                .map(|x| {
                    vec![
                        x.job_id.to_string(),
                        x.tenant_id.to_string(),
                        x.job_type.clone(),
                        x.status.clone(),
                        format!("{}/{}", x.bytes_done, x.bytes_total),
                        x.result.clone(),
                        x.comment.clone(),
                    ]
                })
                .collect();
            let text = table(
                &[
                    "JOB_ID",
                    "TENANT_ID",
                    "TYPE",
                    "STATUS",
                    "BYTES",
                    "RESULT",
                    "COMMENT",
                ],
                rows,
            );
            let v = r.jobs.iter().map(|x| json!({
                "job_id": x.job_id, "tenant_id": x.tenant_id, "job_type": x.job_type, "status": x.status,
                "result": x.result, "comment": x.comment, "start_time_ms": x.start_time_ms, "end_time_ms": x.end_time_ms,
                "backup_set_id": x.backup_set_id, "round_id": x.round_id, "bytes_done": x.bytes_done, "bytes_total": x.bytes_total,
            })).collect();
            print(j, Value::Array(v), text)
        }
        CtlCmd::Tasks { job, all } => {
            let req = ListRequest {
                tenant_name: String::new(),
                job_id: job,
                all,
            };
            let r = rpc!(c, list_tasks, req);
            let rows = r
                .tasks
                .iter()
                .map(|t| {
                    vec![
                        t.task_id.to_string(),
                        t.job_id.to_string(),
                        t.task_type.clone(),
                        t.status.clone(),
                        t.attempt.to_string(),
                        t.worker_id.map_or("-".into(), |w| w.to_string()),
                        t.worker_addr.clone(),
                        format!("{}/{}", t.bytes_done, t.bytes_total),
                        t.last_error.clone(),
                    ]
                })
                .collect();
            let text = table(
                &[
                    "TASK_ID",
                    "JOB_ID",
                    "TYPE",
                    "STATUS",
                    "ATTEMPT",
                    "WORKER",
                    "WORKER_ADDR",
                    "BYTES",
                    "LAST_ERROR",
                ],
                rows,
            );
            let v = r.tasks.iter().map(|t| json!({
                "task_id": t.task_id, "job_id": t.job_id, "tenant_id": t.tenant_id, "task_type": t.task_type,
                "status": t.status, "attempt": t.attempt, "worker_id": t.worker_id, "worker_addr": t.worker_addr,
                "bytes_done": t.bytes_done, "bytes_total": t.bytes_total, "last_error": t.last_error,
            })).collect();
            print(j, Value::Array(v), text)
        }
        CtlCmd::Workers => {
            let req = ListRequest {
                tenant_name: String::new(),
                job_id: 0,
                all: true,
            };
            let r = rpc!(c, list_workers, req);
            let rows = r
                .workers
                .iter()
                .map(|w| {
                    vec![
                        w.worker_id.to_string(),
                        w.addr.clone(),
                        w.slots.to_string(),
                        w.running_tasks.to_string(),
                        if w.tenants.is_empty() {
                            "*".into()
                        } else {
                            w.tenants.join(",")
                        },
                    ]
                })
                .collect();
            let text = table(&["WORKER_ID", "ADDR", "SLOTS", "RUNNING", "TENANTS"], rows);
            let v = r.workers.iter().map(|w| json!({
                "worker_id": w.worker_id, "addr": w.addr, "slots": w.slots, "running_tasks": w.running_tasks,
                "tenants": w.tenants, "register_time_ms": w.register_time_ms,
            })).collect();
            print(j, Value::Array(v), text)
        }
        CtlCmd::Node(cmd) => {
            let s =
                match cmd {
                    NodeCmd::Add { id, addr, learner } => {
                        let req = AddNodeRequest {
                            node_id: id,
                            addr,
                            learner_only: learner,
                        };
                        rpc!(c, add_node, req)
                    }
                    NodeCmd::Promote { id } => {
                        c.call(|mut m| async move {
                            m.promote_node(PromoteNodeRequest { node_id: id }).await
                        })
                        .await?
                    }
                    NodeCmd::Remove { id } => {
                        c.call(|mut m| async move {
                            m.remove_node(RemoveNodeRequest { node_id: id }).await
                        })
                        .await?
                    }
                };
            print(j, status_json(&s), status_text(&s))
        }
    }
}
