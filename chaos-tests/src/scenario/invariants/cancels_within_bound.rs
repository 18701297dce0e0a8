//! Invariant `cancels_within_bound`; see `docs/CHAOS.md`.

use anyhow::bail;

use super::verdict;
use crate::scenario::report::Verdict;
use crate::scenario::{Run, list};

/// Every cancel completed within its bound after the faults healed: jobs ended by
/// `OB_CANCELED` have an end time no later than bound after max(heal, last cancel).
pub(crate) async fn cancels_within_bound(r: &Run, healed_ms: u64) -> Verdict {
    const BOUND_MS: u64 = 10_000;
    let result = async {
        let mut m = r.meta().await?;
        let jobs = m.list_jobs(list()).await?.into_inner().jobs;
        // Fault windows in wall-clock ms.
        let windows: Vec<(u64, u64)> = r
            .faults
            .iter()
            .map(|f| {
                let start = r.started_ms + (f.at_s * 1000.0) as u64;
                (start, start + (f.held_s * 1000.0) as u64)
            })
            .collect();
        let mut checked = 0;
        for j in jobs.iter().filter(|j| j.result == "OB_CANCELED") {
            // The last acknowledged cancel before the job ended.
            let cancel_ms = r
                .ops
                .iter()
                .filter(|o| o.result == "ok" && o.what.contains("CANCEL"))
                .map(|o| o.returned_ms)
                .filter(|t| *t <= j.end_time_ms)
                .max()
                .unwrap_or(j.start_time_ms);
            // The bound runs from the cancel, or from the healing of a fault that was
            // on while the job was ending (it may have held the cancel up), or from
            // the final healing.
            let mut from = cancel_ms;
            for (start, end) in &windows {
                if *start <= j.end_time_ms && *end >= cancel_ms {
                    from = from.max(*end);
                }
            }
            if j.end_time_ms > healed_ms {
                from = from.max(healed_ms);
            }
            // A leader clock that jumped forward stamps times ahead of the wall clock
            // until the wall clock catches up (applied times never go back).
            let ahead = r
                .clock_shifts
                .iter()
                .filter(|(at, shift)| *shift > 0 && *at <= j.end_time_ms)
                .map(|(at, shift)| {
                    (*shift as u64).saturating_sub(cancel_ms.saturating_sub(*at))
                })
                .max()
                .unwrap_or(0);
            if j.end_time_ms > from + BOUND_MS + ahead {
                bail!(
                    "job {} ended {} ms after its cancel (or the healing of a fault holding it up)",
                    j.job_id,
                    j.end_time_ms - from
                );
            }
            checked += 1;
        }
        Ok(format!(
            "{checked} cancelled jobs ended within {BOUND_MS} ms of the cancel or of the fault that held it up"
        ))
    }
    .await;
    verdict("cancels_within_bound", result)
}
