//! The listener: one task per connection, `TCP_NODELAY` on (otherwise every query
//! waits ~40 ms for delayed ACKs), shutdown through a cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use backstop_proto::meta::meta_service_client::MetaServiceClient;
use opensrv_mysql::AsyncMysqlIntermediary;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Endpoint;
use tracing::{debug, info, warn};

use crate::errpacket::ErrorRewriter;
use crate::guard::{IdleTimeout, Limits, refuse_too_many};
use crate::limit::PacketLimit;
use crate::shim::Backend;

/// Gateway settings.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// MySQL listen address (default `127.0.0.1:2881`).
    pub listen: SocketAddr,
    /// Meta node addresses, comma-separated (any members; writes are forwarded to the
    /// leader).
    pub meta: String,
    /// What clients are allowed (connections, timeouts, query bounds).
    pub limits: Limits,
    /// TLS to the meta service (a `gateway` certificate; `docs/SECURITY.md`);
    /// `None` for plaintext to a meta node on loopback.
    pub tls: Option<backstop_proto::tls::Tls>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listen address could not be bound.
    #[error("bind {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The meta address is malformed.
    #[error("meta address '{0}': {1}")]
    Meta(String, String),
}

/// A bound gateway, not yet serving.
pub struct Gateway {
    listener: TcpListener,
    meta: MetaServiceClient<tonic::transport::Channel>,
    limits: Limits,
}

impl Gateway {
    /// Binds the listener and prepares the meta client.
    pub async fn bind(config: &GatewayConfig) -> Result<Gateway, GatewayError> {
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| GatewayError::Bind(config.listen, e))?;
        // `meta` may list several members (comma-separated): requests are spread over
        // the reachable ones, so the gateway survives a member going down; any member
        // forwards writes to the leader.
        let mut endpoints = Vec::new();
        for addr in config
            .meta
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            let bad =
                |e: &dyn std::fmt::Display| GatewayError::Meta(config.meta.clone(), e.to_string());
            let scheme = if config.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))
                .map_err(|e| bad(&e))?
                .connect_timeout(Duration::from_secs(2))
                .tcp_nodelay(true);
            if let Some(tls) = &config.tls {
                endpoint = endpoint.tls_config(tls.client()).map_err(|e| bad(&e))?;
            }
            endpoints.push(endpoint);
        }
        let channel = match endpoints.len() {
            0 => {
                return Err(GatewayError::Meta(
                    config.meta.clone(),
                    "no meta address".to_string(),
                ));
            }
            1 => endpoints.remove(0).connect_lazy(),
            _ => tonic::transport::Channel::balance_list(endpoints.into_iter()),
        };
        Ok(Gateway {
            listener,
            limits: config.limits,
            // Catalog lists grow with the catalog (100,000 pieces are ~9 MB): allow
            // large answers instead of tonic's 4 MiB default.
            meta: MetaServiceClient::new(channel)
                .max_decoding_message_size(backstop_proto::MAX_LIST_MESSAGE_BYTES),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` fires. A connection over `max_connections` is
    /// answered with error 1040 and closed; each one served has the login and idle
    /// deadlines of [`Limits`].
    pub async fn serve(self, shutdown: CancellationToken) {
        let ids = Arc::new(AtomicU32::new(1));
        let active = Arc::new(AtomicUsize::new(0));
        let limits = self.limits;
        let mut exposed = false;
        if let Ok(addr) = self.listener.local_addr() {
            info!(%addr, "sql gateway listening (mysql protocol)");
            exposed = !addr.ip().is_loopback();
            if exposed {
                info!(%addr, "non-loopback listener: logins are refused while any user has an empty password");
            }
        }
        let conns = tokio_util::task::TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                a = self.listener.accept() => a,
            };
            let (stream, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Err(e) = stream.set_nodelay(true) {
                debug!(error = %e, "set TCP_NODELAY");
            }
            if active.fetch_add(1, Ordering::AcqRel) >= limits.max_connections {
                active.fetch_sub(1, Ordering::AcqRel);
                warn!(%peer, max_connections = limits.max_connections, "too many connections: refused with 1040");
                conns.spawn(refuse_too_many(stream));
                continue;
            }
            let login_failure = crate::errpacket::LoginFailure::default();
            let logged_in = Arc::new(AtomicBool::new(false));
            let backend = Backend::new(
                self.meta.clone(),
                ids.fetch_add(1, Ordering::Relaxed),
                login_failure.clone(),
                logged_in.clone(),
                limits,
            )
            .exposed(exposed);
            let stop = shutdown.clone();
            let active = active.clone();
            conns.spawn(async move {
                let (r, w) = stream.into_split();
                let r = IdleTimeout::new(PacketLimit::new(r), &limits, logged_in);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    result = AsyncMysqlIntermediary::run_on(backend, r, ErrorRewriter::with_login_failure(w, login_failure)) => {
                        if let Err(e) = result {
                            debug!(%peer, error = %e, "connection ended");
                        }
                    }
                }
                active.fetch_sub(1, Ordering::AcqRel);
            });
        }
        conns.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), conns.wait()).await;
        info!("sql gateway stopped");
    }
}
