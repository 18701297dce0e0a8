//! Backup policies (`ctl policy set|drop`, OCP's backup policy): the leader's
//! housekeeping starts full and incremental backups at their intervals, and with
//! `secondary` on, the backup-of-backup of each new set. Dropping a policy, or turning
//! `secondary` off, stops the secondary copies it started (`OB_CANCELED`), as turning
//! off secondary backup in OCP does.

use backstop_common::{Code, JobId, TenantId};

use super::records::{JobKind, JobStatus, PolicyRecord};
use super::{MetaState, Outcome, Touched};
use crate::command::Reply;

impl MetaState {
    pub(super) fn policy_tenant(&self, tenant: Option<&str>) -> Result<TenantId, (Code, String)> {
        match tenant {
            None => Ok(TenantId::SYS),
            Some(n) => self.tenant_id(n),
        }
    }

    /// `backstop ctl policy set`: schedules and secondary backup for a tenant or the
    /// cluster. Turning secondary backup off stops its backup-of-backup work as the
    /// SQL statements do.
    pub(crate) fn set_policy(
        &mut self,
        tenant: Option<&str>,
        full_interval_ms: u64,
        incremental_interval_ms: u64,
        secondary: bool,
        now: u64,
    ) -> Outcome {
        let tenant_id = self.policy_tenant(tenant)?;
        let was_secondary = self
            .work
            .policies
            .get(&tenant_id)
            .is_some_and(|p| p.secondary);
        self.work.policies.insert(
            tenant_id,
            PolicyRecord {
                tenant_id,
                full_interval_ms,
                incremental_interval_ms,
                secondary,
                update_time_ms: now,
            },
        );
        let mut touched = vec![Touched::Policy(tenant_id)];
        if was_secondary && !secondary {
            touched.extend(self.stop_secondary(tenant_id, now)?);
        }
        Ok((Reply::Done, touched))
    }

    /// `backstop ctl policy drop`.
    pub(crate) fn drop_policy(&mut self, tenant: Option<&str>, now: u64) -> Outcome {
        let tenant_id = self.policy_tenant(tenant)?;
        let Some(old) = self.work.policies.remove(&tenant_id) else {
            return Ok((Reply::Dropped(false), vec![]));
        };
        let mut touched = vec![Touched::Policy(tenant_id)];
        if old.secondary {
            touched.extend(self.stop_secondary(tenant_id, now)?);
        }
        Ok((Reply::Dropped(true), touched))
    }

    /// Secondary backup off for a policy's scope: its copy jobs are cancelled
    /// (`CANCEL BACKUP BACKUPSET` / `BACKUPPIECE`) and its archive copy paused
    /// (`STOP BACKUP ARCHIVELOG`).
    pub(super) fn stop_secondary(
        &mut self,
        tenant_id: TenantId,
        now: u64,
    ) -> Result<Vec<Touched>, (Code, String)> {
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
            .filter(|j| matches!(j.kind, JobKind::SetCopy { .. } | JobKind::PieceCopy { .. }))
            .filter(|j| tenant_id == TenantId::SYS || j.tenant_id == tenant_id)
            .map(|j| j.job_id)
            .collect();
        let mut touched = Vec::new();
        for id in jobs {
            touched.extend(self.end_job_early(
                id,
                Code::Canceled.name(),
                "canceled: secondary backup turned off by policy",
                now,
            ));
        }
        let names: Vec<String> = if tenant_id == TenantId::SYS {
            vec![]
        } else {
            self.tenants
                .get(&tenant_id)
                .map(|t| vec![t.name.clone()])
                .unwrap_or_default()
        };
        touched.extend(self.pause_archive_copies(&names, now)?);
        Ok(touched)
    }
}
