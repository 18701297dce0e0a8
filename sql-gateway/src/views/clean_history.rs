//! `CDB_OB_BACKUP_CLEAN_HISTORY` and `CDB_OB_BACKUP_TASK_CLEAN_HISTORY`: finished
//! clean work. Backstop cleans in two places: the clean phase of a cancelled or failed
//! job (type `CLEAN CANCELED JOB`) and the cleaner that retries leftovers (type
//! `CLEAN LEFTOVERS`). OceanBase's `DELETE BACKUPSET` cleans are not built yet.

use super::format::time;
use super::{Cell, Snapshot, Source, View};

/// `CDB_OB_BACKUP_CLEAN_HISTORY` columns (`BS_KEY` is the job id, as OceanBase).
pub const CLEAN_COLUMNS: &[&str] = &[
    "TENANT_ID",
    "BS_KEY",
    "COPY_ID",
    "START_TIME",
    "END_TIME",
    "INCARNATION",
    "TYPE",
    "STATUS",
    "PARAMETER",
    "ERROR_MSG",
    "COMMENT",
];

/// `CDB_OB_BACKUP_TASK_CLEAN_HISTORY` columns, then Backstop's `BACKUP_DEST`.
pub const TASK_COLUMNS: &[&str] = &[
    "TENANT_ID",
    "INCARNATION",
    "BS_KEY",
    "COPY_ID",
    "BACKUP_TYPE",
    "PARTITION_COUNT",
    "MACRO_BLOCK_COUNT",
    "FINISH_PARTITION_COUNT",
    "FINISH_MACRO_BLOCK_COUNT",
    "INPUT_BYTES",
    "OUTPUT_BYTES",
    "START_TIME",
    "COMPLETION_TIME",
    "STATUS",
    "BACKUP_DEST",
];

fn ended(status: &str) -> bool {
    matches!(status, "FINISH" | "FAILED" | "CANCELED")
}

/// `CDB_OB_BACKUP_CLEAN_HISTORY`.
pub struct CleanHistory;

impl View for CleanHistory {
    fn sources(&self) -> &'static [Source] {
        &[Source::Jobs, Source::Tasks]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_CLEAN_HISTORY"
    }

    fn columns(&self) -> &'static [&'static str] {
        CLEAN_COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        s.jobs
            .iter()
            .filter(|j| ended(&j.status))
            .filter(|j| {
                j.job_type == "CLEAN"
                    || s.tasks
                        .iter()
                        .any(|t| t.job_id == j.job_id && t.task_type == "CLEAN")
            })
            .map(|j| {
                let start = s
                    .tasks
                    .iter()
                    .filter(|t| t.job_id == j.job_id && t.task_type == "CLEAN")
                    .map(|t| t.start_time_ms)
                    .min()
                    .unwrap_or(j.start_time_ms);
                vec![
                    Cell::from(j.tenant_id),
                    Cell::from(j.job_id),
                    Cell::from(j.copy_id),
                    time(start),
                    time(j.end_time_ms),
                    Cell::from(j.incarnation),
                    Cell::from(if j.job_type == "CLEAN" {
                        "CLEAN LEFTOVERS"
                    } else {
                        "CLEAN CANCELED JOB"
                    }),
                    Cell::from("STOP"),
                    Cell::from(j.job_type.as_str()),
                    Cell::from(j.result.as_str()),
                    Cell::from(j.comment.as_str()),
                ]
            })
            .collect()
    }
}

/// `CDB_OB_BACKUP_TASK_CLEAN_HISTORY`.
pub struct TaskCleanHistory;

impl View for TaskCleanHistory {
    fn sources(&self) -> &'static [Source] {
        &[Source::Jobs, Source::Tasks]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_TASK_CLEAN_HISTORY"
    }

    fn columns(&self) -> &'static [&'static str] {
        TASK_COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        s.tasks
            .iter()
            .filter(|t| t.task_type == "CLEAN" && !matches!(t.status.as_str(), "PENDING" | "DOING"))
            .map(|t| {
                let copy_id = s
                    .jobs
                    .iter()
                    .find(|j| j.job_id == t.job_id)
                    .map_or(0, |j| j.copy_id);
                vec![
                    Cell::from(t.tenant_id),
                    Cell::from(super::task_incarnation(s, t)),
                    Cell::from(t.job_id),
                    Cell::from(copy_id),
                    Cell::from(""),
                    Cell::from(0u64),
                    Cell::from(0u64),
                    Cell::from(0u64),
                    Cell::from(0u64),
                    Cell::from(0u64),
                    Cell::from(0u64),
                    time(t.start_time_ms),
                    time(t.update_time_ms),
                    Cell::from(if t.status == "FINISH" {
                        "COMPLETED"
                    } else {
                        "FAILED"
                    }),
                    Cell::from(t.backup_dest.as_str()),
                ]
            })
            .collect()
    }
}
