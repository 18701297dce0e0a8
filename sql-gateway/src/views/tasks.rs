//! `CDB_OB_BACKUP_TASKS` (Backstop): which worker runs which task of which job, with
//! bytes done — the answer to "which sessions belong to this backup".

use super::{Cell, Snapshot, Source, View};

/// The view.
pub struct Tasks;

/// Columns.
pub const COLUMNS: &[&str] = &[
    "TASK_ID",
    "JOB_ID",
    "TENANT_ID",
    "TASK_TYPE",
    "STATUS",
    "ATTEMPT",
    "WORKER_ID",
    "WORKER_ADDR",
    "BYTES_DONE",
    "BYTES_TOTAL",
    "LAST_ERROR",
];

impl View for Tasks {
    fn sources(&self) -> &'static [Source] {
        &[Source::Tasks]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_TASKS"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        s.tasks
            .iter()
            .map(|t| {
                vec![
                    Cell::from(t.task_id),
                    Cell::from(t.job_id),
                    Cell::from(t.tenant_id),
                    Cell::from(t.task_type.as_str()),
                    Cell::from(t.status.as_str()),
                    Cell::from(u64::from(t.attempt)),
                    t.worker_id.map_or(Cell::Null, Cell::from),
                    Cell::from(t.worker_addr.as_str()),
                    Cell::from(t.bytes_done),
                    Cell::from(t.bytes_total),
                    Cell::from(t.last_error.as_str()),
                ]
            })
            .collect()
    }
}
