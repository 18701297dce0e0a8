//! `CDB_OB_BACKUP_ARCHIVELOG_SUMMARY`: every round of every tenant; finished rounds
//! show `STOP` (as OceanBase forces for history rows), an `INTERRUPTED` round keeps it.

use super::{Cell, Snapshot, Source, View};

/// The view.
pub struct ArchivelogSummary;

/// OceanBase's columns, then Backstop's (`START_SCN`, `CHECKPOINT_SCN`, `COMMENT`).
pub const COLUMNS: &[&str] = &[
    "INCARNATION",
    "LOG_ARCHIVE_ROUND",
    "TENANT_ID",
    "STATUS",
    "START_PIECE_ID",
    "BACKUP_PIECE_ID",
    "MIN_FIRST_TIME",
    "MAX_NEXT_TIME",
    "INPUT_BYTES",
    "OUTPUT_BYTES",
    "COMPRESSION_RATIO",
    "INPUT_BYTES_DISPLAY",
    "OUTPUT_BYTES_DISPLAY",
    "START_SCN",
    "CHECKPOINT_SCN",
    "COMMENT",
];

impl View for ArchivelogSummary {
    fn sources(&self) -> &'static [Source] {
        &[Source::Archive]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_ARCHIVELOG_SUMMARY"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        s.rounds
            .iter()
            .map(|r| {
                let mut row = super::archivelog::round_row(s, r);
                row.push(Cell::from(r.comment.as_str()));
                row
            })
            .collect()
    }
}
