//! The worker's client of the metadata service: finds the leader (through any
//! member), follows `OB_NOT_MASTER` redirects, and retries while no leader answers.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop_common::Code;
use backstop_proto::meta::ClusterStatusRequest;
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::worker::worker_service_client::WorkerServiceClient;
use backstop_proto::{ERROR_CODE_KEY, LEADER_ADDR_KEY, LEADER_TIME_KEY};
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint};

use crate::error::{Result, WorkerError};

/// A lazily connecting channel to `host:port`.
pub fn channel(addr: &str) -> Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| WorkerError::Invalid(format!("bad meta address '{addr}': {e}")))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// The meta leader's clock as last seen in an answer: its time (ms since the epoch)
/// and when the request that got it was *sent* here. The leader read its clock after
/// that, so `ms + sent.elapsed()` is never behind the leader's clock now (an upper
/// bound, up to one round trip ahead).
#[derive(Debug, Default)]
pub struct LeaderClock {
    seen: std::sync::Mutex<Option<(u64, Instant)>>,
}

impl LeaderClock {
    /// Records a leader time from an answer to a request sent at `sent`; an older
    /// request's answer never replaces a newer one's.
    pub fn observe(&self, leader_ms: u64, sent: Instant) {
        if leader_ms == 0 {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.is_none_or(|(_, s)| s <= sent) {
            *seen = Some((leader_ms, sent));
        }
    }

    /// The leader's clock now, ms since the epoch, rounded up to never be behind it;
    /// `None` until a leader has sent its time.
    pub fn now_ms(&self) -> Option<u64> {
        let seen = *self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.map(|(ms, sent)| ms + sent.elapsed().as_millis() as u64 + 1)
    }
}

/// Client of the meta group.
pub struct MetaClient {
    addrs: Vec<String>,
    leader: Mutex<Option<String>>,
    /// The leader's clock, from the answers of calls made through this client.
    pub leader_clock: LeaderClock,
    /// How long a call keeps trying while no leader answers.
    pub patience: Duration,
}

impl MetaClient {
    /// A client over the given member addresses.
    pub fn new(addrs: Vec<String>) -> Arc<MetaClient> {
        Arc::new(MetaClient {
            addrs,
            leader: Mutex::new(None),
            leader_clock: LeaderClock::default(),
            patience: Duration::from_secs(10),
        })
    }

    /// The leader, preferably through one of the configured addresses (the one that
    /// answers as the leader), so a worker behind a proxy or NAT keeps using the
    /// addresses it was given; otherwise the leader address a member names.
    async fn discover(&self) -> Option<String> {
        let mut hint = None;
        for addr in &self.addrs {
            let Ok(ch) = channel(addr) else { continue };
            let mut c = MetaServiceClient::new(ch);
            let mut req = tonic::Request::new(ClusterStatusRequest { with_digest: false });
            req.set_timeout(Duration::from_secs(2));
            if let Ok(s) = c.get_cluster_status(req).await {
                let s = s.into_inner();
                if s.leader_id == Some(s.node_id) {
                    return Some(addr.clone());
                }
                if hint.is_none() && !s.leader_addr.is_empty() {
                    hint = Some(s.leader_addr);
                }
            }
        }
        hint
    }

    /// Calls the leader's `WorkerService`, following redirects.
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T>
    where
        F: FnMut(WorkerServiceClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.patience;
        let mut last = String::from("no meta address");
        loop {
            let leader = {
                let mut guard = self.leader.lock().await;
                if guard.is_none() {
                    *guard = self.discover().await;
                }
                guard.clone()
            };
            if let Some(addr) = leader {
                let client = WorkerServiceClient::new(channel(&addr)?);
                let sent = Instant::now();
                match f(client).await {
                    Ok(resp) => {
                        if let Some(ms) = resp
                            .metadata()
                            .get(LEADER_TIME_KEY)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                        {
                            self.leader_clock.observe(ms, sent);
                        }
                        return Ok(resp.into_inner());
                    }
                    Err(status) => {
                        let code = status
                            .metadata()
                            .get(ERROR_CODE_KEY)
                            .and_then(|v| v.to_str().ok())
                            .and_then(Code::from_name);
                        match code {
                            Some(Code::TaskStale) => {
                                return Err(WorkerError::Stale(status.message().to_string()));
                            }
                            Some(Code::NotMaster) | None => {
                                // A configured address may reach the leader where its
                                // own address does not: look again through the list
                                // first, then follow the hint.
                                let hint = status
                                    .metadata()
                                    .get(LEADER_ADDR_KEY)
                                    .and_then(|v| v.to_str().ok())
                                    .filter(|s| !s.is_empty())
                                    .map(str::to_string);
                                let listed = hint.as_ref().is_some_and(|h| self.addrs.contains(h));
                                *self.leader.lock().await = if listed { hint } else { None };
                                last = format!("{addr}: {}", status.message());
                            }
                            Some(code) if code.is_retryable() => {
                                last = format!("{addr}: {}", status.message())
                            }
                            Some(_) => return Err(WorkerError::Meta(status.message().to_string())),
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(WorkerError::Meta(format!(
                    "no meta leader answered: {last}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_leader_clock_is_counted_from_the_send_and_unknown_until_seen() {
        let clock = LeaderClock::default();
        assert_eq!(clock.now_ms(), None);
        clock.observe(0, Instant::now());
        assert_eq!(clock.now_ms(), None, "0 means unknown");
        let sent = Instant::now() - Duration::from_millis(300);
        clock.observe(1_000_000, sent);
        let now = clock.now_ms().unwrap();
        assert!((1_000_300..1_000_400).contains(&now), "{now}");
        // An answer to an older request does not replace a newer one's.
        clock.observe(5_000_000, sent - Duration::from_millis(1));
        assert!(clock.now_ms().unwrap() < 1_000_400);
    }
}
