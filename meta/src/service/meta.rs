//! `MetaService`: the metadata API. Validates input statelessly, proposes commands
//! through [`MetaNode`], and converts records to protobuf messages.
//!
//! Longer than the house's ~600 lines on purpose: tonic's `MetaService` trait takes
//! every RPC in one `impl` block, one short method per RPC (decode, validate, propose,
//! encode). Their shared steps are the helpers above it; conversions are `convert.rs`.

use backstop_common::{BackupSetId, CopyId};
use std::sync::Arc;

use backstop_common::Code;
use backstop_common::auth::PasswordHash;
use backstop_common::params::Param;
use backstop_common::source::validate_source;
use backstop_proto::meta::meta_service_server::MetaService;
use backstop_proto::meta::*;
use tonic::{Request, Response, Status};

use crate::command::{CancelTarget, Command, Reply, WorkCommand};
use crate::error::MetaError;
use crate::node::MetaNode;
use crate::service::auth::{Auth, Need};
use crate::service::checks::{checked, unexpected};
use crate::service::{convert, users};
use crate::state::{CopySelection, MetaState, ParamRecord, SourceIdentity, TenantRecord};
use backstop_common::TenantId;

/// Serves the metadata API for one node.
pub struct MetaSvc {
    node: Arc<MetaNode>,
    auth: Arc<Auth>,
}

impl MetaSvc {
    pub(crate) fn new(node: Arc<MetaNode>, auth: Arc<Auth>) -> Self {
        Self { node, auth }
    }
}

impl MetaSvc {
    /// The tenants a statement targets: one by name, or every user tenant.
    async fn targets(&self, tenant: &str) -> Result<Vec<String>, MetaError> {
        let tenant = tenant.trim();
        if !tenant.is_empty() {
            return Ok(vec![tenant.to_string()]);
        }
        self.node
            .read(|s| {
                s.tenants
                    .values()
                    .filter(|t| t.tenant_id != TenantId::SYS)
                    .map(|t| t.name.clone())
                    .collect()
            })
            .await
    }

    async fn run_per_tenant(
        &self,
        tenant: &str,
        make: impl Fn(String) -> WorkCommand,
    ) -> Result<Response<JobsResponse>, Status> {
        let targets = self.targets(tenant).await?;
        if targets.is_empty() {
            return Err(MetaError::new(Code::EntryNotExist, "there is no user tenant").into());
        }
        let mut job_ids = Vec::new();
        for name in targets {
            match self.node.write(Command::Work(make(name))).await? {
                Reply::Job(id) => job_ids.push(id.0),
                Reply::Done => {}
                other => return Err(unexpected(other)),
            }
        }
        Ok(Response::new(JobsResponse { job_ids }))
    }

    /// A linearizable read of rows belonging to the tenant named in a list request
    /// (every tenant when the name is empty).
    async fn read_rows<T, R>(
        &self,
        tenant: &str,
        rows: impl FnOnce(&MetaState) -> Vec<(TenantId, T)>,
        convert: impl Fn(&T) -> R,
    ) -> Result<Vec<R>, MetaError> {
        let only = self.tenant_filter(tenant).await?;
        self.node
            .read(|s| {
                rows(s)
                    .iter()
                    .filter(|(t, _)| only.is_none_or(|o| o == *t))
                    .map(|(_, x)| convert(x))
                    .collect()
            })
            .await
    }

    async fn tenant_filter(&self, name: &str) -> Result<Option<TenantId>, MetaError> {
        let name = name.trim().to_string();
        if name.is_empty() {
            return Ok(None);
        }
        self.node
            .read(|s| s.tenant_by_name(&name).map(|t| t.tenant_id))
            .await?
            .map(Some)
            .ok_or_else(|| {
                MetaError::new(
                    Code::EntryNotExist,
                    format!("tenant '{name}' does not exist"),
                )
            })
    }
}

/// Validates and normalizes a source URI, and checks a `postgresql://` one against
/// its server: it answers, can be protected, and `pgdata` is its data directory (read
/// here too when this host has that path). Returns the normalized URI and, for
/// PostgreSQL, the identity found.
///
/// Errors carry `OB_INVALID_ARGUMENT` ([`backstop_pg::PgError`]'s message for the
/// server checks).
async fn checked_source(source: &str) -> Result<(String, Option<SourceIdentity>), MetaError> {
    let source = validate_source(source).map_err(|(code, msg)| MetaError::new(code, msg))?;
    backstop_common::source::check_dir_layout(&source)
        .map_err(|(code, msg)| MetaError::new(code, msg))?;
    let identity = check_pg_source(&source).await?;
    Ok((source, identity))
}

async fn check_pg_source(source: &str) -> Result<Option<SourceIdentity>, MetaError> {
    if !backstop_common::source::is_postgresql(source) {
        return Ok(None);
    }
    let pg = backstop_common::source::PgSource::parse(source)
        .map_err(|(code, msg)| MetaError::new(code, msg))?;
    let local = std::path::Path::new(&pg.pgdata).exists();
    let info = backstop_pg::check(&pg, local)
        .await
        .map_err(|e| MetaError::invalid(e.to_string()))?;
    tracing::info!(
        system_identifier = info.system_identifier,
        timeline = info.timeline,
        "PostgreSQL source checked"
    );
    Ok(Some(SourceIdentity {
        system_identifier: info.system_identifier,
        timeline: info.timeline,
    }))
}

/// Converts a tenant record to its message.
pub fn tenant_msg(t: &TenantRecord) -> Tenant {
    Tenant {
        tenant_id: t.tenant_id.0,
        tenant_name: t.name.clone(),
        // A PostgreSQL password never leaves the node in a view or listing.
        source: backstop_common::source::redact_source(&t.source),
        comment: t.comment.clone(),
        status: t.status.as_str().to_string(),
        incarnation: t.incarnation,
        create_time_ms: t.create_time_ms,
        system_identifier: t.identity.map_or(0, |i| i.system_identifier),
        timeline: t.identity.map_or(0, |i| i.timeline),
        generated_root_password: String::new(),
    }
}

fn param_msg(state: &MetaState, p: &ParamRecord) -> Parameter {
    let tenant_name = p
        .tenant_id
        .and_then(|id| state.tenants.get(&id))
        .map(|t| t.name.clone())
        .unwrap_or_default();
    Parameter {
        name: p.param.name().to_string(),
        tenant_name,
        value: p.param.display_value(&p.value),
        info: p.param.info().to_string(),
        update_time_ms: p.update_time_ms,
    }
}

#[tonic::async_trait]
impl MetaService for MetaSvc {
    async fn get_cluster_status(
        &self,
        request: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        self.auth.check(&request, Need::Any).await?;
        if request.into_inner().with_digest {
            let (mut status, digest) = self.node.status_with_digest().await;
            status.state_digest = digest;
            return Ok(Response::new(status));
        }
        Ok(Response::new(self.node.status().await))
    }

    async fn create_tenant(
        &self,
        request: Request<CreateTenantRequest>,
    ) -> Result<Response<Tenant>, Status> {
        self.auth.check(&request, Need::Cluster).await?;
        let req = request.into_inner();
        let name = checked("tenant", &req.tenant_name)?;
        if req.comment.len() > 4096 {
            return Err(MetaError::invalid("tenant comment longer than 4096 bytes").into());
        }
        let (source, identity) = checked_source(&req.source).await?;
        let generated = match &req.root_password {
            Some(_) => None,
            None => Some(users::generated_password()),
        };
        let password = req.root_password.as_deref().or(generated.as_deref());
        let cmd = Command::CreateTenant {
            name: name.clone(),
            source: source.clone(),
            comment: req.comment,
            if_not_exists: req.if_not_exists,
            root_password: PasswordHash::new(password.unwrap_or_default()),
        };
        let t = match self.node.write(cmd).await? {
            Reply::Tenant(t) => t,
            other => return Err(unexpected(other)),
        };
        // The generated password is shown once, and only if this call made the
        // tenant (`IF NOT EXISTS` may have found an older one, whose root's hash the
        // fresh random password cannot match).
        let generated = match generated {
            Some(pw) => {
                let root = (t.tenant_id, "root".to_string());
                // A linearizable read: a follower that forwarded the write sees it.
                let stored = self
                    .node
                    .read(|s| s.users.get(&root).map(|u| u.password.clone()))
                    .await?;
                let candidate = pw.clone();
                let made = match stored {
                    Some(h) => tokio::task::spawn_blocking(move || h.verify(&candidate))
                        .await
                        .unwrap_or(false),
                    None => false,
                };
                made.then_some(pw)
            }
            None => None,
        };
        let shown = |mut msg: Tenant| {
            msg.generated_root_password = generated.clone().unwrap_or_default();
            msg
        };
        // The identity goes in with its own command (layout-2 logs keep decoding); a
        // tenant that `IF NOT EXISTS` found with another source is left as it is.
        if identity.is_none() || t.source != source || t.identity.is_some() {
            return Ok(Response::new(shown(tenant_msg(&t))));
        }
        let cmd = Command::SetTenantSource {
            name,
            source,
            identity,
        };
        match self.node.write(cmd).await? {
            Reply::Tenant(t) => Ok(Response::new(shown(tenant_msg(&t)))),
            other => Err(unexpected(other)),
        }
    }

    async fn alter_tenant_source(
        &self,
        request: Request<AlterTenantSourceRequest>,
    ) -> Result<Response<Tenant>, Status> {
        self.auth.check(&request, Need::Cluster).await?;
        let req = request.into_inner();
        let (source, identity) = checked_source(&req.source).await?;
        let cmd = Command::SetTenantSource {
            name: req.tenant_name.trim().to_string(),
            source,
            identity,
        };
        match self.node.write(cmd).await? {
            Reply::Tenant(t) => Ok(Response::new(tenant_msg(&t))),
            other => Err(unexpected(other)),
        }
    }

    async fn drop_tenant(
        &self,
        request: Request<DropTenantRequest>,
    ) -> Result<Response<DropTenantResponse>, Status> {
        self.auth.check(&request, Need::Cluster).await?;
        let req = request.into_inner();
        let cmd = Command::DropTenant {
            name: req.tenant_name.trim().to_string(),
            if_exists: req.if_exists,
        };
        match self.node.write(cmd).await? {
            Reply::Dropped(dropped) => Ok(Response::new(DropTenantResponse { dropped })),
            other => Err(unexpected(other)),
        }
    }

    async fn list_tenants(
        &self,
        request: Request<ListTenantsRequest>,
    ) -> Result<Response<ListTenantsResponse>, Status> {
        self.auth.check(&request, Need::Any).await?;
        let tenants = self
            .node
            .read(|s| s.tenants.values().map(tenant_msg).collect())
            .await?;
        Ok(Response::new(ListTenantsResponse { tenants }))
    }

    async fn set_parameter(
        &self,
        request: Request<SetParameterRequest>,
    ) -> Result<Response<Parameter>, Status> {
        let caller = self.auth.caller(&request).await?;
        let req = request.into_inner();
        let param: Param = req
            .name
            .parse()
            .map_err(|e: backstop_common::params::ParamError| MetaError::new(e.code, e.message))?;
        let tenant_scoped = param == Param::BackupCompression && !req.tenant_name.trim().is_empty();
        if tenant_scoped {
            caller.allow(Need::Admin(&req.tenant_name))?;
        } else {
            // Destinations and cluster-wide values: tenant users cannot choose where
            // backups go.
            caller.allow(Need::Cluster)?;
        }
        let value = param
            .validate(&req.value)
            .map_err(|e| MetaError::new(e.code, e.message))?;
        let tenant = Some(req.tenant_name.trim().to_string()).filter(|t| !t.is_empty());
        let cmd = Command::SetParameter {
            param,
            tenant,
            value,
        };
        match self.node.write(cmd).await? {
            Reply::Parameter(p) => {
                let msg = self.node.read_local(|s| param_msg(s, &p)).await;
                Ok(Response::new(msg))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn show_parameters(
        &self,
        request: Request<ShowParametersRequest>,
    ) -> Result<Response<ShowParametersResponse>, Status> {
        self.auth.check(&request, Need::Any).await?;
        let req = request.into_inner();
        let only: Option<Param> = if req.name.trim().is_empty() {
            None
        } else {
            Some(
                req.name
                    .parse()
                    .map_err(|e: backstop_common::params::ParamError| {
                        MetaError::new(e.code, e.message)
                    })?,
            )
        };
        let parameters = self
            .node
            .read(|s| {
                let mut out = Vec::new();
                for param in Param::ALL
                    .into_iter()
                    .filter(|p| only.is_none_or(|o| o == *p))
                {
                    match s.params.get(&(0, param)) {
                        Some(p) => out.push(param_msg(s, p)),
                        None => out.push(Parameter {
                            name: param.name().to_string(),
                            tenant_name: String::new(),
                            value: String::new(),
                            info: param.info().to_string(),
                            update_time_ms: 0,
                        }),
                    }
                    out.extend(
                        s.params
                            .iter()
                            .filter(|((t, p), _)| *t != 0 && *p == param)
                            .map(|(_, p)| param_msg(s, p)),
                    );
                }
                out
            })
            .await?;
        Ok(Response::new(ShowParametersResponse { parameters }))
    }

    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<User>, Status> {
        self.auth
            .check(&request, Need::Admin(&request.get_ref().tenant_name))
            .await?;
        users::create_user(&self.node, request).await
    }

    async fn alter_user(
        &self,
        request: Request<AlterUserRequest>,
    ) -> Result<Response<User>, Status> {
        let caller = self.auth.caller(&request).await?;
        let r = request.get_ref();
        let own = matches!(&caller, crate::service::auth::Caller::User { user, tenant, .. }
            if *user == r.user_name.trim() && tenant.eq_ignore_ascii_case(r.tenant_name.trim()));
        if !own {
            caller.allow(Need::Admin(&r.tenant_name))?;
        }
        users::alter_user(&self.node, request).await
    }

    async fn drop_user(
        &self,
        request: Request<DropUserRequest>,
    ) -> Result<Response<DropUserResponse>, Status> {
        self.auth
            .check(&request, Need::Admin(&request.get_ref().tenant_name))
            .await?;
        users::drop_user(&self.node, request).await
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        self.auth
            .check(&request, Need::Read(&request.get_ref().tenant_name))
            .await?;
        users::list_users(&self.node, request).await
    }

    async fn set_user_privilege(
        &self,
        request: Request<SetUserPrivilegeRequest>,
    ) -> Result<Response<User>, Status> {
        self.auth
            .check(&request, Need::Admin(&request.get_ref().tenant_name))
            .await?;
        users::set_user_privilege(&self.node, request).await
    }

    async fn verify_user(
        &self,
        request: Request<VerifyUserRequest>,
    ) -> Result<Response<User>, Status> {
        self.auth.check(&request, Need::Gateway).await?;
        users::verify_user(&self.node, &self.auth, request).await
    }

    async fn set_tenant_hooks(
        &self,
        request: Request<SetTenantHooksRequest>,
    ) -> Result<Response<Tenant>, Status> {
        self.auth.check(&request, Need::Cluster).await?;
        let req = request.into_inner();
        let hook = |h: String| Some(h.trim().to_string()).filter(|h| !h.is_empty());
        let cmd = Command::SetTenantHooks {
            name: req.tenant_name.trim().to_string(),
            begin_backup_hook: hook(req.begin_backup_hook),
            end_backup_hook: hook(req.end_backup_hook),
        };
        match self.node.write(cmd).await? {
            Reply::Tenant(t) => Ok(Response::new(tenant_msg(&t))),
            other => Err(unexpected(other)),
        }
    }

    async fn archivelog(
        &self,
        request: Request<ArchivelogRequest>,
    ) -> Result<Response<JobsResponse>, Status> {
        self.auth
            .check(&request, Need::Admin(&request.get_ref().tenant_name))
            .await?;
        let req = request.into_inner();
        if req.enable {
            self.run_per_tenant(&req.tenant_name, |tenant| WorkCommand::StartArchive {
                tenant,
            })
            .await
        } else {
            self.run_per_tenant(&req.tenant_name, |tenant| WorkCommand::StopArchive {
                tenant,
            })
            .await
        }
    }

    async fn backup_database(
        &self,
        request: Request<BackupDatabaseRequest>,
    ) -> Result<Response<JobsResponse>, Status> {
        self.auth
            .check(&request, Need::Admin(&request.get_ref().tenant_name))
            .await?;
        let req = request.into_inner();
        let incremental = req.incremental;
        self.run_per_tenant(&req.tenant_name, |tenant| WorkCommand::StartBackup {
            tenant,
            incremental,
        })
        .await
    }

    async fn validate_backup_set(
        &self,
        request: Request<ValidateBackupSetRequest>,
    ) -> Result<Response<JobsResponse>, Status> {
        self.auth
            .check(&request, Need::Admin(&request.get_ref().tenant_name))
            .await?;
        let req = request.into_inner();
        let id = req.backup_set_id;
        self.run_per_tenant(&req.tenant_name, |tenant| WorkCommand::StartValidate {
            tenant,
            backup_set_id: BackupSetId(id),
        })
        .await
    }

    async fn restore_tenant(
        &self,
        request: Request<RestoreTenantRequest>,
    ) -> Result<Response<JobsResponse>, Status> {
        self.auth.check(&request, Need::Cluster).await?;
        let req = request.into_inner();
        if !req.to.trim().starts_with('/') {
            return Err(MetaError::invalid("restore needs an absolute target directory").into());
        }
        let dest = Some(req.dest.trim().to_string()).filter(|d| !d.is_empty());
        if let Some(d) = &dest {
            backstop_common::BackupDest::parse(d)
                .map_err(|e| MetaError::new(e.code(), e.to_string()))?;
        }
        let tenant = req.tenant_name.trim().to_string();
        if tenant.is_empty() {
            return Err(MetaError::invalid("restore needs a tenant").into());
        }
        if req.until_scn.is_some() && req.until_time_ms.is_some() {
            return Err(
                MetaError::invalid("restore takes until_scn or until_time, not both").into(),
            );
        }
        let mut tablespace_map = Vec::new();
        for m in &req.tablespace_map {
            let (old, new) = (m.old_location.trim(), m.new_location.trim());
            if old.is_empty() || !new.starts_with('/') {
                return Err(MetaError::invalid(format!(
                    "tablespace map '{old}={new}': OLD is a tablespace's old location or OID, NEW an absolute directory"
                ))
                .into());
            }
            tablespace_map.push((old.to_string(), new.to_string()));
        }
        let owner = Some(req.owner.trim().to_string()).filter(|o| !o.is_empty());
        let cmd = WorkCommand::StartRestore {
            tenant: tenant.clone(),
            dest,
            to: req.to.trim().to_string(),
            until_scn: req.until_scn,
            backup_set: req.backup_set_id.map(BackupSetId),
            options: backstop_common::task::RestoreOptions {
                until_time_ms: req.until_time_ms,
                incarnation: req.incarnation,
                owner,
                tablespace_map,
            },
        };
        self.run_per_tenant(&tenant, move |_| cmd.clone()).await
    }

    async fn list_archive(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListArchiveResponse>, Status> {
        self.auth
            .check(&request, Need::Read(&request.get_ref().tenant_name))
            .await?;
        let tenant = request.into_inner().tenant_name;
        let rounds = self
            .read_rows(
                &tenant,
                |s| {
                    s.work
                        .rounds
                        .values()
                        .map(|x| (x.tenant_id, x.clone()))
                        .collect()
                },
                convert::round,
            )
            .await?;
        let copies = self
            .read_rows(
                &tenant,
                |s| {
                    s.work
                        .archive_copies
                        .values()
                        .map(|x| (x.tenant_id, x.clone()))
                        .collect()
                },
                convert::archive_copy,
            )
            .await?;
        let leftovers = self
            .read_rows(
                &tenant,
                |s| {
                    s.work
                        .leftovers
                        .values()
                        .map(|x| (x.dest.tenant_id, x.clone()))
                        .collect()
                },
                convert::leftover,
            )
            .await?;
        Ok(Response::new(ListArchiveResponse {
            rounds,
            copies,
            leftovers,
        }))
    }

    async fn backup_manage(
        &self,
        request: Request<BackupManageRequest>,
    ) -> Result<Response<JobsResponse>, Status> {
        let caller = self.auth.caller(&request).await?;
        let req = request.into_inner();
        for t in &req.tenants {
            checked("tenant", t)?;
        }
        // Choosing a destination, and forcing every job down, are the cluster
        // administrator's; the rest needs BACKUP_ADMIN in every tenant named.
        if !req.dest.trim().is_empty() || req.verb() == BackupVerb::CancelAllBackupForce {
            caller.allow(Need::Cluster)?;
        } else if req.tenants.is_empty() {
            caller.allow(Need::Admin(""))?;
        }
        for t in &req.tenants {
            caller.allow(Need::Admin(t))?;
        }
        let selection = || CopySelection {
            tenants: req.tenants.clone(),
            id: (req.id != 0).then_some(req.id),
            max_backup_times: req.max_backup_times,
            dest: (!req.dest.trim().is_empty()).then(|| req.dest.trim().to_string()),
        };
        if let Some(d) = selection().dest {
            backstop_common::BackupDest::parse(&d)
                .map_err(|e| MetaError::new(Code::InvalidBackupDest, e.to_string()))?;
        }
        let tenants = req.tenants.clone();
        let cmd = match req.verb() {
            BackupVerb::BackupBackupset => WorkCommand::StartSetCopy {
                selection: selection(),
            },
            BackupVerb::BackupBackuppiece => WorkCommand::StartPieceCopy {
                selection: selection(),
                with_active: req.with_active,
            },
            BackupVerb::StartBackupArchivelog => WorkCommand::SetArchiveCopy {
                enable: true,
                tenants,
            },
            BackupVerb::StopBackupArchivelog => WorkCommand::SetArchiveCopy {
                enable: false,
                tenants,
            },
            BackupVerb::CancelBackup => WorkCommand::CancelJobs {
                target: CancelTarget::Backup,
                tenants,
            },
            BackupVerb::CancelBackupBackupset => WorkCommand::CancelJobs {
                target: CancelTarget::SetCopy,
                tenants,
            },
            BackupVerb::CancelBackupBackuppiece => WorkCommand::CancelJobs {
                target: CancelTarget::PieceCopy,
                tenants,
            },
            BackupVerb::CancelValidate => WorkCommand::CancelJobs {
                target: CancelTarget::Validate(req.id),
                tenants,
            },
            BackupVerb::SuspendBackup | BackupVerb::ResumeBackup => WorkCommand::SuspendBackup {
                suspend: req.verb() == BackupVerb::SuspendBackup,
                tenants,
            },
            BackupVerb::CancelAllBackupForce => WorkCommand::CancelAllForce {
                clean_after_ms: self.node.task_lease().as_millis() as u64,
            },
            BackupVerb::ValidateCopy => {
                let Some(tenant) = req.tenants.first().cloned() else {
                    return Err(MetaError::invalid("validate_copy names one tenant").into());
                };
                WorkCommand::StartValidateCopy {
                    tenant,
                    backup_set_id: BackupSetId(req.id),
                    copy_id: CopyId(req.copy_id),
                }
            }
            BackupVerb::DeleteBackupset => WorkCommand::DeleteBackupSet {
                tenants,
                backup_set_id: BackupSetId(req.id),
                copy_id: CopyId(req.copy_id),
            },
            BackupVerb::Unspecified => {
                return Err(MetaError::invalid(format!(
                    "unknown backup verb {} (a newer client?)",
                    req.verb
                ))
                .into());
            }
        };
        let job_ids = match self.node.write(Command::Work(cmd)).await? {
            Reply::Job(id) => vec![id.0],
            Reply::Jobs(ids) => ids.into_iter().map(|j| j.0).collect(),
            Reply::Done => vec![],
            other => return Err(unexpected(other)),
        };
        Ok(Response::new(JobsResponse { job_ids }))
    }

    async fn set_policy(
        &self,
        request: Request<SetPolicyRequest>,
    ) -> Result<Response<Policy>, Status> {
        self.auth
            .check(&request, Need::Admin(&request.get_ref().tenant_name))
            .await?;
        let req = request.into_inner();
        let tenant =
            (!req.tenant_name.trim().is_empty()).then(|| req.tenant_name.trim().to_string());
        self.node
            .write(Command::Work(WorkCommand::SetPolicy {
                tenant: tenant.clone(),
                full_interval_ms: req.full_interval_ms,
                incremental_interval_ms: req.incremental_interval_ms,
                secondary: req.secondary,
            }))
            .await?;
        let policy = self
            .node
            .read(move |s| {
                let id = match &tenant {
                    None => Some(TenantId::SYS),
                    Some(n) => s.tenant_by_name(n).map(|t| t.tenant_id),
                };
                id.and_then(|id| s.work.policies.get(&id))
                    .map(|p| convert::policy(s, p))
            })
            .await?
            .ok_or_else(|| MetaError::internal("policy vanished after it was set"))?;
        Ok(Response::new(policy))
    }

    async fn drop_policy(
        &self,
        request: Request<DropPolicyRequest>,
    ) -> Result<Response<DropPolicyResponse>, Status> {
        self.auth
            .check(&request, Need::Admin(&request.get_ref().tenant_name))
            .await?;
        let req = request.into_inner();
        let tenant =
            (!req.tenant_name.trim().is_empty()).then(|| req.tenant_name.trim().to_string());
        let dropped = match self
            .node
            .write(Command::Work(WorkCommand::DropPolicy { tenant }))
            .await?
        {
            Reply::Dropped(d) => d,
            other => return Err(unexpected(other)),
        };
        Ok(Response::new(DropPolicyResponse { dropped }))
    }

    async fn list_policies(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListPoliciesResponse>, Status> {
        self.auth
            .check(&request, Need::Read(&request.get_ref().tenant_name))
            .await?;
        let tenant = request.into_inner().tenant_name;
        let policies = self
            .node
            .read(|s| {
                s.work
                    .policies
                    .values()
                    .map(|p| convert::policy(s, p))
                    .collect::<Vec<_>>()
            })
            .await?
            .into_iter()
            .filter(|p| tenant.is_empty() || p.tenant_name.eq_ignore_ascii_case(&tenant))
            .collect();
        Ok(Response::new(ListPoliciesResponse { policies }))
    }

    async fn list_pieces(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListPiecesResponse>, Status> {
        self.auth
            .check(&request, Need::Read(&request.get_ref().tenant_name))
            .await?;
        let tenant = request.into_inner().tenant_name;
        let pieces = self
            .read_rows(
                &tenant,
                |s| {
                    s.work
                        .pieces
                        .values()
                        .map(|x| {
                            let inc = s
                                .work
                                .rounds
                                .get(&(x.tenant_id, x.round_id))
                                .map_or(1, |r| r.dest.incarnation);
                            (x.tenant_id, (x.clone(), inc))
                        })
                        .collect()
                },
                convert::piece,
            )
            .await?;
        Ok(Response::new(ListPiecesResponse { pieces }))
    }

    async fn list_backup_sets(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListBackupSetsResponse>, Status> {
        self.auth
            .check(&request, Need::Read(&request.get_ref().tenant_name))
            .await?;
        let tenant = request.into_inner().tenant_name;
        let sets = self
            .read_rows(
                &tenant,
                |s| {
                    s.work
                        .sets
                        .values()
                        .map(|x| (x.tenant_id, x.clone()))
                        .collect()
                },
                convert::set,
            )
            .await?;
        Ok(Response::new(ListBackupSetsResponse { sets }))
    }

    async fn list_jobs(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListJobsResponse>, Status> {
        self.auth
            .check(&request, Need::Read(&request.get_ref().tenant_name))
            .await?;
        let req = request.into_inner();
        let only = self.tenant_filter(&req.tenant_name).await?;
        let jobs = self
            .node
            .read(|s| {
                s.work
                    .jobs
                    .values()
                    .filter(|j| only.is_none_or(|t| t == j.tenant_id))
                    .filter(|j| req.all || j.status.is_live())
                    .map(|j| convert::job(s, j))
                    .collect()
            })
            .await?;
        Ok(Response::new(ListJobsResponse { jobs }))
    }

    async fn list_tasks(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        self.auth
            .check(&request, Need::Read(&request.get_ref().tenant_name))
            .await?;
        let req = request.into_inner();
        let only = self.tenant_filter(&req.tenant_name).await?;
        let tasks = self
            .node
            .read(|s| {
                s.work
                    .tasks
                    .values()
                    .filter(|t| only.is_none_or(|x| x == t.tenant_id))
                    .filter(|t| req.job_id == 0 || t.job_id.0 == req.job_id)
                    .filter(|t| {
                        req.all
                            || matches!(
                                t.status,
                                crate::state::TaskStatus::Pending
                                    | crate::state::TaskStatus::Running
                            )
                    })
                    .map(|t| convert::task(s, t))
                    .collect()
            })
            .await?;
        Ok(Response::new(ListTasksResponse { tasks }))
    }

    async fn list_workers(
        &self,
        request: Request<ListRequest>,
    ) -> Result<Response<ListWorkersResponse>, Status> {
        self.auth.check(&request, Need::Any).await?;
        let workers = self
            .node
            .read(|s| {
                s.work
                    .workers
                    .values()
                    .map(|w| convert::worker(s, w))
                    .collect()
            })
            .await?;
        Ok(Response::new(ListWorkersResponse { workers }))
    }

    async fn verify_native_password(
        &self,
        request: Request<VerifyNativePasswordRequest>,
    ) -> Result<Response<User>, Status> {
        self.auth.check(&request, Need::Gateway).await?;
        users::verify_native_password(&self.node, &self.auth, request).await
    }

    async fn add_node(
        &self,
        request: Request<AddNodeRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        self.auth.check(&request, Need::Cluster).await?;
        let req = request.into_inner();
        if req.addr.trim().is_empty() {
            return Err(MetaError::invalid("node address is empty").into());
        }
        self.node
            .add_node(req.node_id, req.addr.trim().to_string(), req.learner_only)
            .await?;
        Ok(Response::new(self.node.status().await))
    }

    async fn promote_node(
        &self,
        request: Request<PromoteNodeRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        self.auth.check(&request, Need::Cluster).await?;
        self.node.promote_node(request.into_inner().node_id).await?;
        Ok(Response::new(self.node.status().await))
    }

    async fn remove_node(
        &self,
        request: Request<RemoveNodeRequest>,
    ) -> Result<Response<ClusterStatus>, Status> {
        self.auth.check(&request, Need::Cluster).await?;
        self.node.remove_node(request.into_inner().node_id).await?;
        Ok(Response::new(self.node.status().await))
    }
}
