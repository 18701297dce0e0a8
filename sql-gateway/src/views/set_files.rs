//! `CDB_OB_BACKUP_SET_FILES`: one row per backup set and copy.

use super::format::{bytes_display, ratio, time, time_taken};
use super::{Cell, Snapshot, Source, View};

/// The view.
pub struct SetFiles;

/// OceanBase's columns, then Backstop's (`START_REPLAY_SCN`, `MIN_RESTORE_SCN`,
/// `BACKUP_DEST`, `COMMENT`, and for PostgreSQL tenants `START_REPLAY_LSN` and
/// `MIN_RESTORE_LSN`, the same SCNs as `X/Y` LSNs; NULL for others).
pub const COLUMNS: &[&str] = &[
    "INCARNATION",
    "TENANT_ID",
    "BS_KEY",
    "COPY_ID",
    "BACKUP_TYPE",
    "ENCRYPTION_MODE",
    "STATUS",
    "FILE_STATUS",
    "START_TIME",
    "COMPLETION_TIME",
    "ELAPSED_SECONDES",
    "KEEP",
    "KEEP_UNTIL",
    "COMPRESSED",
    "OUTPUT_BYTES",
    "OUTPUT_RATE_BYTES",
    "COMPRESSION_RATIO",
    "OUTPUT_BYTES_DISPLAY",
    "OUTPUT_RATE_BYTES_DISPLAY",
    "TIME_TAKEN_DISPLAY",
    "START_REPLAY_SCN",
    "MIN_RESTORE_SCN",
    "BACKUP_DEST",
    "COMMENT",
    "START_REPLAY_LSN",
    "MIN_RESTORE_LSN",
];

impl View for SetFiles {
    fn sources(&self) -> &'static [Source] {
        &[Source::Sets, Source::Tenants]
    }
    fn name(&self) -> &'static str {
        "CDB_OB_BACKUP_SET_FILES"
    }

    fn columns(&self) -> &'static [&'static str] {
        COLUMNS
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        s.sets
            .iter()
            .map(|x| {
                let elapsed_ms = x.end_time_ms.saturating_sub(x.start_time_ms);
                let secs = if x.end_time_ms == 0 {
                    0
                } else {
                    (elapsed_ms + 500) / 1000
                };
                let rate = if x.end_time_ms == 0 || elapsed_ms == 0 {
                    0
                } else {
                    x.output_bytes.saturating_mul(1000) / elapsed_ms
                };
                vec![
                    Cell::from(x.incarnation),
                    Cell::from(x.tenant_id),
                    Cell::from(x.backup_set_id),
                    Cell::from(x.copy_id),
                    Cell::from(x.backup_type.as_str()),
                    Cell::from("NONE"),
                    Cell::from(match x.status.as_str() {
                        "SUCCESS" => "COMPLETED",
                        "DOING" => "RUNNING",
                        other => other,
                    }),
                    Cell::from(x.file_status.as_str()),
                    time(x.start_time_ms),
                    time(x.end_time_ms),
                    Cell::from(secs),
                    Cell::from("NO"),
                    Cell::from(""),
                    Cell::from("YES"),
                    Cell::from(x.output_bytes),
                    Cell::from(rate),
                    ratio(x.output_bytes, x.input_bytes),
                    bytes_display(x.output_bytes),
                    Cell::Text(match bytes_display(rate) {
                        Cell::Text(t) => format!("{t}/S"),
                        _ => String::new(),
                    }),
                    time_taken(x.start_time_ms, x.end_time_ms),
                    Cell::from(x.start_replay_scn),
                    Cell::from(x.min_restore_scn),
                    Cell::from(x.backup_dest.as_str()),
                    Cell::from(x.comment.as_str()),
                    super::lsn_cell(s, x.tenant_id, x.start_replay_scn),
                    super::lsn_cell(s, x.tenant_id, x.min_restore_scn),
                ]
            })
            .collect()
    }
}
