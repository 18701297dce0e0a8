//! One client session: who it is, which tenant it acts for, and how each statement is
//! answered. The protocol shim (`shim.rs`) only converts; everything happens here.
//!
//! - `probes.rs`: client probes (`SELECT @@…`, `SHOW VARIABLES`, `DESCRIBE`);
//! - `snapshot.rs`: the view snapshot and `SELECT`;
//! - `execute.rs`: statements that change something, with their privileges;
//! - this file: the session and `handle`, which routes a statement to them.

use crate::errors::SqlError;
use crate::guard::Limits;
use crate::statement::{self};
use crate::views::{self, Cell, Rows};
use backstop_client::MetaClient;
use backstop_common::TenantId;

use self::probes::{Like, describe};

mod execute;
mod probes;
mod set;
mod snapshot;

/// What a statement answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// OK packet.
    Ok {
        /// Rows affected.
        affected: u64,
        /// Info text.
        info: String,
    },
    /// A result set.
    Rows(Rows),
}

/// A logged-in client.
pub struct Session {
    /// User name.
    pub user: String,
    /// Tenant name.
    pub tenant: String,
    /// Tenant id (1 for sys).
    pub tenant_id: u64,
    /// Current database.
    pub database: Option<String>,
    meta: std::sync::Arc<MetaClient>,
    limits: Limits,
    /// Session variables `SET` changed (names lower-case; bounded by `set.rs`'s list).
    vars: std::collections::BTreeMap<String, String>,
}

fn rows(columns: &[&str], rows: Vec<Vec<Cell>>) -> Reply {
    Reply::Rows(Rows {
        columns: columns.iter().map(|c| c.to_string()).collect(),
        rows,
    })
}

fn ok() -> Reply {
    Reply::Ok {
        affected: 0,
        info: String::new(),
    }
}

impl Session {
    /// A session for `user@tenant`, already authenticated, whose `SELECT`s run
    /// within `limits`.
    pub fn new(
        user: String,
        tenant: String,
        tenant_id: u64,
        meta: std::sync::Arc<MetaClient>,
        limits: Limits,
    ) -> Session {
        Session {
            user,
            tenant,
            tenant_id,
            database: None,
            meta,
            limits,
            vars: Default::default(),
        }
    }

    /// Whether this is the cluster administrator.
    pub fn is_sys(&self) -> bool {
        self.tenant_id == TenantId::SYS.0
    }

    /// `USE db` / COM_INIT_DB.
    pub fn use_database(&mut self, db: &str) -> Result<(), SqlError> {
        let db = db.trim().trim_matches('`');
        if !db.eq_ignore_ascii_case("oceanbase") && !db.eq_ignore_ascii_case("information_schema") {
            return Err(SqlError {
                errno: crate::errors::ER_BAD_DB,
                message: format!("Unknown database '{db}'"),
            });
        }
        self.database = Some(db.to_ascii_lowercase());
        Ok(())
    }

    /// Answers one statement.
    pub async fn handle(&mut self, sql: &str) -> Result<Reply, SqlError> {
        let text = sql.trim().trim_end_matches(';').trim();
        let lower = text.to_ascii_lowercase();
        let words: Vec<&str> = lower.split_whitespace().collect();
        match words.as_slice() {
            [] => Ok(ok()),
            ["set", "password", ..] => match statement::parse(text)? {
                Some(stmt) => self.execute(stmt).await,
                None => Err(SqlError::syntax(
                    "You have an error in your SQL syntax near SET PASSWORD",
                )),
            },
            ["set", ..] => self.set_variables(text).map(|_| ok()),
            ["show", "grants", ..] => self.show_grants(text).await,
            ["use", db] => self.use_database(db).map(|_| ok()),
            ["show", "databases"] | ["show", "schemas"] => {
                Ok(rows(&["Database"], vec![vec![Cell::from("oceanbase")]]))
            }
            ["show", "tables", ..] => Ok(rows(
                &["Tables_in_oceanbase"],
                views::all()
                    .iter()
                    .map(|v| vec![Cell::from(v.name())])
                    .collect(),
            )),
            ["show", "full", "tables", ..] => Ok(rows(
                &["Tables_in_oceanbase", "Table_type"],
                views::all()
                    .iter()
                    .map(|v| vec![Cell::from(v.name()), Cell::from("SYSTEM VIEW")])
                    .collect(),
            )),
            ["show", "warnings"] | ["show", "errors"] => {
                Ok(rows(&["Level", "Code", "Message"], vec![]))
            }
            ["show", "variables", ..]
            | ["show", "session", "variables", ..]
            | ["show", "global", "variables", ..] => {
                let pattern = text.split('\'').nth(1).unwrap_or("%").to_string();
                let matcher = Like::new(&pattern)?;
                let names = [
                    "version_comment",
                    "version",
                    "max_allowed_packet",
                    "autocommit",
                    "character_set_client",
                    "character_set_server",
                    "collation_server",
                    "sql_mode",
                    "time_zone",
                    "lower_case_table_names",
                    "wait_timeout",
                    "max_execution_time",
                    "max_connections",
                    "connect_timeout",
                ];
                let matched = names
                    .iter()
                    .filter(|n| matcher.matches(n))
                    .filter_map(|n| {
                        self.variable(n).map(|v| {
                            vec![Cell::from(*n), Cell::from(v.as_text().unwrap_or_default())]
                        })
                    })
                    .collect();
                Ok(rows(&["Variable_name", "Value"], matched))
            }
            ["show", "tenants"] => self.show_tenants().await,
            ["desc" | "describe", name]
            | ["show", "columns", "from", name]
            | ["show", "fields", "from", name] => describe(name),
            ["select", ..]
                if lower.contains("@@")
                    || lower.starts_with("select database()")
                    || lower.starts_with("select user()")
                    || lower.starts_with("select version()") =>
            {
                self.select_builtins(text)
            }
            ["select", ..] | ["with", ..] => self.select(text).await,
            _ => match statement::parse(text)? {
                Some(stmt) => self.execute(stmt).await,
                None => Err(SqlError::syntax(format!(
                    "You have an error in your SQL syntax; '{}' is not a statement Backstop knows",
                    crate::errors::redact_quoted(&text.chars().take(60).collect::<String>())
                ))),
            },
        }
    }
}
