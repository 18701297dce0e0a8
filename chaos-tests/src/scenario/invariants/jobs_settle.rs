//! Invariant `jobs_settle`; see `docs/CHAOS.md`.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::{FOLLOWERS, verdict};
use crate::scenario::report::Verdict;
use crate::scenario::{Run, list};

/// Every job ends in a terminal state within a bound after healing (followers —
/// archive rounds and continuous copies — legitimately keep running).
pub(crate) async fn jobs_settle(r: &Run, within: Duration) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let deadline = Instant::now() + within;
        loop {
            let jobs = match m.list_jobs(list()).await {
                Ok(j) => j.into_inner().jobs,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    m = r.meta().await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let open: Vec<String> = jobs
                .iter()
                .filter(|j| !matches!(j.status.as_str(), "FINISH" | "FAILED" | "CANCELED"))
                .filter(|j| !FOLLOWERS.contains(&j.job_type.as_str()))
                .map(|j| format!("{} {} {}", j.job_id, j.job_type, j.status))
                .collect();
            if open.is_empty() {
                return Ok(format!("{} jobs, all ended or following", jobs.len()));
            }
            if Instant::now() >= deadline {
                bail!("still open after {within:?}: {open:?}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    .await;
    verdict("jobs_end_after_healing", result)
}
