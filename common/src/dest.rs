//! Backup destinations: `backup_dest` and `backup_backup_dest` values.
//!
//! Two forms are accepted (`docs/PARAMETERS.md`, `backup_dest`):
//! - `file:///abs/path`: a local or NFS directory; must not carry `?…` storage info
//!   (OceanBase answers `OB_NOT_SUPPORTED` for that).
//! - `s3://bucket/prefix?host=…&access_id=…&access_key=…[&s3_region=…]`: an S3 or
//!   S3-compatible bucket, path-style; `host` may be `http://127.0.0.1:9000`. Without
//!   `access_id` and `access_key` (both or neither), the process that opens the store
//!   takes its credentials from its own environment (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, or object_store's AWS chain: web
//!   identity, ECS, instance metadata), so the keys are never in the catalog.
//!
//! The access key is a secret: [`BackupDest`]'s `Display` and `Debug` show it as
//! `access_key=***`, so it never reaches logs, views or errors.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Code;

/// Why a destination string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestError {
    /// The string is not a `file://` or `s3://` URI, or a part of it is malformed.
    #[error("invalid backup destination: {0}")]
    Invalid(String),
    /// The form is recognised but not supported (e.g. `file://` with storage info).
    #[error("{0} is not supported")]
    NotSupported(String),
}

impl DestError {
    /// The stable error code of this error.
    pub fn code(&self) -> Code {
        match self {
            DestError::Invalid(_) => Code::InvalidBackupDest,
            DestError::NotSupported(_) => Code::NotSupported,
        }
    }
}

/// A parsed, validated backup destination.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupDest {
    /// A directory on a local or mounted file system; `path` is absolute and normalized.
    File {
        /// Absolute path without `.`/`..` components or a trailing `/`.
        path: String,
    },
    /// An S3-compatible bucket.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/` (may be empty).
        prefix: String,
        /// Endpoint URL (`http://host:port` or `https://…`); `None` means AWS.
        host: Option<String>,
        /// Access key id; `None` (with `access_key`): from the opener's environment.
        access_id: Option<String>,
        /// Secret access key; never displayed. `None` exactly when `access_id` is.
        access_key: Option<String>,
        /// Region; `None` means `us-east-1`.
        region: Option<String>,
    },
}

impl BackupDest {
    /// Parses and validates a destination URI.
    ///
    /// Errors: [`DestError::Invalid`] for malformed strings (relative paths, `..`,
    /// empty bucket, unknown or missing keys); [`DestError::NotSupported`] for
    /// unsupported schemes and for `file://` with storage info.
    pub fn parse(uri: &str) -> Result<BackupDest, DestError> {
        let uri = uri.trim();
        if let Some(rest) = uri.strip_prefix("file://") {
            return parse_file(rest);
        }
        if let Some(rest) = uri.strip_prefix("s3://") {
            return parse_s3(rest);
        }
        match uri.split_once("://") {
            Some((scheme, _)) => Err(DestError::NotSupported(format!(
                "backup destination scheme '{scheme}' (use file:// or s3://)"
            ))),
            None => Err(DestError::Invalid(format!(
                "'{}' is not a URI (expected file:///abs/path or s3://bucket/prefix?…)",
                redact(uri)
            ))),
        }
    }

    /// The part before any `?`: `file:///path` or `s3://bucket/prefix`. Two destinations
    /// with the same root path are the same place, whatever their credentials.
    pub fn root_path(&self) -> String {
        match self {
            BackupDest::File { path } => format!("file://{path}"),
            BackupDest::S3 { bucket, prefix, .. } if prefix.is_empty() => format!("s3://{bucket}"),
            BackupDest::S3 { bucket, prefix, .. } => format!("s3://{bucket}/{prefix}"),
        }
    }

    /// The full URI including the access key, for storing and for opening the store.
    /// Never log this; use `Display`.
    pub fn to_uri_with_secret(&self) -> String {
        self.render(false)
    }

    fn render(&self, redacted: bool) -> String {
        match self {
            BackupDest::File { .. } => self.root_path(),
            BackupDest::S3 {
                host,
                access_id,
                access_key,
                region,
                ..
            } => {
                let mut s = self.root_path();
                let mut sep = '?';
                let mut push = |k: &str, v: &str| {
                    s.push(sep);
                    s.push_str(k);
                    s.push('=');
                    s.push_str(v);
                    sep = '&';
                };
                if let Some(host) = host {
                    push("host", host);
                }
                if let (Some(id), Some(key)) = (access_id, access_key) {
                    push("access_id", id);
                    push("access_key", if redacted { "***" } else { key });
                }
                if let Some(region) = region {
                    push("s3_region", region);
                }
                s
            }
        }
    }
}

impl fmt::Display for BackupDest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(true))
    }
}

impl fmt::Debug for BackupDest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BackupDest({self})")
    }
}

/// Replaces the value of any `access_key=` in `s` with `***`, for error messages about
/// strings that did not parse.
pub fn redact(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("access_key=") {
        let (head, tail) = rest.split_at(pos + "access_key=".len());
        out.push_str(head);
        out.push_str("***");
        rest = tail.find('&').map_or("", |end| &tail[end..]);
    }
    out.push_str(rest);
    out
}

fn parse_file(rest: &str) -> Result<BackupDest, DestError> {
    if rest.contains('?') {
        return Err(DestError::NotSupported(
            "file:// destination with storage info ('?…')".to_string(),
        ));
    }
    if !rest.starts_with('/') {
        return Err(DestError::Invalid(format!(
            "file:// destination needs an absolute path (file:///abs/path), got 'file://{rest}'"
        )));
    }
    let mut parts = Vec::new();
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(DestError::Invalid(format!(
                    "file:// destination must not contain '..': 'file://{rest}'"
                )));
            }
            p if p.chars().any(char::is_control) => {
                return Err(DestError::Invalid(
                    "file:// destination contains a control character".to_string(),
                ));
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(DestError::Invalid(
            "file:// destination must not be the root directory".to_string(),
        ));
    }
    Ok(BackupDest::File {
        path: format!("/{}", parts.join("/")),
    })
}

fn parse_s3(rest: &str) -> Result<BackupDest, DestError> {
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    if bucket.is_empty()
        || !bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    {
        return Err(DestError::Invalid(format!(
            "s3:// destination needs a bucket name of lowercase letters, digits, '-' and '.', got '{bucket}'"
        )));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|p| p == "..") {
        return Err(DestError::Invalid(
            "s3:// prefix must not contain '..'".to_string(),
        ));
    }
    let (mut host, mut access_id, mut access_key, mut region) = (None, None, None, None);
    for item in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = item.split_once('=').ok_or_else(|| {
            DestError::Invalid(format!(
                "s3:// storage info item '{}' has no '='",
                redact(item)
            ))
        })?;
        let slot = match k {
            "host" => &mut host,
            "access_id" => &mut access_id,
            "access_key" => &mut access_key,
            "s3_region" => &mut region,
            other => {
                return Err(DestError::Invalid(format!(
                    "unknown s3:// storage info key '{other}' (expected host, access_id, access_key, s3_region)"
                )));
            }
        };
        if v.is_empty() {
            return Err(DestError::Invalid(format!(
                "s3:// storage info '{k}' is empty"
            )));
        }
        if slot.replace(v.to_string()).is_some() {
            return Err(DestError::Invalid(format!(
                "s3:// storage info '{k}' given twice"
            )));
        }
    }
    if let Some(h) = &host
        && !(h.starts_with("http://") || h.starts_with("https://"))
    {
        return Err(DestError::Invalid(format!(
            "s3:// host must start with http:// or https://, got '{h}'"
        )));
    }
    if access_id.is_some() != access_key.is_some() {
        return Err(DestError::Invalid(
            "s3:// destination needs both access_id and access_key, or neither (then the credentials come from each process's environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)".to_string(),
        ));
    }
    Ok(BackupDest::S3 {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
        host,
        access_id,
        access_key,
        region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_are_normalized_and_checked() {
        let d = BackupDest::parse("file:///data//backup/").unwrap();
        assert_eq!(d.root_path(), "file:///data/backup");
        assert!(matches!(
            BackupDest::parse("file://relative/x"),
            Err(DestError::Invalid(_))
        ));
        assert!(matches!(
            BackupDest::parse("file:///a/../etc"),
            Err(DestError::Invalid(_))
        ));
        assert!(matches!(
            BackupDest::parse("file:///"),
            Err(DestError::Invalid(_))
        ));
        assert!(matches!(
            BackupDest::parse("file:///a?host=x"),
            Err(DestError::NotSupported(_))
        ));
        assert!(matches!(
            BackupDest::parse("oss://b/p?host=x"),
            Err(DestError::NotSupported(_))
        ));
        assert!(matches!(
            BackupDest::parse("nonsense"),
            Err(DestError::Invalid(_))
        ));
    }

    #[test]
    fn s3_secret_is_never_displayed() {
        let uri =
            "s3://bkt/a/b?host=http://127.0.0.1:9000&access_id=AK&access_key=SECRET&s3_region=r1";
        let d = BackupDest::parse(uri).unwrap();
        assert_eq!(d.root_path(), "s3://bkt/a/b");
        assert_eq!(d.to_uri_with_secret(), uri);
        let shown = format!("{d} {d:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("access_key=***"));
    }

    #[test]
    fn s3_bad_inputs_are_refused() {
        for bad in [
            "s3://",
            "s3://Bucket/x?access_id=a&access_key=b",
            "s3://b/x?access_id=a",
            "s3://b/x?access_id=a&access_key=b&colour=red",
            "s3://b/x?access_id=a&access_key=b&host=127.0.0.1",
            "s3://b/x?access_id=a&access_id=c&access_key=b",
            "s3://b/x?access_id=a&access_key",
        ] {
            let err = BackupDest::parse(bad).unwrap_err();
            assert!(matches!(err, DestError::Invalid(_)), "{bad}: {err:?}");
        }
    }

    #[test]
    fn s3_keys_may_come_from_the_environment_instead() {
        let d = BackupDest::parse("s3://bkt/p?host=http://127.0.0.1:9000").unwrap();
        assert!(matches!(
            &d,
            BackupDest::S3 {
                access_id: None,
                access_key: None,
                ..
            }
        ));
        assert_eq!(
            d.to_uri_with_secret(),
            "s3://bkt/p?host=http://127.0.0.1:9000"
        );
        assert_eq!(d.to_string(), "s3://bkt/p?host=http://127.0.0.1:9000");
    }

    #[test]
    fn redact_hides_every_access_key() {
        assert_eq!(
            redact("x?access_key=S1&a=b&access_key=S2"),
            "x?access_key=***&a=b&access_key=***"
        );
    }
}
