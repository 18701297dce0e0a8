//! The work commands' router: [`MetaState::apply_work`] hands each command to the module
//! of its job kind or concern, and [`MetaState::complete_task`] hands a worker's report to
//! the kind of the task that made it. The rules themselves live in those modules; see
//! `docs/ARCHITECTURE.md` for the map.
//!
//! A report that is not from the task's current attempt is refused with `TaskStale`
//! (`dispatch`); an outcome that does not fit the task's kind with `InvalidArgument`.

use backstop_common::Code;
use backstop_common::task::{TaskOutcome, TaskSpec};
use backstop_common::{TaskId, WorkerId};

use super::records::{JobStatus, TaskStatus};
use super::{MetaState, Outcome, Touched, refuse};
use crate::command::{Reply, WorkCommand};

impl MetaState {
    /// Applies one work command.
    pub(crate) fn apply_work(&mut self, cmd: &WorkCommand, now: u64) -> Outcome {
        match cmd {
            WorkCommand::RegisterWorker {
                worker_id,
                addr,
                slots,
                tenants,
            } => self.register_worker(*worker_id, addr, *slots, tenants, now),
            WorkCommand::AssignTask { task_id, worker_id } => {
                self.assign(*task_id, *worker_id, now)
            }
            WorkCommand::ExpireTask {
                task_id,
                attempt,
                reason,
            } => {
                // A PostgreSQL backup's hot backup lives in the process whose lease ran
                // out: its copy or finalize cannot finish anywhere else, so the set
                // starts again from its prepare.
                if let Some(task) = self.work.tasks.get(task_id).cloned()
                    && task.attempt == *attempt
                    && task.status == TaskStatus::Running
                    && task.worker_id.is_some()
                    && self.pinned_worker(&task) == task.worker_id.map(|v| v.0).map(WorkerId)
                {
                    let why = format!("{reason}, and that worker held the hot backup");
                    if let Some(done) = self.restart_backup(&task, &why, now) {
                        return Ok((Reply::Done, done?));
                    }
                }
                let touched = self.task_failed(*task_id, *attempt, reason, true, now)?;
                Ok((Reply::Done, touched))
            }
            WorkCommand::UpdateProgress { entries } => {
                Ok((Reply::Done, self.update_progress(entries)))
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
            WorkCommand::StartRestoreV1 { .. } => self.apply_work(&cmd.clone().upgraded(), now),
            WorkCommand::StartRestore {
                tenant,
                dest,
                to,
                until_scn,
                backup_set,
                options,
            } => self.start_restore(
                super::restore::RestoreAsk {
                    tenant,
                    dest: dest.as_deref(),
                    to,
                    until_scn: *until_scn,
                    backup_set: *backup_set,
                    options,
                },
                now,
            ),
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

    /// Routes a worker's report on a task to its job kind. Failures, interruptions,
    /// cancels and suspends end the same way for every kind (`dispatch`, `ending`); the
    /// rest goes to the kind's `*_task_done`, which answers `None` when the outcome does
    /// not fit its task (refused with nothing changed).
    fn complete_task(
        &mut self,
        task_id: TaskId,
        attempt: u32,
        worker_id: WorkerId,
        outcome: &TaskOutcome,
        now: u64,
    ) -> Outcome {
        let task = self.current_task(task_id, attempt, worker_id)?.clone();
        let mut touched = vec![Touched::Task(task_id)];
        let ending =
            self.work.jobs.get(&task.job_id).map(|j| j.status) == Some(JobStatus::Canceling);
        match outcome {
            TaskOutcome::Failed { reason, retryable } => {
                touched = self.task_failed(task_id, attempt, reason, *retryable, now)?;
            }
            TaskOutcome::Interrupted { reason } => {
                touched.extend(self.task_interrupted(&task, reason, now));
            }
            TaskOutcome::Canceled => self.task_canceled(task_id, now),
            TaskOutcome::Restart { reason } => match self.restart_backup(&task, reason, now) {
                Some(done) => touched.extend(done?),
                None => {
                    return Err(refuse(
                        Code::InvalidArgument,
                        format!("a {} task cannot start its job again", task.spec.kind()),
                    ));
                }
            },
            TaskOutcome::Suspended => self.task_suspended(&task, now),
            _ => {
                let done = match &task.spec {
                    TaskSpec::Archive { .. } => self.archive_task_done(&task, outcome, now),
                    TaskSpec::BackupPrepare { .. }
                    | TaskSpec::BackupCopy { .. }
                    | TaskSpec::BackupFinalize { .. } => {
                        self.backup_task_done(&task, outcome, ending, now)
                    }
                    TaskSpec::ValidateSet { .. } => self.validate_task_done(&task, outcome, now),
                    TaskSpec::Restore { .. } | TaskSpec::RestoreV1 { .. } => {
                        self.restore_task_done(&task, outcome, now)
                    }
                    TaskSpec::CopySet { .. } => self.set_copy_task_done(&task, outcome, now),
                    TaskSpec::CopyPiece { .. } => self.piece_copy_task_done(&task, outcome, now),
                    TaskSpec::ArchiveCopy { .. } => {
                        self.archive_copy_task_done(&task, outcome, now)
                    }
                    TaskSpec::Clean { .. } => self.clean_task_done(&task, outcome, now),
                };
                let Some(done) = done else {
                    return Err(refuse(
                        Code::InvalidArgument,
                        format!(
                            "outcome {outcome:?} does not fit a {} task",
                            task.spec.kind()
                        ),
                    ));
                };
                touched.extend(done);
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
}
