//! The backup-of-backup views. Their columns are OceanBase's (reference §2.6); their
//! rows arrive with backup-of-backup jobs (the next issue), so today they are empty —
//! which is also what OceanBase shows when no copy job runs.

use super::{Cell, Snapshot, View};

/// A view with OceanBase's columns and no rows yet.
pub struct Pending {
    name: &'static str,
    columns: &'static [&'static str],
}

impl View for Pending {
    fn name(&self) -> &'static str {
        self.name
    }

    fn columns(&self) -> &'static [&'static str] {
        self.columns
    }

    fn rows(&self, _s: &Snapshot) -> Vec<Vec<Cell>> {
        Vec::new()
    }
}

/// `CDB_OB_BACKUP_BACKUPSET_JOB` and `_HISTORY`.
pub const BACKUPSET_JOB: &[&str] = &[
    "JOB_ID",
    "TENANT_ID",
    "INCARNATION",
    "BACKUP_SET_ID",
    "TYPE",
    "TENANT_NAME",
    "STATUS",
    "BACKUP_DEST",
    "MAX_BACKUP_TIMES",
    "RESULT",
];
/// `CDB_OB_BACKUP_BACKUPSET_TASK`.
pub const BACKUPSET_TASK: &[&str] = &[
    "JOB_ID",
    "INCARNATION",
    "BS_KEY",
    "COPY_ID",
    "BACKUP_TYPE",
    "TENANT_ID",
    "TOTAL_PG_COUNT",
    "FINISH_PG_COUNT",
    "TOTAL_PARTITION_COUNT",
    "TOTAL_MACRO_BLOCK_COUNT",
    "FINISH_PARTITION_COUNT",
    "FINISH_MACRO_BLOCK_COUNT",
    "INPUT_BYTES",
    "OUTPUT_BYTES",
    "START_TIME",
    "COMPLETION_TIME",
    "STATUS",
];
/// `CDB_OB_BACKUP_BACKUPSET_TASK_HISTORY`.
pub const BACKUPSET_TASK_HISTORY: &[&str] = &[
    "JOB_ID",
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
    "SRC_DEVICE_TYPE",
    "DST_DEVICE_TYPE",
    "COMPRESSED",
    "OUTPUT_BYTES",
    "OUTPUT_RATE_BYTES",
    "COMPRESSION_RATIO",
    "OUTPUT_BYTES_DISPLAY",
    "OUTPUT_RATE_BYTES_DISPLAY",
    "TIME_TAKEN_DISPLAY",
    "STATUS",
];
/// `CDB_OB_BACKUP_BACKUPPIECE_JOB` and `_HISTORY`.
pub const BACKUPPIECE_JOB: &[&str] = &[
    "JOB_ID",
    "TENANT_ID",
    "INCARNATION",
    "BACKUP_PIECE_ID",
    "MAX_BACKUP_TIMES",
    "RESULT",
    "STATUS",
    "BACKUP_DEST",
    "COMMENT",
    "TYPE",
];
/// `CDB_OB_BACKUP_BACKUPPIECE_TASK` and `_HISTORY`.
pub const BACKUPPIECE_TASK: &[&str] = &[
    "JOB_ID",
    "INCARNATION",
    "TENANT_ID",
    "ROUND_ID",
    "BACKUP_PIECE_ID",
    "COPY_ID",
    "START_TIME",
    "END_TIME",
    "STATUS",
    "BACKUP_DEST",
    "RESULT",
    "COMMENT",
];
/// `CDB_OB_BACKUP_BACKUP_ARCHIVELOG`.
pub const BACKUP_ARCHIVELOG: &[&str] = &[
    "INCARNATION",
    "LOG_ARCHIVE_ROUND",
    "COPY_ID",
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
];
/// `CDB_OB_BACKUP_BACKUP_ARCHIVELOG_SUMMARY` (no piece ids, as OceanBase).
pub const BACKUP_ARCHIVELOG_SUMMARY: &[&str] = &[
    "INCARNATION",
    "LOG_ARCHIVE_ROUND",
    "COPY_ID",
    "TENANT_ID",
    "STATUS",
    "MIN_FIRST_TIME",
    "MAX_NEXT_TIME",
    "INPUT_BYTES",
    "OUTPUT_BYTES",
    "COMPRESSION_RATIO",
    "INPUT_BYTES_DISPLAY",
    "OUTPUT_BYTES_DISPLAY",
];

/// Every backup-of-backup view.
pub fn views() -> Vec<Pending> {
    vec![
        Pending {
            name: "CDB_OB_BACKUP_BACKUPSET_JOB",
            columns: BACKUPSET_JOB,
        },
        Pending {
            name: "CDB_OB_BACKUP_BACKUPSET_JOB_HISTORY",
            columns: BACKUPSET_JOB,
        },
        Pending {
            name: "CDB_OB_BACKUP_BACKUPSET_TASK",
            columns: BACKUPSET_TASK,
        },
        Pending {
            name: "CDB_OB_BACKUP_BACKUPSET_TASK_HISTORY",
            columns: BACKUPSET_TASK_HISTORY,
        },
        Pending {
            name: "CDB_OB_BACKUP_BACKUPPIECE_JOB",
            columns: BACKUPPIECE_JOB,
        },
        Pending {
            name: "CDB_OB_BACKUP_BACKUPPIECE_JOB_HISTORY",
            columns: BACKUPPIECE_JOB,
        },
        Pending {
            name: "CDB_OB_BACKUP_BACKUPPIECE_TASK",
            columns: BACKUPPIECE_TASK,
        },
        Pending {
            name: "CDB_OB_BACKUP_BACKUPPIECE_TASK_HISTORY",
            columns: BACKUPPIECE_TASK,
        },
        Pending {
            name: "CDB_OB_BACKUP_BACKUP_ARCHIVELOG",
            columns: BACKUP_ARCHIVELOG,
        },
        Pending {
            name: "CDB_OB_BACKUP_BACKUP_ARCHIVELOG_SUMMARY",
            columns: BACKUP_ARCHIVELOG_SUMMARY,
        },
    ]
}
