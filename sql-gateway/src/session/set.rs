//! `SET` of session variables: what client libraries send on connect (`SET NAMES`,
//! `SET autocommit = 1`, `SET sql_mode = …`), kept for the session and shown by
//! `SELECT @@name`. A value is a number, a quoted string, a word, or
//! `CONCAT(…)` of those and `@@name` (MariaDB Connector/J sends
//! `sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES')` on every connect).
//! Nothing else is accepted silently:
//!
//! - an unknown variable is MySQL's `ER_UNKNOWN_SYSTEM_VARIABLE` (1193);
//! - the gateway's limits and fixed facts (`version`, `wait_timeout`, …) are
//!   `ER_INCORRECT_GLOBAL_LOCAL_VAR` (1238, "read only"): they are set by the
//!   gateway's flags (`docs/CONFIG.md`);
//! - `SET GLOBAL` / `PERSIST` is `ER_SPECIFIC_ACCESS_DENIED` (1227): cluster settings
//!   are `ALTER SYSTEM SET` parameters;
//! - a user variable (`SET @x = …`) is `OB_NOT_SUPPORTED`.
//!
//! `SET PASSWORD` is a statement of its own (`statement.rs`).

use sqlparser::dialect::MySqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::Session;
use crate::errors::SqlError;

/// `ER_UNKNOWN_SYSTEM_VARIABLE`.
pub const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
/// `ER_INCORRECT_GLOBAL_LOCAL_VAR` ("Variable '%s' is a read only variable").
pub const ER_INCORRECT_GLOBAL_LOCAL_VAR: u16 = 1238;
/// `ER_WRONG_VALUE_FOR_VAR`.
pub const ER_WRONG_VALUE_FOR_VAR: u16 = 1231;

/// Session variables a client may set; they change nothing Backstop does.
const SETTABLE: &[&str] = &[
    "autocommit",
    "sql_mode",
    "character_set_client",
    "character_set_connection",
    "character_set_results",
    "collation_connection",
    "time_zone",
    "transaction_isolation",
    "tx_isolation",
    "transaction_read_only",
    "tx_read_only",
    "sql_select_limit",
    "net_write_timeout",
    "net_read_timeout",
    "sql_safe_updates",
    "sql_auto_is_null",
    "sql_notes",
    "sql_quote_show_create",
    "group_concat_max_len",
    "foreign_key_checks",
    "unique_checks",
    "session_track_schema",
    "session_track_state_change",
    "session_track_system_variables",
    "session_track_transaction_info",
    "names",
    "character_set_database",
    "default_week_format",
    "div_precision_increment",
];

/// The longest value a session variable keeps, in bytes.
const MAX_VALUE: usize = 1024;

impl Session {
    /// Carries out `SET a = x [, b = y …]` (see the module doc).
    pub(super) fn set_variables(&mut self, sql: &str) -> Result<(), SqlError> {
        let tokens: Vec<Token> = Tokenizer::new(&MySqlDialect {}, sql)
            .tokenize()
            .map_err(|e| SqlError::syntax(format!("You have an error in your SQL syntax: {e}")))?
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon))
            .collect();
        let mut changes = Vec::new();
        for item in top_level(tokens.get(1..).unwrap_or_default()) {
            let lookup = |n: &str| self.variable(n).and_then(|c| c.as_text());
            changes.extend(assignment(item, &lookup)?);
        }
        if changes.is_empty() {
            return Err(SqlError::syntax(
                "You have an error in your SQL syntax; SET needs a variable",
            ));
        }
        for (name, value) in changes {
            self.vars.insert(name, value);
        }
        Ok(())
    }
}

fn word(t: Option<&Token>) -> Option<String> {
    match t {
        Some(Token::Word(w)) => Some(w.value.to_ascii_lowercase()),
        _ => None,
    }
}

/// One `name = value` (or `NAMES x`, `CHARACTER SET x`, `TRANSACTION …`) as the
/// variables it sets.
fn assignment(item: &[Token], lookup: &Lookup) -> Result<Vec<(String, String)>, SqlError> {
    let mut pos = 0;
    let first = word(item.first());
    match first.as_deref() {
        Some("global") | Some("persist") | Some("persist_only") => {
            return Err(global());
        }
        Some("session") | Some("local") => pos = 1,
        Some("names") => {
            let charset = value(item.get(1..).unwrap_or_default(), "names", lookup)?;
            return Ok([
                "character_set_client",
                "character_set_connection",
                "character_set_results",
            ]
            .iter()
            .map(|n| (n.to_string(), charset.clone()))
            .collect());
        }
        Some("character") if word(item.get(1)).as_deref() == Some("set") => {
            let charset = value(item.get(2..3).unwrap_or_default(), "character set", lookup)?;
            return Ok(vec![
                ("character_set_client".into(), charset.clone()),
                ("character_set_results".into(), charset),
            ]);
        }
        Some("transaction") => {
            let text: Vec<String> = item[1..].iter().filter_map(|t| word(Some(t))).collect();
            return match text
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice()
            {
                ["isolation", "level", level @ ..] if !level.is_empty() => Ok(vec![(
                    "transaction_isolation".into(),
                    level.join("-").to_ascii_uppercase(),
                )]),
                ["read", "only"] => Ok(vec![("transaction_read_only".into(), "1".into())]),
                ["read", "write"] => Ok(vec![("transaction_read_only".into(), "0".into())]),
                _ => Err(SqlError::syntax(
                    "You have an error in your SQL syntax; SET TRANSACTION ISOLATION LEVEL … | READ ONLY | READ WRITE",
                )),
            };
        }
        _ => {}
    }
    let name = match item.get(pos) {
        Some(Token::Word(w)) if w.value.starts_with("@@") || w.value.starts_with('@') => {
            w.value.to_ascii_lowercase()
        }
        Some(Token::AtSign) => {
            return Err(SqlError::not_supported("user variables (SET @name)"));
        }
        Some(Token::Word(w)) => w.value.to_ascii_lowercase(),
        _ => {
            return Err(SqlError::syntax(
                "You have an error in your SQL syntax; SET needs a variable name",
            ));
        }
    };
    pos += 1;
    // `@@session.x` may come as one word or as `@@session` `.` `x`.
    let mut name = name;
    while matches!(item.get(pos), Some(Token::Period)) {
        let next = word(item.get(pos + 1)).unwrap_or_default();
        name = format!("{name}.{next}");
        pos += 2;
    }
    let name = if let Some(rest) = name.strip_prefix("@@") {
        match rest.split_once('.') {
            Some(("global" | "persist" | "persist_only", _)) => return Err(global()),
            Some(("session" | "local", n)) => n.to_string(),
            _ => rest.to_string(),
        }
    } else if name.starts_with('@') {
        return Err(SqlError::not_supported("user variables (SET @name)"));
    } else {
        name
    };
    match item.get(pos) {
        Some(Token::Eq) | Some(Token::Assignment) => pos += 1,
        _ => {
            return Err(SqlError::syntax(format!(
                "You have an error in your SQL syntax; expected = after {}",
                name.chars().take(64).collect::<String>()
            )));
        }
    }
    if !SETTABLE.contains(&name.as_str()) {
        let shown: String = name.chars().take(64).collect();
        if super::probes::variable(&name).is_some()
            || matches!(
                name.as_str(),
                "wait_timeout"
                    | "interactive_timeout"
                    | "connect_timeout"
                    | "max_connections"
                    | "max_execution_time"
            )
        {
            return Err(SqlError {
                errno: ER_INCORRECT_GLOBAL_LOCAL_VAR,
                message: format!(
                    "Variable '{shown}' is a read only variable (the gateway's flags set it: docs/CONFIG.md)"
                ),
            });
        }
        return Err(SqlError {
            errno: ER_UNKNOWN_SYSTEM_VARIABLE,
            message: format!("Unknown system variable '{shown}'"),
        });
    }
    Ok(vec![(name.clone(), value(&item[pos..], &name, lookup)?)])
}

/// How a `SET` value reads another session variable (`@@name`).
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// The most arguments a `CONCAT(…)` in a `SET` value takes.
const MAX_CONCAT_ARGS: usize = 16;

/// Splits `a = x, b = concat(y, z)` at the commas outside parentheses.
fn top_level(tokens: &[Token]) -> Vec<&[Token]> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, t) in tokens.iter().enumerate() {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth = depth.saturating_sub(1),
            Token::Comma if depth == 0 => {
                items.push(&tokens[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&tokens[start..]);
    items
}

/// A value: a number, a quoted string, a word (`ON`, `utf8mb4`, `DEFAULT`), NULL,
/// `@@name`, or `CONCAT(…)` of those (at most [`MAX_CONCAT_ARGS`], not nested).
/// Anything else is `ER_WRONG_VALUE_FOR_VAR` (1231).
fn value(tokens: &[Token], name: &str, lookup: &Lookup) -> Result<String, SqlError> {
    let wrong = || SqlError {
        errno: ER_WRONG_VALUE_FOR_VAR,
        message: format!(
            "Variable '{}' can't be set to this value (a number, a quoted string, a word or CONCAT of those)",
            name.chars().take(64).collect::<String>()
        ),
    };
    let v = match tokens {
        [Token::Word(f), Token::LParen, args @ .., Token::RParen]
            if f.value.eq_ignore_ascii_case("concat") =>
        {
            let args: Vec<&[Token]> = args.split(|t| *t == Token::Comma).collect();
            if args.len() > MAX_CONCAT_ARGS {
                return Err(wrong());
            }
            let mut out = String::new();
            for arg in args {
                out.push_str(&scalar(arg, lookup).ok_or_else(wrong)?);
                if out.len() > MAX_VALUE {
                    break;
                }
            }
            out
        }
        // `SET NAMES utf8mb4 COLLATE utf8mb4_general_ci`.
        [Token::Word(w), Token::Word(c), Token::Word(_)]
            if c.value.eq_ignore_ascii_case("collate") =>
        {
            w.value.clone()
        }
        _ => scalar(tokens, lookup).ok_or_else(wrong)?,
    };
    if v.len() > MAX_VALUE {
        return Err(SqlError {
            errno: ER_WRONG_VALUE_FOR_VAR,
            message: format!(
                "Variable '{}' can't be set to a value longer than {MAX_VALUE} bytes",
                name.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(v)
}

/// One literal or `@@name` (`@@session.name`), as text.
fn scalar(tokens: &[Token], lookup: &Lookup) -> Option<String> {
    match tokens {
        [Token::Number(n, _)] => Some(n.clone()),
        [Token::Minus, Token::Number(n, _)] => Some(format!("-{n}")),
        [Token::SingleQuotedString(s)] | [Token::DoubleQuotedString(s)] => Some(s.clone()),
        [Token::Word(w)] if w.value.starts_with("@@") => {
            let n = w.value[2..].to_ascii_lowercase();
            let n = n
                .strip_prefix("session.")
                .or_else(|| n.strip_prefix("local."))
                .unwrap_or(&n);
            lookup(n)
        }
        [Token::Word(w)] if !w.value.starts_with('@') => Some(w.value.clone()),
        _ => None,
    }
}

fn global() -> SqlError {
    SqlError {
        errno: crate::errors::ER_SPECIFIC_ACCESS_DENIED,
        message: "Access denied; SET GLOBAL is not available: cluster settings are ALTER SYSTEM SET parameters (docs/CONFIG.md)".into(),
    }
}
