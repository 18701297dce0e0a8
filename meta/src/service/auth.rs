//! Who calls a meta node, and what they may do.
//!
//! A caller is known by one of three things, checked in this order:
//! 1. a client certificate the TLS layer verified against the cluster CA, whose
//!    `OU` names a role ([`backstop_proto::tls::peer_identity`]): a cluster process
//!    (`meta`, `worker`, `gateway`), or a person (`client`, `CN=user@tenant`);
//! 2. a password login in the request metadata ([`LOGIN_USER_KEY`],
//!    [`LOGIN_PASSWORD_KEY`]), checked against the user's argon2id hash;
//! 3. nothing: accepted only by a plaintext node, which listens on loopback only
//!    (`MetaNode::start` refuses anything else), as the cluster administrator.
//!
//! Failed logins are throttled per `user@tenant`: after [`MAX_FAILURES`] in a row
//! the account answers `OB_PASSWORD_WRONG` (1045) for [`LOCKOUT`], whatever the
//! password, and every failure is logged at `warn`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstop_common::Code;
use backstop_common::TenantId;
use backstop_proto::tls::{Role, peer_identity};
use backstop_proto::{LOGIN_PASSWORD_KEY, LOGIN_USER_KEY};
use sha2::{Digest, Sha256};
use tonic::Request;
use tracing::warn;

use crate::error::MetaError;
use crate::node::MetaNode;

/// Failed logins in a row before an account is locked for [`LOCKOUT`].
pub const MAX_FAILURES: u32 = 5;
/// How long a throttled account refuses every login.
pub const LOCKOUT: Duration = Duration::from_secs(30);
/// Most accounts the throttle and the login cache remember (both are bounded
/// whatever callers send).
const MAX_TRACKED: usize = 10_000;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// No TLS and no login, on a plaintext node (loopback only): trusted as the
    /// cluster administrator, as `standalone` on one machine is.
    Local,
    /// A cluster process, by its certificate.
    Process(Role, String),
    /// A person, by password or client certificate.
    User {
        /// User name.
        user: String,
        /// Tenant name as stored.
        tenant: String,
        /// `root@sys`: the cluster administrator.
        cluster_admin: bool,
        /// Holds `BACKUP_ADMIN` (a tenant's `root` always does).
        backup_admin: bool,
    },
}

/// What a call needs of its caller.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Need<'a> {
    /// Any authenticated caller (cluster status, tenant and worker lists).
    Any,
    /// Read the rows of this tenant (`""`: every tenant, which only `sys` users
    /// and cluster processes may).
    Read(&'a str),
    /// Run backup statements for this tenant (`""`: every tenant): `BACKUP_ADMIN`
    /// in it, or in `sys`.
    Admin(&'a str),
    /// The cluster administrator: tenants, destinations, hooks, membership.
    Cluster,
    /// Checking other users' passwords: the SQL gateway, or a meta peer.
    Gateway,
}

fn denied(msg: String) -> MetaError {
    MetaError::new(Code::NoPrivilege, msg)
}

impl Caller {
    /// Whether this caller may do what `need` says. Errors: `OB_ERR_NO_PRIVILEGE`
    /// (MySQL 1227) naming who was refused what.
    pub(crate) fn allow(&self, need: Need<'_>) -> Result<(), MetaError> {
        let (user, tenant, cluster_admin, backup_admin) = match self {
            Caller::Local | Caller::Process(Role::Meta | Role::Gateway, _) => return Ok(()),
            Caller::Process(Role::Worker, name) => {
                return match need {
                    Need::Any => Ok(()),
                    _ => Err(denied(format!(
                        "worker certificate '{name}' may call the worker service only"
                    ))),
                };
            }
            Caller::Process(Role::Client, name) => {
                return Err(denied(format!("client certificate '{name}' names no user")));
            }
            Caller::User {
                user,
                tenant,
                cluster_admin,
                backup_admin,
            } => (user, tenant, *cluster_admin, *backup_admin),
        };
        let sys = tenant.eq_ignore_ascii_case("sys");
        let own = |t: &str| t.trim().eq_ignore_ascii_case(tenant);
        let ok = match need {
            Need::Any => true,
            Need::Read(t) => sys || own(t),
            Need::Admin(t) => backup_admin && (sys || own(t)),
            Need::Cluster => cluster_admin,
            Need::Gateway => false,
        };
        if ok {
            return Ok(());
        }
        let what = match need {
            Need::Any => "this".to_string(),
            Need::Read(t) if t.trim().is_empty() => {
                "reading every tenant's rows (name your tenant)".to_string()
            }
            Need::Read(t) => format!("reading tenant '{}'", t.trim()),
            Need::Admin(t) if t.trim().is_empty() => {
                "backup statements for every tenant (a sys user with BACKUP_ADMIN)".to_string()
            }
            Need::Admin(t) => format!(
                "backup statements for tenant '{}' (needs BACKUP_ADMIN there)",
                t.trim()
            ),
            Need::Cluster => "this (only root@sys, the cluster administrator)".to_string(),
            Need::Gateway => "checking passwords (the SQL gateway's certificate)".to_string(),
        };
        Err(denied(format!("'{user}@{tenant}' may not do {what}")))
    }
}

/// Lets through only cluster processes of `role` (by certificate), or anyone on a
/// plaintext node (loopback only). For `RaftService` (meta peers) and
/// `WorkerService` (workers), as a tonic interceptor. Errors: `Unauthenticated`
/// without a certificate, `PermissionDenied` with another role's.
pub(crate) fn require_process<T>(
    req: &Request<T>,
    tls: bool,
    role: Role,
) -> Result<(), tonic::Status> {
    if !tls {
        return Ok(());
    }
    let Some(der) = req.peer_certs().and_then(|c| c.first().cloned()) else {
        return Err(MetaError::new(
            Code::AccessDenied,
            format!(
                "this service is for {} processes: present a certificate with OU={} signed by the cluster CA",
                role.name(),
                role.name()
            ),
        )
        .to_status());
    };
    let id = peer_identity(der.as_ref())
        .map_err(|e| MetaError::new(Code::AccessDenied, e.to_string()).to_status())?;
    if id.role != role {
        warn!(peer = %id.name, role = id.role.name(), wanted = role.name(), "refused a call with the wrong certificate role");
        return Err(denied(format!(
            "certificate '{}' is a {} certificate; this service is for {} processes",
            id.name,
            id.role.name(),
            role.name()
        ))
        .to_status());
    }
    Ok(())
}

/// One login remembered after argon2 accepted it: the stored hash it was checked
/// against and the SHA-256 of the password, so that the next call with the same
/// password skips argon2 until the password changes.
type Remembered = (String, [u8; 32]);

/// Failures in a row of one account, and until when it is locked.
#[derive(Default, Clone, Copy)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// The authentication state of one meta node's services.
pub(crate) struct Auth {
    node: Arc<MetaNode>,
    tls: bool,
    verified: Mutex<HashMap<String, Remembered>>,
    failures: Mutex<HashMap<String, Failures>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn metadata<'a, T>(req: &'a Request<T>, key: &str) -> Option<&'a str> {
    req.metadata().get(key).and_then(|v| v.to_str().ok())
}

/// Splits `user@tenant` at its last `@`; a bare name is a `sys` user.
pub(crate) fn split_login(login: &str) -> (String, String) {
    match login.trim().rsplit_once('@') {
        Some((u, t)) => (u.trim().to_string(), t.trim().to_string()),
        None => (login.trim().to_string(), "sys".to_string()),
    }
}

impl Auth {
    pub(crate) fn new(node: Arc<MetaNode>, tls: bool) -> Arc<Auth> {
        Arc::new(Auth {
            node,
            tls,
            verified: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Who sent `req`. Errors: `OB_PASSWORD_WRONG` (1045) for a wrong or throttled
    /// login, an unknown user, or a TLS caller that presents neither a certificate
    /// nor a login; `OB_ERR_NO_PRIVILEGE` never.
    pub(crate) async fn caller<T>(&self, req: &Request<T>) -> Result<Caller, MetaError> {
        if let Some(der) = req.peer_certs().and_then(|c| c.first().cloned()) {
            let id = peer_identity(der.as_ref())
                .map_err(|e| MetaError::new(Code::AccessDenied, e.to_string()))?;
            if id.role != Role::Client {
                return Ok(Caller::Process(id.role, id.name));
            }
            let (user, tenant) = split_login(&id.name);
            return self.user(&user, &tenant, None).await;
        }
        match (
            metadata(req, LOGIN_USER_KEY),
            metadata(req, LOGIN_PASSWORD_KEY),
        ) {
            (Some(login), password) => {
                let (user, tenant) = split_login(login);
                self.user(&user, &tenant, Some(password.unwrap_or_default()))
                    .await
            }
            (None, _) if !self.tls => Ok(Caller::Local),
            (None, _) => Err(MetaError::new(
                Code::AccessDenied,
                "log in: this meta node needs a client certificate or a password login (ctl --user USER@TENANT with BACKUP_PASSWORD set)",
            )),
        }
    }

    /// [`Auth::caller`], then [`Caller::allow`].
    pub(crate) async fn check<T>(
        &self,
        req: &Request<T>,
        need: Need<'_>,
    ) -> Result<Caller, MetaError> {
        let caller = self.caller(req).await?;
        caller.allow(need)?;
        Ok(caller)
    }

    /// The account `user@tenant`, checking `password` when given (a certificate
    /// login gives none).
    async fn user(
        &self,
        user: &str,
        tenant: &str,
        password: Option<&str>,
    ) -> Result<Caller, MetaError> {
        let account = format!("{user}@{tenant}");
        self.throttled(&account)?;
        let found = self
            .node
            .read(|s| {
                let t = s.tenant_by_name(tenant)?;
                let u = s.users.get(&(t.tenant_id, user.to_string()))?;
                Some((
                    t.name.clone(),
                    t.tenant_id,
                    u.password.clone(),
                    u.backup_admin || u.user == "root",
                ))
            })
            .await?;
        let ok = match (&found, password) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some((_, _, hash, _)), Some(pw)) => self.verify(&account, hash, pw).await,
        };
        let Some((tenant_name, tenant_id, _, backup_admin)) = found.filter(|_| ok) else {
            return Err(self.failed(&account));
        };
        lock(&self.failures).remove(&account);
        Ok(Caller::User {
            cluster_admin: tenant_id == TenantId::SYS && user == "root",
            user: user.to_string(),
            tenant: tenant_name,
            backup_admin,
        })
    }

    /// Whether `password` matches `hash`: from the cache when the same password was
    /// accepted against the same stored hash before, else argon2 on a blocking
    /// thread (it costs tens of ms and must not hold a runtime thread).
    async fn verify(
        &self,
        account: &str,
        hash: &backstop_common::auth::PasswordHash,
        password: &str,
    ) -> bool {
        let digest: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        if lock(&self.verified)
            .get(account)
            .is_some_and(|(h, d)| *h == hash.login && *d == digest)
        {
            return true;
        }
        let (h, pw) = (hash.clone(), password.to_string());
        let ok = tokio::task::spawn_blocking(move || h.verify(&pw))
            .await
            .unwrap_or(false);
        if ok {
            let mut cache = lock(&self.verified);
            if cache.len() >= MAX_TRACKED {
                cache.clear();
            }
            cache.insert(account.to_string(), (hash.login.clone(), digest));
        }
        ok
    }

    /// Refuses an account locked by failed logins.
    pub(crate) fn throttled(&self, account: &str) -> Result<(), MetaError> {
        let now = Instant::now();
        if let Some(until) = lock(&self.failures)
            .get(account)
            .and_then(|f| f.locked_until)
            .filter(|u| *u > now)
        {
            return Err(MetaError::new(
                Code::AccessDenied,
                format!(
                    "access denied for '{account}': too many failed logins, try again in {} s",
                    until.saturating_duration_since(now).as_secs().max(1)
                ),
            ));
        }
        Ok(())
    }

    /// Counts a failed login (logged at `warn`) and answers the error to return.
    pub(crate) fn failed(&self, account: &str) -> MetaError {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, f| f.locked_until.is_some_and(|u| u > now));
            if failures.len() >= MAX_TRACKED {
                failures.clear();
            }
        }
        let f = failures.entry(account.to_string()).or_default();
        if f.locked_until.is_some_and(|u| u <= now) {
            *f = Failures::default();
        }
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.locked_until = Some(now + LOCKOUT);
            warn!(
                account,
                failures = f.count,
                lockout_s = LOCKOUT.as_secs(),
                "failed login: account locked"
            );
        } else {
            warn!(account, failures = f.count, "failed login");
        }
        MetaError::new(
            Code::AccessDenied,
            format!("access denied for '{account}' (wrong password or no such user)"),
        )
    }

    /// Forgets an account's failures after a successful login elsewhere (the
    /// gateway's `mysql_native_password` check).
    pub(crate) fn succeeded(&self, account: &str) {
        lock(&self.failures).remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(tenant: &str, name: &str, admin: bool) -> Caller {
        Caller::User {
            user: name.to_string(),
            tenant: tenant.to_string(),
            cluster_admin: tenant == "sys" && name == "root",
            backup_admin: admin || name == "root",
        }
    }

    #[test]
    fn roles_decide_what_each_caller_may_do() {
        let root = user("sys", "root", true);
        let t_admin = user("t1", "root", true);
        let t_reader = user("t1", "alice", false);
        let worker = Caller::Process(Role::Worker, "w1".into());
        for need in [
            Need::Cluster,
            Need::Admin(""),
            Need::Read(""),
            Need::Gateway,
        ] {
            assert!(Caller::Local.allow(need).is_ok());
            assert!(
                Caller::Process(Role::Gateway, "g".into())
                    .allow(need)
                    .is_ok()
            );
        }
        assert!(root.allow(Need::Cluster).is_ok());
        assert!(root.allow(Need::Admin("t1")).is_ok());
        assert!(t_admin.allow(Need::Admin("T1")).is_ok());
        assert!(t_admin.allow(Need::Admin("t2")).is_err());
        assert!(t_admin.allow(Need::Admin("")).is_err());
        assert!(t_admin.allow(Need::Cluster).is_err());
        assert!(t_reader.allow(Need::Read("t1")).is_ok());
        assert!(t_reader.allow(Need::Read("t2")).is_err());
        let e = t_reader.allow(Need::Admin("t1")).err().map(|e| e.code);
        assert_eq!(e, Some(Code::NoPrivilege));
        assert!(root.allow(Need::Gateway).is_err());
        assert!(worker.allow(Need::Any).is_ok());
        assert!(worker.allow(Need::Read("t1")).is_err());
    }

    #[test]
    fn logins_split_at_the_last_at() {
        assert_eq!(split_login("root@sys"), ("root".into(), "sys".into()));
        assert_eq!(split_login("a@b@t1"), ("a@b".into(), "t1".into()));
        assert_eq!(split_login("root"), ("root".into(), "sys".into()));
    }
}
