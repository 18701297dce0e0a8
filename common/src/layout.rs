//! Object keys on a destination (`docs/FORMAT.md`). A destination is self-describing:
//! restore and catalog rebuild need nothing but these objects.
//!
//! ```text
//! CLUSTER_NAME/CLUSTER_ID/incarnation_N/TENANT_ID/
//!   data/backup_set_ID_full|inc/
//!     part_P/aA/obj_K         data objects (compressed blocks) of attempt A
//!     part_P_aA.manifest      part manifest of attempt A (JSON)
//!     manifest                set manifest (JSON), written after every part
//!     .complete               marker, written last (holds the manifest checksum)
//!   clog/round_R/piece_P/
//!     log_START_END           archived log bytes [START, END), compressed
//!     manifest                piece manifest (JSON): whole once frozen; while open, a
//!                             base continued by the journal below
//!     manifest.d/EPOCH_SEQ    journal: one delta per checkpoint (JSON)
//!     .frozen                 marker, written when the piece is frozen
//!   info/tenant               tenant identity (JSON: id, name, cluster)
//!   info/pg_timeline          PostgreSQL: the system and timeline of this incarnation
//!   wal_push/NAME             PostgreSQL archive=push: a file wal-push stored (zstd),
//!                             until the archive has taken it into a piece
//!   info/backup_set_ID        index entry of a complete set (JSON)
//!   info/round_R_piece_P      index entry of a piece (JSON)
//! ```

use crate::task::BackupType;
use crate::{BackupSetId, PieceId, RoundId};

/// Whether `rel` is a relative `/`-separated path that stays inside the directory it
/// is joined to: not empty, not absolute, no `..` and no empty component. Every path a
/// task or a manifest names is checked with it before it is opened or written.
pub fn is_inside(rel: &str) -> bool {
    !rel.is_empty() && !rel.starts_with('/') && !rel.split('/').any(|p| p == ".." || p.is_empty())
}

/// `data/backup_set_ID_full|inc`, relative to the tenant prefix.
pub fn set_dir(backup_set_id: BackupSetId, backup_type: BackupType) -> String {
    format!(
        "data/backup_set_{backup_set_id}_{}",
        backup_type.dir_suffix()
    )
}

/// A data object written by attempt `attempt` of a set part. Attempts write apart,
/// so a stale attempt can never overwrite the objects of the current one.
pub fn data_object(set_dir: &str, part: u32, attempt: u32, seq: u64) -> String {
    format!("{set_dir}/part_{part}/a{attempt}/obj_{seq}")
}

/// The manifest of one part, as written by one attempt.
pub fn part_manifest(set_dir: &str, part: u32, attempt: u32) -> String {
    format!("{set_dir}/part_{part}_a{attempt}.manifest")
}

/// Tenant identity at a destination.
pub const TENANT_INFO: &str = "info/tenant";

/// PostgreSQL tenants: the system and timeline whose history this incarnation holds,
/// with that timeline's history file (JSON), written by the first archive round or
/// backup of the incarnation.
pub const PG_TIMELINE: &str = "info/pg_timeline";

/// PostgreSQL `archive=push` tenants: a file `backstop wal-push` stored (zstd) for the
/// archive to take into pieces.
pub fn wal_push(name: &str) -> String {
    format!("{WAL_PUSH_DIR}/{name}")
}

/// Where [`wal_push`] objects are.
pub const WAL_PUSH_DIR: &str = "wal_push";

/// The set manifest.
pub fn set_manifest(set_dir: &str) -> String {
    format!("{set_dir}/manifest")
}

/// The set's completion marker.
pub fn set_complete(set_dir: &str) -> String {
    format!("{set_dir}/.complete")
}

/// Index entry of a complete set.
pub fn set_index(backup_set_id: BackupSetId) -> String {
    format!("info/backup_set_{backup_set_id}")
}

/// Prefix of all set index entries.
pub const SET_INDEX_PREFIX: &str = "info/backup_set_";

/// `clog/round_R/piece_P`.
pub fn piece_dir(round_id: RoundId, piece_id: PieceId) -> String {
    format!("clog/round_{round_id}/piece_{piece_id}")
}

/// An archived log object holding `[start, end)`; zero-padded so names sort by SCN.
pub fn log_object(piece_dir: &str, start: u64, end: u64) -> String {
    format!("{piece_dir}/log_{start:020}_{end:020}")
}

/// Parses `log_START_END` (the last path segment); `None` for other names.
pub fn parse_log_object(key: &str) -> Option<(u64, u64)> {
    let name = key.rsplit('/').next()?;
    let rest = name.strip_prefix("log_")?;
    let (start, end) = rest.split_once('_')?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

/// The piece manifest.
pub fn piece_manifest(piece_dir: &str) -> String {
    format!("{piece_dir}/manifest")
}

/// The journal of an open piece's manifest: `PIECE_DIR/manifest.d/`.
pub fn piece_journal_dir(piece_dir: &str) -> String {
    format!("{piece_dir}/manifest.d/")
}

/// Journal entry `seq` written by attempt `epoch` (`tTASK-aATTEMPT`); zero-padded so
/// one epoch's entries sort by sequence.
pub fn piece_journal_entry(piece_dir: &str, epoch: &str, seq: u64) -> String {
    format!("{piece_dir}/manifest.d/{epoch}_{seq:012}")
}

/// Parses a journal entry key into `(epoch, seq)`; `None` for other keys.
pub fn parse_piece_journal_entry(key: &str) -> Option<(&str, u64)> {
    let (dir, name) = key.rsplit_once('/')?;
    if !dir.ends_with("/manifest.d") {
        return None;
    }
    let (epoch, seq) = name.rsplit_once('_')?;
    Some((epoch, seq.parse().ok()?))
}

/// The piece's frozen marker.
pub fn piece_frozen(piece_dir: &str) -> String {
    format!("{piece_dir}/.frozen")
}

/// Index entry of a piece.
pub fn piece_index(round_id: RoundId, piece_id: PieceId) -> String {
    format!("info/round_{round_id}_piece_{piece_id}")
}

/// Prefix of all piece index entries.
pub const PIECE_INDEX_PREFIX: &str = "info/round_";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_object_names_sort_and_parse() {
        let a = log_object("clog/round_1/piece_1", 9, 100);
        let b = log_object("clog/round_1/piece_1", 100, 2000);
        assert!(a < b);
        assert_eq!(parse_log_object(&b), Some((100, 2000)));
        assert_eq!(parse_log_object("clog/round_1/piece_1/manifest"), None);
    }

    #[test]
    fn journal_entries_sort_and_parse() {
        let a = piece_journal_entry("clog/round_1/piece_1", "t5-a2", 9);
        let b = piece_journal_entry("clog/round_1/piece_1", "t5-a2", 10);
        assert!(a < b);
        assert!(a.starts_with(&piece_journal_dir("clog/round_1/piece_1")));
        assert_eq!(parse_piece_journal_entry(&b), Some(("t5-a2", 10)));
        assert_eq!(parse_log_object(&b), None);
        assert_eq!(
            parse_piece_journal_entry("clog/round_1/piece_1/manifest"),
            None
        );
    }
}
