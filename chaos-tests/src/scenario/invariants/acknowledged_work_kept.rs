//! Invariant `acknowledged_work_kept`; see `docs/CHAOS.md`.

use anyhow::bail;
use backstop_proto::meta::*;

use super::verdict;
use crate::scenario::report::Verdict;
use crate::scenario::{IDLE, Run, TENANTS, list};

/// No acknowledged command lost: every acknowledged backup statement left a job, the
/// tenants and parameters set up are all there.
pub(crate) async fn acknowledged_work_kept(r: &Run) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let tenants = m
            .list_tenants(ListTenantsRequest {})
            .await?
            .into_inner()
            .tenants;
        for t in TENANTS.into_iter().chain([IDLE]) {
            if !tenants.iter().any(|x| x.tenant_name == t) {
                bail!("tenant {t} lost");
            }
        }
        let jobs = m.list_jobs(list()).await?.into_inner().jobs;
        let acked = |prefix: &str| {
            r.ops
                .iter()
                .filter(|o| o.result == "ok" && o.what.starts_with(prefix))
                .count()
        };
        let full = acked("ALTER SYSTEM BACKUP DATABASE") + acked("ALTER SYSTEM BACKUP INCREMENTAL");
        let backups = jobs.iter().filter(|j| j.job_type == "BACKUP").count();
        if backups < full {
            bail!("{full} backups acknowledged, {backups} jobs");
        }
        let copies = acked("ALTER SYSTEM BACKUP BACKUPSET");
        let copy_jobs = jobs
            .iter()
            .filter(|j| j.job_type == "BACKUP_BACKUPSET")
            .count();
        if copy_jobs < copies {
            bail!("{copies} backupset copies acknowledged, {copy_jobs} jobs");
        }
        Ok(format!(
            "{full} backups, {copies} set copies acknowledged; {} jobs in the catalog",
            jobs.len()
        ))
    }
    .await;
    verdict("acknowledged_work_kept", result)
}
