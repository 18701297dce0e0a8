//! Client probes: what `mysql`, JDBC and ORMs ask before any real statement
//! (`SELECT @@…`, `SHOW VARIABLES`, `DESCRIBE`), answered without the catalog.

use super::{Reply, Session, rows};
use crate::errors::SqlError;
use crate::views::{self, Cell, Rows};

/// Session variables clients ask for on connect.
pub(super) fn variable(name: &str) -> Option<Cell> {
    let v = match name.to_ascii_lowercase().as_str() {
        "version_comment" => "Backstop: OceanBase-compatible backup service",
        "version" => "5.7.25-Backstop-0.1.0",
        "max_allowed_packet" => {
            return Some(Cell::Int(crate::limit::MAX_ALLOWED_PACKET as i64));
        }
        "auto_increment_increment" | "autocommit" => return Some(Cell::Int(1)),
        "character_set_client"
        | "character_set_connection"
        | "character_set_results"
        | "character_set_server" => "utf8mb4",
        "collation_server" | "collation_connection" => "utf8mb4_general_ci",
        "sql_mode" => "STRICT_TRANS_TABLES",
        "time_zone" | "system_time_zone" => "UTC",
        "transaction_isolation" | "tx_isolation" => "READ-COMMITTED",
        "lower_case_table_names" => return Some(Cell::Int(0)),
        "wait_timeout" | "interactive_timeout" => return Some(Cell::Int(28800)),
        "net_write_timeout" => return Some(Cell::Int(60)),
        "performance_schema" => return Some(Cell::Int(0)),
        "license" => "Apache-2.0",
        _ => return None,
    };
    Some(Cell::from(v))
}

pub(super) fn describe(name: &str) -> Result<Reply, SqlError> {
    let view = views::find(name)
        .ok_or_else(|| SqlError::no_such_table(&format!("oceanbase.{}", name.trim_matches('`'))))?;
    let rows_ = view
        .columns()
        .iter()
        .map(|c| {
            vec![
                Cell::from(*c),
                Cell::from("varchar"),
                Cell::from("YES"),
                Cell::from(""),
                Cell::Null,
                Cell::from(""),
            ]
        })
        .collect();
    Ok(rows(
        &["Field", "Type", "Null", "Key", "Default", "Extra"],
        rows_,
    ))
}

/// SQL `LIKE` with `%` and `_`, case-insensitive.
pub(super) fn like(s: &str, pattern: &str) -> bool {
    fn go(s: &[u8], p: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'%') => (0..=s.len()).any(|i| go(&s[i..], &p[1..])),
            Some(b'_') => !s.is_empty() && go(&s[1..], &p[1..]),
            Some(c) => s.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && go(&s[1..], &p[1..]),
        }
    }
    go(s.as_bytes(), pattern.as_bytes())
}

impl Session {
    /// `SELECT @@x [AS a], DATABASE(), USER(), VERSION() [LIMIT n]`.
    pub(super) fn select_builtins(&self, text: &str) -> Result<Reply, SqlError> {
        let body = text[6..].trim();
        let body = match body.to_ascii_lowercase().find(" limit ") {
            Some(i) => &body[..i],
            None => body,
        };
        let mut columns = Vec::new();
        let mut row = Vec::new();
        for item in body.split(',') {
            let item = item.trim();
            let (expr, alias) = match item.to_ascii_lowercase().find(" as ") {
                Some(i) => (
                    &item[..i],
                    Some(item[i + 4..].trim().trim_matches('`').to_string()),
                ),
                None => (item, None),
            };
            let e = expr.trim().to_ascii_lowercase();
            let value = if let Some(name) = e.strip_prefix("@@") {
                let name = name
                    .trim_start_matches("session.")
                    .trim_start_matches("global.");
                variable(name).unwrap_or(Cell::Null)
            } else if e == "database()" {
                self.database.clone().map_or(Cell::Null, Cell::from)
            } else if e == "user()" || e == "current_user()" {
                Cell::Text(format!("{}@{}", self.user, self.tenant))
            } else if e == "version()" {
                variable("version").unwrap_or(Cell::Null)
            } else {
                return Err(SqlError::syntax(format!(
                    "You have an error in your SQL syntax near '{expr}'"
                )));
            };
            columns.push(alias.unwrap_or_else(|| expr.trim().to_string()));
            row.push(value);
        }
        Ok(Reply::Rows(Rows {
            columns,
            rows: vec![row],
        }))
    }
}
