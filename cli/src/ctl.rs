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
                let client = MetaServiceClient::new(channel(addr)?);
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
    match args.command {
        CtlCmd::Status => {
            let s = c
                .call(|mut m| async move { m.get_cluster_status(ClusterStatusRequest {}).await })
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
            let t = c
                .call(|mut m| {
                    let r = req.clone();
                    async move { m.create_tenant(r).await }
                })
                .await?;
            print(j, tenant_json(&t), tenants_text(std::slice::from_ref(&t)))
        }
        CtlCmd::Tenant(TenantCmd::Drop { name, if_exists }) => {
            let req = DropTenantRequest {
                tenant_name: name.clone(),
                if_exists,
            };
            let r = c
                .call(|mut m| {
                    let r = req.clone();
                    async move { m.drop_tenant(r).await }
                })
                .await?;
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
            let p = c
                .call(|mut m| {
                    let r = req.clone();
                    async move { m.set_parameter(r).await }
                })
                .await?;
            print(j, param_json(&p), params_text(std::slice::from_ref(&p)))
        }
        CtlCmd::Param(ParamCmd::Show { name }) => {
            let req = ShowParametersRequest {
                name: name.unwrap_or_default(),
            };
            let r = c
                .call(|mut m| {
                    let r = req.clone();
                    async move { m.show_parameters(r).await }
                })
                .await?;
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
            let u = c
                .call(|mut m| {
                    let r = req.clone();
                    async move { m.create_user(r).await }
                })
                .await?;
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
            let u = c
                .call(|mut m| {
                    let r = req.clone();
                    async move { m.alter_user(r).await }
                })
                .await?;
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
            let r = c
                .call(|mut m| {
                    let r = req.clone();
                    async move { m.drop_user(r).await }
                })
                .await?;
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
            let r = c
                .call(|mut m| {
                    let r = req.clone();
                    async move { m.list_users(r).await }
                })
                .await?;
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
        CtlCmd::Node(cmd) => {
            let s =
                match cmd {
                    NodeCmd::Add { id, addr, learner } => {
                        let req = AddNodeRequest {
                            node_id: id,
                            addr,
                            learner_only: learner,
                        };
                        c.call(|mut m| {
                            let r = req.clone();
                            async move { m.add_node(r).await }
                        })
                        .await?
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
