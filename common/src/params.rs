//! Cluster parameters set with `ALTER SYSTEM SET name = 'value'` or
//! `backstop ctl param set`, and their stateless validation.
//!
//! State-dependent rules (a backup running, `backup_backup_dest` still set, both
//! destinations the same place) are checked by the metadata state machine, which
//! sees the whole catalog.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Code;
use crate::dest::BackupDest;
use crate::option::{DestOption, OptionError, OptionKind};

/// A parameter Backstop knows. Names are OceanBase's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Param {
    /// `backup_dest`: where data backups and archived log go (copy_id 0).
    BackupDest,
    /// `backup_backup_dest`: where backup-of-backup copies go (copy_id 1..=10000).
    BackupBackupDest,
    /// `backup_dest_option`: `k=v&…` options of `backup_dest`.
    BackupDestOption,
    /// `backup_backup_dest_option`: `k=v&…` options of `backup_backup_dest`.
    BackupBackupDestOption,
    /// `backup_compression` (Backstop): `zstd` (level 3, zstd's own default and
    /// pgBackRest's; the default), `zstd:N` with
    /// N in 1..=19, or `none`.
    BackupCompression,
}

impl Param {
    /// Every parameter, in display order.
    pub const ALL: [Param; 5] = [
        Param::BackupDest,
        Param::BackupBackupDest,
        Param::BackupDestOption,
        Param::BackupBackupDestOption,
        Param::BackupCompression,
    ];

    /// The OceanBase name, lower case.
    pub fn name(self) -> &'static str {
        match self {
            Param::BackupDest => "backup_dest",
            Param::BackupBackupDest => "backup_backup_dest",
            Param::BackupDestOption => "backup_dest_option",
            Param::BackupBackupDestOption => "backup_backup_dest_option",
            Param::BackupCompression => "backup_compression",
        }
    }

    /// Whether the value is a secret-bearing destination URI.
    pub fn is_dest(self) -> bool {
        matches!(self, Param::BackupDest | Param::BackupBackupDest)
    }

    /// What the parameter is for, as shown by `SHOW PARAMETERS` / `ctl param show`.
    pub fn info(self) -> &'static str {
        match self {
            Param::BackupDest => "destination of data backups and archived log (file:// or s3://)",
            Param::BackupBackupDest => "destination of backup-of-backup copies (file:// or s3://)",
            Param::BackupDestOption => "options of backup_dest (k=v&k=v)",
            Param::BackupBackupDestOption => "options of backup_backup_dest (k=v&k=v)",
            Param::BackupCompression => {
                "compression of backup data: zstd (default), zstd:N (1-19) or none"
            }
        }
    }

    /// Checks `value` on its own and returns it normalized (destinations re-rendered,
    /// whitespace trimmed). The empty string clears a parameter and is always valid.
    pub fn validate(self, value: &str) -> Result<String, ParamError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(String::new());
        }
        match self {
            Param::BackupDest | Param::BackupBackupDest => {
                let dest = BackupDest::parse(value).map_err(|e| ParamError {
                    code: e.code(),
                    message: format!("{}: {e}", self.name()),
                })?;
                Ok(dest.to_uri_with_secret())
            }
            Param::BackupDestOption | Param::BackupBackupDestOption => {
                let kind = if self == Param::BackupDestOption {
                    OptionKind::BackupDest
                } else {
                    OptionKind::BackupBackupDest
                };
                DestOption::parse(value, kind).map_err(|e| ParamError {
                    code: match e {
                        OptionError::Invalid(_) => Code::InvalidArgument,
                        OptionError::NotSupported(_) => Code::NotSupported,
                    },
                    message: format!("{}: {e}", self.name()),
                })?;
                Ok(value.to_string())
            }
            Param::BackupCompression => parse_compression(value)
                .map(|_| value.to_ascii_lowercase())
                .ok_or_else(|| ParamError {
                    code: Code::InvalidArgument,
                    message: format!(
                        "backup_compression: '{value}' is not zstd, zstd:N (1-19) or none"
                    ),
                }),
        }
    }

    /// The value as it may be shown to users: destinations with `access_key=***`.
    pub fn display_value(self, value: &str) -> String {
        if self.is_dest() {
            BackupDest::parse(value).map_or_else(|_| crate::dest::redact(value), |d| d.to_string())
        } else {
            value.to_string()
        }
    }
}

/// The zstd level of a `backup_compression` value (0 = none); `None` if invalid.
/// The empty string means the default, `zstd`: level 3, zstd's own default (and
/// pgBackRest's `compress-level` for `zst`), which stores changed PostgreSQL pages
/// about 15 % smaller than level 1 at much the same speed.
pub fn parse_compression(value: &str) -> Option<i32> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "zstd" => Some(3),
        "none" => Some(0),
        other => other
            .strip_prefix("zstd:")
            .and_then(|n| n.parse::<i32>().ok())
            .filter(|n| (1..=19).contains(n)),
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Param {
    type Err = ParamError;

    /// Case-insensitive lookup by OceanBase name; `OB_INVALID_ARGUMENT` if unknown.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Param::ALL
            .into_iter()
            .find(|p| p.name() == lower)
            .ok_or_else(|| ParamError {
                code: Code::InvalidArgument,
                message: format!(
                    "unknown parameter '{s}' (known: backup_dest, backup_backup_dest, backup_dest_option, backup_backup_dest_option, backup_compression)"
                ),
            })
    }
}

/// A refused parameter value, with the code a client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParamError {
    /// Stable code (`OB_INVALID_ARGUMENT`, `OB_INVALID_BACKUP_DEST`, `OB_NOT_SUPPORTED`).
    pub code: Code,
    /// What was wrong, naming the parameter.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_case_insensitively() {
        assert_eq!("BACKUP_DEST".parse::<Param>().unwrap(), Param::BackupDest);
        let err = "backup_dst".parse::<Param>().unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument);
    }

    #[test]
    fn values_are_validated_with_codes() {
        assert_eq!(Param::BackupDest.validate("  ").unwrap(), "");
        assert_eq!(
            Param::BackupDest.validate("file:///x/y/").unwrap(),
            "file:///x/y"
        );
        assert_eq!(
            Param::BackupDest.validate("file://x").unwrap_err().code,
            Code::InvalidBackupDest
        );
        assert_eq!(
            Param::BackupDest
                .validate("file:///x?a=b")
                .unwrap_err()
                .code,
            Code::NotSupported
        );
        assert_eq!(
            Param::BackupDestOption
                .validate("bogus=1")
                .unwrap_err()
                .code,
            Code::InvalidArgument
        );
    }
}
