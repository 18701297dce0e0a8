//! Client probes: what `mysql`, JDBC and ORMs ask before any real statement
//! (`SELECT @@…`, `SHOW VARIABLES`, `DESCRIBE`), answered without the catalog.

use super::{Reply, Session, rows};
use crate::errors::SqlError;
use crate::views::{self, Cell, Rows};

/// Session variables clients ask for on connect, fixed ones (the gateway's limits
/// are `Session::variable`'s).
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

/// The longest `LIKE` pattern accepted (characters); MySQL's identifiers are at most
/// 64, so a longer pattern can only be an attack.
const MAX_LIKE_PATTERN: usize = 1024;

/// SQL `LIKE` with `%` and `_` (and `\\` escaping either), case-insensitive, as
/// `SHOW VARIABLES LIKE '…'` matches names. The pattern becomes a `regex`, whose
/// matching time is linear in the input whatever the pattern (no backtracking, no
/// recursion).
pub(super) struct Like(regex::Regex);

impl Like {
    /// Errors: 1064 for a pattern over [`MAX_LIKE_PATTERN`] characters.
    pub(super) fn new(pattern: &str) -> Result<Like, SqlError> {
        if pattern.chars().count() > MAX_LIKE_PATTERN {
            return Err(SqlError::syntax(format!(
                "LIKE pattern longer than {MAX_LIKE_PATTERN} characters"
            )));
        }
        let mut re = String::from("^");
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match c {
                '%' => re.push_str(".*"),
                '_' => re.push('.'),
                '\\' => {
                    if let Some(next) = chars.next() {
                        re.push_str(&regex::escape(&next.to_string()));
                    }
                }
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        regex::RegexBuilder::new(&re)
            .case_insensitive(true)
            .dot_matches_new_line(true)
            .size_limit(32 << 20)
            .build()
            .map(Like)
            .map_err(|_| SqlError::syntax("LIKE pattern too complex"))
    }

    /// Whether `s` matches.
    pub(super) fn matches(&self, s: &str) -> bool {
        self.0.is_match(s)
    }
}

impl Session {
    /// A variable as this session sees it: the gateway's limits, then the fixed
    /// answers of [`variable`].
    pub(super) fn variable(&self, name: &str) -> Option<Cell> {
        let l = &self.limits;
        let secs = |d: std::time::Duration| Some(Cell::Int(d.as_secs() as i64));
        match name.to_ascii_lowercase().as_str() {
            "wait_timeout" | "interactive_timeout" => secs(l.wait_timeout),
            "connect_timeout" => secs(l.connect_timeout),
            "max_connections" => Some(Cell::Int(l.max_connections as i64)),
            "max_execution_time" => Some(Cell::Int(l.max_execution_time.as_millis() as i64)),
            n => match self.vars.get(n) {
                Some(v) => Some(Cell::from(v.as_str())),
                None => variable(name),
            },
        }
    }

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
                self.variable(name).unwrap_or(Cell::Null)
            } else if e == "database()" {
                self.database.clone().map_or(Cell::Null, Cell::from)
            } else if e == "user()" || e == "current_user()" {
                Cell::Text(format!("{}@{}", self.user, self.tenant))
            } else if e == "version()" {
                self.variable("version").unwrap_or(Cell::Null)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_as_sql_does_and_a_bomb_is_cheap() {
        let m = |p: &str, s: &str| Like::new(p).unwrap().matches(s);
        assert!(m("%", "wait_timeout"));
        assert!(m("WAIT%", "wait_timeout"));
        assert!(m("w_it\\_timeout", "wait_timeout"));
        assert!(!m("w_it\\_timeout", "waitXtimeout"));
        assert!(!m("wait", "wait_timeout"));
        assert!(
            m("%.%", "a.b") && !m("%.%", "ab"),
            "regex characters are literal"
        );
        // Exponential for a backtracking matcher; linear here.
        let bomb = format!("{}b", "%a".repeat(500));
        let started = std::time::Instant::now();
        assert!(!m(&bomb, &"a".repeat(1000)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let e = Like::new(&"%".repeat(MAX_LIKE_PATTERN + 1)).err().unwrap();
        assert_eq!(e.errno, crate::errors::ER_PARSE_ERROR);
    }
}
