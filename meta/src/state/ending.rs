//! How a job ends early and how every job ends: `CANCEL …`, `SUSPEND` / `RESUME BACKUP`,
//! `CANCEL ALL BACKUP FORCE`, failures, the clean phase, and the final state written once
//! (`docs/OPERATIONS.md`, stopping work).
//!
//! ```text
//! live job --CANCEL / failure--> CANCEL: pending tasks cancelled; running attempts are
//!                                told to stop and report (or their lease runs out)
//! CANCEL --no running task-----> CLEAN: one clean task per destination deletes what
//!                                the job left (partial sets and pieces, index first)
//! CLEAN  --clean reported------> final (FINISH with result OB_CANCELED, or FAILED);
//!                                anything that could not be deleted becomes a
//!                                leftover for the cleaner
//! DOING  --SUSPEND-------------> SUSPENDED (running tasks park as pending) --RESUME--> DOING
//! ```
//!
//! A copy that completed before the cancel took effect stays `AVAILABLE`: the race
//! between a cancel and a finishing task always ends with a consistent catalog.
//!
//! Refused, with nothing changed: `CANCEL VALIDATE n` without such a running job
//! (`EntryNotExist`). Cancelled jobs end with `OB_CANCELED`; set copies that hit their
//! limits end with `OB_BACKUP_BACKUP_REACH_*`.

use backstop_common::layout;
use backstop_common::task::{CleanItem, TaskSpec, TenantDest};
use backstop_common::{BackupSetId, CopyId, PieceId, RoundId};
use backstop_common::{Code, JobId, TenantId};

use super::records::{JobKind, JobStatus, RoundStatus, SetStatus, TaskRecord, TaskStatus};
use super::{MetaState, Outcome, Touched, refuse};
use crate::command::{CancelTarget, Reply};

impl MetaState {
    pub(super) fn fail_job(
        &mut self,
        job_id: JobId,
        result: &str,
        reason: &str,
        now: u64,
    ) -> Vec<Touched> {
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
                if let Some(set) = self.work.sets.get_mut(&(tenant, backup_set_id, CopyId(0))) {
                    set.status = SetStatus::Failed;
                    set.file_status = "INCOMPLETE".to_string();
                    set.comment = reason.to_string();
                    set.end_time_ms = now;
                    touched.push(Touched::Set(tenant, backup_set_id, CopyId(0)));
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

    /// Ends a copy job whose work is all done (or continues its end if it is ending).
    pub(crate) fn maybe_job_done(&mut self, job_id: JobId, now: u64) -> Vec<Touched> {
        let Some(job) = self.work.jobs.get(&job_id) else {
            return vec![];
        };
        let status = job.status;
        let queued = match &job.kind {
            JobKind::SetCopy { queue, .. } => !queue.is_empty(),
            _ => false,
        };
        let open = self.work.tasks.values().any(|t| {
            t.job_id == job_id && matches!(t.status, TaskStatus::Pending | TaskStatus::Running)
        });
        match status {
            JobStatus::Doing if !queued && !open => self.finalize_job(job_id, now),
            JobStatus::Canceling if self.running_tasks(job_id) == 0 => {
                self.begin_clean(job_id, now)
            }
            JobStatus::Cleaning if !open => self.finalize_job(job_id, now),
            _ => vec![],
        }
    }

    /// Ends a live job early: cancel (`result` `OB_CANCELED`) or failure. Pending tasks
    /// are cancelled at once; running ones are told to stop (heartbeat action
    /// `cancel`); when none runs any more, the clean phase starts.
    pub(crate) fn end_job_early(
        &mut self,
        job_id: JobId,
        result: &str,
        comment: &str,
        now: u64,
    ) -> Vec<Touched> {
        let Some(job) = self.work.jobs.get_mut(&job_id) else {
            return vec![];
        };
        if !matches!(
            job.status,
            JobStatus::Doing | JobStatus::Schedule | JobStatus::Suspended
        ) {
            return vec![];
        }
        job.status = JobStatus::Canceling;
        job.result = Some(result.to_string());
        job.comment = comment.to_string();
        if let JobKind::SetCopy { queue, .. } = &mut job.kind {
            queue.clear();
        }
        let mut touched = vec![Touched::Job(job_id)];
        for t in self
            .work
            .tasks
            .values_mut()
            .filter(|t| t.job_id == job_id && t.status == TaskStatus::Pending)
        {
            t.status = TaskStatus::Canceled;
            t.update_time_ms = now;
            touched.push(Touched::Task(t.task_id));
        }
        touched.extend(self.maybe_job_done(job_id, now));
        touched
    }

    /// What a job leaves behind if it does not complete, by destination.
    pub(super) fn clean_items(&self, job_id: JobId) -> Vec<(TenantDest, Vec<CleanItem>)> {
        let Some(job) = self.work.jobs.get(&job_id) else {
            return vec![];
        };
        let mut out: Vec<(TenantDest, Vec<CleanItem>)> = Vec::new();
        let mut add =
            |dest: &TenantDest, item: CleanItem| match out.iter_mut().find(|(d, _)| d == dest) {
                Some((_, items)) => items.push(item),
                None => out.push((dest.clone(), vec![item])),
            };
        match &job.kind {
            JobKind::Backup { backup_set_id, .. } => {
                if let Some(s) = self
                    .work
                    .sets
                    .get(&(job.tenant_id, *backup_set_id, CopyId(0)))
                    && s.status != SetStatus::Success
                {
                    add(
                        &s.dest,
                        CleanItem {
                            dir: layout::set_dir(s.backup_set_id, s.backup_type),
                            index: Some(layout::set_index(s.backup_set_id)),
                            keep_referenced: false,
                        },
                    );
                }
            }
            JobKind::SetCopy { copy_id, .. } => {
                for s in self
                    .work
                    .sets
                    .values()
                    .filter(|s| s.job_id == job_id && s.copy_id == *copy_id)
                    .filter(|s| s.status != SetStatus::Success)
                {
                    add(
                        &s.dest,
                        CleanItem {
                            dir: layout::set_dir(s.backup_set_id, s.backup_type),
                            index: Some(layout::set_index(s.backup_set_id)),
                            keep_referenced: false,
                        },
                    );
                }
            }
            JobKind::PieceCopy { .. } => {
                for t in self.work.tasks.values().filter(|t| t.job_id == job_id) {
                    let TaskSpec::CopyPiece {
                        dst,
                        round_id,
                        piece_id,
                        copy_id,
                        ..
                    } = &t.spec
                    else {
                        continue;
                    };
                    if t.status == TaskStatus::Done {
                        continue;
                    }
                    let before = self
                        .work
                        .pieces
                        .get(&(t.tenant_id, *round_id, *piece_id, *copy_id))
                        .is_some_and(|p| p.file_status == "AVAILABLE");
                    add(
                        dst,
                        CleanItem {
                            dir: layout::piece_dir(*round_id, *piece_id),
                            index: (!before).then(|| layout::piece_index(*round_id, *piece_id)),
                            keep_referenced: before,
                        },
                    );
                }
            }
            _ => {}
        }
        out
    }

    /// CANCEL → CLEAN: one clean task per destination, or straight to the end.
    pub(super) fn begin_clean(&mut self, job_id: JobId, now: u64) -> Vec<Touched> {
        let items = self.clean_items(job_id);
        if items.is_empty() {
            return self.finalize_job(job_id, now);
        }
        let tenant = self
            .work
            .jobs
            .get(&job_id)
            .map_or(TenantId::SYS, |j| j.tenant_id);
        let mut touched = vec![Touched::Job(job_id)];
        if let Some(j) = self.work.jobs.get_mut(&job_id) {
            j.status = JobStatus::Cleaning;
        }
        for (dest, items) in items {
            let t = if tenant == TenantId::SYS {
                dest.tenant_id
            } else {
                tenant
            };
            let items = items
                .into_iter()
                .map(|item| self.guard_clean_item(&dest, item))
                .collect();
            let id = self.new_task(job_id, t, TaskSpec::Clean { dest, items }, 0, now);
            touched.push(Touched::Task(id));
        }
        touched
    }

    /// The job's final state: FINISH (result none), CANCELED (`OB_CANCELED`) or
    /// FAILED; rows it was writing become INCOMPLETE; a queued piece job may start.
    pub(crate) fn finalize_job(&mut self, job_id: JobId, now: u64) -> Vec<Touched> {
        let mut touched = vec![Touched::Job(job_id)];
        let Some(job) = self.work.jobs.get_mut(&job_id) else {
            return touched;
        };
        job.status = match job.result.as_deref() {
            None => JobStatus::Finished,
            Some(r) if r == Code::Canceled.name() => JobStatus::Canceled,
            Some(r)
                if r == Code::BackupBackupReachCopyLimit.name()
                    || r == Code::BackupBackupReachMaxBackupTimes.name() =>
            {
                JobStatus::Finished
            }
            Some(_) => JobStatus::Failed,
        };
        job.end_time_ms = now;
        let kind = job.kind.clone();
        let tenant = job.tenant_id;
        let comment = job.comment.clone();
        for t in self.work.tasks.values_mut().filter(|t| {
            t.job_id == job_id && matches!(t.status, TaskStatus::Pending | TaskStatus::Running)
        }) {
            t.status = TaskStatus::Canceled;
            t.update_time_ms = now;
            touched.push(Touched::Task(t.task_id));
        }
        let mut incomplete: Vec<(TenantId, BackupSetId, CopyId)> = Vec::new();
        match &kind {
            JobKind::Backup { backup_set_id, .. } => {
                incomplete.push((tenant, *backup_set_id, CopyId(0)))
            }
            JobKind::SetCopy { .. } => incomplete.extend(
                self.work
                    .sets
                    .values()
                    .filter(|s| s.job_id == job_id && s.copy_id > CopyId(0))
                    .map(|s| (s.tenant_id, s.backup_set_id, s.copy_id)),
            ),
            JobKind::PieceCopy { .. } => {
                let keys: Vec<(TenantId, RoundId, PieceId, CopyId)> = self
                    .work
                    .pieces
                    .iter()
                    .filter(|(_, p)| p.copy_id > CopyId(0) && p.file_status == "COPYING")
                    .filter(|((t, r, pc, c), _)| {
                        self.work.tasks.values().any(|task| {
                            task.job_id == job_id
                                && matches!(&task.spec, TaskSpec::CopyPiece { round_id, piece_id, copy_id, .. }
                                    if task.tenant_id == *t && round_id == r && piece_id == pc && copy_id == c)
                        })
                    })
                    .map(|(k, _)| *k)
                    .collect();
                for k in keys {
                    if let Some(p) = self.work.pieces.get_mut(&k) {
                        p.file_status = "INCOMPLETE".to_string();
                        touched.push(Touched::Piece(k.0, k.1, k.2, k.3));
                    }
                }
            }
            _ => {}
        }
        for key in incomplete {
            if let Some(s) = self.work.sets.get_mut(&key)
                && s.status != SetStatus::Success
            {
                s.status = SetStatus::Failed;
                s.file_status = "INCOMPLETE".to_string();
                s.comment = comment.clone();
                s.end_time_ms = now;
                touched.push(Touched::Set(key.0, key.1, key.2));
            }
        }
        if matches!(kind, JobKind::PieceCopy { .. }) {
            touched.extend(self.promote_piece_job(now));
        }
        touched
    }

    /// `CANCEL BACKUP`, `CANCEL BACKUP BACKUPSET`, `CANCEL BACKUP BACKUPPIECE`,
    /// `CANCEL VALIDATE n`: every live job of that kind (of these tenants) ends with
    /// `OB_CANCELED`. Nothing live: `Reply::Done` (a no-op, not an error).
    pub(crate) fn cancel_jobs(
        &mut self,
        target: &CancelTarget,
        tenants: &[String],
        now: u64,
    ) -> Outcome {
        let scope: Vec<TenantId> = if tenants.is_empty() {
            vec![]
        } else {
            self.user_tenants(tenants)?
        };
        let jobs: Vec<JobId> = self
            .work
            .jobs
            .values()
            .filter(|j| {
                matches!(
                    j.status,
                    JobStatus::Doing | JobStatus::Schedule | JobStatus::Suspended
                )
            })
            .filter(|j| scope.is_empty() || scope.contains(&j.tenant_id))
            .filter(|j| match (target, &j.kind) {
                (CancelTarget::Backup, JobKind::Backup { .. }) => true,
                (CancelTarget::SetCopy, JobKind::SetCopy { .. }) => true,
                (CancelTarget::PieceCopy, JobKind::PieceCopy { .. }) => true,
                (CancelTarget::Validate(id), JobKind::Validate { .. }) => j.job_id.0 == *id,
                _ => false,
            })
            .map(|j| j.job_id)
            .collect();
        if let CancelTarget::Validate(id) = target
            && jobs.is_empty()
        {
            return Err(refuse(
                Code::EntryNotExist,
                format!("no running validation job {id}"),
            ));
        }
        let mut touched = Vec::new();
        for id in &jobs {
            touched.extend(self.end_job_early(*id, Code::Canceled.name(), "canceled by user", now));
        }
        Ok((Reply::Jobs(jobs), touched))
    }

    /// `SUSPEND BACKUP` / `RESUME BACKUP` for data backups: a suspended job keeps
    /// its finished parts; its running parts stop and run again on resume.
    pub(crate) fn suspend_backup(
        &mut self,
        tenants: &[String],
        suspend: bool,
        now: u64,
    ) -> Outcome {
        let scope: Vec<TenantId> = if tenants.is_empty() {
            vec![]
        } else {
            self.user_tenants(tenants)?
        };
        let (from, to) = if suspend {
            (JobStatus::Doing, JobStatus::Suspended)
        } else {
            (JobStatus::Suspended, JobStatus::Doing)
        };
        let mut touched = Vec::new();
        let mut jobs = Vec::new();
        for j in self.work.jobs.values_mut().filter(|j| {
            j.status == from
                && matches!(j.kind, JobKind::Backup { .. })
                && (scope.is_empty() || scope.contains(&j.tenant_id))
        }) {
            j.status = to;
            touched.push(Touched::Job(j.job_id));
            jobs.push(j.job_id);
        }
        let _ = now;
        Ok((Reply::Jobs(jobs), touched))
    }

    /// `CANCEL ALL BACKUP FORCE`: every backup-related job ends now, whatever its
    /// tasks are doing (they are fenced: their attempts are no longer current);
    /// what they may have left is recorded for the cleaner, which runs it once every
    /// fenced attempt's lease has run out (`clean_after_ms`).
    pub(crate) fn cancel_all_force(&mut self, clean_after_ms: u64, now: u64) -> Outcome {
        let jobs: Vec<JobId> = self
            .work
            .jobs
            .values()
            .filter(|j| j.status.is_live())
            .filter(|j| {
                matches!(
                    j.kind,
                    JobKind::Backup { .. }
                        | JobKind::SetCopy { .. }
                        | JobKind::PieceCopy { .. }
                        | JobKind::Validate { .. }
                        | JobKind::Cleaner
                )
            })
            .map(|j| j.job_id)
            .collect();
        let mut touched = Vec::new();
        for id in &jobs {
            let running_clean =
                self.work.jobs.get(id).map(|j| j.status) == Some(JobStatus::Cleaning);
            let mut items = self.clean_items(*id);
            if running_clean {
                // The clean tasks themselves are abandoned: their items go to the cleaner.
                items = self
                    .work
                    .tasks
                    .values()
                    .filter(|t| t.job_id == *id && !matches!(t.status, TaskStatus::Done))
                    .filter_map(|t| match &t.spec {
                        TaskSpec::Clean { dest, items } => Some((dest.clone(), items.clone())),
                        _ => None,
                    })
                    .collect();
            }
            for (dest, items) in items {
                for item in items {
                    touched.extend(self.add_leftover(
                        dest.clone(),
                        item,
                        now + clean_after_ms,
                        "CANCEL ALL BACKUP FORCE",
                    ));
                }
            }
            if let Some(j) = self.work.jobs.get_mut(id) {
                if j.result.is_none() || !running_clean {
                    j.result = Some(Code::Canceled.name().to_string());
                }
                j.comment = "canceled by CANCEL ALL BACKUP FORCE".to_string();
            }
            touched.extend(self.finalize_job(*id, now));
        }
        // Leftovers claimed by a cleaner job that was just cancelled go back to the pool.
        for l in self.work.leftovers.values_mut() {
            if l.claimed_by.is_some_and(|j| jobs.contains(&j)) {
                l.claimed_by = None;
                l.not_before_ms = l.not_before_ms.max(now + clean_after_ms);
                touched.push(Touched::Leftover(l.id));
            }
        }
        touched.extend(self.pause_archive_copies(&[], now)?);
        Ok((Reply::Jobs(jobs), touched))
    }

    /// A task whose source broke under it (`OB_LOG_ARCHIVE_INTERRUPTED`): the task
    /// fails and so does its job.
    pub(super) fn task_interrupted(
        &mut self,
        task: &TaskRecord,
        reason: &str,
        now: u64,
    ) -> Vec<Touched> {
        self.mark_done(task.task_id, now);
        if let Some(t) = self.work.tasks.get_mut(&task.task_id) {
            t.status = TaskStatus::Failed;
            t.last_error = reason.to_string();
        }
        self.fail_job(task.job_id, "OB_LOG_ARCHIVE_INTERRUPTED", reason, now)
    }
}

#[cfg(test)]
#[path = "ending_tests.rs"]
mod tests;
