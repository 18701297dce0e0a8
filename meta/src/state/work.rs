//! Workers, jobs, tasks, archive rounds and pieces, backup sets: records and the
//! deterministic rules that move them. Leases are the leader's soft state; what
//! reaches this module is their outcome (`ExpireTask`), fenced by `(task_id, attempt)`.

use std::collections::BTreeMap;

use backstop_common::option::{DEFAULT_CHECKPOINT_INTERVAL, DestOption, OptionKind};
use backstop_common::params::Param;
use backstop_common::task::{
    ArchiveProgress, Assignment, BackupType, FileEntry, PieceSpec, TaskOutcome, TaskSpec,
    TenantDest,
};
use backstop_common::{Code, JobId, Scn, TenantId};
use serde::{Deserialize, Serialize};

use super::{MetaState, Outcome, Touched};
use crate::command::{Reply, WorkCommand};

/// Attempts a task gets before its job fails.
pub const MAX_ATTEMPTS: u32 = 3;
/// Target bytes per backup copy task.
pub const PART_TARGET_BYTES: u64 = 256 * 1024 * 1024;
/// Most parts one backup set is split into.
pub const MAX_PARTS: usize = 16;

/// A registered worker (an RMAN channel pool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerRecord {
    /// Id chosen by the worker and kept in its data dir.
    pub worker_id: u64,
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
        round_id: u64,
    },
    /// A data backup.
    Backup {
        /// Set written.
        backup_set_id: u64,
        /// Full or incremental.
        backup_type: BackupType,
    },
    /// Validation of a set.
    Validate {
        /// Set checked.
        backup_set_id: u64,
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
        backup_set_id: u64,
        /// `ALL` (type `A`) or one set (`S`).
        all: bool,
        /// `NOT BACKED UP n TIMES`.
        max_backup_times: Option<u64>,
        /// `copy_id` of the copies.
        copy_id: u64,
        /// Copy destination URI (with secrets).
        dest: String,
        /// Sets still to start, (tenant, set), ascending per tenant.
        queue: Vec<(TenantId, u64)>,
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
        copy_id: u64,
        /// Copy destination URI (with secrets).
        dest: String,
        /// Selected pieces (tenant, round, piece).
        pieces: Vec<(TenantId, u64, u64)>,
    },
    /// One follower of the continuous archive copy (`START BACKUP ARCHIVELOG`).
    ArchiveCopy {
        /// `copy_id`.
        copy_id: u64,
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
    pub task_id: u64,
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
    pub worker_id: Option<u64>,
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
    pub round_id: u64,
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
    pub round_id: u64,
    /// Piece.
    pub piece_id: u64,
    /// Copy (0 = original).
    pub copy_id: u64,
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
    pub backup_set_id: u64,
    /// Copy (0 = original).
    pub copy_id: u64,
    /// Full or incremental.
    pub backup_type: BackupType,
    /// Base of an incremental.
    pub base_set_id: Option<u64>,
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
    pub workers: BTreeMap<u64, WorkerRecord>,
    /// Jobs (live and finished).
    pub jobs: BTreeMap<JobId, JobRecord>,
    /// Tasks.
    pub tasks: BTreeMap<u64, TaskRecord>,
    /// Archive rounds by (tenant, round).
    pub rounds: BTreeMap<(TenantId, u64), RoundRecord>,
    /// Pieces by (tenant, round, piece, copy).
    pub pieces: BTreeMap<(TenantId, u64, u64, u64), PieceRecord>,
    /// Backup sets by (tenant, set, copy).
    pub sets: BTreeMap<(TenantId, u64, u64), BackupSetRecord>,
    /// Next job id.
    pub next_job_id: u64,
    /// Next task id.
    pub next_task_id: u64,
    /// Continuous archive copies by (tenant, copy_id).
    pub archive_copies: BTreeMap<(TenantId, u64), super::ArchiveCopyRecord>,
    /// What ended jobs could not delete, by id.
    pub leftovers: BTreeMap<u64, super::LeftoverRecord>,
    /// Last leftover id handed out.
    pub next_leftover_id: u64,
    /// Backup policies by tenant (sys = cluster).
    pub policies: BTreeMap<TenantId, super::PolicyRecord>,
}

fn refuse(code: Code, message: impl Into<String>) -> (Code, String) {
    (code, message.into())
}

fn stale(task_id: u64, attempt: u32) -> (Code, String) {
    refuse(
        Code::TaskStale,
        format!("task {task_id} attempt {attempt} is no longer current"),
    )
}

impl MetaState {
    /// The current (latest) round of a tenant.
    pub fn current_round(&self, tenant: TenantId) -> Option<&RoundRecord> {
        self.work
            .rounds
            .range((tenant, 0)..=(tenant, u64::MAX))
            .next_back()
            .map(|(_, r)| r)
    }

    /// Tasks a worker may take now, oldest first.
    pub fn assignable_tasks(&self, worker_id: u64) -> Vec<u64> {
        let Some(worker) = self.work.workers.get(&worker_id) else {
            return Vec::new();
        };
        self.work
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Pending)
            .filter(|t| self.task_runnable(t.task_id))
            .filter(|t| {
                worker.tenants.is_empty()
                    || self.tenants.get(&t.tenant_id).is_some_and(|ten| {
                        worker
                            .tenants
                            .iter()
                            .any(|n| n.eq_ignore_ascii_case(&ten.name))
                    })
            })
            .map(|t| t.task_id)
            .collect()
    }

    fn tenant_dest(&self, tenant: TenantId) -> Result<(TenantDest, DestOption), (Code, String)> {
        let uri = self.param(Param::BackupDest, Some(tenant));
        if uri.is_empty() {
            return Err(refuse(
                Code::BackupDestNotSet,
                "backup_dest is not set (ALTER SYSTEM SET backup_dest = '…' or ctl param set backup_dest …)",
            ));
        }
        let option = DestOption::parse(
            self.param(Param::BackupDestOption, Some(tenant)),
            OptionKind::BackupDest,
        )
        .map_err(|e| refuse(Code::InvalidArgument, format!("backup_dest_option: {e}")))?;
        let cluster = self
            .cluster
            .as_ref()
            .ok_or_else(|| refuse(Code::NotMaster, "cluster identity not initialized yet"))?;
        let t = self.tenants.get(&tenant).ok_or_else(|| {
            refuse(
                Code::EntryNotExist,
                format!("tenant {tenant} does not exist"),
            )
        })?;
        Ok((
            TenantDest {
                uri: uri.to_string(),
                cluster_name: cluster.cluster_name.clone(),
                cluster_id: cluster.cluster_id,
                incarnation: t.incarnation,
                tenant_id: tenant,
                tenant_name: t.name.clone(),
            },
            option,
        ))
    }

    pub(super) fn new_job(&mut self, tenant_id: TenantId, kind: JobKind, now: u64) -> JobId {
        self.work.next_job_id += 1;
        let job_id = JobId(self.work.next_job_id);
        self.work.jobs.insert(
            job_id,
            JobRecord {
                job_id,
                tenant_id,
                kind,
                status: JobStatus::Doing,
                result: None,
                comment: String::new(),
                start_time_ms: now,
                end_time_ms: 0,
            },
        );
        job_id
    }

    pub(super) fn new_task(
        &mut self,
        job_id: JobId,
        tenant_id: TenantId,
        spec: TaskSpec,
        bytes_total: u64,
        now: u64,
    ) -> u64 {
        self.work.next_task_id += 1;
        let task_id = self.work.next_task_id;
        self.work.tasks.insert(
            task_id,
            TaskRecord {
                task_id,
                job_id,
                tenant_id,
                spec,
                status: TaskStatus::Pending,
                attempt: 0,
                worker_id: None,
                bytes_done: 0,
                bytes_total,
                last_error: String::new(),
                start_time_ms: now,
                update_time_ms: now,
            },
        );
        task_id
    }

    /// Applies one work command.
    pub(crate) fn apply_work(&mut self, cmd: &WorkCommand, now: u64) -> Outcome {
        match cmd {
            WorkCommand::RegisterWorker {
                worker_id,
                addr,
                slots,
                tenants,
            } => {
                let record = WorkerRecord {
                    worker_id: *worker_id,
                    addr: addr.clone(),
                    slots: *slots,
                    tenants: tenants.clone(),
                    register_time_ms: now,
                };
                self.work.workers.insert(*worker_id, record);
                Ok((Reply::Done, vec![Touched::Worker(*worker_id)]))
            }
            WorkCommand::AssignTask { task_id, worker_id } => {
                self.assign(*task_id, *worker_id, now)
            }
            WorkCommand::ExpireTask {
                task_id,
                attempt,
                reason,
            } => {
                let touched = self.task_failed(*task_id, *attempt, reason, true, now)?;
                Ok((Reply::Done, touched))
            }
            WorkCommand::UpdateProgress { entries } => {
                let mut touched = Vec::new();
                for (task_id, attempt, done, total) in entries {
                    if let Some(t) = self.work.tasks.get_mut(task_id)
                        && t.attempt == *attempt
                        && t.status == TaskStatus::Running
                    {
                        t.bytes_done = *done;
                        if *total > 0 {
                            t.bytes_total = *total;
                        }
                        touched.push(Touched::Task(*task_id));
                    }
                }
                Ok((Reply::Done, touched))
            }
            WorkCommand::StartArchive { tenant } => self.start_archive(tenant, now),
            WorkCommand::StopArchive { tenant } => self.stop_archive(tenant, now),
            WorkCommand::ArchiveCheckpoint {
                task_id,
                attempt,
                worker_id,
                progress,
            } => self.archive_checkpoint(*task_id, *attempt, *worker_id, progress, now),
            WorkCommand::StartBackup {
                tenant,
                incremental,
            } => self.start_backup(tenant, *incremental, now),
            WorkCommand::StartValidate {
                tenant,
                backup_set_id,
            } => self.start_validate(tenant, *backup_set_id, now),
            WorkCommand::StartRestore {
                tenant,
                dest,
                to,
                until_scn,
                backup_set,
            } => {
                let tenant_id = self.tenant_id(tenant)?;
                let dest_uri = match dest {
                    Some(d) => d.clone(),
                    None => self.tenant_dest(tenant_id)?.0.uri,
                };
                let name = self
                    .tenants
                    .get(&tenant_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                let job_id = self.new_job(tenant_id, JobKind::Restore { to: to.clone() }, now);
                let spec = TaskSpec::Restore {
                    dest_uri,
                    tenant: name,
                    to: to.clone(),
                    until_scn: *until_scn,
                    backup_set: *backup_set,
                };
                let task_id = self.new_task(job_id, tenant_id, spec, 0, now);
                Ok((
                    Reply::Job(job_id),
                    vec![Touched::Job(job_id), Touched::Task(task_id)],
                ))
            }
            WorkCommand::CompleteTask {
                task_id,
                attempt,
                worker_id,
                outcome,
            } => self.complete_task(*task_id, *attempt, *worker_id, outcome, now),
            WorkCommand::StartSetCopy { selection } => self.start_set_copy(selection, now),
            WorkCommand::StartPieceCopy {
                selection,
                with_active,
            } => self.start_piece_copy(selection, *with_active, now),
            WorkCommand::SetArchiveCopy { enable, tenants } => {
                if *enable {
                    self.start_archive_copy(tenants, now)
                } else {
                    self.stop_archive_copy(tenants, now)
                }
            }
            WorkCommand::CopyCheckpoint {
                task_id,
                attempt,
                worker_id,
                progress,
            } => {
                let task = self.current_task(*task_id, *attempt, *worker_id)?.clone();
                let touched = self.copy_checkpoint(task.tenant_id, &task.spec, progress, now);
                Ok((Reply::Done, touched))
            }
            WorkCommand::CancelJobs { target, tenants } => self.cancel_jobs(target, tenants, now),
            WorkCommand::SuspendBackup { suspend, tenants } => {
                self.suspend_backup(tenants, *suspend, now)
            }
            WorkCommand::CancelAllForce { clean_after_ms } => {
                self.cancel_all_force(*clean_after_ms, now)
            }
            WorkCommand::StartValidateCopy {
                tenant,
                backup_set_id,
                copy_id,
            } => self.start_validate_copy(tenant, *backup_set_id, *copy_id, now),
            WorkCommand::StartCleaner => self.start_cleaner(now),
            WorkCommand::DeleteBackupSet {
                tenants,
                backup_set_id,
                copy_id,
            } => self.delete_backup_set(tenants, *backup_set_id, *copy_id, now),
            WorkCommand::SetPolicy {
                tenant,
                full_interval_ms,
                incremental_interval_ms,
                secondary,
            } => self.set_policy(
                tenant.as_deref(),
                *full_interval_ms,
                *incremental_interval_ms,
                *secondary,
                now,
            ),
            WorkCommand::DropPolicy { tenant } => self.drop_policy(tenant.as_deref(), now),
        }
    }

    fn assign(&mut self, task_id: u64, worker_id: u64, now: u64) -> Outcome {
        if !self.work.workers.contains_key(&worker_id) {
            return Err(refuse(
                Code::EntryNotExist,
                format!("worker {worker_id} is not registered"),
            ));
        }
        let Some(task) = self.work.tasks.get_mut(&task_id) else {
            return Err(refuse(
                Code::EntryNotExist,
                format!("task {task_id} does not exist"),
            ));
        };
        if task.status != TaskStatus::Pending {
            return Err(refuse(
                Code::TaskStale,
                format!("task {task_id} is not pending"),
            ));
        }
        task.status = TaskStatus::Running;
        task.attempt += 1;
        task.worker_id = Some(worker_id);
        task.bytes_done = 0;
        task.update_time_ms = now;
        // An archive task resumes from the round's latest committed state.
        if let TaskSpec::Archive {
            checkpoint_scn,
            piece,
            freezing,
            fresh,
            ..
        } = &mut task.spec
        {
            let round = self.work.rounds.values().find(|r| r.job_id == task.job_id);
            if let Some(round) = round {
                *checkpoint_scn = round.checkpoint_scn;
                // Nothing committed yet (even if NOARCHIVELOG came first): start at
                // the log end, never at SCN 0.
                *fresh = round.checkpoint_time_ms == 0;
                let pieces: Vec<&PieceRecord> = self
                    .work
                    .pieces
                    .range(
                        (round.tenant_id, round.round_id, 0, 0)
                            ..=(round.tenant_id, round.round_id, u64::MAX, u64::MAX),
                    )
                    .map(|(_, p)| p)
                    .filter(|p| p.copy_id == 0)
                    .collect();
                if let Some(active) = pieces.iter().find(|p| p.status == PieceStatus::Active) {
                    *piece = PieceSpec {
                        piece_id: active.piece_id,
                        start_scn: active.start_scn,
                        create_time_ms: active.create_time_ms,
                    };
                }
                *freezing = pieces
                    .iter()
                    .find(|p| p.status == PieceStatus::Freezing)
                    .map(|p| {
                        (
                            PieceSpec {
                                piece_id: p.piece_id,
                                start_scn: p.start_scn,
                                create_time_ms: p.create_time_ms,
                            },
                            p.max_scn.unwrap_or(p.checkpoint_scn),
                        )
                    });
            }
        }
        // A later attempt of an archive task takes over pieces an earlier attempt (dead,
        // or a zombie that may still finish a write) wrote into: scrub them of objects
        // no manifest references once they are frozen.
        let mut scrubs = Vec::new();
        if task.attempt > 1
            && let TaskSpec::Archive { dest, round_id, .. } = &task.spec
        {
            for p in self
                .work
                .pieces
                .range(
                    (task.tenant_id, *round_id, 0, 0)
                        ..=(task.tenant_id, *round_id, u64::MAX, u64::MAX),
                )
                .map(|(_, p)| p)
                .filter(|p| p.copy_id == 0 && p.status != PieceStatus::Frozen)
            {
                scrubs.push((
                    dest.clone(),
                    backstop_common::layout::piece_dir(*round_id, p.piece_id),
                ));
            }
        }
        let assignment = Assignment {
            task_id,
            attempt: task.attempt,
            job_id: task.job_id,
            tenant_id: task.tenant_id,
            spec: task.spec.clone(),
        };
        let mut touched = vec![Touched::Task(task_id)];
        for (dest, dir) in scrubs {
            touched.extend(self.scrub_later(dest, dir, now));
        }
        Ok((Reply::Assigned(Box::new(assignment)), touched))
    }

    /// Checks the fencing token of a report.
    fn current_task(
        &self,
        task_id: u64,
        attempt: u32,
        worker_id: u64,
    ) -> Result<&TaskRecord, (Code, String)> {
        let task = self.work.tasks.get(&task_id).ok_or_else(|| {
            refuse(
                Code::EntryNotExist,
                format!("task {task_id} does not exist"),
            )
        })?;
        if task.status != TaskStatus::Running
            || task.attempt != attempt
            || task.worker_id != Some(worker_id)
        {
            return Err(stale(task_id, attempt));
        }
        Ok(task)
    }

    fn task_failed(
        &mut self,
        task_id: u64,
        attempt: u32,
        reason: &str,
        retryable: bool,
        now: u64,
    ) -> Result<Vec<Touched>, (Code, String)> {
        let Some(task) = self.work.tasks.get_mut(&task_id) else {
            return Err(refuse(
                Code::EntryNotExist,
                format!("task {task_id} does not exist"),
            ));
        };
        if task.status != TaskStatus::Running || task.attempt != attempt {
            return Err(stale(task_id, attempt));
        }
        task.last_error = reason.to_string();
        task.worker_id = None;
        task.update_time_ms = now;
        let job_id = task.job_id;
        let job_status = self.work.jobs.get(&job_id).map(|j| j.status);
        let task = match self.work.tasks.get_mut(&task_id) {
            Some(t) => t,
            None => return Ok(vec![]),
        };
        match job_status {
            // The job is ending: the attempt is over, nothing is retried.
            Some(JobStatus::Canceling) | None => {
                task.status = TaskStatus::Canceled;
                let mut touched = vec![Touched::Task(task_id)];
                touched.extend(self.maybe_job_done(job_id, now));
                return Ok(touched);
            }
            // Suspended: the task waits for RESUME.
            Some(JobStatus::Suspended) => {
                task.status = TaskStatus::Pending;
                return Ok(vec![Touched::Task(task_id)]);
            }
            _ => {}
        }
        if let TaskSpec::Clean { .. } = task.spec
            && (!retryable || task.attempt >= MAX_ATTEMPTS)
        {
            // The destination cannot be cleaned now: everything goes to the cleaner.
            task.status = TaskStatus::Failed;
            let spec = task.spec.clone();
            let failed: Vec<String> = match &spec {
                TaskSpec::Clean { items, .. } => items
                    .iter()
                    .map(|i| format!("{}: {reason}", i.dir))
                    .collect(),
                _ => vec![],
            };
            let mut touched = vec![Touched::Task(task_id)];
            touched.extend(self.cleaned(job_id, &spec, &failed, now));
            return Ok(touched);
        }
        let is_archive = matches!(
            task.spec,
            TaskSpec::Archive { .. } | TaskSpec::ArchiveCopy { .. }
        );
        // The archive task of a live round is retried indefinitely on transient errors:
        // the round shows the error and keeps trying, as an archive must. A permanent
        // error (a source whose layout cannot work, say) gets bounded attempts, then
        // the round goes INTERRUPTED with the reason instead of retrying in silence.
        let retry = if is_archive {
            retryable || task.attempt < MAX_ATTEMPTS
        } else {
            retryable && task.attempt < MAX_ATTEMPTS
        };
        if retry {
            task.status = TaskStatus::Pending;
            let job_id = task.job_id;
            let mut touched = vec![Touched::Task(task_id)];
            if is_archive
                && let Some(round) = self.work.rounds.values_mut().find(|r| r.job_id == job_id)
            {
                // The archive keeps retrying; the round says why it is not advancing.
                round.comment = format!("retrying: {reason}");
                touched.push(Touched::Round(round.tenant_id, round.round_id));
            }
            return Ok(touched);
        }
        task.status = TaskStatus::Failed;
        let mut touched = vec![Touched::Task(task_id)];
        let cleans_up = self.work.jobs.get(&job_id).is_some_and(|j| {
            matches!(
                j.kind,
                JobKind::Backup { .. } | JobKind::SetCopy { .. } | JobKind::PieceCopy { .. }
            )
        });
        if cleans_up {
            touched.extend(self.end_job_early(job_id, "OB_BACKUP_FAILED", reason, now));
        } else {
            touched.extend(self.fail_job(job_id, "OB_BACKUP_FAILED", reason, now));
        }
        Ok(touched)
    }

    fn fail_job(&mut self, job_id: JobId, result: &str, reason: &str, now: u64) -> Vec<Touched> {
        let mut touched = vec![Touched::Job(job_id)];
        let Some(job) = self.work.jobs.get_mut(&job_id) else {
            return touched;
        };
        job.status = JobStatus::Failed;
        job.result = Some(result.to_string());
        job.comment = reason.to_string();
        job.end_time_ms = now;
        let kind = job.kind.clone();
        let tenant = job.tenant_id;
        for t in self.work.tasks.values_mut().filter(|t| t.job_id == job_id) {
            if matches!(t.status, TaskStatus::Pending | TaskStatus::Running) {
                t.status = TaskStatus::Canceled;
                t.update_time_ms = now;
                touched.push(Touched::Task(t.task_id));
            }
        }
        match kind {
            JobKind::Backup { backup_set_id, .. } => {
                if let Some(set) = self.work.sets.get_mut(&(tenant, backup_set_id, 0)) {
                    set.status = SetStatus::Failed;
                    set.file_status = "INCOMPLETE".to_string();
                    set.comment = reason.to_string();
                    set.end_time_ms = now;
                    touched.push(Touched::Set(tenant, backup_set_id, 0));
                }
            }
            JobKind::Archive { round_id } => {
                if let Some(round) = self.work.rounds.get_mut(&(tenant, round_id)) {
                    round.status = RoundStatus::Interrupted;
                    round.comment = reason.to_string();
                    touched.push(Touched::Round(tenant, round_id));
                }
                touched.extend(self.settle_waiting_backups(tenant, now));
            }
            _ => {}
        }
        touched
    }

    pub(super) fn finish_job(&mut self, job_id: JobId, now: u64) -> Touched {
        if let Some(job) = self.work.jobs.get_mut(&job_id) {
            job.status = JobStatus::Finished;
            job.end_time_ms = now;
        }
        Touched::Job(job_id)
    }

    fn start_archive(&mut self, tenant: &str, now: u64) -> Outcome {
        let tenant_id = self.tenant_id(tenant)?;
        if tenant_id == TenantId::SYS {
            return Err(refuse(
                Code::NotSupported,
                "archiving the sys tenant (it has no source)",
            ));
        }
        if let Some(r) = self.current_round(tenant_id)
            && matches!(
                r.status,
                RoundStatus::Beginning | RoundStatus::Doing | RoundStatus::Stopping
            )
        {
            return Err(refuse(
                Code::BackupInProgress,
                format!(
                    "log archive of tenant '{tenant}' is already {}",
                    r.status.as_str()
                ),
            ));
        }
        let (dest, option) = self.tenant_dest(tenant_id)?;
        let source = self
            .tenants
            .get(&tenant_id)
            .map(|t| t.source.clone())
            .unwrap_or_default();
        let round_id = self.current_round(tenant_id).map_or(1, |r| r.round_id + 1);
        let job_id = self.new_job(tenant_id, JobKind::Archive { round_id }, now);
        let switch_ms = option.log_archive_piece_switch_interval.as_millis() as u64;
        let checkpoint_ms = option
            .log_archive_checkpoint_interval
            .unwrap_or(DEFAULT_CHECKPOINT_INTERVAL)
            .as_millis() as u64;
        let piece_id = if switch_ms == 0 { 0 } else { 1 };
        let piece = PieceSpec {
            piece_id,
            start_scn: Scn(0),
            create_time_ms: now,
        };
        let spec = TaskSpec::Archive {
            source,
            dest: dest.clone(),
            round_id,
            checkpoint_scn: Scn(0),
            fresh: true,
            piece: piece.clone(),
            freezing: None,
            piece_switch_interval_ms: switch_ms,
            checkpoint_interval_ms: checkpoint_ms,
        };
        let task_id = self.new_task(job_id, tenant_id, spec, 0, now);
        let root = backstop_common::BackupDest::parse(&dest.uri)
            .map(|d| d.root_path())
            .unwrap_or_default();
        self.work.rounds.insert(
            (tenant_id, round_id),
            RoundRecord {
                tenant_id,
                round_id,
                status: RoundStatus::Beginning,
                job_id,
                start_scn: Scn(0),
                checkpoint_scn: Scn(0),
                start_time_ms: now,
                checkpoint_time_ms: 0,
                dest,
                piece_switch_interval_ms: switch_ms,
                checkpoint_interval_ms: checkpoint_ms,
                input_bytes: 0,
                output_bytes: 0,
                lag_ms: 0,
                comment: String::new(),
            },
        );
        self.work.pieces.insert(
            (tenant_id, round_id, piece_id, 0),
            PieceRecord {
                tenant_id,
                round_id,
                piece_id,
                copy_id: 0,
                start_scn: Scn(0),
                checkpoint_scn: Scn(0),
                max_scn: None,
                status: PieceStatus::Active,
                file_status: "AVAILABLE".to_string(),
                create_time_ms: now,
                checkpoint_time_ms: 0,
                backup_dest: root,
            },
        );
        Ok((
            Reply::Job(job_id),
            vec![
                Touched::Job(job_id),
                Touched::Task(task_id),
                Touched::Round(tenant_id, round_id),
                Touched::Piece(tenant_id, round_id, piece_id, 0),
            ],
        ))
    }

    fn stop_archive(&mut self, tenant: &str, now: u64) -> Outcome {
        let tenant_id = self.tenant_id(tenant)?;
        let Some(round) = self.current_round(tenant_id).cloned() else {
            return Err(refuse(
                Code::NotSupported,
                format!("tenant '{tenant}' has never archived"),
            ));
        };
        match round.status {
            RoundStatus::Stop => return Ok((Reply::Done, vec![])),
            RoundStatus::Stopping => return Ok((Reply::Job(round.job_id), vec![])),
            RoundStatus::Interrupted => {
                // Nothing runs; close the round.
                let mut touched = vec![self.finish_job(round.job_id, now)];
                touched.extend(self.close_round(tenant_id, round.round_id, now));
                return Ok((Reply::Job(round.job_id), touched));
            }
            RoundStatus::Beginning | RoundStatus::Doing => {}
        }
        let still_pending = self
            .work
            .tasks
            .values()
            .any(|t| t.job_id == round.job_id && t.status == TaskStatus::Pending);
        let mut touched = vec![Touched::Round(tenant_id, round.round_id)];
        if still_pending {
            // No worker ever ran it (or none runs it now): stop at the last checkpoint.
            for t in self
                .work
                .tasks
                .values_mut()
                .filter(|t| t.job_id == round.job_id && t.status == TaskStatus::Pending)
            {
                t.status = TaskStatus::Canceled;
                touched.push(Touched::Task(t.task_id));
            }
            touched.push(self.finish_job(round.job_id, now));
            touched.extend(self.close_round(tenant_id, round.round_id, now));
        } else if let Some(r) = self.work.rounds.get_mut(&(tenant_id, round.round_id)) {
            r.status = RoundStatus::Stopping;
        }
        Ok((Reply::Job(round.job_id), touched))
    }

    /// Round to STOP; its pieces that are still active become FROZEN at the checkpoint
    /// (their manifest was rewritten at that checkpoint).
    fn close_round(&mut self, tenant_id: TenantId, round_id: u64, now: u64) -> Vec<Touched> {
        let mut touched = vec![Touched::Round(tenant_id, round_id)];
        if let Some(r) = self.work.rounds.get_mut(&(tenant_id, round_id))
            && r.status != RoundStatus::Interrupted
        {
            r.status = RoundStatus::Stop;
        }
        // Pieces an earlier attempt wrote into were scheduled for a scrub when the later
        // attempt was assigned (`assign`); freezing them here makes the scrub due.
        for p in self
            .work
            .pieces
            .range_mut((tenant_id, round_id, 0, 0)..=(tenant_id, round_id, u64::MAX, u64::MAX))
            .map(|(_, p)| p)
            .filter(|p| p.copy_id == 0 && p.status != PieceStatus::Frozen)
        {
            p.status = PieceStatus::Frozen;
            p.max_scn = Some(p.checkpoint_scn);
            touched.push(Touched::Piece(tenant_id, round_id, p.piece_id, 0));
        }
        // A backup waiting for log this round will now never archive fails.
        touched.extend(self.settle_waiting_backups(tenant_id, now));
        touched
    }

    fn archive_checkpoint(
        &mut self,
        task_id: u64,
        attempt: u32,
        worker_id: u64,
        p: &ArchiveProgress,
        now: u64,
    ) -> Outcome {
        let task = self.current_task(task_id, attempt, worker_id)?;
        let tenant_id = task.tenant_id;
        if !matches!(task.spec, TaskSpec::Archive { round_id, .. } if round_id == p.round_id) {
            return Err(refuse(
                Code::InvalidArgument,
                format!("task {task_id} does not archive round {}", p.round_id),
            ));
        }
        let active = self
            .work
            .pieces
            .get(&(tenant_id, p.round_id, p.piece_id, 0))
            .map(|x| x.status);
        if active != Some(PieceStatus::Active) {
            return Err(refuse(
                Code::InvalidArgument,
                format!("piece {} of round {} is not active", p.piece_id, p.round_id),
            ));
        }
        if let Some(next) = &p.switch_to
            && self
                .work
                .pieces
                .contains_key(&(tenant_id, p.round_id, next.piece_id, 0))
        {
            return Err(refuse(
                Code::InvalidArgument,
                format!(
                    "piece {} of round {} already exists",
                    next.piece_id, p.round_id
                ),
            ));
        }
        let Some(round) = self.work.rounds.get_mut(&(tenant_id, p.round_id)) else {
            return Err(refuse(
                Code::EntryNotExist,
                format!("round {} does not exist", p.round_id),
            ));
        };
        let first = round.checkpoint_time_ms == 0;
        if p.checkpoint_scn < round.checkpoint_scn && !first {
            return Err(refuse(
                Code::InvalidArgument,
                format!(
                    "checkpoint {} is behind the committed {}",
                    p.checkpoint_scn, round.checkpoint_scn
                ),
            ));
        }
        let mut touched = vec![Touched::Round(tenant_id, p.round_id)];
        if first {
            round.start_scn = p.checkpoint_scn;
        }
        if round.status == RoundStatus::Beginning {
            round.status = RoundStatus::Doing;
        }
        round.checkpoint_scn = p.checkpoint_scn;
        round.checkpoint_time_ms = now;
        round.comment.clear();
        round.input_bytes += p.input_bytes;
        round.output_bytes += p.output_bytes;
        round.lag_ms = p.lag_ms;
        let round_start = round.start_scn;
        let round_id = p.round_id;
        let pkey = (tenant_id, round_id, p.piece_id, 0);
        if let Some(piece) = self.work.pieces.get_mut(&pkey) {
            if first {
                piece.start_scn = round_start;
            }
            piece.checkpoint_scn = p.checkpoint_scn;
            piece.checkpoint_time_ms = now;
            touched.push(Touched::Piece(tenant_id, round_id, p.piece_id, 0));
        }
        if let Some(next) = &p.switch_to {
            if let Some(piece) = self.work.pieces.get_mut(&pkey) {
                piece.status = PieceStatus::Freezing;
                piece.max_scn = Some(p.checkpoint_scn);
            }
            let root = self
                .work
                .pieces
                .get(&pkey)
                .map(|x| x.backup_dest.clone())
                .unwrap_or_default();
            self.work.pieces.insert(
                (tenant_id, round_id, next.piece_id, 0),
                PieceRecord {
                    tenant_id,
                    round_id,
                    piece_id: next.piece_id,
                    copy_id: 0,
                    start_scn: p.checkpoint_scn,
                    checkpoint_scn: p.checkpoint_scn,
                    max_scn: None,
                    status: PieceStatus::Active,
                    file_status: "AVAILABLE".to_string(),
                    create_time_ms: now,
                    checkpoint_time_ms: now,
                    backup_dest: root,
                },
            );
            touched.push(Touched::Piece(tenant_id, round_id, next.piece_id, 0));
        }
        if let Some(frozen) = p.frozen_piece
            && let Some(piece) = self.work.pieces.get_mut(&(tenant_id, round_id, frozen, 0))
            && piece.status == PieceStatus::Freezing
        {
            piece.status = PieceStatus::Frozen;
            touched.push(Touched::Piece(tenant_id, round_id, frozen, 0));
        }
        if let Some(t) = self.work.tasks.get_mut(&task_id) {
            t.bytes_done += p.input_bytes;
            t.update_time_ms = now;
            touched.push(Touched::Task(task_id));
        }
        touched.extend(self.settle_waiting_backups(tenant_id, now));
        Ok((Reply::Done, touched))
    }

    fn start_backup(&mut self, tenant: &str, incremental: bool, now: u64) -> Outcome {
        let tenant_id = self.tenant_id(tenant)?;
        let status = self.current_round(tenant_id).map(|r| r.status);
        if status != Some(RoundStatus::Doing) {
            return Err(refuse(
                Code::BackupCanNotStart,
                format!(
                    "log archive is not doing. log archive status : {}.",
                    status.map_or("STOP", |s| s.as_str())
                ),
            ));
        }
        let running = self.work.jobs.values().any(|j| {
            j.tenant_id == tenant_id
                && j.status.is_live()
                && matches!(j.kind, JobKind::Backup { .. })
        });
        if running {
            return Err(refuse(
                Code::BackupInProgress,
                format!("a data backup is already running for tenant {tenant}"),
            ));
        }
        let (dest, _) = self.tenant_dest(tenant_id)?;
        let root = backstop_common::BackupDest::parse(&dest.uri)
            .map(|d| d.root_path())
            .unwrap_or_default();
        let base = self
            .work
            .sets
            .values()
            .filter(|s| s.tenant_id == tenant_id && s.copy_id == 0 && s.usable())
            .filter(|s| {
                backstop_common::BackupDest::parse(&s.dest.uri)
                    .map(|d| d.root_path())
                    .unwrap_or_default()
                    == root
            })
            .max_by_key(|s| s.backup_set_id)
            .map(|s| s.backup_set_id);
        let (backup_type, base_set_id) = match (incremental, base) {
            (false, _) => (BackupType::Full, None),
            (true, Some(b)) => (BackupType::Incremental, Some(b)),
            (true, None) => {
                return Err(refuse(
                    Code::BackupCanNotStart,
                    format!(
                        "tenant '{tenant}' has no successful backup at this backup_dest to base an incremental on; take a full backup first"
                    ),
                ));
            }
        };
        let backup_set_id = self
            .work
            .sets
            .keys()
            .map(|(_, id, _)| *id)
            .max()
            .unwrap_or(0)
            + 1;
        let job_id = self.new_job(
            tenant_id,
            JobKind::Backup {
                backup_set_id,
                backup_type,
            },
            now,
        );
        let t = self.tenants.get(&tenant_id).cloned();
        let source = t.as_ref().map(|t| t.source.clone()).unwrap_or_default();
        let begin_hook = t.as_ref().and_then(|t| t.begin_backup_hook.clone());
        let task_id = self.new_task(
            job_id,
            tenant_id,
            TaskSpec::BackupPrepare { source, begin_hook },
            0,
            now,
        );
        self.work.sets.insert(
            (tenant_id, backup_set_id, 0),
            BackupSetRecord {
                tenant_id,
                backup_set_id,
                copy_id: 0,
                backup_type,
                base_set_id,
                job_id,
                status: SetStatus::Doing,
                file_status: "COPYING".to_string(),
                start_replay_scn: Scn(0),
                min_restore_scn: Scn(0),
                input_bytes: 0,
                output_bytes: 0,
                file_count: 0,
                parts: 0,
                start_time_ms: now,
                end_time_ms: 0,
                dest,
                manifest_checksum: String::new(),
                comment: String::new(),
            },
        );
        Ok((
            Reply::Job(job_id),
            vec![
                Touched::Job(job_id),
                Touched::Task(task_id),
                Touched::Set(tenant_id, backup_set_id, 0),
            ],
        ))
    }

    fn start_validate(&mut self, tenant: &str, backup_set_id: u64, now: u64) -> Outcome {
        self.start_validate_copy(tenant, backup_set_id, 0, now)
    }

    fn start_validate_copy(
        &mut self,
        tenant: &str,
        backup_set_id: u64,
        copy_id: u64,
        now: u64,
    ) -> Outcome {
        let tenant_id = self.tenant_id(tenant)?;
        let Some(set) = self.work.sets.get(&(tenant_id, backup_set_id, copy_id)) else {
            let (code, what) = if copy_id == 0 {
                (Code::EntryNotExist, String::new())
            } else {
                (Code::InvalidBackupSetId, format!(" copy {copy_id}"))
            };
            return Err(refuse(
                code,
                format!("backup set {backup_set_id}{what} of tenant '{tenant}' does not exist"),
            ));
        };
        if set.status != SetStatus::Success {
            return Err(refuse(
                Code::NotSupported,
                format!(
                    "validating backup set {backup_set_id} in status {}",
                    set.status.as_str()
                ),
            ));
        }
        if !set.usable() {
            return Err(refuse(
                Code::InvalidBackupSetId,
                format!(
                    "backup set {backup_set_id} copy {copy_id} is {}",
                    set.file_status
                ),
            ));
        }
        let dest = set.dest.clone();
        let job_id = self.new_job(tenant_id, JobKind::Validate { backup_set_id }, now);
        let task_id = self.new_task(
            job_id,
            tenant_id,
            TaskSpec::ValidateSet {
                dest,
                backup_set_id,
            },
            0,
            now,
        );
        Ok((
            Reply::Job(job_id),
            vec![Touched::Job(job_id), Touched::Task(task_id)],
        ))
    }

    fn complete_task(
        &mut self,
        task_id: u64,
        attempt: u32,
        worker_id: u64,
        outcome: &TaskOutcome,
        now: u64,
    ) -> Outcome {
        let task = self.current_task(task_id, attempt, worker_id)?.clone();
        let mut touched = vec![Touched::Task(task_id)];
        let tenant_id = task.tenant_id;
        let job_status = self.work.jobs.get(&task.job_id).map(|j| j.status);
        let ending = job_status == Some(JobStatus::Canceling);
        let done = |s: &mut MetaState| {
            if let Some(t) = s.work.tasks.get_mut(&task_id) {
                t.status = TaskStatus::Done;
                t.update_time_ms = now;
                t.bytes_done = t.bytes_done.max(t.bytes_total);
            }
        };
        match (outcome, &task.spec) {
            (TaskOutcome::Failed { reason, retryable }, _) => {
                touched = self.task_failed(task_id, attempt, reason, *retryable, now)?;
            }
            (TaskOutcome::Interrupted { reason }, _) => {
                done(self);
                if let Some(t) = self.work.tasks.get_mut(&task_id) {
                    t.status = TaskStatus::Failed;
                    t.last_error = reason.clone();
                }
                touched.extend(self.fail_job(
                    task.job_id,
                    "OB_LOG_ARCHIVE_INTERRUPTED",
                    reason,
                    now,
                ));
            }
            (
                TaskOutcome::ArchiveStopped { checkpoint_scn },
                TaskSpec::Archive { round_id, .. },
            ) => {
                done(self);
                if let Some(r) = self.work.rounds.get_mut(&(tenant_id, *round_id)) {
                    r.checkpoint_scn = (*checkpoint_scn).max(r.checkpoint_scn);
                }
                touched.push(self.finish_job(task.job_id, now));
                touched.extend(self.close_round(tenant_id, *round_id, now));
            }
            (
                TaskOutcome::Prepared {
                    start_replay_scn,
                    files,
                },
                TaskSpec::BackupPrepare { source, .. },
            ) => {
                done(self);
                if !ending {
                    touched.extend(self.plan_copy(&task, source, *start_replay_scn, files, now));
                }
            }
            (
                TaskOutcome::Copied {
                    input_bytes,
                    output_bytes,
                },
                TaskSpec::BackupCopy { backup_set_id, .. },
            ) => {
                done(self);
                if let Some(set) = self.work.sets.get_mut(&(tenant_id, *backup_set_id, 0)) {
                    set.input_bytes += input_bytes;
                    set.output_bytes += output_bytes;
                    touched.push(Touched::Set(tenant_id, *backup_set_id, 0));
                }
                if !ending {
                    touched.extend(self.maybe_finalize(&task, *backup_set_id, now));
                }
            }
            (
                TaskOutcome::Finalized {
                    min_restore_scn,
                    input_bytes,
                    output_bytes,
                    file_count,
                    manifest_checksum,
                },
                TaskSpec::BackupFinalize { backup_set_id, .. },
            ) => {
                done(self);
                if let Some(set) = self.work.sets.get_mut(&(tenant_id, *backup_set_id, 0)) {
                    set.min_restore_scn = *min_restore_scn;
                    set.input_bytes = *input_bytes;
                    set.output_bytes = *output_bytes;
                    set.file_count = *file_count;
                    set.manifest_checksum = manifest_checksum.clone();
                    touched.push(Touched::Set(tenant_id, *backup_set_id, 0));
                }
                // AVAILABLE only once the archive covers the set's range (now, or at a
                // later checkpoint; see `coverage`).
                touched.extend(self.settle_backup(tenant_id, *backup_set_id, now));
            }
            (TaskOutcome::Validated { bad, .. }, TaskSpec::ValidateSet { .. }) => {
                done(self);
                if bad.is_empty() {
                    touched.push(self.finish_job(task.job_id, now));
                } else {
                    let reason = format!("{} bad object(s): {}", bad.len(), bad.join("; "));
                    touched.extend(self.fail_job(task.job_id, "OB_CHECKSUM_ERROR", &reason, now));
                }
            }
            (
                TaskOutcome::Restored {
                    backup_set_id,
                    until_scn,
                    data_bytes,
                },
                TaskSpec::Restore { to, .. },
            ) => {
                done(self);
                touched.push(self.finish_job(task.job_id, now));
                if let Some(job) = self.work.jobs.get_mut(&task.job_id) {
                    job.comment = format!(
                        "restored backup set {backup_set_id} and log up to SCN {until_scn} ({data_bytes} datafile bytes) into {to}"
                    );
                }
            }
            (
                TaskOutcome::SetCopied { output_bytes, .. },
                TaskSpec::CopySet {
                    backup_set_id,
                    copy_id,
                    ..
                },
            ) => {
                done(self);
                touched.extend(self.set_copied(
                    task.job_id,
                    tenant_id,
                    *backup_set_id,
                    *copy_id,
                    *output_bytes,
                    now,
                ));
                // An earlier attempt died copying: its staging files (or a zombie's
                // late writes) go when the cleaner scrubs the finished copy.
                if task.attempt > 1
                    && let Some(set) = self
                        .work
                        .sets
                        .get(&(tenant_id, *backup_set_id, *copy_id))
                        .cloned()
                {
                    touched.extend(self.scrub_later(
                        set.dest.clone(),
                        backstop_common::layout::set_dir(set.backup_set_id, set.backup_type),
                        now,
                    ));
                }
            }
            (
                TaskOutcome::PieceCopied {
                    start_scn,
                    checkpoint_scn,
                    frozen,
                    ..
                },
                spec @ TaskSpec::CopyPiece { .. },
            ) => {
                done(self);
                touched.extend(self.piece_copied(
                    tenant_id,
                    spec,
                    *start_scn,
                    *checkpoint_scn,
                    *frozen,
                    now,
                ));
                if task.attempt > 1
                    && let TaskSpec::CopyPiece {
                        dst,
                        round_id,
                        piece_id,
                        ..
                    } = spec
                {
                    touched.extend(self.scrub_later(
                        dst.clone(),
                        backstop_common::layout::piece_dir(*round_id, *piece_id),
                        now,
                    ));
                }
            }
            (TaskOutcome::ArchiveCopyStopped, TaskSpec::ArchiveCopy { .. }) => {
                done(self);
                touched.extend(self.finalize_job(task.job_id, now));
            }
            (TaskOutcome::Canceled, _) => {
                if let Some(t) = self.work.tasks.get_mut(&task_id) {
                    t.status = TaskStatus::Canceled;
                    t.update_time_ms = now;
                }
            }
            (TaskOutcome::Suspended, _) => {
                if let Some(t) = self.work.tasks.get_mut(&task_id) {
                    t.status = if job_status == Some(JobStatus::Suspended) {
                        TaskStatus::Pending
                    } else {
                        TaskStatus::Canceled
                    };
                    t.worker_id = None;
                    t.update_time_ms = now;
                }
            }
            (TaskOutcome::Cleaned { failed, .. }, spec @ TaskSpec::Clean { .. }) => {
                done(self);
                touched.extend(self.cleaned(task.job_id, spec, failed, now));
            }
            (other, spec) => {
                return Err(refuse(
                    Code::InvalidArgument,
                    format!("outcome {other:?} does not fit a {} task", spec.kind()),
                ));
            }
        }
        if matches!(
            self.work.jobs.get(&task.job_id).map(|j| j.status),
            Some(JobStatus::Canceling | JobStatus::Cleaning)
        ) || matches!(
            task.spec,
            TaskSpec::CopyPiece { .. } | TaskSpec::CopySet { .. }
        ) {
            touched.extend(self.maybe_job_done(task.job_id, now));
        }
        Ok((Reply::Done, touched))
    }

    /// After prepare: split the files into parts, one copy task each.
    fn plan_copy(
        &mut self,
        prepare: &TaskRecord,
        source: &str,
        start_replay_scn: Scn,
        files: &[FileEntry],
        now: u64,
    ) -> Vec<Touched> {
        let mut touched = Vec::new();
        let Some(JobKind::Backup {
            backup_set_id,
            backup_type,
        }) = self.work.jobs.get(&prepare.job_id).map(|j| j.kind.clone())
        else {
            return touched;
        };
        let tenant_id = prepare.tenant_id;
        let Some(set) = self.work.sets.get(&(tenant_id, backup_set_id, 0)).cloned() else {
            return touched;
        };
        let total: u64 = files.iter().map(|f| f.size).sum();
        let compression_level = backstop_common::params::parse_compression(
            self.param(Param::BackupCompression, Some(tenant_id)),
        )
        .unwrap_or(1);
        let parts = ((total / PART_TARGET_BYTES) as usize + 1)
            .clamp(1, MAX_PARTS)
            .min(files.len().max(1));
        // Greedy: largest file to the lightest part.
        let mut sorted: Vec<&FileEntry> = files.iter().collect();
        sorted.sort_by(|a, b| b.size.cmp(&a.size).then(a.path.cmp(&b.path)));
        let mut buckets: Vec<(u64, Vec<FileEntry>)> = vec![(0, Vec::new()); parts];
        for f in sorted {
            if let Some(b) = buckets.iter_mut().min_by_key(|b| b.0) {
                b.0 += f.size;
                b.1.push(f.clone());
            }
        }
        for (part, (bytes, mut part_files)) in buckets.into_iter().enumerate() {
            part_files.sort_by(|a, b| a.path.cmp(&b.path));
            let spec = TaskSpec::BackupCopy {
                source: source.to_string(),
                dest: set.dest.clone(),
                backup_set_id,
                backup_type,
                base_set_id: set.base_set_id,
                part: part as u32,
                files: part_files,
                compression_level,
            };
            let id = self.new_task(prepare.job_id, tenant_id, spec, bytes, now);
            touched.push(Touched::Task(id));
        }
        if let Some(s) = self.work.sets.get_mut(&(tenant_id, backup_set_id, 0)) {
            s.start_replay_scn = start_replay_scn;
            s.parts = parts as u32;
            s.file_count = files.len() as u64;
            touched.push(Touched::Set(tenant_id, backup_set_id, 0));
        }
        touched
    }

    /// After the last copy part: the finalize task.
    fn maybe_finalize(&mut self, copy: &TaskRecord, backup_set_id: u64, now: u64) -> Vec<Touched> {
        let all_done = self
            .work
            .tasks
            .values()
            .filter(|t| t.job_id == copy.job_id && matches!(t.spec, TaskSpec::BackupCopy { .. }))
            .all(|t| t.status == TaskStatus::Done);
        if !all_done {
            return Vec::new();
        }
        let tenant_id = copy.tenant_id;
        let Some(set) = self.work.sets.get(&(tenant_id, backup_set_id, 0)).cloned() else {
            return Vec::new();
        };
        let t = self.tenants.get(&tenant_id).cloned();
        let mut parts: Vec<(u32, u32)> = self
            .work
            .tasks
            .values()
            .filter(|t| t.job_id == copy.job_id)
            .filter_map(|t| match t.spec {
                TaskSpec::BackupCopy { part, .. } => Some((part, t.attempt)),
                _ => None,
            })
            .collect();
        parts.sort();
        let spec = TaskSpec::BackupFinalize {
            source: t.as_ref().map(|t| t.source.clone()).unwrap_or_default(),
            dest: set.dest.clone(),
            backup_set_id,
            backup_type: set.backup_type,
            base_set_id: set.base_set_id,
            parts,
            start_replay_scn: set.start_replay_scn,
            end_hook: t.and_then(|t| t.end_backup_hook),
        };
        let id = self.new_task(copy.job_id, tenant_id, spec, 0, now);
        vec![Touched::Task(id)]
    }
}
