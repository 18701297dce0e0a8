//! The gateway's one table of error codes and the one mapping from service errors to
//! MySQL error packets (`docs/ERRORS.md`): OceanBase-style numbers in the 9000
//! range with the OceanBase name first in the message; MySQL's own numbers where MySQL
//! has the error (1064 syntax, 1146 unknown table, 1045 access denied, 1227 no
//! privilege). The table is also in `docs/ERRORS.md`.

use backstop_common::Code;

/// MySQL's syntax error.
pub const ER_PARSE_ERROR: u16 = 1064;
/// Unknown table or view.
pub const ER_NO_SUCH_TABLE: u16 = 1146;
/// Login refused.
pub const ER_ACCESS_DENIED: u16 = 1045;
/// The user lacks the privilege.
pub const ER_SPECIFIC_ACCESS_DENIED: u16 = 1227;
/// Unknown database.
pub const ER_BAD_DB: u16 = 1049;

/// `text` with the inside of every quoted string (`'…'`, `"…"`) replaced by `***`,
/// for error messages that quote a statement: a string may hold a key or a password,
/// and errors are logged and shown. An unterminated string is hidden to the end.
pub fn redact_quoted(text: &str) -> String {
    redact(text, &['\'', '"'])
}

/// [`redact_quoted`] for the quote characters in `quotes` only (SQLite's messages
/// put the token they stopped at in `"…"`, which is worth showing unless it is a
/// `'…'` string).
pub fn redact(text: &str, quotes: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => {
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if quotes.contains(&c) {
                    out.push_str("***");
                    quote = Some(c);
                }
            }
        }
    }
    out
}

/// An error as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ERROR {errno}: {message}")]
pub struct SqlError {
    /// MySQL error number.
    pub errno: u16,
    /// Message; backup errors start with the OceanBase name.
    pub message: String,
}

impl SqlError {
    /// A stable service code as an error packet.
    pub fn coded(code: Code, message: impl AsRef<str>) -> SqlError {
        let message = message.as_ref();
        let prefix = format!("{}: ", code.name());
        SqlError {
            errno: code.mysql_errno(),
            message: if message.starts_with(&prefix) {
                message.to_string()
            } else {
                format!("{prefix}{message}")
            },
        }
    }

    /// 1064 with the position of the problem.
    pub fn syntax(message: impl Into<String>) -> SqlError {
        SqlError {
            errno: ER_PARSE_ERROR,
            message: message.into(),
        }
    }

    /// 1146 for a view or table that does not exist.
    pub fn no_such_table(name: &str) -> SqlError {
        SqlError {
            errno: ER_NO_SUCH_TABLE,
            message: format!("Table '{name}' doesn't exist"),
        }
    }

    /// 1227 for a statement the user may not run.
    pub fn no_privilege(what: &str) -> SqlError {
        SqlError {
            errno: ER_SPECIFIC_ACCESS_DENIED,
            message: format!("Access denied; only root@sys may {what}"),
        }
    }

    /// A statement whose back end is not built yet.
    pub fn not_supported(what: &str) -> SqlError {
        SqlError::coded(Code::NotSupported, format!("{what} is not supported yet"))
    }

    /// From a call through the gateway's meta client: the service's answer keeps its
    /// code ([`SqlError::from_status`]); no member answering within the client's
    /// patience is `OB_RPC_SEND_ERROR` (9022), as a status without a code is.
    pub fn from_client(e: impl std::borrow::Borrow<backstop_client::ClientError>) -> SqlError {
        match e.borrow() {
            backstop_client::ClientError::Refused(status) => SqlError::from_status(status),
            backstop_client::ClientError::Stale(m) => SqlError::coded(Code::TaskStale, m),
            other => SqlError::coded(Code::RpcFailed, other.to_string()),
        }
    }

    /// From a gRPC status of the metadata service.
    pub fn from_status(status: &tonic::Status) -> SqlError {
        let code = status
            .metadata()
            .get(backstop_proto::ERROR_CODE_KEY)
            .and_then(|v| v.to_str().ok())
            .and_then(Code::from_name)
            .unwrap_or(Code::RpcFailed);
        SqlError::coded(code, status.message())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings_never_reach_an_error_message() {
        assert_eq!(
            redact_quoted("ALTER SYSTEM SET backup_dest = 's3://b?secret_key=abc' x"),
            "ALTER SYSTEM SET backup_dest = '***' x"
        );
        assert_eq!(
            redact_quoted("a \"pw\" 'unterminated key"),
            "a \"***\" '***"
        );
        assert_eq!(redact_quoted("no strings"), "no strings");
    }
}
