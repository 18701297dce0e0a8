//! `CDB_OB_BACKUP_ARCHIVELOG_PROGRESS`: who archives what, one row per running archive
//! task. OceanBase has one row per partition group and server; a Backstop tenant
//! archives as one stream, so `TABLE_ID` and `PARTITION_ID` are 0 and `SVR_IP` is the
//! worker's address (`SVR_PORT` 0).

use super::format::time;
use super::{Cell, Snapshot, Source, View};

/// The view.
pub struct ArchivelogProgress;

/// OceanBase's columns, then Backstop's (`CHECKPOINT_SCN`, `LAG_MS`).
pub const COLUMNS: &[&str] = &[
    "INCARNATION",
    "TENANT_ID",
    "LOG_ARCHIVE_ROUND",
    "CUR_PIECE_ID",
    "SVR_IP",
    "SVR_PORT",
    "TABLE_ID",
    "PARTITION_ID",
    "MIN_FIRST_TIME",
    "MAX_NEXT_TIME",
    "STATUS",
    "CHECKPOINT_SCN",
    "LAG_MS",
];

impl View for ArchivelogProgress {
    fn sources(&self) -> &'static [Source] {
        &[Source::Tasks]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_ARCHIVELOG_PROGRESS"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        s.tasks
            .iter()
            .filter(|t| {
                t.task_type == "ARCHIVE" && matches!(t.status.as_str(), "PENDING" | "DOING")
            })
            .filter_map(|t| {
                let r = s
                    .rounds
                    .iter()
                    .find(|r| r.tenant_id == t.tenant_id && r.job_id == t.job_id)?;
                let piece = s
                    .pieces
                    .iter()
                    .filter(|p| {
                        p.tenant_id == r.tenant_id && p.round_id == r.round_id && p.copy_id == 0
                    })
                    .map(|p| p.backup_piece_id)
                    .max()
                    .unwrap_or(0);
                Some(vec![
                    Cell::from(r.incarnation),
                    Cell::from(t.tenant_id),
                    Cell::from(r.round_id),
                    Cell::from(piece),
                    Cell::from(t.worker_addr.as_str()),
                    Cell::from(0u64),
                    Cell::from(0u64),
                    Cell::from(0u64),
                    time(r.start_time_ms),
                    time(r.checkpoint_time_ms),
                    Cell::from(r.status.as_str()),
                    Cell::from(r.checkpoint_scn),
                    Cell::from(r.lag_ms),
                ])
            })
            .collect()
    }
}
