//! `ALTER SYSTEM VALIDATE BACKUPSET n [COPY k]`: one task reads every object of the set
//! (or of its copy) and checks its checksum.
//!
//! ```text
//! job DOING --Validated, nothing bad--> FINISHED
//!           --Validated, bad objects--> FAILED (OB_CHECKSUM_ERROR, naming them)
//! ```
//!
//! Refused, with nothing changed: an unknown tenant (`EntryNotExist`), an unknown set or
//! copy (`InvalidBackupSetId`), a set that is not complete (`NotSupported`) and a copy
//! that is not (`InvalidBackupSetId`).

use backstop_common::Code;
use backstop_common::task::{TaskOutcome, TaskSpec};
use backstop_common::{BackupSetId, CopyId};

use super::records::{JobKind, SetStatus, TaskRecord};
use super::{MetaState, Outcome, Touched, refuse};
use crate::command::Reply;

impl MetaState {
    pub(super) fn start_validate(
        &mut self,
        tenant: &str,
        backup_set_id: BackupSetId,
        now: u64,
    ) -> Outcome {
        self.start_validate_copy(tenant, backup_set_id, CopyId(0), now)
    }

    pub(super) fn start_validate_copy(
        &mut self,
        tenant: &str,
        backup_set_id: BackupSetId,
        copy_id: CopyId,
        now: u64,
    ) -> Outcome {
        let tenant_id = self.tenant_id(tenant)?;
        let Some(set) = self.work.sets.get(&(tenant_id, backup_set_id, copy_id)) else {
            let (code, what) = if copy_id == CopyId(0) {
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

    /// A validate task's report: the job finishes if no object was bad, and fails with
    /// `OB_CHECKSUM_ERROR` naming them otherwise.
    pub(super) fn validate_task_done(
        &mut self,
        task: &TaskRecord,
        outcome: &TaskOutcome,
        now: u64,
    ) -> Option<Vec<Touched>> {
        let (TaskOutcome::Validated { bad, .. }, TaskSpec::ValidateSet { .. }) =
            (outcome, &task.spec)
        else {
            return None;
        };
        self.mark_done(task.task_id, now);
        if bad.is_empty() {
            Some(vec![self.finish_job(task.job_id, now)])
        } else {
            let reason = format!("{} bad object(s): {}", bad.len(), bad.join("; "));
            Some(self.fail_job(task.job_id, "OB_CHECKSUM_ERROR", &reason, now))
        }
    }
}
