//! `CDB_OB_BACKUP_PIECE_FILES`: one row per piece and copy.

use super::format::time;
use super::{Cell, Snapshot, Source, View};

/// The view.
pub struct PieceFiles;

/// OceanBase's columns, then Backstop's (`START_SCN`, `CHECKPOINT_SCN`, `MAX_SCN`,
/// `BACKUP_DEST`).
pub const COLUMNS: &[&str] = &[
    "INCARNATION",
    "TENANT_ID",
    "ROUND_ID",
    "BACKUP_PIECE_ID",
    "COPY_ID",
    "CREATE_DATE",
    "START_TS",
    "CHECKPOINT_TS",
    "MAX_TS",
    "STATUS",
    "FILE_STATUS",
    "COMPATIBLE",
    "START_PIECE_ID",
    "START_SCN",
    "CHECKPOINT_SCN",
    "MAX_SCN",
    "BACKUP_DEST",
];

impl View for PieceFiles {
    fn sources(&self) -> &'static [Source] {
        &[Source::Pieces]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_PIECE_FILES"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        // START_PIECE_ID: the first piece of each (tenant, round, copy), in one pass
        // (per-row scans made 100,000 pieces take minutes).
        let mut first: std::collections::HashMap<(u64, u64, u64), u64> =
            std::collections::HashMap::new();
        for x in &s.pieces {
            let e = first
                .entry((x.tenant_id, x.round_id, x.copy_id))
                .or_insert(x.backup_piece_id);
            *e = (*e).min(x.backup_piece_id);
        }
        s.pieces
            .iter()
            .map(|p| {
                let date = match time(p.create_time_ms) {
                    Cell::Text(t) if t.len() >= 10 => Cell::Text(t[..10].replace('-', "")),
                    other => other,
                };
                let start_piece = first
                    .get(&(p.tenant_id, p.round_id, p.copy_id))
                    .copied()
                    .unwrap_or(p.backup_piece_id);
                vec![
                    Cell::from(p.incarnation),
                    Cell::from(p.tenant_id),
                    Cell::from(p.round_id),
                    Cell::from(p.backup_piece_id),
                    Cell::from(p.copy_id),
                    date,
                    time(p.create_time_ms),
                    time(p.checkpoint_time_ms),
                    match p.max_scn {
                        Some(_) => time(p.checkpoint_time_ms),
                        None => Cell::from("MAX"),
                    },
                    Cell::from(p.status.as_str()),
                    Cell::from(p.file_status.as_str()),
                    Cell::from(1u64),
                    Cell::from(start_piece),
                    Cell::from(p.start_scn),
                    Cell::from(p.checkpoint_scn),
                    p.max_scn.map_or(Cell::from("MAX"), Cell::from),
                    Cell::from(p.backup_dest.as_str()),
                ]
            })
            .collect()
    }
}
