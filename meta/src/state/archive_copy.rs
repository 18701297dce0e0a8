//! The continuous archive copy (`ALTER SYSTEM BACKUP ARCHIVELOG` with a
//! `backup_backup_dest`): one long-running task per tenant and copy follows the
//! archive, piece by piece, and commits copy checkpoints; `STOP` pauses it.
//!
//! ```text
//! copy DOING --STOP / replaced by a new job--> PAUSED (the task is told `stop`)
//! job DOING --ArchiveCopyStopped--> FINISHED
//! ```
//!
//! Refused, with nothing changed: no copy destination, a destination with a running
//! piece copy job, or one that holds piece copies (`NotSupported`).

use backstop_common::params::Param;
use backstop_common::task::{CopyProgress, TaskOutcome, TaskSpec};
use backstop_common::{Code, Scn, TenantId};

use super::dest::{CopyLevel, dest_root};
use super::records::{ArchiveCopyRecord, CopyArchiveStatus, JobKind, TaskRecord, TaskStatus};
use super::{MetaState, Outcome, Touched, refuse};
use crate::command::Reply;

impl MetaState {
    /// `ALTER SYSTEM START BACKUP ARCHIVELOG` (§1.6 a): every user tenant (or the
    /// named ones) gets a follower task copying its archive to `backup_backup_dest`.
    pub(crate) fn start_archive_copy(&mut self, tenants: &[String], now: u64) -> Outcome {
        let uri = self.param(Param::BackupBackupDest, None).to_string();
        if uri.is_empty() {
            return Err(refuse(
                Code::NotSupported,
                "handle backup archive log with empty backup dest is not supported (ALTER SYSTEM SET backup_backup_dest = '…' first)",
            ));
        }
        let root = dest_root(&uri);
        if self.work.jobs.values().any(|j| {
            j.status.is_live()
                && matches!(&j.kind, JobKind::PieceCopy { dest, .. } if dest_root(dest) == root)
        }) {
            return Err(refuse(
                Code::NotSupported,
                "backup archive log if backup backuppiece job exist is not supported (wait for or cancel the piece copy to this destination)",
            ));
        }
        let copy_id = self.copy_id_for(CopyLevel::ClusterParam, &root)?;
        let piece_mode = self
            .work
            .pieces
            .values()
            .any(|p| p.copy_id == copy_id && p.backup_dest == root)
            && !self
                .work
                .archive_copies
                .values()
                .any(|c| c.copy_id == copy_id);
        if piece_mode {
            return Err(refuse(
                Code::NotSupported,
                "backup archive log in piece data directory is not supported (this destination holds piece copies)",
            ));
        }
        let mut touched = Vec::new();
        let mut jobs = Vec::new();
        for t in self.user_tenants(tenants)? {
            let Some(round) = self.current_round(t).cloned() else {
                continue;
            };
            let existing = self.work.archive_copies.get(&(t, copy_id)).cloned();
            if existing
                .as_ref()
                .is_some_and(|c| c.status == CopyArchiveStatus::Doing)
            {
                continue;
            }
            let dst = self.copy_tenant_dest(&round.dest, &uri);
            let job_id = self.new_job(t, JobKind::ArchiveCopy { copy_id }, now);
            let spec = TaskSpec::ArchiveCopy {
                src: round.dest.clone(),
                dst: dst.clone(),
                copy_id,
            };
            let task = self.new_task(job_id, t, spec, 0, now);
            touched.extend([Touched::Job(job_id), Touched::Task(task)]);
            jobs.push(job_id);
            let record = match existing {
                Some(mut c) => {
                    c.status = CopyArchiveStatus::Doing;
                    c.job_id = job_id;
                    c.comment.clear();
                    c
                }
                None => ArchiveCopyRecord {
                    tenant_id: t,
                    copy_id,
                    status: CopyArchiveStatus::Doing,
                    job_id,
                    round_id: round.round_id,
                    start_scn: Scn(0),
                    checkpoint_scn: Scn(0),
                    start_time_ms: now,
                    checkpoint_time_ms: 0,
                    output_bytes: 0,
                    lag_ms: 0,
                    dest: dst,
                    comment: String::new(),
                },
            };
            self.work.archive_copies.insert((t, copy_id), record);
            touched.push(Touched::ArchiveCopy(t, copy_id));
        }
        Ok((Reply::Jobs(jobs), touched))
    }

    /// `ALTER SYSTEM STOP BACKUP ARCHIVELOG`: PAUSED at once; the follower writes its
    /// last consistent checkpoint and ends (heartbeat action `stop`).
    pub(crate) fn stop_archive_copy(&mut self, tenants: &[String], now: u64) -> Outcome {
        let touched = self.pause_archive_copies(tenants, now)?;
        Ok((Reply::Done, touched))
    }

    pub(super) fn pause_archive_copies(
        &mut self,
        tenants: &[String],
        now: u64,
    ) -> Result<Vec<Touched>, (Code, String)> {
        let scope: Vec<TenantId> = if tenants.is_empty() {
            vec![]
        } else {
            self.user_tenants(tenants)?
        };
        let mut touched = Vec::new();
        let mut jobs = Vec::new();
        for c in self.work.archive_copies.values_mut().filter(|c| {
            c.status == CopyArchiveStatus::Doing
                && (scope.is_empty() || scope.contains(&c.tenant_id))
        }) {
            c.status = CopyArchiveStatus::Paused;
            touched.push(Touched::ArchiveCopy(c.tenant_id, c.copy_id));
            jobs.push(c.job_id);
        }
        for job_id in jobs {
            // A follower that never started has nothing to finish.
            let mut pending = false;
            for t in self
                .work
                .tasks
                .values_mut()
                .filter(|t| t.job_id == job_id && t.status == TaskStatus::Pending)
            {
                t.status = TaskStatus::Canceled;
                t.update_time_ms = now;
                touched.push(Touched::Task(t.task_id));
                pending = true;
            }
            if pending || self.running_tasks(job_id) == 0 {
                touched.extend(self.finalize_job(job_id, now));
            }
        }
        Ok(touched)
    }

    /// A checkpoint of the continuous archive copy (fenced by the caller).
    pub(crate) fn copy_checkpoint(
        &mut self,
        tenant: TenantId,
        spec: &TaskSpec,
        p: &CopyProgress,
        now: u64,
    ) -> Vec<Touched> {
        let TaskSpec::ArchiveCopy { dst, copy_id, .. } = spec else {
            return vec![];
        };
        let mut touched = self.upsert_piece_copy(
            tenant,
            p.round_id,
            p.piece_id,
            *copy_id,
            dst,
            p.start_scn,
            p.checkpoint_scn,
            p.frozen,
            now,
        );
        if let Some(c) = self.work.archive_copies.get_mut(&(tenant, *copy_id)) {
            if c.checkpoint_time_ms == 0 {
                c.start_scn = p.start_scn;
            }
            if (p.round_id, p.checkpoint_scn) >= (c.round_id, c.checkpoint_scn) {
                c.round_id = p.round_id;
                c.checkpoint_scn = p.checkpoint_scn;
            }
            c.checkpoint_time_ms = now;
            c.output_bytes += p.bytes;
            c.lag_ms = p.lag_ms;
            c.comment.clear();
            touched.push(Touched::ArchiveCopy(tenant, *copy_id));
        }
        touched
    }

    /// An archive copy task's report: `ArchiveCopyStopped` after the copy was paused or
    /// replaced ends its job.
    pub(super) fn archive_copy_task_done(
        &mut self,
        task: &TaskRecord,
        outcome: &TaskOutcome,
        now: u64,
    ) -> Option<Vec<Touched>> {
        let (TaskOutcome::ArchiveCopyStopped, TaskSpec::ArchiveCopy { .. }) = (outcome, &task.spec)
        else {
            return None;
        };
        self.mark_done(task.task_id, now);
        Some(self.finalize_job(task.job_id, now))
    }
}

#[cfg(test)]
#[path = "archive_copy_tests.rs"]
mod tests;
