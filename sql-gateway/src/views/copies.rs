//! The backup-of-backup views (reference §2.6): backupset and backuppiece copy jobs
//! and their tasks, live and `_HISTORY` (a job moves to history when it ends, as
//! OceanBase moves the row), and the continuous archive copy with the cluster-level
//! row on `sys` (`docs/VIEWS.md`). Backstop's extra columns are appended after
//! OceanBase's.

use backstop_common::Code;
use backstop_proto::meta::{ArchiveCopy, Job, Task};

use super::format::{bytes_display, ratio, time, time_taken};
use super::{Cell, Snapshot, View};

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
    "RESULT_NAME",
    "COMMENT",
    "COPY_ID",
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
    "SVR_ADDR",
    "BACKUP_DEST",
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
    "RESULT_NAME",
    "COPY_ID",
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
    "CHECKPOINT_SCN",
    "SVR_ADDR",
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
    "START_SCN",
    "CHECKPOINT_SCN",
    "LAG_MS",
    "BACKUP_DEST",
    "COMMENT",
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
    "START_SCN",
    "CHECKPOINT_SCN",
];

fn live(status: &str) -> bool {
    !matches!(status, "FINISH" | "FAILED" | "CANCELED")
}

/// `RESULT`: 0, or the Backstop error number of the job's result.
fn result_code(result: &str) -> Cell {
    if result.is_empty() {
        return Cell::from(0u64);
    }
    Code::from_name(result).map_or(Cell::Int(-1), |c| Cell::from(u64::from(c.mysql_errno())))
}

fn times(n: i64) -> Cell {
    Cell::Int(n)
}

fn tenant_name(s: &Snapshot, id: u64) -> String {
    s.tenants
        .iter()
        .find(|t| t.tenant_id == id)
        .map(|t| t.tenant_name.clone())
        .unwrap_or_default()
}

fn jobs<'a>(s: &'a Snapshot, kind: &'a str, history: bool) -> impl Iterator<Item = &'a Job> {
    s.jobs
        .iter()
        .filter(move |j| j.job_type == kind && live(&j.status) != history)
}

fn job_live(s: &Snapshot, job_id: u64) -> bool {
    s.jobs.iter().any(|j| j.job_id == job_id && live(&j.status))
}

fn tasks<'a>(s: &'a Snapshot, kind: &'a str, history: bool) -> impl Iterator<Item = &'a Task> {
    s.tasks
        .iter()
        .filter(move |t| t.task_type == kind && job_live(s, t.job_id) != history)
}

fn set_type(s: &Snapshot, t: &Task) -> String {
    s.sets
        .iter()
        .find(|x| {
            x.tenant_id == t.tenant_id && x.backup_set_id == t.backup_set_id && x.copy_id == 0
        })
        .map(|x| x.backup_type.clone())
        .unwrap_or_default()
}

fn task_end(t: &Task) -> u64 {
    if matches!(t.status.as_str(), "PENDING" | "DOING") {
        0
    } else {
        t.update_time_ms
    }
}

fn set_job_row(s: &Snapshot, j: &Job, history: bool) -> Vec<Cell> {
    let status = if history {
        "FINISH"
    } else {
        match j.status.as_str() {
            "DOING" => "BACKUP",
            other => other,
        }
    };
    vec![
        Cell::from(j.job_id),
        Cell::from(j.tenant_id),
        Cell::from(j.incarnation),
        Cell::from(j.backup_set_id),
        Cell::from(match j.copy_type.as_str() {
            "A" => "ALL_BACKUP_SET",
            "S" => "SINGLE_BACKUP_SET",
            _ => "UNKNOWN",
        }),
        Cell::from(tenant_name(s, j.tenant_id)),
        Cell::from(status),
        Cell::from(j.backup_dest.as_str()),
        times(j.max_backup_times),
        result_code(&j.result),
        Cell::from(j.result.as_str()),
        Cell::from(j.comment.as_str()),
        Cell::from(j.copy_id),
    ]
}

fn task_status(t: &Task) -> &'static str {
    match t.status.as_str() {
        "FINISH" => "COMPLETED",
        "FAILED" | "CANCEL" => "FAILED",
        _ => "RUNNING",
    }
}

fn set_task_row(s: &Snapshot, t: &Task) -> Vec<Cell> {
    let done = u64::from(t.status == "FINISH");
    vec![
        Cell::from(t.job_id),
        Cell::from(super::task_incarnation(s, t)),
        Cell::from(t.backup_set_id),
        Cell::from(t.copy_id),
        Cell::from(set_type(s, t)),
        Cell::from(t.tenant_id),
        Cell::from(1u64),
        Cell::from(done),
        Cell::from(1u64),
        Cell::from(0u64),
        Cell::from(done),
        Cell::from(0u64),
        Cell::from(t.bytes_total),
        Cell::from(t.bytes_done),
        time(t.start_time_ms),
        time(task_end(t)),
        Cell::from(task_status(t)),
        Cell::from(t.worker_addr.as_str()),
        Cell::from(t.backup_dest.as_str()),
    ]
}

fn set_task_history_row(s: &Snapshot, t: &Task) -> Vec<Cell> {
    let end = task_end(t);
    let elapsed_ms = end.saturating_sub(t.start_time_ms);
    let rate = t
        .bytes_done
        .saturating_mul(1000)
        .checked_div(elapsed_ms)
        .unwrap_or(0);
    let dev = |d: &str| if d.starts_with("s3://") { "s3" } else { "file" };
    let src = s
        .sets
        .iter()
        .find(|x| {
            x.tenant_id == t.tenant_id && x.backup_set_id == t.backup_set_id && x.copy_id == 0
        })
        .map(|x| dev(&x.backup_dest))
        .unwrap_or("file");
    vec![
        Cell::from(t.job_id),
        Cell::from(super::task_incarnation(s, t)),
        Cell::from(t.tenant_id),
        Cell::from(t.backup_set_id),
        Cell::from(t.copy_id),
        Cell::from(set_type(s, t)),
        Cell::from("NONE"),
        time(t.start_time_ms),
        time(end),
        Cell::from((elapsed_ms + 500) / 1000),
        Cell::from("NO"),
        Cell::from(""),
        Cell::from(src),
        Cell::from(dev(&t.backup_dest)),
        Cell::from("NO"),
        Cell::from(t.bytes_done),
        Cell::from(rate),
        ratio(t.bytes_done, t.bytes_total),
        bytes_display(t.bytes_done),
        Cell::Text(match bytes_display(rate) {
            Cell::Text(x) => format!("{x}/S"),
            _ => String::new(),
        }),
        time_taken(t.start_time_ms, end),
        Cell::from(match task_status(t) {
            "COMPLETED" => "COMPLETED",
            _ => "FAILED",
        }),
    ]
}

fn piece_job_row(j: &Job, history: bool) -> Vec<Cell> {
    let status = if history {
        "FINISH"
    } else {
        match j.status.as_str() {
            "CLEAN" => "CANCEL",
            other => other,
        }
    };
    vec![
        Cell::from(j.job_id),
        Cell::from(j.tenant_id),
        Cell::from(j.incarnation),
        Cell::from(j.backup_piece_id),
        times(j.max_backup_times),
        result_code(&j.result),
        Cell::from(status),
        Cell::from(j.backup_dest.as_str()),
        Cell::from(j.comment.as_str()),
        Cell::from(if j.copy_type == "1" { 1u64 } else { 0u64 }),
        Cell::from(j.result.as_str()),
        Cell::from(j.copy_id),
    ]
}

fn piece_task_row(s: &Snapshot, t: &Task) -> Vec<Cell> {
    let checkpoint = s
        .pieces
        .iter()
        .find(|p| {
            p.tenant_id == t.tenant_id
                && p.round_id == t.round_id
                && p.backup_piece_id == t.backup_piece_id
                && p.copy_id == t.copy_id
        })
        .map_or(0, |p| p.checkpoint_scn);
    let result = if matches!(t.status.as_str(), "FINISH" | "PENDING" | "DOING") {
        Cell::from(0u64)
    } else {
        Cell::from(u64::from(Code::Canceled.mysql_errno()))
    };
    vec![
        Cell::from(t.job_id),
        Cell::from(super::task_incarnation(s, t)),
        Cell::from(t.tenant_id),
        Cell::from(t.round_id),
        Cell::from(t.backup_piece_id),
        Cell::from(t.copy_id),
        time(t.start_time_ms),
        time(task_end(t)),
        Cell::from(if matches!(t.status.as_str(), "PENDING" | "DOING") {
            "DOING"
        } else {
            "FINISH"
        }),
        Cell::from(t.backup_dest.as_str()),
        result,
        Cell::from(t.last_error.as_str()),
        Cell::from(checkpoint),
        Cell::from(t.worker_addr.as_str()),
    ]
}

fn copy_piece_ids(s: &Snapshot, c: &ArchiveCopy) -> (u64, u64) {
    let ids: Vec<u64> = s
        .pieces
        .iter()
        .filter(|p| {
            p.tenant_id == c.tenant_id && p.round_id == c.round_id && p.copy_id == c.copy_id
        })
        .map(|p| p.backup_piece_id)
        .collect();
    (
        ids.iter().min().copied().unwrap_or(0),
        ids.iter().max().copied().unwrap_or(0),
    )
}

/// Archive copy rows, then the cluster-level row per copy on `sys`.
fn archive_copy_rows(s: &Snapshot, with_pieces: bool) -> Vec<Vec<Cell>> {
    let row = |inc: u64,
               round: u64,
               copy_id: u64,
               tenant: u64,
               status: &str,
               pieces: (u64, u64),
               start_ms: u64,
               ckpt_ms: u64,
               bytes: u64,
               scns: (u64, u64),
               extra: Option<(&ArchiveCopy,)>| {
        let mut r = vec![
            Cell::from(inc),
            Cell::from(round),
            Cell::from(copy_id),
            Cell::from(tenant),
            Cell::from(status),
        ];
        if with_pieces {
            r.push(Cell::from(pieces.0));
            r.push(Cell::from(pieces.1));
        }
        r.extend([
            time(start_ms),
            time(ckpt_ms),
            Cell::from(bytes),
            Cell::from(bytes),
            ratio(bytes, bytes),
            bytes_display(bytes),
            bytes_display(bytes),
            Cell::from(scns.0),
            Cell::from(scns.1),
        ]);
        if with_pieces {
            match extra {
                Some((c,)) => r.extend([
                    Cell::from(c.lag_ms),
                    Cell::from(c.backup_dest.as_str()),
                    Cell::from(c.comment.as_str()),
                ]),
                None => r.extend([Cell::from(0u64), Cell::from(""), Cell::from("")]),
            }
        }
        r
    };
    let mut rows = Vec::new();
    for c in &s.copies {
        rows.push(row(
            c.incarnation,
            c.round_id,
            c.copy_id,
            c.tenant_id,
            &c.status,
            copy_piece_ids(s, c),
            c.start_time_ms,
            c.checkpoint_time_ms,
            c.output_bytes,
            (c.start_scn, c.checkpoint_scn),
            Some((c,)),
        ));
    }
    let mut copy_ids: Vec<u64> = s.copies.iter().map(|c| c.copy_id).collect();
    copy_ids.sort_unstable();
    copy_ids.dedup();
    for copy_id in copy_ids {
        let of: Vec<&ArchiveCopy> = s.copies.iter().filter(|c| c.copy_id == copy_id).collect();
        let mut statuses: Vec<&str> = of.iter().map(|c| c.status.as_str()).collect();
        statuses.sort_unstable();
        statuses.dedup();
        let status = if statuses.len() == 1 {
            statuses[0]
        } else {
            "MIXED"
        };
        let min = |f: fn(&&ArchiveCopy) -> u64| of.iter().map(f).min().unwrap_or(0);
        rows.push(row(
            of.iter().map(|c| c.incarnation).max().unwrap_or(1),
            of.iter().map(|c| c.round_id).max().unwrap_or(0),
            copy_id,
            1,
            status,
            (0, 0),
            min(|c| c.start_time_ms),
            min(|c| c.checkpoint_time_ms),
            of.iter().map(|c| c.output_bytes).sum(),
            (min(|c| c.start_scn), min(|c| c.checkpoint_scn)),
            None,
        ));
    }
    rows
}

/// Which rows a view shows.
#[derive(Clone, Copy)]
enum Source {
    SetJob(bool),
    SetTask,
    SetTaskHistory,
    PieceJob(bool),
    PieceTask(bool),
    ArchiveCopy(bool),
}

/// One backup-of-backup view.
pub struct CopyView {
    name: &'static str,
    columns: &'static [&'static str],
    source: Source,
}

impl View for CopyView {
    fn name(&self) -> &'static str {
        self.name
    }

    fn columns(&self) -> &'static [&'static str] {
        self.columns
    }

    fn rows(&self, s: &Snapshot) -> Vec<Vec<Cell>> {
        match self.source {
            Source::SetJob(h) => jobs(s, "BACKUP_BACKUPSET", h)
                .map(|j| set_job_row(s, j, h))
                .collect(),
            Source::SetTask => tasks(s, "BACKUP_BACKUPSET", false)
                .map(|t| set_task_row(s, t))
                .collect(),
            Source::SetTaskHistory => tasks(s, "BACKUP_BACKUPSET", true)
                .map(|t| set_task_history_row(s, t))
                .collect(),
            Source::PieceJob(h) => jobs(s, "BACKUP_BACKUPPIECE", h)
                .map(|j| piece_job_row(j, h))
                .collect(),
            Source::PieceTask(h) => tasks(s, "BACKUP_BACKUPPIECE", h)
                .map(|t| piece_task_row(s, t))
                .collect(),
            Source::ArchiveCopy(pieces) => archive_copy_rows(s, pieces),
        }
    }
}

/// Every backup-of-backup view.
pub fn views() -> Vec<CopyView> {
    let v = |name, columns, source| CopyView {
        name,
        columns,
        source,
    };
    vec![
        v(
            "CDB_OB_BACKUP_BACKUPSET_JOB",
            BACKUPSET_JOB,
            Source::SetJob(false),
        ),
        v(
            "CDB_OB_BACKUP_BACKUPSET_JOB_HISTORY",
            BACKUPSET_JOB,
            Source::SetJob(true),
        ),
        v(
            "CDB_OB_BACKUP_BACKUPSET_TASK",
            BACKUPSET_TASK,
            Source::SetTask,
        ),
        v(
            "CDB_OB_BACKUP_BACKUPSET_TASK_HISTORY",
            BACKUPSET_TASK_HISTORY,
            Source::SetTaskHistory,
        ),
        v(
            "CDB_OB_BACKUP_BACKUPPIECE_JOB",
            BACKUPPIECE_JOB,
            Source::PieceJob(false),
        ),
        v(
            "CDB_OB_BACKUP_BACKUPPIECE_JOB_HISTORY",
            BACKUPPIECE_JOB,
            Source::PieceJob(true),
        ),
        v(
            "CDB_OB_BACKUP_BACKUPPIECE_TASK",
            BACKUPPIECE_TASK,
            Source::PieceTask(false),
        ),
        v(
            "CDB_OB_BACKUP_BACKUPPIECE_TASK_HISTORY",
            BACKUPPIECE_TASK,
            Source::PieceTask(true),
        ),
        v(
            "CDB_OB_BACKUP_BACKUP_ARCHIVELOG",
            BACKUP_ARCHIVELOG,
            Source::ArchiveCopy(true),
        ),
        v(
            "CDB_OB_BACKUP_BACKUP_ARCHIVELOG_SUMMARY",
            BACKUP_ARCHIVELOG_SUMMARY,
            Source::ArchiveCopy(false),
        ),
    ]
}
