//! Invariant `replicas_agree`; see `docs/CHAOS.md`.

use std::time::{Duration, Instant};

use anyhow::bail;
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::*;

use super::verdict;
use crate::scenario::Run;
use crate::scenario::report::Verdict;

/// All meta replicas apply the same state: equal digests at the same applied index.
pub(crate) async fn replicas_agree(r: &Run) -> Verdict {
    let result = async {
        // Archiving keeps committing, so the replicas are polled together, many times:
        // every index that two replicas report must have the same digest, and some
        // index must be reported by all of them.
        let mut clients = Vec::new();
        for addr in &r.cluster.meta_addrs {
            clients.push(MetaServiceClient::new(backstop_client::channel(addr, None)?));
        }
        let n = clients.len();
        let mut seen: std::collections::BTreeMap<u64, Vec<(usize, String)>> =
            std::collections::BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let polls = clients.iter().map(|c| {
                let mut c = c.clone();
                async move {
                    c.get_cluster_status(ClusterStatusRequest { with_digest: true })
                        .await
                        .map(|s| s.into_inner())
                }
            });
            for (i, status) in futures::future::join_all(polls).await.into_iter().enumerate() {
                let s = status?;
                let Some(index) = s.applied_index else {
                    continue;
                };
                let at = seen.entry(index).or_default();
                if let Some((other, digest)) = at.iter().find(|(_, d)| *d != s.state_digest) {
                    bail!(
                        "replicas diverged at index {index}: node {} has digest {}, node {} has {digest}",
                        i + 1,
                        s.state_digest,
                        other + 1
                    );
                }
                if !at.iter().any(|(x, _)| *x == i) {
                    at.push((i, s.state_digest));
                }
            }
            if let Some((index, at)) = seen.iter().rev().find(|(_, at)| at.len() == n) {
                return Ok(format!(
                    "{n} replicas at index {index}, digest {}; {} indexes compared",
                    at[0].1,
                    seen.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "no index reported by all {n} replicas within 60 s (seen: {:?})",
            seen.iter().rev().take(5).collect::<Vec<_>>()
        )
    }
    .await;
    verdict("replicas_agree", result)
}
