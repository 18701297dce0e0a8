//! `CDB_OB_BACKUP_ARCHIVELOG`: the current archive round of each tenant, plus the
//! cluster-level row on the `sys` tenant (`docs/VIEWS.md`): its status is the
//! cluster-wide one and its checkpoint the minimum over the user tenants.

use backstop_proto::meta::ArchiveRound;

use super::format::{bytes_display, ratio, time};
use super::{Cell, Snapshot, Source, View};

/// The columns OceanBase's archive views share, for one round: everything up to
/// `OUTPUT_BYTES_DISPLAY`, then `START_SCN`, `CHECKPOINT_SCN`.
pub fn round_row(s: &Snapshot, r: &ArchiveRound) -> Vec<Cell> {
    let ids: Vec<u64> = s
        .pieces
        .iter()
        .filter(|p| p.tenant_id == r.tenant_id && p.round_id == r.round_id && p.copy_id == 0)
        .map(|p| p.backup_piece_id)
        .collect();
    vec![
        Cell::from(r.incarnation),
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
    ]
}

/// The view.
pub struct Archivelog;

/// OceanBase's columns, then Backstop's (`START_SCN`, `CHECKPOINT_SCN`, `COMMENT`: why
/// the round is interrupted or not advancing; on the cluster row, the first tenant's
/// reason, prefixed with its id; `CHECKPOINT_LSN`: for a PostgreSQL tenant the
/// checkpoint as an `X/Y` LSN, NULL otherwise).
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
    "CHECKPOINT_LSN",
];

impl View for Archivelog {
    fn sources(&self) -> &'static [Source] {
        &[Source::Archive, Source::Tenants]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_ARCHIVELOG"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        let mut current = std::collections::BTreeMap::new();
        for r in &s.rounds {
            let e = current.entry(r.tenant_id).or_insert(r);
            if r.round_id > e.round_id {
                *e = r;
            }
        }
        let mut rows: Vec<Vec<Cell>> = current
            .values()
            .map(|r| {
                let mut row = round_row(s, r);
                row.push(Cell::from(r.comment.as_str()));
                row.push(super::lsn_cell(s, r.tenant_id, r.checkpoint_scn));
                row
            })
            .collect();
        let cluster_comment = current
            .values()
            .find(|r| !r.comment.is_empty())
            .map(|r| format!("tenant {}: {}", r.tenant_id, r.comment))
            .unwrap_or_default();
        if !current.is_empty() {
            let statuses: std::collections::BTreeSet<&str> =
                current.values().map(|r| r.status.as_str()).collect();
            let status = if statuses.len() == 1 {
                statuses.into_iter().next().unwrap_or("MIXED")
            } else {
                "MIXED"
            };
            let min = |f: fn(&&backstop_proto::meta::ArchiveRound) -> u64| {
                current.values().map(f).min().unwrap_or(0)
            };
            let sum = |f: fn(&&backstop_proto::meta::ArchiveRound) -> u64| {
                current.values().map(f).sum::<u64>()
            };
            let (input, output) = (sum(|r| r.input_bytes), sum(|r| r.output_bytes));
            rows.push(vec![
                Cell::from(current.values().map(|r| r.incarnation).max().unwrap_or(1)),
                Cell::from(current.values().map(|r| r.round_id).max().unwrap_or(0)),
                Cell::from(1u64),
                Cell::from(status),
                Cell::from(0u64),
                Cell::from(0u64),
                time(min(|r| r.start_time_ms)),
                time(min(|r| r.checkpoint_time_ms)),
                Cell::from(input),
                Cell::from(output),
                ratio(output, input),
                bytes_display(input),
                bytes_display(output),
                Cell::from(min(|r| r.start_scn)),
                Cell::from(min(|r| r.checkpoint_scn)),
                Cell::from(cluster_comment.as_str()),
                Cell::Null,
            ]);
        }
        rows
    }
}
