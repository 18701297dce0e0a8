//! Backstop's SQL gateway: the MySQL protocol (opensrv-mysql), Backstop's statements
//! (`ALTER SYSTEM …`, `CREATE/DROP TENANT`) and the `oceanbase.CDB_OB_BACKUP_*` views
//! (SQLite evaluates `SELECT`s). DBAs log in as `user@tenant`.
//!
//! - [`server`]: listener and connections.
//! - [`shim`]: the protocol shim (auth through the metadata service).
//! - [`session`]: what each statement does.
//! - [`statement`]: the statement grammar; [`ast`]: what it parses to.
//! - [`views`]: one file per view.
//! - [`errors`], [`errpacket`]: error numbers and how they reach the client.
//! - [`limit`]: the bound on a client's packet size.
//! - [`tls`]: TLS on the MySQL port and `require_secure_transport`.
//! - [`guard`]: what a client may hold: connections, login and idle time, query time
//!   and result size.

/// Calls one `MetaService` method through a [`backstop_client::MetaClient`] (the
/// gateway's, routed to the members in order and retried while none answers, within
/// its patience): `meta_call!(client, method, request)`, the request cloned for each
/// attempt. Yields `Result<Reply, backstop_client::ClientError>`.
macro_rules! meta_call {
    ($client:expr, $method:ident, $req:expr) => {{
        let req = $req;
        $client
            .meta(move |mut m| {
                let req = req.clone();
                async move { m.$method(req).await }
            })
            .await
    }};
}
pub(crate) use meta_call;

pub mod ast;
pub mod errors;
pub mod errpacket;
pub mod guard;
pub mod limit;
pub mod server;
pub mod session;
pub mod shim;
pub mod statement;
pub mod tls;
pub mod views;

pub use guard::Limits;
pub use server::{Gateway, GatewayConfig, GatewayError};
pub use tls::{SqlTls, SqlTlsError};
