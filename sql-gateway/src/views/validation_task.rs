//! `CDB_OB_TENANT_BACKUP_VALIDATION_TASK` and `CDB_OB_BACKUP_VALIDATION_TASK_HISTORY`:
//! the tasks of `VALIDATE BACKUPSET` jobs, live and finished. A Backstop validation is
//! one task per set; the PG/partition/macro-block counts are 1 or 0.

use super::format::time;
use super::{Cell, Snapshot, Source, View};

/// OceanBase's columns.
pub const COLUMNS: &[&str] = &[
    "JOB_ID",
    "TASK_ID",
    "TENANT_ID",
    "INCARNATION",
    "BACKUP_SET_ID",
    "STATUS",
    "BACKUP_DEST",
    "START_TIME",
    "END_TIME",
    "TOTAL_PG_COUNT",
    "FINISH_PG_COUNT",
    "TOTAL_PARTITION_COUNT",
    "FINISH_PARTITION_COUNT",
    "TOTAL_MACRO_BLOCK_COUNT",
    "FINISH_MACRO_BLOCK_COUNT",
    "LOG_SIZE",
];

fn rows(s: &Snapshot, history: bool) -> Vec<Vec<Cell>> {
    s.tasks
        .iter()
        .filter(|t| t.task_type == "VALIDATE")
        .filter(|t| matches!(t.status.as_str(), "PENDING" | "DOING") != history)
        .map(|t| {
            let done = u64::from(t.status == "FINISH");
            vec![
                Cell::from(t.job_id),
                Cell::from(t.task_id),
                Cell::from(t.tenant_id),
                Cell::from(super::task_incarnation(s, t)),
                Cell::from(t.backup_set_id),
                Cell::from(match t.status.as_str() {
                    "PENDING" => "SCHEDULE",
                    "DOING" => "DOING",
                    "FINISH" => "FINISHED",
                    _ => "CANCEL",
                }),
                Cell::from(t.backup_dest.as_str()),
                time(t.start_time_ms),
                time(if history { t.update_time_ms } else { 0 }),
                Cell::from(1u64),
                Cell::from(done),
                Cell::from(1u64),
                Cell::from(done),
                Cell::from(0u64),
                Cell::from(0u64),
                Cell::from(0u64),
            ]
        })
        .collect()
}

/// `CDB_OB_TENANT_BACKUP_VALIDATION_TASK`.
pub struct ValidationTask;

impl View for ValidationTask {
    fn sources(&self) -> &'static [Source] {
        &[Source::Tasks, Source::Jobs]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_TENANT_BACKUP_VALIDATION_TASK"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        rows(s, false)
    }
}

/// `CDB_OB_BACKUP_VALIDATION_TASK_HISTORY`.
pub struct ValidationTaskHistory;

impl View for ValidationTaskHistory {
    fn sources(&self) -> &'static [Source] {
        &[Source::Tasks, Source::Jobs]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_VALIDATION_TASK_HISTORY"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        rows(s, true)
    }
}
