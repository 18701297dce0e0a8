//! `CDB_OB_BACKUP_JOB_DETAILS`: data backups with sizes, rates and timings.

use super::format::{bytes_display, ratio, time, time_taken};
use super::{Cell, Snapshot, Source, View};

/// The view.
pub struct JobDetails;

/// OceanBase's columns, then Backstop's (`JOB_ID`, `MIN_RESTORE_SCN`, `COMMENT`).
pub const COLUMNS: &[&str] = &[
    "INCARNATION",
    "TENANT_ID",
    "BS_KEY",
    "BACKUP_TYPE",
    "ENCRYPTION_MODE",
    "START_TIME",
    "END_TIME",
    "INPUT_BYTES",
    "OUTPUT_BYTES",
    "OUTPUT_DEVICE_TYPE",
    "ELAPSED_SECONDES",
    "COMPRESSION_RATIO",
    "INPUT_BYTES_PER_SEC",
    "OUTPUT_BYTES_PER_SEC",
    "STATUS",
    "INPUT_BYTES_DISPLAY",
    "OUTPUT_BYTES_DISPLAY",
    "INPUT_BYTES_PER_SEC_DISPLAY",
    "OUTPUT_BYTES_PER_SEC_DISPLAY",
    "TIME_TAKEN_DISPLAY",
    "START_REPLAY_LOG_TS",
    "DATE",
    "JOB_ID",
    "MIN_RESTORE_SCN",
    "COMMENT",
];

impl View for JobDetails {
    fn sources(&self) -> &'static [Source] {
        &[Source::Sets]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_JOB_DETAILS"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        s.sets
            .iter()
            .filter(|x| x.copy_id == 0)
            .map(|x| {
                let ms = x.end_time_ms.saturating_sub(x.start_time_ms);
                let per_sec = |b: u64| b.saturating_mul(1000).checked_div(ms).unwrap_or(0);
                let with_s = |c: Cell| Cell::Text(format!("{}/S", c.as_text().unwrap_or_default()));
                let date = match time(x.start_time_ms) {
                    Cell::Text(t) if t.len() >= 10 => Cell::Text(t[..10].replace('-', "")),
                    other => other,
                };
                vec![
                    Cell::from(x.incarnation),
                    Cell::from(x.tenant_id),
                    Cell::from(x.backup_set_id),
                    Cell::from(x.backup_type.as_str()),
                    Cell::from("NONE"),
                    time(x.start_time_ms),
                    time(x.end_time_ms),
                    Cell::from(x.input_bytes),
                    Cell::from(x.output_bytes),
                    Cell::from(if x.backup_dest.starts_with("s3://") {
                        "s3"
                    } else {
                        "file"
                    }),
                    Cell::from((ms + 500) / 1000),
                    ratio(x.output_bytes, x.input_bytes),
                    Cell::from(per_sec(x.input_bytes)),
                    Cell::from(per_sec(x.output_bytes)),
                    Cell::from(match x.status.as_str() {
                        "SUCCESS" => "COMPLETED",
                        "FAILED" => "FAILED",
                        _ => "RUNNING",
                    }),
                    bytes_display(x.input_bytes),
                    bytes_display(x.output_bytes),
                    with_s(bytes_display(per_sec(x.input_bytes))),
                    with_s(bytes_display(per_sec(x.output_bytes))),
                    time_taken(x.start_time_ms, x.end_time_ms),
                    Cell::from(x.start_replay_scn),
                    date,
                    Cell::from(x.job_id),
                    Cell::from(x.min_restore_scn),
                    Cell::from(x.comment.as_str()),
                ]
            })
            .collect()
    }
}
