//! The `user@tenant` RPCs of `MetaService`: accounts, passwords and privileges.

use backstop_common::Code;
use backstop_common::auth::PasswordHash;
use backstop_proto::meta::*;
use tonic::{Request, Response, Status};

use crate::command::{Command, Reply};
use crate::error::MetaError;
use crate::node::MetaNode;
use crate::state::{MetaState, UserRecord};

use super::auth::Auth;
use super::checks::{checked, unexpected};

/// A user as the API shows it: never a hash.
pub(super) fn user_msg(state: &MetaState, u: &UserRecord) -> User {
    User {
        user_name: u.user.clone(),
        tenant_name: state
            .tenants
            .get(&u.tenant_id)
            .map(|t| t.name.clone())
            .unwrap_or_default(),
        create_time_ms: u.create_time_ms,
        backup_admin: u.backup_admin || u.user == "root",
        empty_password: u.password.mysql_native.is_empty(),
    }
}

/// Proposes `cmd` and answers the user record it replies with.
async fn write_user(node: &MetaNode, cmd: Command) -> Result<Response<User>, Status> {
    match node.write(cmd).await? {
        Reply::User(u) => Ok(Response::new(node.read_local(|s| user_msg(s, &u)).await)),
        other => Err(unexpected(other)),
    }
}

/// `MetaService::create_user`.
pub(super) async fn create_user(
    node: &MetaNode,
    request: Request<CreateUserRequest>,
) -> Result<Response<User>, Status> {
    let req = request.into_inner();
    let user = checked("user", &req.user_name)?;
    let tenant = req.tenant_name.trim().to_string();
    let cmd = Command::CreateUser {
        tenant,
        user,
        password: PasswordHash::new(&req.password),
        if_not_exists: req.if_not_exists,
    };
    write_user(node, cmd).await
}

/// `MetaService::alter_user`.
pub(super) async fn alter_user(
    node: &MetaNode,
    request: Request<AlterUserRequest>,
) -> Result<Response<User>, Status> {
    let req = request.into_inner();
    let cmd = Command::AlterUser {
        tenant: req.tenant_name.trim().to_string(),
        user: req.user_name.trim().to_string(),
        password: PasswordHash::new(&req.password),
    };
    write_user(node, cmd).await
}

/// `MetaService::drop_user`.
pub(super) async fn drop_user(
    node: &MetaNode,
    request: Request<DropUserRequest>,
) -> Result<Response<DropUserResponse>, Status> {
    let req = request.into_inner();
    let cmd = Command::DropUser {
        tenant: req.tenant_name.trim().to_string(),
        user: req.user_name.trim().to_string(),
        if_exists: req.if_exists,
    };
    match node.write(cmd).await? {
        Reply::Dropped(dropped) => Ok(Response::new(DropUserResponse { dropped })),
        other => Err(unexpected(other)),
    }
}

/// `MetaService::list_users`.
pub(super) async fn list_users(
    node: &MetaNode,
    request: Request<ListUsersRequest>,
) -> Result<Response<ListUsersResponse>, Status> {
    let tenant = request.into_inner().tenant_name.trim().to_string();
    let users = node
        .read(|s| -> Result<Vec<User>, MetaError> {
            let filter = if tenant.is_empty() {
                None
            } else {
                Some(
                    s.tenant_by_name(&tenant)
                        .ok_or_else(|| {
                            MetaError::new(
                                Code::EntryNotExist,
                                format!("tenant '{tenant}' does not exist"),
                            )
                        })?
                        .tenant_id,
                )
            };
            Ok(s.users
                .values()
                .filter(|u| filter.is_none_or(|t| t == u.tenant_id))
                .map(|u| user_msg(s, u))
                .collect())
        })
        .await??;
    Ok(Response::new(ListUsersResponse { users }))
}

/// `MetaService::verify_user`: a password login the gateway checks for someone
/// else. Throttled like every login ([`Auth`]); argon2 runs off the runtime.
pub(super) async fn verify_user(
    node: &MetaNode,
    auth: &Auth,
    request: Request<VerifyUserRequest>,
) -> Result<Response<User>, Status> {
    let req = request.into_inner();
    let account = format!("{}@{}", req.user_name.trim(), req.tenant_name.trim());
    auth.throttled(&account)?;
    let found = node
        .read(|s| {
            let tenant = s.tenant_by_name(req.tenant_name.trim())?;
            let u = s
                .users
                .get(&(tenant.tenant_id, req.user_name.trim().to_string()))?;
            Some((u.password.clone(), user_msg(s, u)))
        })
        .await?;
    let Some((hash, user)) = found else {
        return Err(auth.failed(&account).into());
    };
    let password = req.password;
    let ok = tokio::task::spawn_blocking(move || hash.verify(&password))
        .await
        .unwrap_or(false);
    if !ok {
        return Err(auth.failed(&account).into());
    }
    auth.succeeded(&account);
    Ok(Response::new(user))
}

/// `MetaService::verify_native_password`: the gateway's `mysql_native_password`
/// check, throttled like every login.
pub(super) async fn verify_native_password(
    node: &MetaNode,
    auth: &Auth,
    request: Request<VerifyNativePasswordRequest>,
) -> Result<Response<User>, Status> {
    let req = request.into_inner();
    let account = format!("{}@{}", req.user_name.trim(), req.tenant_name.trim());
    auth.throttled(&account)?;
    let user = node
        .read(|s| {
            let tenant = s.tenant_by_name(req.tenant_name.trim())?;
            let u = s
                .users
                .get(&(tenant.tenant_id, req.user_name.trim().to_string()))?;
            u.password
                .verify_native(&req.salt, &req.auth_data)
                .then(|| user_msg(s, u))
        })
        .await?;
    match user {
        Some(u) => {
            auth.succeeded(&account);
            Ok(Response::new(u))
        }
        None => Err(auth.failed(&account).into()),
    }
}

/// `MetaService::set_user_privilege`: `GRANT|REVOKE BACKUP_ADMIN ON *.* TO|FROM 'u'`.
///
/// Errors: `OB_NOT_SUPPORTED` for a privilege other than `BACKUP_ADMIN`, and what
/// [`MetaState`]'s `set_user_privilege` answers (unknown user, revoke from root).
pub(super) async fn set_user_privilege(
    node: &MetaNode,
    request: Request<SetUserPrivilegeRequest>,
) -> Result<Response<User>, Status> {
    let req = request.into_inner();
    if !req.privilege.trim().eq_ignore_ascii_case("BACKUP_ADMIN") {
        return Err(MetaError::new(
            Code::NotSupported,
            format!(
                "privilege '{}' (Backstop has BACKUP_ADMIN only)",
                req.privilege.chars().take(64).collect::<String>()
            ),
        )
        .into());
    }
    let cmd = Command::SetUserPrivilege {
        tenant: req.tenant_name.trim().to_string(),
        user: req.user_name.trim().to_string(),
        backup_admin: req.grant,
    };
    write_user(node, cmd).await
}

/// A new tenant root's password when `CREATE TENANT` names none: 20 characters
/// from `[A-Za-z0-9]` (about 119 bits), from the OS's random source.
pub(super) fn generated_password() -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(char::from)
        .collect()
}
