//! `backup_dest_option` and `backup_backup_dest_option` values: `k=v&k=v…`.
//!
//! Mirrors OceanBase's `ObBackupDestOpt::parse_opt_` (`docs/PARAMETERS.md`): items joined by `&`, no spaces, unknown keys refused. Durations are an
//! integer with a unit: `ms`, `s`, `m`, `h`, `d` (e.g. `5s`, `1d`).
//!
//! Deliberate departures, documented in `docs/PARAMETERS.md`: the checkpoint interval
//! and the piece switch interval accept anything from 1 s, so tests can run quickly;
//! OceanBase's ranges ([5s, 1h] and [1d, 7d]) are the recommended production values.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why an option string was refused; every variant maps to `OB_INVALID_ARGUMENT`
/// except [`OptionError::NotSupported`] (`OB_NOT_SUPPORTED`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// Malformed item, unknown key, bad value.
    #[error("{0}")]
    Invalid(String),
    /// A valid value that this option (or this combination) does not allow.
    #[error("{0} is not supported")]
    NotSupported(String),
}

/// Which parameter an option string belongs to; the two accept the same keys with
/// different rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionKind {
    /// `backup_dest_option`.
    BackupDest,
    /// `backup_backup_dest_option`.
    BackupBackupDest,
}

/// A parsed destination option. `None` means "not given: use the default".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DestOption {
    /// How often the archive checkpoint (`checkpoint_scn`) may advance.
    pub log_archive_checkpoint_interval: Option<Duration>,
    /// How long backups are kept for point-in-time recovery.
    pub recovery_window: Option<Duration>,
    /// Piece switch interval; zero means round mode (no piece switching).
    pub log_archive_piece_switch_interval: Duration,
    /// Whether expired backups are deleted automatically.
    pub auto_delete_obsolete_backup: Option<bool>,
    /// Whether the reserved-backup timestamp is updated automatically.
    pub auto_update_reserved_backup_timestamp: Option<bool>,
}

/// Default checkpoint interval when `log_archive_checkpoint_interval` is absent
/// (OceanBase's global default, 120 s).
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(120);

impl DestOption {
    /// Parses and validates an option string for `kind`. The empty string is valid
    /// and means "all defaults".
    pub fn parse(s: &str, kind: OptionKind) -> Result<DestOption, OptionError> {
        let mut opt = DestOption::default();
        let mut seen = Vec::new();
        for item in s.split('&').filter(|i| !i.is_empty()) {
            if item.chars().any(char::is_whitespace) {
                return Err(OptionError::Invalid(format!(
                    "option item '{item}' contains whitespace"
                )));
            }
            let (key, value) = item.split_once('=').ok_or_else(|| {
                OptionError::Invalid(format!("option item '{item}' is not key=value"))
            })?;
            if seen.contains(&key) {
                return Err(OptionError::Invalid(format!("option '{key}' given twice")));
            }
            seen.push(key);
            match key {
                "log_archive_checkpoint_interval" => {
                    let d = parse_duration(key, value)?;
                    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
                        return Err(OptionError::Invalid(format!(
                            "{key} must be in [1s, 1h], got '{value}'"
                        )));
                    }
                    opt.log_archive_checkpoint_interval = Some(d);
                }
                "recovery_window" => opt.recovery_window = Some(parse_duration(key, value)?),
                "log_archive_piece_switch_interval" => {
                    let d = parse_duration(key, value)?;
                    if kind == OptionKind::BackupBackupDest && !d.is_zero() {
                        return Err(OptionError::NotSupported(
                            "log_archive_piece_switch_interval in backup_backup_dest_option"
                                .to_string(),
                        ));
                    }
                    if !d.is_zero()
                        && (d < Duration::from_secs(1) || d > Duration::from_secs(7 * 86400))
                    {
                        return Err(OptionError::NotSupported(format!(
                            "{key} out of range [1s, 7d] ('{value}')"
                        )));
                    }
                    opt.log_archive_piece_switch_interval = d;
                }
                "backup_copies" => {
                    let n: u32 = value.parse().map_err(|_| {
                        OptionError::Invalid(format!(
                            "backup_copies must be an integer, got '{value}'"
                        ))
                    })?;
                    if n != 0 {
                        return Err(OptionError::NotSupported(format!(
                            "backup_copies={n} (copies are made with backup_backup_dest)"
                        )));
                    }
                }
                "auto_delete_obsolete_backup" => {
                    opt.auto_delete_obsolete_backup = Some(parse_bool(key, value)?)
                }
                "auto_update_reserved_backup_timestamp" => {
                    opt.auto_update_reserved_backup_timestamp = Some(parse_bool(key, value)?)
                }
                other => {
                    return Err(OptionError::Invalid(format!(
                        "unknown option '{other}' (expected log_archive_checkpoint_interval, recovery_window, log_archive_piece_switch_interval, backup_copies, auto_delete_obsolete_backup, auto_update_reserved_backup_timestamp)"
                    )));
                }
            }
        }
        if opt.auto_delete_obsolete_backup == Some(true)
            && opt.auto_update_reserved_backup_timestamp == Some(true)
        {
            return Err(OptionError::NotSupported(
                "auto delete and touch backup at same time".to_string(),
            ));
        }
        Ok(opt)
    }
}

/// Parses `<int><unit>` with unit `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(key: &str, value: &str) -> Result<Duration, OptionError> {
    let bad = || {
        OptionError::Invalid(format!(
            "{key} must be a duration like 5s, 2m, 1h or 1d, got '{value}'"
        ))
    };
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let millis_per = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    n.checked_mul(millis_per)
        .map(Duration::from_millis)
        .ok_or_else(bad)
}

fn parse_bool(key: &str, value: &str) -> Result<bool, OptionError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" => Ok(true),
        "false" | "0" | "off" => Ok(false),
        _ => Err(OptionError::Invalid(format!(
            "{key} must be true or false, got '{value}'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_reference_example_except_backup_copies() {
        let ok = DestOption::parse(
            "recovery_window=7d&auto_delete_obsolete_backup=true&log_archive_piece_switch_interval=1d",
            OptionKind::BackupDest,
        )
        .unwrap();
        assert_eq!(ok.recovery_window, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(
            ok.log_archive_piece_switch_interval,
            Duration::from_secs(86400)
        );
        assert!(matches!(
            DestOption::parse("backup_copies=2", OptionKind::BackupDest),
            Err(OptionError::NotSupported(_))
        ));
    }

    #[test]
    fn refuses_bad_items() {
        for bad in [
            "colour=red",
            "recovery_window",
            "recovery_window=7 d",
            "recovery_window=7w",
            "log_archive_checkpoint_interval=2h",
            "log_archive_checkpoint_interval=500ms",
            "auto_delete_obsolete_backup=maybe",
            "recovery_window=1d&recovery_window=2d",
            "recovery_window=99999999999999999999d",
        ] {
            assert!(
                matches!(
                    DestOption::parse(bad, OptionKind::BackupDest),
                    Err(OptionError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            DestOption::parse(
                "log_archive_piece_switch_interval=1d",
                OptionKind::BackupBackupDest
            ),
            Err(OptionError::NotSupported(_))
        ));
        assert!(matches!(
            DestOption::parse(
                "auto_delete_obsolete_backup=true&auto_update_reserved_backup_timestamp=true",
                OptionKind::BackupDest
            ),
            Err(OptionError::NotSupported(_))
        ));
        assert!(matches!(
            DestOption::parse(
                "log_archive_piece_switch_interval=8d",
                OptionKind::BackupDest
            ),
            Err(OptionError::NotSupported(_))
        ));
    }
}
