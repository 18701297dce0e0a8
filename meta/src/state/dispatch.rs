//! Task dispatch: which pending tasks a worker may take, handing one out (a new
//! attempt), the fence every report passes (`(task_id, attempt, worker_id)` must be the
//! current attempt), retries, and what a running task is told by its heartbeat.
//!
//! ```text
//! Pending --AssignTask--> Running (attempt + 1, on one worker)
//! Running --report------> Done | Failed | Canceled       (the job kind decides what next)
//! Running --lease ran out or failed retryably--> Pending again, until MAX_ATTEMPTS;
//!                                                 then the job fails
//! Running --Suspended---> Pending while the job is SUSPEND-ed
//! ```
//!
//! Leases themselves are the leader's soft state (`scheduler`); what reaches the state
//! machine is their outcome, `ExpireTask`, fenced like a report.
//!
//! Refused, with nothing changed: an unknown worker or task (`EntryNotExist`), a task
//! that is not pending, and a report from an attempt that is not current (`TaskStale`).

use backstop_common::task::{Assignment, Control, PieceSpec, TaskSpec};
use backstop_common::{Code, JobId, TenantId};
use backstop_common::{CopyId, PieceId, TaskId, WorkerId};

use super::records::{
    CopyArchiveStatus, JobKind, JobRecord, JobStatus, MAX_ATTEMPTS, PieceRecord, PieceStatus,
    TaskRecord, TaskStatus, WorkerRecord,
};
use super::{MetaState, Outcome, Touched, refuse, stale};
use crate::command::Reply;

/// How long a PostgreSQL backup's copy and finalize tasks wait for the worker that ran
/// its prepare (ms): the worker's own limit for a hot backup no task uses (15 min).
pub const PG_BACKUP_PIN_MS: u64 = 15 * 60 * 1000;

impl MetaState {
    /// Tasks a worker may take now, oldest first.
    pub fn assignable_tasks(&self, worker_id: WorkerId) -> Vec<TaskId> {
        let Some(worker) = self.work.workers.get(&worker_id) else {
            return Vec::new();
        };
        self.work
            .tasks
            .values()
            .filter(|t| t.status == TaskStatus::Pending)
            .filter(|t| self.task_runnable(t.task_id))
            .filter(|t| self.pinned_worker(t).is_none_or(|w| w == worker_id))
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

    /// The worker a task must run on, if any: a PostgreSQL backup's copy and finalize
    /// tasks run where its prepare ran, because that process holds the connection on
    /// which `pg_backup_start` ran (the copies keep it alive, the finalize ends it). A
    /// worker that registered again since then has lost it, and one that ran out of a
    /// lease on such a task starts the set again (`ExpireTask`); either way the pin is
    /// gone. So is a pin older than [`PG_BACKUP_PIN_MS`] (a worker that died between
    /// tasks and never came back): any worker may then take the task, and a finalize
    /// that finds no backup there starts the set again (`restart_backup`).
    pub(super) fn pinned_worker(&self, t: &TaskRecord) -> Option<WorkerId> {
        if !matches!(
            t.spec,
            TaskSpec::BackupCopy { .. } | TaskSpec::BackupFinalize { .. }
        ) {
            return None;
        }
        let source = &self.tenants.get(&t.tenant_id)?.source;
        if !backstop_common::source::is_postgresql(source) {
            return None;
        }
        let prepare = self
            .work
            .tasks
            .values()
            .filter(|p| p.job_id == t.job_id && matches!(p.spec, TaskSpec::BackupPrepare { .. }))
            .max_by_key(|p| p.task_id)?;
        if prepare.status != TaskStatus::Done {
            return None;
        }
        let worker = prepare.worker_id?;
        let w = self.work.workers.get(&worker)?;
        let fresh = self.last_time_ms < prepare.update_time_ms.saturating_add(PG_BACKUP_PIN_MS);
        (w.register_time_ms <= prepare.update_time_ms && fresh).then_some(worker)
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
    ) -> TaskId {
        self.work.next_task_id += 1;
        let task_id = TaskId(self.work.next_task_id);
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

    pub(super) fn assign(&mut self, task_id: TaskId, worker_id: WorkerId, now: u64) -> Outcome {
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
                        (round.tenant_id, round.round_id, PieceId::MIN, CopyId::MIN)
                            ..=(round.tenant_id, round.round_id, PieceId::MAX, CopyId::MAX),
                    )
                    .map(|(_, p)| p)
                    .filter(|p| p.copy_id == CopyId(0))
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
                    (task.tenant_id, *round_id, PieceId::MIN, CopyId::MIN)
                        ..=(task.tenant_id, *round_id, PieceId::MAX, CopyId::MAX),
                )
                .map(|(_, p)| p)
                .filter(|p| p.copy_id == CopyId(0) && p.status != PieceStatus::Frozen)
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
    pub(super) fn current_task(
        &self,
        task_id: TaskId,
        attempt: u32,
        worker_id: WorkerId,
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

    pub(super) fn task_failed(
        &mut self,
        task_id: TaskId,
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

    pub(super) fn running_tasks(&self, job_id: JobId) -> usize {
        self.work
            .tasks
            .values()
            .filter(|t| t.job_id == job_id && t.status == TaskStatus::Running)
            .count()
    }

    /// Whether a pending task may be handed out now.
    pub(crate) fn task_runnable(&self, task_id: TaskId) -> bool {
        let Some(t) = self.work.tasks.get(&task_id) else {
            return false;
        };
        let Some(job) = self.work.jobs.get(&t.job_id) else {
            return false;
        };
        if !matches!(job.status, JobStatus::Doing | JobStatus::Cleaning) {
            return false;
        }
        // One follower per copy destination at a time: a paused one finishes first.
        if let TaskSpec::ArchiveCopy { copy_id, .. } = &t.spec {
            let busy = self.work.tasks.values().any(|o| {
                o.task_id != task_id
                    && o.tenant_id == t.tenant_id
                    && o.status == TaskStatus::Running
                    && matches!(&o.spec, TaskSpec::ArchiveCopy { copy_id: c, .. } if c == copy_id)
            });
            return !busy;
        }
        true
    }

    /// What the job of a running task wants of it now, for the heartbeat: stop
    /// (`Cancel`, `Suspend`, `Stop`), or an archive task to commit a checkpoint at once
    /// (`Checkpoint`); `None` to go on. The leader adds `Abort` for lost leases.
    pub fn task_control(&self, task_id: TaskId) -> Option<Control> {
        let t = self.work.tasks.get(&task_id)?;
        let job = self.work.jobs.get(&t.job_id)?;
        match (&job.kind, job.status) {
            (_, JobStatus::Canceling) => Some(Control::Cancel),
            (_, JobStatus::Suspended) => Some(Control::Suspend),
            // A finished data backup waits for its log: commit a checkpoint now.
            (JobKind::Archive { .. }, JobStatus::Doing) => self
                .backup_waits_for_log(t.tenant_id)
                .map(|_| Control::Checkpoint),
            (JobKind::ArchiveCopy { copy_id }, _) => self
                .work
                .archive_copies
                .get(&(t.tenant_id, *copy_id))
                .is_some_and(|c| c.status == CopyArchiveStatus::Paused || c.job_id != t.job_id)
                .then_some(Control::Stop),
            _ => None,
        }
    }

    /// `RegisterWorker`: records (or refreshes) a worker and its slots.
    pub(super) fn register_worker(
        &mut self,
        worker_id: WorkerId,
        addr: &str,
        slots: u32,
        tenants: &[String],
        now: u64,
    ) -> Outcome {
        let record = WorkerRecord {
            worker_id,
            addr: addr.to_string(),
            slots,
            tenants: tenants.to_vec(),
            register_time_ms: now,
        };
        self.work.workers.insert(worker_id, record);
        Ok((Reply::Done, vec![Touched::Worker(worker_id)]))
    }

    /// `UpdateProgress`: `(task_id, attempt, bytes_done, bytes_total)` of running
    /// attempts; entries of attempts that are no longer current are ignored.
    pub(super) fn update_progress(&mut self, entries: &[(TaskId, u32, u64, u64)]) -> Vec<Touched> {
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
                touched.push(Touched::Task(TaskId(task_id.0)));
            }
        }
        touched
    }

    /// Marks a reported task done: its bytes are all done.
    pub(super) fn mark_done(&mut self, task_id: TaskId, now: u64) {
        if let Some(t) = self.work.tasks.get_mut(&task_id) {
            t.status = TaskStatus::Done;
            t.update_time_ms = now;
            t.bytes_done = t.bytes_done.max(t.bytes_total);
        }
    }

    /// A task that stopped on its job's cancel.
    pub(super) fn task_canceled(&mut self, task_id: TaskId, now: u64) {
        if let Some(t) = self.work.tasks.get_mut(&task_id) {
            t.status = TaskStatus::Canceled;
            t.update_time_ms = now;
        }
    }

    /// A task that stopped on `SUSPEND BACKUP`: pending again while its job is
    /// suspended, cancelled if the job moved on meanwhile.
    pub(super) fn task_suspended(&mut self, task: &TaskRecord, now: u64) {
        let job_status = self.work.jobs.get(&task.job_id).map(|j| j.status);
        if let Some(t) = self.work.tasks.get_mut(&task.task_id) {
            t.status = if job_status == Some(JobStatus::Suspended) {
                TaskStatus::Pending
            } else {
                TaskStatus::Canceled
            };
            t.worker_id = None;
            t.update_time_ms = now;
        }
    }
}

#[cfg(test)]
#[path = "dispatch_tests.rs"]
mod tests;
