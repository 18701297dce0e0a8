//! The work tables' records: workers, jobs, tasks, archive rounds, pieces, backup sets,
//! continuous archive copies, leftovers and backup policies, with their status spellings
//! (the strings the `CDB_OB_*` views show). Records only: the rules that move them live
//! in the module of their job kind (see `docs/ARCHITECTURE.md`). Every record is
//! persisted with bincode (`store`); adding a field needs `#[serde(default)]`.

use backstop_common::{BackupSetId, CopyId, PieceId, RoundId, TaskId, WorkerId};
use std::collections::BTreeMap;

use backstop_common::task::{BackupType, CleanItem, TaskSpec, TenantDest};
use backstop_common::{JobId, Scn, TenantId};
use serde::{Deserialize, Serialize};

/// Attempts a task gets before its job fails.
pub const MAX_ATTEMPTS: u32 = 3;

/// A registered worker (an RMAN channel pool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Id chosen by the worker and kept in its data dir.
    pub worker_id: WorkerId,
    /// Where it runs (informational).
    pub addr: String,
    /// Concurrent task slots.
    pub slots: u32,
    /// Tenants whose sources it can read; empty = all.
    pub tenants: Vec<String>,
    /// When it (re)registered, ms.
    pub register_time_ms: u64,
}

/// What a job does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobKind {
    /// A log archive round (ARCHIVELOG until NOARCHIVELOG).
    Archive {
        /// Round id.
        round_id: RoundId,
    },
    /// A data backup.
    Backup {
        /// Set written.
        backup_set_id: BackupSetId,
        /// Full or incremental.
        backup_type: BackupType,
    },
    /// Validation of a set.
    Validate {
        /// Set checked.
        backup_set_id: BackupSetId,
    },
    /// A restore into a directory.
    Restore {
        /// Target directory.
        to: String,
    },
    /// `BACKUP BACKUPSET …`: copies of backup sets (OceanBase
    /// `__all_backup_backupset_job`).
    SetCopy {
        /// Requested set (0 = `ALL`).
        backup_set_id: BackupSetId,
        /// `ALL` (type `A`) or one set (`S`).
        all: bool,
        /// `NOT BACKED UP n TIMES`.
        max_backup_times: Option<u64>,
        /// `copy_id` of the copies.
        copy_id: CopyId,
        /// Copy destination URI (with secrets).
        dest: String,
        /// Sets still to start, (tenant, set), ascending per tenant.
        queue: Vec<(TenantId, BackupSetId)>,
    },
    /// `BACKUP BACKUPPIECE …` (OceanBase `__all_backup_backuppiece_job`).
    PieceCopy {
        /// Requested piece (0 = `ALL`).
        backup_piece_id: u64,
        /// `WITH ACTIVE`: type 1 (`WITH_ACTIVE_PIECE`), else 0 (`ONLY_FROZEN`).
        with_active: bool,
        /// `NOT BACKED UP n TIMES`.
        max_backup_times: Option<u64>,
        /// `copy_id` of the copies.
        copy_id: CopyId,
        /// Copy destination URI (with secrets).
        dest: String,
        /// Selected pieces (tenant, round, piece).
        pieces: Vec<(TenantId, RoundId, PieceId)>,
    },
    /// One follower of the continuous archive copy (`START BACKUP ARCHIVELOG`).
    ArchiveCopy {
        /// `copy_id`.
        copy_id: CopyId,
    },
    /// The cleaner: deletes leftovers of ended jobs.
    Cleaner,
}

/// Job status, as the views show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Running.
    Doing,
    /// Ended well.
    Finished,
    /// Ended with an error (`result`, `comment`).
    Failed,
    /// Queued behind another job of its kind (piece copies run one at a time).
    Schedule,
    /// Ending early (cancel or failure): running attempts are stopping.
    Canceling,
    /// Ending early: deleting what the job left at its destinations.
    Cleaning,
    /// `SUSPEND BACKUP`: nothing runs until `RESUME BACKUP`.
    Suspended,
    /// Ended by `CANCEL …` (result `OB_CANCELED`).
    Canceled,
}

impl JobStatus {
    /// View spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Doing => "DOING",
            JobStatus::Finished => "FINISH",
            JobStatus::Failed => "FAILED",
            JobStatus::Schedule => "SCHEDULE",
            JobStatus::Canceling => "CANCEL",
            JobStatus::Cleaning => "CLEAN",
            JobStatus::Suspended => "SUSPEND",
            JobStatus::Canceled => "CANCELED",
        }
    }

    /// Not yet ended (the job is in the live views, not in `_HISTORY`).
    pub fn is_live(self) -> bool {
        !matches!(
            self,
            JobStatus::Finished | JobStatus::Failed | JobStatus::Canceled
        )
    }
}

/// A job: one statement's worth of work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id, never reused.
    pub job_id: JobId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// What.
    pub kind: JobKind,
    /// Status.
    pub status: JobStatus,
    /// Error name when failed.
    pub result: Option<String>,
    /// Why, for people.
    pub comment: String,
    /// ms.
    pub start_time_ms: u64,
    /// ms; 0 while running.
    pub end_time_ms: u64,
}

/// Task status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskStatus {
    /// Waiting for a worker.
    Pending,
    /// Leased to a worker.
    Running,
    /// Done.
    Done,
    /// Gave up.
    Failed,
    /// Stopped because its job ended.
    Canceled,
}

impl TaskStatus {
    /// View spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "PENDING",
            TaskStatus::Running => "DOING",
            TaskStatus::Done => "FINISH",
            TaskStatus::Failed => "FAILED",
            TaskStatus::Canceled => "CANCEL",
        }
    }
}

/// One unit of work on one worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Id.
    pub task_id: TaskId,
    /// Job.
    pub job_id: JobId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// What to do.
    pub spec: TaskSpec,
    /// Status.
    pub status: TaskStatus,
    /// Current attempt (the fencing token); 0 before the first assignment.
    pub attempt: u32,
    /// Worker of the current attempt.
    pub worker_id: Option<WorkerId>,
    /// Bytes done / total of the current attempt (batched from heartbeats).
    pub bytes_done: u64,
    /// Bytes to do, when known.
    pub bytes_total: u64,
    /// Last failure, for people.
    pub last_error: String,
    /// ms.
    pub start_time_ms: u64,
    /// ms of the last state change.
    pub update_time_ms: u64,
}

/// Archive round status (OceanBase `ObLogArchiveStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundStatus {
    /// Started; first checkpoint not yet committed.
    Beginning,
    /// Archiving.
    Doing,
    /// NOARCHIVELOG issued; the worker is finishing.
    Stopping,
    /// Ended.
    Stop,
    /// The source lost log before it was archived.
    Interrupted,
}

impl RoundStatus {
    /// View spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RoundStatus::Beginning => "BEGINNING",
            RoundStatus::Doing => "DOING",
            RoundStatus::Stopping => "STOPPING",
            RoundStatus::Stop => "STOP",
            RoundStatus::Interrupted => "INTERRUPTED",
        }
    }
}

/// A tenant's archive round (OceanBase `__all_backup_log_archive_status_v2`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Round id, per tenant from 1.
    pub round_id: RoundId,
    /// Status.
    pub status: RoundStatus,
    /// Archive job.
    pub job_id: JobId,
    /// First archived SCN (set by the first checkpoint).
    pub start_scn: Scn,
    /// Everything below is archived.
    pub checkpoint_scn: Scn,
    /// ms.
    pub start_time_ms: u64,
    /// ms of the last checkpoint.
    pub checkpoint_time_ms: u64,
    /// Destination (with secrets).
    pub dest: TenantDest,
    /// Piece switch interval, ms (0 = one piece).
    pub piece_switch_interval_ms: u64,
    /// Checkpoint interval, ms.
    pub checkpoint_interval_ms: u64,
    /// Source log bytes archived.
    pub input_bytes: u64,
    /// Bytes stored.
    pub output_bytes: u64,
    /// Lag of the last checkpoint, ms.
    pub lag_ms: u64,
    /// Why it was interrupted, if it was.
    pub comment: String,
}

/// Piece status (OceanBase `__all_backup_piece_files.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PieceStatus {
    /// Being written.
    Active,
    /// Switched away from; manifest and marker being written.
    Freezing,
    /// Complete.
    Frozen,
}

impl PieceStatus {
    /// View spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PieceStatus::Active => "ACTIVE",
            PieceStatus::Freezing => "FREEZING",
            PieceStatus::Frozen => "FROZEN",
        }
    }
}

/// A backup piece, one row per copy (copy 0 = `backup_dest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceRecord {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Round.
    pub round_id: RoundId,
    /// Piece.
    pub piece_id: PieceId,
    /// Copy (0 = original).
    pub copy_id: CopyId,
    /// First SCN.
    pub start_scn: Scn,
    /// Archived up to (exclusive).
    pub checkpoint_scn: Scn,
    /// Last SCN once frozen.
    pub max_scn: Option<Scn>,
    /// Status.
    pub status: PieceStatus,
    /// `AVAILABLE`, `COPYING`, `INCOMPLETE`.
    pub file_status: String,
    /// ms.
    pub create_time_ms: u64,
    /// ms.
    pub checkpoint_time_ms: u64,
    /// Destination root path (no secrets).
    pub backup_dest: String,
}

/// Backup set status (OceanBase `__all_backup_set_files.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetStatus {
    /// Being written.
    Doing,
    /// Complete.
    Success,
    /// Gave up.
    Failed,
}

impl SetStatus {
    /// View spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SetStatus::Doing => "DOING",
            SetStatus::Success => "SUCCESS",
            SetStatus::Failed => "FAILED",
        }
    }
}

/// A backup set, one row per copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSetRecord {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Set id (cluster-wide, increasing).
    pub backup_set_id: BackupSetId,
    /// Copy (0 = original).
    pub copy_id: CopyId,
    /// Full or incremental.
    pub backup_type: BackupType,
    /// Base of an incremental.
    pub base_set_id: Option<BackupSetId>,
    /// Job that wrote it.
    pub job_id: JobId,
    /// Status.
    pub status: SetStatus,
    /// `COPYING`, `AVAILABLE`, `INCOMPLETE`.
    pub file_status: String,
    /// Log end before the datafile copy.
    pub start_replay_scn: Scn,
    /// Log end after it: the earliest SCN this set restores to.
    pub min_restore_scn: Scn,
    /// Source bytes.
    pub input_bytes: u64,
    /// Stored bytes.
    pub output_bytes: u64,
    /// Datafiles.
    pub file_count: u64,
    /// Parts.
    pub parts: u32,
    /// ms.
    pub start_time_ms: u64,
    /// ms.
    pub end_time_ms: u64,
    /// Destination (with secrets).
    pub dest: TenantDest,
    /// Set manifest checksum.
    pub manifest_checksum: String,
    /// Why it failed.
    pub comment: String,
}

impl BackupSetRecord {
    /// A set restores, validates, copies and serves as a base: it succeeded and is
    /// not being (or was not) deleted.
    pub fn usable(&self) -> bool {
        self.status == SetStatus::Success && self.file_status == FILE_AVAILABLE
    }
}

/// `file_status` of a set or piece that is complete at its destination.
pub const FILE_AVAILABLE: &str = "AVAILABLE";

/// `file_status` of a set that `DELETE BACKUPSET` handed to the cleaner.
pub const FILE_DELETING: &str = "DELETING";

/// `file_status` of a set whose objects the cleaner deleted.
pub const FILE_DELETED: &str = "DELETED";

/// The work tables of the catalog.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkState {
    /// Registered workers.
    pub workers: BTreeMap<WorkerId, WorkerRecord>,
    /// Jobs (live and finished).
    pub jobs: BTreeMap<JobId, JobRecord>,
    /// Tasks.
    pub tasks: BTreeMap<TaskId, TaskRecord>,
    /// Archive rounds by (tenant, round).
    pub rounds: BTreeMap<(TenantId, RoundId), RoundRecord>,
    /// Pieces by (tenant, round, piece, copy).
    pub pieces: BTreeMap<(TenantId, RoundId, PieceId, CopyId), PieceRecord>,
    /// Backup sets by (tenant, set, copy).
    pub sets: BTreeMap<(TenantId, BackupSetId, CopyId), BackupSetRecord>,
    /// Next job id.
    pub next_job_id: u64,
    /// Next task id.
    pub next_task_id: u64,
    /// Continuous archive copies by (tenant, copy_id).
    pub archive_copies: BTreeMap<(TenantId, CopyId), super::ArchiveCopyRecord>,
    /// What ended jobs could not delete, by id.
    pub leftovers: BTreeMap<u64, super::LeftoverRecord>,
    /// Last leftover id handed out.
    pub next_leftover_id: u64,
    /// Backup policies by tenant (sys = cluster).
    pub policies: BTreeMap<TenantId, super::PolicyRecord>,
}

/// Status of the continuous archive copy (OceanBase
/// `__all_backup_backup_log_archive_status_v2.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CopyArchiveStatus {
    /// Following the primary archive.
    Doing,
    /// `STOP BACKUP ARCHIVELOG`: halted at a consistent checkpoint.
    Paused,
}

impl CopyArchiveStatus {
    /// View spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CopyArchiveStatus::Doing => "DOING",
            CopyArchiveStatus::Paused => "PAUSED",
        }
    }
}

/// A tenant's continuous archive copy to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveCopyRecord {
    /// Tenant.
    pub tenant_id: TenantId,
    /// `copy_id` (1–10000: the `backup_backup_dest` parameter).
    pub copy_id: CopyId,
    /// Status.
    pub status: CopyArchiveStatus,
    /// Job of the current (or last) follower task.
    pub job_id: JobId,
    /// Round of the newest copied checkpoint.
    pub round_id: RoundId,
    /// First SCN copied.
    pub start_scn: Scn,
    /// The copy holds everything of `round_id` below this SCN.
    pub checkpoint_scn: Scn,
    /// ms.
    pub start_time_ms: u64,
    /// ms of the last copy checkpoint.
    pub checkpoint_time_ms: u64,
    /// Bytes copied.
    pub output_bytes: u64,
    /// Primary checkpoint → copy checkpoint, ms, at the last checkpoint.
    pub lag_ms: u64,
    /// The copy destination (with secrets).
    pub dest: TenantDest,
    /// Why it is not advancing, if it is not.
    pub comment: String,
}

/// Something a job could not delete; the cleaner retries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftoverRecord {
    /// Id.
    pub id: u64,
    /// Destination.
    pub dest: TenantDest,
    /// What to delete.
    pub item: CleanItem,
    /// Not before this time (ms): a fenced writer may still hold a lease until then.
    pub not_before_ms: u64,
    /// Why it was left.
    pub reason: String,
    /// Cleaner job working on it, if any.
    pub claimed_by: Option<JobId>,
}

/// A backup policy (`backstop ctl policy`): schedules and secondary backup, for one
/// tenant or (tenant id 1) the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Tenant, or `sys` for the cluster.
    pub tenant_id: TenantId,
    /// A full backup at least this often (ms; 0 = never scheduled).
    pub full_interval_ms: u64,
    /// An incremental backup at least this often (ms; 0 = never scheduled).
    pub incremental_interval_ms: u64,
    /// Secondary backup (backup-of-backup) on: completed sets are copied to
    /// `backup_backup_dest` and the archive is copied continuously.
    pub secondary: bool,
    /// ms.
    pub update_time_ms: u64,
}
