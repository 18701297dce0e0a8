//! `CDB_OB_BACKUP_SET_DETAILS`: finished backup sets, one row per copy
//! (`docs/VIEWS.md`).

use super::format::{bytes_display, ratio, time, time_taken};
use super::{Cell, Snapshot, Source, View};

/// The view.
pub struct SetDetails;

/// OceanBase's columns, then Backstop's (`START_REPLAY_SCN`, `MIN_RESTORE_SCN`).
pub const COLUMNS: &[&str] = &[
    "INCARNATION",
    "TENANT_ID",
    "BS_KEY",
    "COPY_ID",
    "BACKUP_TYPE",
    "ENCRYPTION_MODE",
    "START_TIME",
    "COMPLETION_TIME",
    "ELAPSED_SECONDES",
    "KEEP",
    "KEEP_UNTIL",
    "DEVICE_TYPE",
    "COMPRESSED",
    "OUTPUT_BYTES",
    "OUTPUT_RATE_BYTES",
    "COMPRESSION_RATIO",
    "OUTPUT_BYTES_DISPLAY",
    "OUTPUT_RATE_BYTES_DISPLAY",
    "TIME_TAKEN_DISPLAY",
    "STATUS",
    "START_REPLAY_SCN",
    "MIN_RESTORE_SCN",
];

impl View for SetDetails {
    fn sources(&self) -> &'static [Source] {
        &[Source::Sets]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_SET_DETAILS"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        s.sets
            .iter()
            .filter(|x| x.status != "DOING")
            .map(|x| {
                let ms = x.end_time_ms.saturating_sub(x.start_time_ms);
                let rate = x
                    .output_bytes
                    .saturating_mul(1000)
                    .checked_div(ms)
                    .unwrap_or(0);
                let device = if x.backup_dest.starts_with("s3://") {
                    "s3"
                } else {
                    "file"
                };
                vec![
                    Cell::from(x.incarnation),
                    Cell::from(x.tenant_id),
                    Cell::from(x.backup_set_id),
                    Cell::from(x.copy_id),
                    Cell::from(x.backup_type.as_str()),
                    Cell::from("NONE"),
                    time(x.start_time_ms),
                    time(x.end_time_ms),
                    Cell::from((ms + 500) / 1000),
                    Cell::from("NO"),
                    Cell::from(""),
                    Cell::from(device),
                    Cell::from("YES"),
                    Cell::from(x.output_bytes),
                    Cell::from(rate),
                    ratio(x.output_bytes, x.input_bytes),
                    bytes_display(x.output_bytes),
                    Cell::Text(format!(
                        "{}/S",
                        bytes_display(rate).as_text().unwrap_or_default()
                    )),
                    time_taken(x.start_time_ms, x.end_time_ms),
                    Cell::from(if x.status == "SUCCESS" {
                        "COMPLETED"
                    } else {
                        "FAILED"
                    }),
                    Cell::from(x.start_replay_scn),
                    Cell::from(x.min_restore_scn),
                ]
            })
            .collect()
    }
}
