//! `ctl restore` through the cluster: one restore task on a worker rebuilds the tenant
//! from a destination (the offline `backstop restore` needs no cluster at all).
//!
//! ```text
//! job DOING --Restored--> FINISHED, the comment says which set and SCN
//! ```
//!
//! Refused, with nothing changed: an unknown tenant (`EntryNotExist`) and no destination
//! (`BackupDestNotSet`).

use backstop_common::BackupSetId;
use backstop_common::task::{RestoreOptions, TaskOutcome, TaskSpec};

use super::records::{JobKind, TaskRecord};
use super::{MetaState, Outcome, Touched};
use crate::command::Reply;

/// What `StartRestore` asks for (both shapes of the command).
pub(super) struct RestoreAsk<'a> {
    /// Tenant name.
    pub tenant: &'a str,
    /// Destination; `None`: the tenant's `backup_dest`.
    pub dest: Option<&'a str>,
    /// Directory on the worker's host.
    pub to: &'a str,
    /// Target SCN.
    pub until_scn: Option<u64>,
    /// Set to use.
    pub backup_set: Option<BackupSetId>,
    /// Time target, incarnation, owner, tablespaces.
    pub options: &'a RestoreOptions,
}

impl MetaState {
    /// `StartRestore`: one restore task that rebuilds the tenant's source under `to`
    /// on a worker's host from `dest` (default: the tenant's `backup_dest`). Refused
    /// with `EntryNotExist` for an unknown tenant, `BackupDestNotSet` without a
    /// destination.
    pub(super) fn start_restore(&mut self, ask: RestoreAsk<'_>, now: u64) -> Outcome {
        let RestoreAsk {
            tenant,
            dest,
            to,
            until_scn,
            backup_set,
            options,
        } = ask;
        let tenant_id = self.tenant_id(tenant)?;
        let dest_uri = match dest {
            Some(d) => d.to_string(),
            None => self.tenant_dest(tenant_id)?.0.uri,
        };
        let name = self
            .tenants
            .get(&tenant_id)
            .map(|t| t.name.clone())
            .unwrap_or_default();
        let job_id = self.new_job(tenant_id, JobKind::Restore { to: to.to_string() }, now);
        let spec = TaskSpec::Restore {
            dest_uri,
            tenant: name,
            to: to.to_string(),
            until_scn,
            backup_set,
            options: options.clone(),
        };
        let task_id = self.new_task(job_id, tenant_id, spec, 0, now);
        Ok((
            Reply::Job(job_id),
            vec![Touched::Job(job_id), Touched::Task(task_id)],
        ))
    }

    /// A restore task's report: the job finishes, its comment says what was restored.
    pub(super) fn restore_task_done(
        &mut self,
        task: &TaskRecord,
        outcome: &TaskOutcome,
        now: u64,
    ) -> Option<Vec<Touched>> {
        let (
            TaskOutcome::Restored {
                backup_set_id,
                until_scn,
                data_bytes,
            },
            TaskSpec::Restore { to, .. } | TaskSpec::RestoreV1 { to, .. },
        ) = (outcome, &task.spec)
        else {
            return None;
        };
        self.mark_done(task.task_id, now);
        let touched = vec![self.finish_job(task.job_id, now)];
        if let Some(job) = self.work.jobs.get_mut(&task.job_id) {
            job.comment = format!(
                "restored backup set {backup_set_id} and log up to SCN {until_scn} ({data_bytes} datafile bytes) into {to}"
            );
        }
        Some(touched)
    }
}
