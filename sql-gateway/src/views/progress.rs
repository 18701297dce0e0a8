//! `CDB_OB_BACKUP_PROGRESS`: data backups, running and finished, with bytes done and
//! an ETA (Backstop's appended columns answer "how far along is it").

use super::format::time;
use super::{Cell, Snapshot, Source, View};

/// The view.
pub struct Progress;

/// OceanBase's columns, then Backstop's (`JOB_ID`, `BYTES_DONE`, `BYTES_TOTAL`,
/// `PERCENT`, `ETA_SECONDS`, `COMMENT`).
pub const COLUMNS: &[&str] = &[
    "INCARNATION",
    "BS_KEY",
    "BACKUP_TYPE",
    "TENANT_ID",
    "PARTITION_COUNT",
    "MACRO_BLOCK_COUNT",
    "FINISH_PARTITION_COUNT",
    "FINISH_MACRO_BLOCK_COUNT",
    "INPUT_BYTES",
    "OUTPUT_BYTES",
    "START_TIME",
    "COMPLETION_TIME",
    "STATUS",
    "JOB_ID",
    "BYTES_DONE",
    "BYTES_TOTAL",
    "PERCENT",
    "ETA_SECONDS",
    "COMMENT",
];

impl View for Progress {
    fn sources(&self) -> &'static [Source] {
        &[Source::Jobs, Source::Sets]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_PROGRESS"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        s.sets
            .iter()
            .filter(|x| x.copy_id == 0)
            .map(|x| {
                let job = s.jobs.iter().find(|j| j.job_id == x.job_id);
                let (done, total) = job.map_or((0, 0), |j| (j.bytes_done, j.bytes_total));
                let percent = if x.status == "SUCCESS" {
                    100
                } else {
                    done.saturating_mul(100).checked_div(total).unwrap_or(0)
                };
                let eta = if x.status != "DOING" || done == 0 || total <= done {
                    Cell::Null
                } else {
                    let elapsed = now.saturating_sub(x.start_time_ms);
                    Cell::from(elapsed.saturating_mul(total - done) / done / 1000)
                };
                let files = x.file_count;
                let finished = if x.status == "SUCCESS" { files } else { 0 };
                vec![
                    Cell::from(x.incarnation),
                    Cell::from(x.backup_set_id),
                    Cell::from(x.backup_type.as_str()),
                    Cell::from(x.tenant_id),
                    Cell::from(files),
                    Cell::from(0u64),
                    Cell::from(finished),
                    Cell::from(0u64),
                    Cell::from(x.input_bytes),
                    Cell::from(x.output_bytes),
                    time(x.start_time_ms),
                    time(x.end_time_ms),
                    Cell::from(match x.status.as_str() {
                        "SUCCESS" => "COMPLETED",
                        "FAILED" => "FAILED",
                        _ => "RUNNING",
                    }),
                    Cell::from(x.job_id),
                    Cell::from(done),
                    Cell::from(total),
                    Cell::from(percent),
                    eta,
                    Cell::from(x.comment.as_str()),
                ]
            })
            .collect()
    }
}
