//! Backstop's SQL gateway: the MySQL protocol (opensrv-mysql), Backstop's statements
//! (`ALTER SYSTEM …`, `CREATE/DROP TENANT`) and the `oceanbase.CDB_OB_BACKUP_*` views
//! (SQLite evaluates `SELECT`s). DBAs log in as `user@tenant`.
//!
//! - [`server`]: listener and connections.
//! - [`shim`]: the protocol shim (auth through the metadata service).
//! - [`session`]: what each statement does.
//! - [`statement`]: the statement grammar.
//! - [`views`]: one file per view.
//! - [`errors`], [`errpacket`]: error numbers and how they reach the client.
//! - [`limit`]: the bound on a client's packet size.
//! - [`tls`]: TLS on the MySQL port and `require_secure_transport`.
//! - [`guard`]: what a client may hold: connections, login and idle time, query time
//!   and result size.

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
