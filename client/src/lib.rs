//! The one client of Backstop's metadata service, used by `ctl` and the workers.
//!
//! A [`MetaClient`] holds the member addresses it was given and routes each call one of
//! two ways ([`Route`]):
//! - `Leader` (workers: `WorkerService` needs the leader's leases): to the leader, found
//!   through the configured addresses first (the one that answers `GetClusterStatus` as
//!   leader, so a client behind a proxy or NAT keeps using the addresses it was given),
//!   otherwise at the address a member names, and remembered;
//! - `Members` (`ctl`): to the configured addresses in order; any member serves reads
//!   and forwards writes, so `ctl --meta NODE status` shows that node.
//!
//! A call is retried, with backoff and jitter (`backon`), while nobody who can answer
//! it does: on `OB_NOT_MASTER` (following the `x-backstop-leader` hint), on transport
//! errors (no `x-backstop-code`), and on the retryable codes `OB_TIMEOUT` /
//! `OB_RPC_FAILED`, until the client's patience runs out. Any other answer of the
//! service is the call's result. Every answer's `x-backstop-leader-time-ms` feeds
//! [`LeaderClock`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use backstop_common::Code;
use backstop_proto::meta::ClusterStatusRequest;
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::worker::worker_service_client::WorkerServiceClient;
use backstop_proto::{
    ERROR_CODE_KEY, LEADER_ADDR_KEY, LEADER_TIME_KEY, LOGIN_PASSWORD_KEY, LOGIN_USER_KEY,
    MAX_LIST_MESSAGE_BYTES,
};
use tokio::sync::Mutex;
use tonic::transport::Channel;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An address that is not `host:port`.
    #[error("bad meta address '{addr}': {reason}")]
    BadAddress {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No address to call.
    #[error("no meta address given")]
    NoAddress,
    /// `OB_TASK_STALE`: the task attempt the call was about is no longer current.
    #[error("{0}")]
    Stale(String),
    /// A login that cannot be sent.
    #[error("{0}")]
    BadLogin(String),
    /// The service answered with an error (its code is in the status's
    /// `x-backstop-code`; `backstop_meta::MetaError::from_status` reads it).
    #[error("{}", .0.message())]
    Refused(tonic::Status),
    /// No leader answered within the client's patience.
    #[error("no meta leader answered within {}s (last: {last})", waited.as_secs())]
    Unavailable {
        /// How long the call kept trying.
        waited: Duration,
        /// The last error seen.
        last: String,
    },
}

pub use backstop_proto::tls::{PeerIdentity, Role, Tls, TlsError, TlsFiles, peer_identity};

/// A lazily connecting channel to `host:port` (500 ms connect timeout,
/// `TCP_NODELAY`): plaintext gRPC without `tls`, else TLS verified against the
/// cluster CA, presenting this process's certificate if it has one. The server's
/// certificate must name the host of `addr` (a DNS name or IP SAN).
pub fn channel(addr: &str, tls: Option<&Tls>) -> Result<Channel, ClientError> {
    let endpoint =
        backstop_proto::tls::endpoint(addr, tls).map_err(|e| ClientError::BadAddress {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    Ok(endpoint.connect_lazy())
}

/// A password login (`ctl --user u@tenant`), sent as request metadata
/// ([`LOGIN_USER_KEY`], [`LOGIN_PASSWORD_KEY`]) on every call.
#[derive(Clone)]
pub struct Login {
    /// `user@tenant` (`root@sys` is the cluster administrator).
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, ***)", self.user)
    }
}

/// How a [`MetaClient`] proves who it is: TLS (with or without a certificate of its
/// own) and an optional password login. The default is plaintext and anonymous,
/// which only a plaintext meta node on loopback accepts.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// TLS material; `None` for plaintext.
    pub tls: Option<Tls>,
    /// A password login sent with every call.
    pub login: Option<Login>,
}

impl Security {
    /// `msg` as a request carrying the login, if any. Errors:
    /// [`ClientError::BadAddress`] never; a login that cannot be sent as metadata
    /// (non-ASCII) is [`ClientError::BadLogin`].
    pub fn request<T>(&self, msg: T) -> Result<tonic::Request<T>, ClientError> {
        let mut req = tonic::Request::new(msg);
        if let Some(login) = &self.login {
            let value = |s: &str| {
                tonic::metadata::MetadataValue::try_from(s).map_err(|_| {
                    ClientError::BadLogin(
                        "user names and passwords sent to the meta service must be visible ASCII"
                            .to_string(),
                    )
                })
            };
            req.metadata_mut()
                .insert(LOGIN_USER_KEY, value(&login.user)?);
            req.metadata_mut()
                .insert(LOGIN_PASSWORD_KEY, value(&login.password)?);
        }
        Ok(req)
    }
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

/// Where a [`MetaClient`] sends its calls; see the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// To the leader (discovered, then remembered).
    Leader,
    /// To the configured addresses, in order.
    Members,
}

/// Client of the meta group; see the crate docs for how a call is routed.
pub struct MetaClient {
    addrs: Vec<String>,
    route: Route,
    leader: Mutex<Option<String>>,
    /// One channel per address, made on first use and kept: a tonic channel
    /// reconnects by itself, so calls share its HTTP/2 connection instead of opening
    /// one each (the gateway makes several calls per `SELECT`).
    channels: std::sync::Mutex<std::collections::HashMap<String, Channel>>,
    /// The leader's clock, from the answers of calls made through this client.
    pub leader_clock: LeaderClock,
    /// How long a call keeps trying while no leader answers (default 10 s).
    pub patience: Duration,
    /// TLS and login of every call.
    pub security: Security,
}

impl MetaClient {
    /// A client over the given member addresses (`host:port`) that calls the leader,
    /// with 10 s of patience.
    pub fn new(addrs: Vec<String>) -> Arc<MetaClient> {
        Self::with(addrs, Route::Leader, Duration::from_secs(10))
    }

    /// A client routing its calls as `route`, trying for `patience` per call
    /// (plaintext, anonymous).
    pub fn with(addrs: Vec<String>, route: Route, patience: Duration) -> Arc<MetaClient> {
        Self::secured(addrs, route, patience, Security::default())
    }

    /// [`MetaClient::with`] over TLS and/or with a login.
    pub fn secured(
        addrs: Vec<String>,
        route: Route,
        patience: Duration,
        security: Security,
    ) -> Arc<MetaClient> {
        Arc::new(MetaClient {
            addrs,
            route,
            leader: Mutex::new(None),
            channels: std::sync::Mutex::new(std::collections::HashMap::new()),
            leader_clock: LeaderClock::default(),
            patience,
            security,
        })
    }

    /// `msg` as a request carrying this client's login, if any.
    pub fn request<T>(&self, msg: T) -> Result<tonic::Request<T>, ClientError> {
        self.security.request(msg)
    }

    /// The configured member addresses.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The kept channel to `addr`, made on first use. Errors:
    /// [`ClientError::BadAddress`].
    fn channel_to(&self, addr: &str) -> Result<Channel, ClientError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ch) = channels.get(addr) {
            return Ok(ch.clone());
        }
        let ch = channel(addr, self.security.tls.as_ref())?;
        // Addresses come from the configuration and from leader hints, which name
        // members: the map stays as small as the group.
        channels.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    /// The leader, preferably through one of the configured addresses; otherwise the
    /// leader address a member names.
    async fn discover(&self) -> Option<String> {
        let mut hint = None;
        for addr in &self.addrs {
            let Ok(ch) = self.channel_to(addr) else {
                continue;
            };
            let mut c = MetaServiceClient::new(ch);
            let Ok(mut req) = self.request(ClusterStatusRequest { with_digest: false }) else {
                continue;
            };
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

    /// The leader's `MetaService` over this client's kept channel, the leader found
    /// afresh (not the remembered one), for callers that make raw calls of their own
    /// and handle each failure themselves (the chaos harness, which kills leaders).
    /// Errors: [`ClientError::Unavailable`] when no member answers or names a leader,
    /// [`ClientError::NoAddress`], [`ClientError::BadAddress`].
    pub async fn leader_service(&self) -> Result<MetaServiceClient<Channel>, ClientError> {
        if self.addrs.is_empty() {
            return Err(ClientError::NoAddress);
        }
        let started = Instant::now();
        let Some(addr) = self.discover().await else {
            return Err(ClientError::Unavailable {
                waited: started.elapsed(),
                last: "no member answered with a leader".to_string(),
            });
        };
        *self.leader.lock().await = Some(addr.clone());
        Ok(MetaServiceClient::new(self.channel_to(&addr)?)
            .max_decoding_message_size(MAX_LIST_MESSAGE_BYTES))
    }

    /// Calls the leader's `MetaService`; `f` may be called once per attempt.
    pub async fn meta<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: FnMut(MetaServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(
            |ch| MetaServiceClient::new(ch).max_decoding_message_size(MAX_LIST_MESSAGE_BYTES),
            f,
        )
        .await
    }

    /// Calls the leader's `WorkerService`; `f` may be called once per attempt.
    pub async fn worker<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: FnMut(WorkerServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call(WorkerServiceClient::new, f).await
    }

    async fn call<S, T, F, Fut>(
        &self,
        make: impl Fn(Channel) -> S,
        mut f: F,
    ) -> Result<T, ClientError>
    where
        F: FnMut(S) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        if self.addrs.is_empty() {
            return Err(ClientError::NoAddress);
        }
        let started = Instant::now();
        let deadline = started + self.patience;
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(25))
            .with_max_delay(Duration::from_millis(50))
            .with_jitter()
            .without_max_times()
            .build();
        let mut last = String::from("no leader found");
        loop {
            let targets: Vec<String> = match self.route {
                Route::Members => self.addrs.clone(),
                Route::Leader => {
                    let mut guard = self.leader.lock().await;
                    if guard.is_none() {
                        *guard = self.discover().await;
                    }
                    guard.clone().into_iter().collect()
                }
            };
            for addr in targets {
                let client = make(self.channel_to(&addr)?);
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
                                return Err(ClientError::Stale(status.message().to_string()));
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
                                if self.route == Route::Leader {
                                    let listed =
                                        hint.as_ref().is_some_and(|h| self.addrs.contains(h));
                                    *self.leader.lock().await = if listed { hint } else { None };
                                }
                                last = format!("{addr}: {}", status.message());
                            }
                            Some(code) if code.is_retryable() => {
                                last = format!("{addr}: {}", status.message());
                            }
                            Some(_) => return Err(ClientError::Refused(status)),
                        }
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Unavailable {
                    waited: now - started,
                    last,
                });
            }
            let delay = delays.next().unwrap_or(Duration::from_millis(50));
            tokio::time::sleep(delay.min(deadline - now)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
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

    #[tokio::test]
    async fn no_address_is_a_clear_error_and_a_dead_cluster_runs_out_of_patience() {
        let c = MetaClient::new(vec![]);
        let r = c
            .meta(|mut m| async move {
                m.get_cluster_status(ClusterStatusRequest { with_digest: false })
                    .await
            })
            .await;
        assert!(matches!(r, Err(ClientError::NoAddress)), "{r:?}");
        // Nothing listens on port 1: the call gives up after its patience, not before.
        let c = MetaClient::with(
            vec!["127.0.0.1:1".into()],
            Route::Members,
            Duration::from_millis(600),
        );
        let started = Instant::now();
        let r = c
            .meta(|mut m| async move {
                m.get_cluster_status(ClusterStatusRequest { with_digest: false })
                    .await
            })
            .await;
        assert!(matches!(r, Err(ClientError::Unavailable { .. })), "{r:?}");
        assert!(started.elapsed() >= Duration::from_millis(600));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
