//! The opensrv-mysql shim: protocol only. It authenticates `user@tenant` through the
//! metadata service (mysql_native_password, checked there) and forwards every
//! statement to the [`Session`].

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use backstop_client::{ClientError, MetaClient};
use backstop_proto::meta::{ListTenantsRequest, VerifyNativePasswordRequest};
use opensrv_mysql::{
    AsyncMysqlShim, Column, ColumnFlags, ColumnType, ErrorKind, InitWriter, OkResponse,
    ParamParser, QueryResultWriter, StatementMetaWriter,
};
use tokio::io::AsyncWrite;
use tokio::sync::Mutex;
use tracing::{debug, warn};

use crate::errors::{self, SqlError};
use crate::errpacket::tag;
use crate::guard::Limits;
use crate::session::{Reply, Session};
use crate::views::Cell;

/// One connection's shim.
pub struct Backend {
    meta: std::sync::Arc<MetaClient>,
    login_failure: crate::errpacket::LoginFailure,
    salt: [u8; 20],
    conn_id: u32,
    identity: Mutex<Option<(String, String, u64)>>,
    session: Option<Session>,
    logged_in: Arc<AtomicBool>,
    limits: Limits,
    exposed: bool,
}

/// The most users an "empty password" refusal names.
const MAX_NAMED: usize = 8;

/// Splits `user@tenant[#cluster]`; no tenant means `sys`.
pub fn split_user(login: &str) -> (String, String) {
    let login = login.split('#').next().unwrap_or(login);
    match login.split_once('@') {
        Some((u, t)) if !t.is_empty() => (u.to_string(), t.to_string()),
        _ => (login.trim_end_matches('@').to_string(), "sys".to_string()),
    }
}

impl Backend {
    /// A shim for one connection. A login that cannot be checked puts its error
    /// into `login_failure`, for the connection's [`crate::errpacket::ErrorRewriter`];
    /// a login that succeeds sets `logged_in` (the connection's idle clock then
    /// follows `wait_timeout`). Sessions run under `limits`.
    pub fn new(
        meta: std::sync::Arc<MetaClient>,
        conn_id: u32,
        login_failure: crate::errpacket::LoginFailure,
        logged_in: Arc<AtomicBool>,
        limits: Limits,
    ) -> Backend {
        let mut salt = [0u8; 20];
        for b in &mut salt {
            // Printable, never NUL or '$' (some clients stop at them).
            *b = b'%' + (rand::random::<u8>() % 90);
        }
        Backend {
            meta,
            login_failure,
            salt,
            conn_id,
            identity: Mutex::new(None),
            session: None,
            logged_in,
            limits,
            exposed: false,
        }
    }

    /// Marks the shim as serving a non-loopback listener: then no login succeeds
    /// while any user in the catalog has an empty password (checked at each login,
    /// so setting the passwords opens the gateway without a restart).
    pub fn exposed(mut self, exposed: bool) -> Backend {
        self.exposed = exposed;
        self
    }

    /// The catalog's users with an empty password, as `user@tenant` (at most
    /// [`MAX_NAMED`] of them, then `…`); `Err` when the catalog cannot be read.
    async fn empty_passwords(&self) -> Result<Vec<String>, ClientError> {
        let users = crate::meta_call!(
            self.meta,
            list_users,
            backstop_proto::meta::ListUsersRequest::default()
        )?
        .users;
        let mut named: Vec<String> = users
            .iter()
            .filter(|u| u.empty_password)
            .map(|u| format!("{}@{}", u.user_name, u.tenant_name))
            .collect();
        if named.len() > MAX_NAMED {
            named.truncate(MAX_NAMED);
            named.push("…".into());
        }
        Ok(named)
    }

    /// A login the metadata service did not answer (unreachable, no leader, timed
    /// out): the client is told so, never "access denied".
    fn unchecked_login(&self, e: &ClientError) {
        let answered = match e {
            ClientError::Refused(status) => status
                .metadata()
                .get(backstop_proto::ERROR_CODE_KEY)
                .and_then(|v| v.to_str().ok())
                .and_then(backstop_common::Code::from_name)
                .is_some_and(|c| !c.is_retryable()),
            ClientError::Stale(_) | ClientError::BadLogin(_) => true,
            _ => false,
        };
        if answered {
            return;
        }
        let message = match e {
            ClientError::Refused(status) => status.message().to_string(),
            other => other.to_string(),
        };
        let errno = SqlError::from_client(e).errno;
        let message =
            format!("cannot reach the metadata service to check the login; try again: {message}");
        *self.login_failure.lock().unwrap_or_else(|p| p.into_inner()) = Some((errno, message));
    }

    async fn session(&mut self) -> Result<&mut Session, SqlError> {
        if self.session.is_none() {
            let identity = self.identity.lock().await.clone();
            let Some((user, tenant, tenant_id)) = identity else {
                return Err(SqlError {
                    errno: errors::ER_ACCESS_DENIED,
                    message: "not authenticated".into(),
                });
            };
            self.session = Some(Session::new(
                user,
                tenant,
                tenant_id,
                self.meta.clone(),
                self.limits,
            ));
        }
        self.session.as_mut().ok_or_else(|| SqlError {
            errno: errors::ER_ACCESS_DENIED,
            message: "not authenticated".into(),
        })
    }
}

/// The opensrv error kind and message for an error: MySQL's own numbers directly,
/// Backstop's 9000-range numbers through the packet rewriter.
fn error_parts(e: &SqlError) -> (ErrorKind, String) {
    let kind = match e.errno {
        errors::ER_PARSE_ERROR => ErrorKind::ER_PARSE_ERROR,
        errors::ER_NO_SUCH_TABLE => ErrorKind::ER_NO_SUCH_TABLE,
        errors::ER_ACCESS_DENIED => ErrorKind::ER_ACCESS_DENIED_ERROR,
        errors::ER_SPECIFIC_ACCESS_DENIED => ErrorKind::ER_SPECIFIC_ACCESS_DENIED_ERROR,
        errors::ER_BAD_DB => ErrorKind::ER_BAD_DB_ERROR,
        other => return (ErrorKind::ER_UNKNOWN_ERROR, tag(other, &e.message)),
    };
    (kind, e.message.clone())
}

/// The MySQL type of column `i`: integers and floats when every value is one, text
/// otherwise (values travel as text either way).
fn column_type(rows: &[Vec<Cell>], i: usize) -> ColumnType {
    let mut ty = None;
    for cell in rows.iter().filter_map(|r| r.get(i)) {
        let t = match cell {
            Cell::Null => continue,
            Cell::Int(_) => ColumnType::MYSQL_TYPE_LONGLONG,
            Cell::Real(_) => ColumnType::MYSQL_TYPE_DOUBLE,
            Cell::Text(_) => return ColumnType::MYSQL_TYPE_VAR_STRING,
        };
        ty = match (ty, t) {
            (None, t) => Some(t),
            (Some(a), b) if a == b => Some(a),
            _ => Some(ColumnType::MYSQL_TYPE_DOUBLE),
        };
    }
    ty.unwrap_or(ColumnType::MYSQL_TYPE_VAR_STRING)
}

#[async_trait]
impl<W: AsyncWrite + Send + Unpin> AsyncMysqlShim<W> for Backend {
    type Error = io::Error;

    fn version(&self) -> String {
        "5.7.25-Backstop-0.1.0".to_string()
    }

    fn connect_id(&self) -> u32 {
        self.conn_id
    }

    fn salt(&self) -> [u8; 20] {
        self.salt
    }

    async fn authenticate(
        &self,
        _plugin: &str,
        username: &[u8],
        salt: &[u8],
        auth_data: &[u8],
    ) -> bool {
        let (user, tenant) = split_user(&String::from_utf8_lossy(username));
        let meta = self.meta.clone();
        let req = VerifyNativePasswordRequest {
            user_name: user.clone(),
            tenant_name: tenant.clone(),
            salt: salt.to_vec(),
            auth_data: auth_data.to_vec(),
        };
        if let Err(status) = crate::meta_call!(meta, verify_native_password, req) {
            debug!(%user, %tenant, error = %status, "login refused");
            self.unchecked_login(&status);
            return false;
        }
        let tenants = match crate::meta_call!(meta, list_tenants, ListTenantsRequest {}) {
            Ok(t) => t,
            Err(status) => {
                self.unchecked_login(&status);
                return false;
            }
        };
        let Some(t) = tenants
            .tenants
            .into_iter()
            .find(|t| t.tenant_name.eq_ignore_ascii_case(&tenant))
        else {
            return false;
        };
        if self.exposed {
            match self.empty_passwords().await {
                Ok(empty) if empty.is_empty() => {}
                Ok(empty) => {
                    warn!(users = %empty.join(", "), "login refused: this gateway listens on a non-loopback address and some users have an empty password");
                    let message = format!(
                        "this gateway listens on a non-loopback address and will not serve while users have an empty password: {}. Set them (backstop ctl user alter USER@TENANT --password …, or SET PASSWORD through a loopback gateway)",
                        empty.join(", ")
                    );
                    *self.login_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some((errors::ER_ACCESS_DENIED, message));
                    return false;
                }
                Err(status) => {
                    self.unchecked_login(&status);
                    return false;
                }
            }
        }
        *self.identity.lock().await = Some((user, t.tenant_name, t.tenant_id));
        self.logged_in.store(true, Ordering::Release);
        true
    }

    async fn on_prepare<'a>(
        &'a mut self,
        _query: &'a str,
        info: StatementMetaWriter<'a, W>,
    ) -> io::Result<()> {
        let e = SqlError::not_supported("prepared statements");
        let (kind, msg) = error_parts(&e);
        info.error(kind, msg.as_bytes()).await
    }

    async fn on_execute<'a>(
        &'a mut self,
        _id: u32,
        _params: ParamParser<'a>,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        let e = SqlError::not_supported("prepared statements");
        let (kind, msg) = error_parts(&e);
        results.error(kind, msg.as_bytes()).await
    }

    async fn on_close<'a>(&'a mut self, _stmt: u32)
    where
        W: 'async_trait,
    {
    }

    async fn on_init<'a>(
        &'a mut self,
        database: &'a str,
        writer: InitWriter<'a, W>,
    ) -> io::Result<()> {
        let result = match self.session().await {
            Ok(s) => s.use_database(database),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => writer.ok().await,
            Err(e) => {
                let (kind, msg) = error_parts(&e);
                writer.error(kind, msg.as_bytes()).await
            }
        }
    }

    async fn on_query<'a>(
        &'a mut self,
        query: &'a str,
        results: QueryResultWriter<'a, W>,
    ) -> io::Result<()> {
        let reply = match self.session().await {
            Ok(s) => s.handle(query).await,
            Err(e) => Err(e),
        };
        match reply {
            Ok(Reply::Ok { affected, info }) => {
                results
                    .completed(OkResponse {
                        affected_rows: affected,
                        info,
                        ..Default::default()
                    })
                    .await
            }
            Ok(Reply::Rows(rows)) => {
                let columns: Vec<Column> = rows
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Column {
                        table: String::new(),
                        column: c.clone(),
                        coltype: column_type(&rows.rows, i),
                        colflags: ColumnFlags::empty(),
                    })
                    .collect();
                let mut w = results.start(&columns).await?;
                for row in rows.rows {
                    for cell in row {
                        w.write_col(cell.as_text())?;
                    }
                    w.end_row().await?;
                }
                w.finish().await
            }
            Err(e) => {
                let (kind, msg) = error_parts(&e);
                results.error(kind, msg.as_bytes()).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_name_user_and_tenant() {
        assert_eq!(split_user("root@sys"), ("root".into(), "sys".into()));
        assert_eq!(
            split_user("alice@t1#cluster"),
            ("alice".into(), "t1".into())
        );
        assert_eq!(split_user("root"), ("root".into(), "sys".into()));
    }
}
