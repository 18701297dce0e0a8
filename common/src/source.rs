//! Tenant sources: where a worker reads a tenant's datafiles and log.
//!
//! Only `dir:///abs/path` exists today (`DESIGN.md` §5): `PATH/data/**` are datafiles,
//! `PATH/log/` holds numbered log segments.

use crate::Code;

/// Validates a tenant source URI and returns it normalized.
///
/// Errors (`OB_INVALID_ARGUMENT`): not `dir://`, relative path, `..` components,
/// control characters, or the root directory.
pub fn validate_source(uri: &str) -> Result<String, (Code, String)> {
    let uri = uri.trim();
    let Some(path) = uri.strip_prefix("dir://") else {
        return Err((
            Code::InvalidArgument,
            format!("tenant source '{uri}' is not supported (expected dir:///abs/path)"),
        ));
    };
    if !path.starts_with('/') {
        return Err((
            Code::InvalidArgument,
            format!("tenant source needs an absolute path (dir:///abs/path), got '{uri}'"),
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err((
                    Code::InvalidArgument,
                    format!("tenant source must not contain '..': '{uri}'"),
                ));
            }
            p if p.chars().any(char::is_control) => {
                return Err((
                    Code::InvalidArgument,
                    "tenant source contains a control character".to_string(),
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err((
            Code::InvalidArgument,
            "tenant source must not be the root directory".to_string(),
        ));
    }
    Ok(format!("dir:///{}", parts.join("/")))
}

/// Validates a tenant or user name: 1 to 64 characters, ASCII letters, digits and
/// `_`, not starting with a digit. Errors carry `OB_INVALID_ARGUMENT`.
pub fn validate_name(kind: &str, name: &str) -> Result<(), (Code, String)> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err((
            Code::InvalidArgument,
            format!(
                "invalid {kind} name '{}': use 1-64 letters, digits or '_', not starting with a digit",
                name.escape_debug()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_names() {
        assert_eq!(validate_source("dir:///a//b/").unwrap(), "dir:///a/b");
        for bad in ["file:///a", "dir://a", "dir:///a/../b", "dir:///", ""] {
            assert!(validate_source(bad).is_err(), "{bad}");
        }
        assert!(validate_name("tenant", "t_1").is_ok());
        for bad in ["", "1t", "t-1", "t 1", &"x".repeat(65)] {
            assert!(validate_name("tenant", bad).is_err(), "{bad}");
        }
    }
}
