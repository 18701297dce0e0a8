//! The listener: one task per connection, `TCP_NODELAY` on (otherwise every query
//! waits ~40 ms for delayed ACKs), shutdown through a cancellation token.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use backstop_client::{MetaClient, Route, Security};
use opensrv_mysql::{AsyncMysqlIntermediary, IntermediaryOptions, plain_run_with_options};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::errpacket::ErrorRewriter;
use crate::guard::{IdleTimeout, Limits, refuse_too_many};
use crate::limit::PacketLimit;
use crate::shim::Backend;
use crate::tls::{FirstPacket, SqlTls, refuse_insecure, switch_to_tls, switchable};

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
    /// TLS on the MySQL port (`mysql --ssl`); required when `listen` is not
    /// loopback.
    pub sql_tls: Option<SqlTls>,
    /// Refuse clients that do not ask for TLS (MySQL's `require_secure_transport`;
    /// error 3159). Needs `sql_tls`.
    pub require_secure_transport: bool,
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
    /// A non-loopback listen address without TLS, or `require_secure_transport`
    /// without a certificate.
    #[error("{0}")]
    Insecure(String),
}

/// Whether the MySQL port may serve as configured: plaintext only on loopback, and
/// `require_secure_transport` only with a certificate. Errors:
/// [`GatewayError::Insecure`], with what to give.
pub fn check_transport(
    listen: SocketAddr,
    has_tls: bool,
    require_secure_transport: bool,
) -> Result<(), GatewayError> {
    if has_tls {
        return Ok(());
    }
    if !listen.ip().is_loopback() {
        return Err(GatewayError::Insecure(format!(
            "refusing to serve SQL on {listen} (not loopback) without TLS: give the MySQL port a certificate (--ssl-cert/--ssl-key; a gateway also takes its --tls-cert/--tls-key; docs/SECURITY.md)"
        )));
    }
    if require_secure_transport {
        return Err(GatewayError::Insecure(
            "--require-secure-transport needs a certificate for the MySQL port (--ssl-cert/--ssl-key)".to_string(),
        ));
    }
    Ok(())
}

/// How long one statement's call keeps trying while no meta member answers (retried
/// with backoff by [`MetaClient`]): under the login deadline and `max_execution_time`
/// defaults (10 s), so a client hears why instead of timing out.
const META_PATIENCE: Duration = Duration::from_secs(5);

/// A bound gateway, not yet serving.
pub struct Gateway {
    listener: TcpListener,
    meta: Arc<MetaClient>,
    limits: Limits,
    sql_tls: Option<SqlTls>,
    require_secure_transport: bool,
}

impl Gateway {
    /// Binds the listener and prepares the meta client.
    /// Errors: [`GatewayError::Insecure`] for a non-loopback `listen` without
    /// `sql_tls` (plaintext is for loopback only) or `require_secure_transport`
    /// without it; [`GatewayError::Bind`]; [`GatewayError::Meta`].
    pub async fn bind(config: &GatewayConfig) -> Result<Gateway, GatewayError> {
        check_transport(
            config.listen,
            config.sql_tls.is_some(),
            config.require_secure_transport,
        )?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| GatewayError::Bind(config.listen, e))?;
        // `meta` may list several members (comma-separated): a call goes to the first
        // that answers, so the gateway survives a member going down; any member
        // forwards writes to the leader. Each address is checked now, so a bad one is
        // an error at start, not at the first query.
        let addrs: Vec<String> = config
            .meta
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if addrs.is_empty() {
            return Err(GatewayError::Meta(
                config.meta.clone(),
                "no meta address".to_string(),
            ));
        }
        for addr in &addrs {
            backstop_client::channel(addr, config.tls.as_ref())
                .map_err(|e| GatewayError::Meta(config.meta.clone(), e.to_string()))?;
        }
        let meta = MetaClient::secured(
            addrs,
            Route::Members,
            META_PATIENCE,
            Security {
                tls: config.tls.clone(),
                login: None,
            },
        );
        Ok(Gateway {
            listener,
            limits: config.limits,
            sql_tls: config.sql_tls.clone(),
            require_secure_transport: config.require_secure_transport,
            meta,
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
            if self.sql_tls.is_none() {
                warn!(%addr, "the MySQL port is plaintext (loopback only); give it a certificate with --ssl-cert/--ssl-key");
            }
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
            let tls = self.sql_tls.clone();
            let require_tls = self.require_secure_transport;
            conns.spawn(async move {
                let conn = Connection {
                    backend,
                    limits,
                    logged_in,
                    login_failure,
                    tls,
                    require_tls,
                };
                tokio::select! {
                    _ = stop.cancelled() => {}
                    result = conn.run(stream) => {
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

/// One client connection, from the greeting to its end.
struct Connection {
    backend: Backend,
    limits: Limits,
    logged_in: Arc<AtomicBool>,
    login_failure: crate::errpacket::LoginFailure,
    tls: Option<SqlTls>,
    require_tls: bool,
}

impl Connection {
    /// The greeting offers TLS when the gateway has a certificate. The client's
    /// first packet is either MySQL's `SSLRequest` (the socket then switches to TLS
    /// and the login continues inside it) or its login. Below TLS the socket has
    /// the login and idle deadlines; above it, the packet-size bound and the
    /// error-number rewriting.
    async fn run(mut self, stream: TcpStream) -> std::io::Result<()> {
        let (r, w) = stream.into_split();
        let raw = FirstPacket::new(IdleTimeout::new(r, &self.limits, self.logged_in));
        let (read, write) = switchable(PacketLimit::new(raw), w);
        let mut w = ErrorRewriter::with_login_failure(write.clone(), self.login_failure);
        let config = self.tls.as_ref().map(|t| t.0.clone());
        let (wants_tls, init) = AsyncMysqlIntermediary::<Backend, _, _>::init_before_ssl(
            &mut self.backend,
            read.clone(),
            &mut w,
            &config,
        )
        .await?;
        match (wants_tls, config) {
            (true, Some(config)) => switch_to_tls(config, &read, &write).await?,
            (true, None) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "the client asked for TLS, which this gateway was not offering",
                ));
            }
            (false, _) if self.require_tls => {
                refuse_insecure(w, init.1).await;
                return Ok(());
            }
            (false, _) => {}
        }
        plain_run_with_options(self.backend, w, IntermediaryOptions::default(), init).await
    }
}
