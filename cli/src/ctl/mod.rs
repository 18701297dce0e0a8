//! `backstop ctl`: the operator's gRPC client. Tables for people, `--json` for
//! scripts. Every call tries the given meta addresses in order and retries while no
//! leader is reachable (up to `--timeout`).
//!
//! - `args.rs`: the subcommands and flags;
//! - `client.rs`: the meta client and the `rpc!` macro;
//! - `render.rs`: tables, JSON and shared requests;
//! - `views.rs`: the listings (`archive`, `pieces`, `sets`, `copies`, `jobs`, `tasks`,
//!   `workers`);
//! - this file: `run`, which carries out every other command.

mod args;
mod client;
mod render;
mod views;

pub use args::{
    CancelCmd, CopyCmd, CopySel, CtlArgs, CtlCmd, NodeCmd, ParamCmd, PolicyCmd, TenantCmd, UserCmd,
    parse_scn,
};

use anyhow::bail;
use backstop_proto::meta::*;
use serde_json::{Value, json};
use std::time::Duration;

use self::client::Client;
use self::client::rpc;
use self::render::*;

/// Runs one `ctl` command.
pub async fn run(args: CtlArgs) -> anyhow::Result<()> {
    let c = Client::new(
        args.meta
            .iter()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty())
            .collect(),
        Duration::from_secs(args.timeout.max(1)),
        args.security()?,
    );
    if !c.has_addrs() {
        bail!("--meta needs at least one address");
    }
    let j = args.json;
    let suspend = matches!(args.command, CtlCmd::Suspend { .. });
    match args.command {
        CtlCmd::Status => {
            let s = rpc!(
                c,
                get_cluster_status,
                ClusterStatusRequest { with_digest: false }
            );
            print(j, status_json(&s), status_text(&s))
        }
        CtlCmd::Tenant(TenantCmd::Create {
            name,
            source,
            comment,
            if_not_exists,
            root_password,
        }) => {
            let req = CreateTenantRequest {
                tenant_name: name,
                source,
                comment,
                if_not_exists,
                root_password,
            };
            let t = rpc!(c, create_tenant, req);
            let mut json = tenant_json(&t);
            let mut text = tenants_text(std::slice::from_ref(&t));
            if !t.generated_root_password.is_empty() {
                json["generated_root_password"] = t.generated_root_password.clone().into();
                text.push_str(&format!(
                    "\nroot@{} password (shown once): {}",
                    t.tenant_name, t.generated_root_password
                ));
            }
            print(j, json, text)
        }
        CtlCmd::Tenant(TenantCmd::Alter { name, source }) => {
            let req = AlterTenantSourceRequest {
                tenant_name: name,
                source,
            };
            let t = rpc!(c, alter_tenant_source, req);
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
            let r = c.list_tenants().await?;
            print(
                j,
                Value::Array(r.tenants.iter().map(tenant_json).collect()),
                tenants_text(&r.tenants),
            )
        }
        CtlCmd::Tenant(TenantCmd::Show { name }) => views::tenant_show(&c, j, name).await,
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
        CtlCmd::User(UserCmd::Grant { privilege, user }) => {
            let (user_name, tenant_name) = split_user(&user)?;
            let req = SetUserPrivilegeRequest {
                user_name,
                tenant_name,
                privilege: privilege.clone(),
                grant: true,
            };
            let u = rpc!(c, set_user_privilege, req);
            print(j, user_json(&u), format!("granted {privilege} to {user}"))
        }
        CtlCmd::User(UserCmd::Revoke { privilege, user }) => {
            let (user_name, tenant_name) = split_user(&user)?;
            let req = SetUserPrivilegeRequest {
                user_name,
                tenant_name,
                privilege: privilege.clone(),
                grant: false,
            };
            let u = rpc!(c, set_user_privilege, req);
            print(j, user_json(&u), format!("revoked {privilege} from {user}"))
        }
        CtlCmd::User(UserCmd::List { tenant }) => {
            let req = ListUsersRequest {
                tenant_name: tenant.unwrap_or_default(),
            };
            let r = rpc!(c, list_users, req);
            let text = table(
                &["USER", "TENANT", "BACKUP_ADMIN", "PASSWORD"],
                r.users
                    .iter()
                    .map(|u| {
                        vec![
                            u.user_name.clone(),
                            u.tenant_name.clone(),
                            if u.backup_admin { "YES" } else { "NO" }.to_string(),
                            if u.empty_password { "EMPTY" } else { "set" }.to_string(),
                        ]
                    })
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
            target,
        } => {
            let req = RestoreTenantRequest {
                tenant_name: tenant,
                dest,
                to,
                until_scn: target.until_scn,
                backup_set_id: target.backup_set,
                until_time_ms: target.until_time,
                incarnation: target.incarnation,
                owner: target.owner.unwrap_or_default(),
                tablespace_map: target
                    .tablespace_map
                    .into_iter()
                    .map(|(old, new)| TablespaceMapping {
                        old_location: old,
                        new_location: new,
                    })
                    .collect(),
            };
            let r = rpc!(c, restore_tenant, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("restore started: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Copy(cmd) => {
            let manage = |verb: BackupVerb, sel: Option<CopySel>, tenant: Option<String>| {
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
                    ..manage_req(verb, None, 0)
                }
            };
            let req = match cmd {
                CopyCmd::Set(sel) => manage(BackupVerb::BackupBackupset, Some(sel), None),
                CopyCmd::Piece { sel, with_active } => BackupManageRequest {
                    with_active,
                    ..manage(BackupVerb::BackupBackuppiece, Some(sel), None)
                },
                CopyCmd::Start { tenant } => {
                    manage(BackupVerb::StartBackupArchivelog, None, tenant)
                }
                CopyCmd::Stop { tenant } => manage(BackupVerb::StopBackupArchivelog, None, tenant),
            };
            let action = verb_name(req.verb());
            let r = rpc!(c, backup_manage, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("{action}: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Cancel(cmd) => {
            let (action, tenant, id) = match cmd {
                CancelCmd::Backup { tenant } => (BackupVerb::CancelBackup, tenant, 0),
                CancelCmd::Backupset => (BackupVerb::CancelBackupBackupset, None, 0),
                CancelCmd::Backuppiece => (BackupVerb::CancelBackupBackuppiece, None, 0),
                CancelCmd::Validate { job } => (BackupVerb::CancelValidate, None, job),
                CancelCmd::AllForce => (BackupVerb::CancelAllBackupForce, None, 0),
            };
            let req = manage_req(action, tenant, id);
            let action = verb_name(action);
            let r = rpc!(c, backup_manage, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("{action}: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Suspend { tenant: t1 } | CtlCmd::Resume { tenant: t1 } => {
            let action = if suspend {
                BackupVerb::SuspendBackup
            } else {
                BackupVerb::ResumeBackup
            };
            let tenant = t1;
            let req = manage_req(action, tenant, 0);
            let action = verb_name(action);
            let r = rpc!(c, backup_manage, req);
            print(
                j,
                json!({"job_ids": r.job_ids}),
                format!("{action}: jobs {:?}", r.job_ids),
            )
        }
        CtlCmd::Copies { tenant } => views::copies(&c, j, tenant).await,
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
        CtlCmd::Archive { tenant } => views::archive(&c, j, tenant).await,
        CtlCmd::Pieces { tenant } => views::pieces(&c, j, tenant).await,
        CtlCmd::Sets { tenant } => views::sets(&c, j, tenant).await,
        CtlCmd::Jobs { tenant, all } => views::jobs(&c, j, tenant, all).await,
        CtlCmd::Tasks { job, all } => views::tasks(&c, j, job, all).await,
        CtlCmd::Workers => views::workers(&c, j).await,
        CtlCmd::Node(cmd) => {
            let s = match cmd {
                NodeCmd::Add { id, addr, learner } => {
                    let req = AddNodeRequest {
                        node_id: id,
                        addr,
                        learner_only: learner,
                    };
                    rpc!(c, add_node, req)
                }
                NodeCmd::Promote { id } => {
                    rpc!(c, promote_node, PromoteNodeRequest { node_id: id })
                }
                NodeCmd::Remove { id } => {
                    rpc!(c, remove_node, RemoveNodeRequest { node_id: id })
                }
            };
            print(j, status_json(&s), status_text(&s))
        }
    }
}
