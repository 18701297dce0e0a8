//! Invariant `leader_times_monotonic`; see `docs/CHAOS.md`.

use anyhow::bail;

use super::verdict;
use crate::scenario::report::Verdict;
use crate::scenario::{Run, list};

/// Leader-assigned times never go back, whatever the leaders' clocks did: jobs in id
/// order start at non-decreasing times and end no earlier than they start; a round's
/// pieces are created in piece-id order at non-decreasing times.
pub(crate) async fn leader_times_monotonic(r: &Run) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let mut jobs = m.list_jobs(list()).await?.into_inner().jobs;
        jobs.sort_by_key(|j| j.job_id);
        for w in jobs.windows(2) {
            if w[1].start_time_ms < w[0].start_time_ms {
                bail!(
                    "job {} starts at {} ms, before job {} ({} ms)",
                    w[1].job_id,
                    w[1].start_time_ms,
                    w[0].job_id,
                    w[0].start_time_ms
                );
            }
        }
        if let Some(j) = jobs
            .iter()
            .find(|j| j.end_time_ms != 0 && j.end_time_ms < j.start_time_ms)
        {
            bail!(
                "job {} ends at {} ms, before it starts ({} ms)",
                j.job_id,
                j.end_time_ms,
                j.start_time_ms
            );
        }
        let mut pieces = m.list_pieces(list()).await?.into_inner().pieces;
        pieces.retain(|p| p.copy_id == 0);
        pieces.sort_by_key(|p| (p.tenant_id, p.round_id, p.backup_piece_id));
        for w in pieces.windows(2) {
            if (w[0].tenant_id, w[0].round_id) == (w[1].tenant_id, w[1].round_id)
                && w[1].create_time_ms < w[0].create_time_ms
            {
                bail!(
                    "piece {} of tenant {} round {} created at {} ms, before piece {} ({} ms)",
                    w[1].backup_piece_id,
                    w[1].tenant_id,
                    w[1].round_id,
                    w[1].create_time_ms,
                    w[0].backup_piece_id,
                    w[0].create_time_ms
                );
            }
        }
        Ok(format!(
            "{} jobs and {} pieces in order of their leader-assigned times",
            jobs.len(),
            pieces.len()
        ))
    }
    .await;
    verdict("leader_times_monotonic", result)
}
