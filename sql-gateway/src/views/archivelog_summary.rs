//! `CDB_OB_BACKUP_ARCHIVELOG_SUMMARY`: every round of every tenant; finished rounds
//! show `STOP` (as OceanBase forces for history rows), an `INTERRUPTED` round keeps it.

use super::format::{bytes_display, ratio, time};
use super::{Cell, Snapshot, View};

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
                let ids: Vec<u64> = s
                    .pieces
                    .iter()
                    .filter(|p| {
                        p.tenant_id == r.tenant_id && p.round_id == r.round_id && p.copy_id == 0
                    })
                    .map(|p| p.backup_piece_id)
                    .collect();
                vec![
                    Cell::from(1u64),
                    Cell::from(r.round_id),
                    Cell::from(r.tenant_id),
                    Cell::from(r.status.as_str()),
                    Cell::from(ids.iter().min().copied().unwrap_or(0)),
                    Cell::from(ids.iter().max().copied().unwrap_or(0)),
                    time(r.start_time_ms),
                    time(r.checkpoint_time_ms),
                    Cell::from(r.input_bytes),
                    Cell::from(r.output_bytes),
                    ratio(r.output_bytes, r.input_bytes),
                    bytes_display(r.input_bytes),
                    bytes_display(r.output_bytes),
                    Cell::from(r.start_scn),
                    Cell::from(r.checkpoint_scn),
                    Cell::from(r.comment.as_str()),
                ]
            })
            .collect()
    }
}
