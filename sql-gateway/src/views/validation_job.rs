//! `CDB_OB_BACKUP_VALIDATION_JOB` (running validations) and
//! `CDB_OB_BACKUP_VALIDATION_JOB_HISTORY` (finished ones).

use super::{Cell, Snapshot, Source, View};

/// Running validations.
pub struct ValidationJob;
/// Finished validations.
pub struct ValidationJobHistory;

/// OceanBase's columns, then Backstop's (`RESULT`, `COMMENT`).
pub const COLUMNS: &[&str] = &[
    "JOB_ID",
    "TENANT_ID",
    "TENANT_NAME",
    "INCARNATION",
    "BACKUP_SET_ID",
    "PROGRESS_PERCENT",
    "STATUS",
    "RESULT",
    "COMMENT",
];

fn rows(s: &Snapshot, finished: bool) -> Vec<Vec<Cell>> {
    s.jobs
        .iter()
        .filter(|j| {
            j.job_type == "VALIDATE"
                && matches!(j.status.as_str(), "FINISH" | "FAILED" | "CANCELED") == finished
        })
        .map(|j| {
            let name = s
                .tenants
                .iter()
                .find(|t| t.tenant_id == j.tenant_id)
                .map(|t| t.tenant_name.clone())
                .unwrap_or_default();
            let percent = if finished {
                100
            } else {
                j.bytes_done
                    .saturating_mul(100)
                    .checked_div(j.bytes_total)
                    .unwrap_or(0)
            };
            vec![
                Cell::from(j.job_id),
                Cell::from(j.tenant_id),
                Cell::from(name),
                Cell::from(j.incarnation),
                Cell::from(j.backup_set_id),
                Cell::from(percent),
                Cell::from(match j.status.as_str() {
                    "FINISH" | "FAILED" | "CANCELED" => "FINISHED",
                    "CANCEL" | "CLEAN" => "CANCEL",
                    _ => "DOING",
                }),
                Cell::from(j.result.as_str()),
                Cell::from(j.comment.as_str()),
            ]
        })
        .collect()
}

impl View for ValidationJob {
    fn sources(&self) -> &'static [Source] {
        &[Source::Jobs]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_VALIDATION_JOB"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        rows(s, false)
    }
}

impl View for ValidationJobHistory {
    fn sources(&self) -> &'static [Source] {
        &[Source::Jobs]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_VALIDATION_JOB_HISTORY"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        rows(s, true)
    }
}
