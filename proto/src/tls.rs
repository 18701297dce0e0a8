//! TLS between Backstop's processes: the PEM files one process presents, the tonic
//! configs built from them, and the role a peer's certificate names.
//!
//! Every certificate of a cluster is signed by the cluster's CA (`backstop cert init`,
//! or the operator's own PKI). A certificate names its holder's **role** in its
//! subject's organizational unit (`OU=meta|worker|gateway|client`) and its holder in
//! the common name (a node or host name; `user@tenant` for a `client` certificate).
//! Servers ask for a client certificate but do not require one at the TLS layer, so
//! that `ctl` can log in with a password instead; the services then decide per call
//! (`backstop_meta`'s `auth` module).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// Why TLS could not be set up, or a peer's certificate names no role.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("read {what} {}: {source}", path.display())]
    Read {
        /// `CA certificate`, `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("{}: {reason}", path.display())]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A peer certificate that is not X.509 or names no Backstop role.
    #[error("peer certificate: {0}")]
    Peer(String),
}

/// The PEM files of one process: the cluster CA that signs its peers, and its own
/// certificate and private key. In TOML: `[tls] ca = "…", cert = "…", key = "…"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The cluster CA certificate (PEM) every peer's certificate must chain to.
    pub ca: PathBuf,
    /// This process's certificate (PEM), signed by the CA. `None` for a `ctl` that
    /// logs in with a password.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// This process's private key (PEM, PKCS#8), required with `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// Loaded TLS material of one process.
#[derive(Clone)]
pub struct Tls {
    ca: Certificate,
    identity: Option<Identity>,
    cert_path: Option<PathBuf>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert_path)
            .finish_non_exhaustive()
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })?;
    if !String::from_utf8_lossy(&bytes).contains("-----BEGIN ") {
        return Err(TlsError::Bad {
            path: path.to_path_buf(),
            reason: format!("not a PEM {what}"),
        });
    }
    Ok(bytes)
}

impl Tls {
    /// Reads the files. Errors: [`TlsError::Read`] for a missing or unreadable
    /// file, [`TlsError::Bad`] for a file that is not PEM, a certificate without its
    /// key (or a key without its certificate), or a certificate that names no role.
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let ca = Certificate::from_pem(read("CA certificate", &files.ca)?);
        let identity = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => {
                let pem = read("certificate", cert)?;
                let der = first_der(&pem).ok_or_else(|| TlsError::Bad {
                    path: cert.clone(),
                    reason: "no certificate in the file".to_string(),
                })?;
                peer_identity(&der).map_err(|e| TlsError::Bad {
                    path: cert.clone(),
                    reason: e.to_string(),
                })?;
                Some(Identity::from_pem(pem, read("private key", key)?))
            }
            (None, None) => None,
            (Some(p), None) | (None, Some(p)) => {
                return Err(TlsError::Bad {
                    path: p.clone(),
                    reason: "a certificate needs its private key and a key its certificate (give both --tls-cert and --tls-key)".to_string(),
                });
            }
        };
        Ok(Tls {
            ca,
            identity,
            cert_path: files.cert.clone(),
        })
    }

    /// Whether this process presents a certificate of its own.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some()
    }

    /// The client side: trust the cluster CA only, present this process's
    /// certificate if it has one, give up a handshake after 5 s.
    pub fn client(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .timeout(Duration::from_secs(5));
        match &self.identity {
            Some(id) => config.identity(id.clone()),
            None => config,
        }
    }

    /// The server side: present this process's certificate, verify client
    /// certificates against the cluster CA, and let a client without one through to
    /// the per-call checks (password logins). Errors: [`TlsError::Bad`] when this
    /// process has no certificate (a server needs one).
    pub fn server(&self) -> Result<ServerTlsConfig, TlsError> {
        let Some(identity) = &self.identity else {
            return Err(TlsError::Bad {
                path: PathBuf::from("--tls-cert"),
                reason: "a TLS server needs its own certificate and key".to_string(),
            });
        };
        Ok(ServerTlsConfig::new()
            .identity(identity.clone())
            .client_ca_root(self.ca.clone())
            .client_auth_optional(true)
            .timeout(Duration::from_secs(5)))
    }
}

/// The gRPC endpoint of a Backstop process at `addr` (`host:port`): `https` with
/// this process's [`Tls::client`] config when `tls` is given, else plaintext `http`;
/// 500 ms to connect, `TCP_NODELAY` on (callers add their own timeouts and
/// keep-alives). Errors: tonic's, for an address that is not `host:port` or a TLS
/// config it cannot use.
pub fn endpoint(addr: &str, tls: Option<&Tls>) -> Result<Endpoint, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    match tls {
        Some(tls) => endpoint.tls_config(tls.client()),
        None => Ok(endpoint),
    }
}

/// The DER bytes of the first certificate in a PEM file.
fn first_der(pem: &[u8]) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    Some(pem.contents)
}

/// What a Backstop certificate's `OU` says its holder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// A meta node (`OU=meta`): may send Raft messages and forwarded commands.
    Meta,
    /// A worker (`OU=worker`): may call `WorkerService`.
    Worker,
    /// A SQL gateway (`OU=gateway`): calls `MetaService` on behalf of the MySQL users
    /// it has authenticated, and checks their privileges itself.
    Gateway,
    /// A person or script (`OU=client`, `CN=user@tenant`): `MetaService` with that
    /// user's privileges.
    Client,
}

impl Role {
    /// The `OU` value.
    pub fn name(self) -> &'static str {
        match self {
            Role::Meta => "meta",
            Role::Worker => "worker",
            Role::Gateway => "gateway",
            Role::Client => "client",
        }
    }

    /// Parses an `OU` value.
    pub fn from_name(s: &str) -> Option<Role> {
        Some(match s {
            "meta" => Role::Meta,
            "worker" => Role::Worker,
            "gateway" => Role::Gateway,
            "client" => Role::Client,
            _ => return None,
        })
    }
}

/// Who a verified certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// From the subject's `OU`.
    pub role: Role,
    /// The subject's `CN`.
    pub name: String,
}

/// Reads the role and name of a certificate (DER) the TLS layer has already verified
/// against the cluster CA. Errors: [`TlsError::Peer`] if it is not X.509, or its
/// subject has no `CN` or no `OU` naming a role.
pub fn peer_identity(der: &[u8]) -> Result<PeerIdentity, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Peer(format!("not an X.509 certificate: {e}")))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .ok_or_else(|| TlsError::Peer("the subject has no CN".to_string()))?
        .to_string();
    let role = subject
        .iter_organizational_unit()
        .filter_map(|a| a.as_str().ok())
        .find_map(Role::from_name)
        .ok_or_else(|| {
            TlsError::Peer(format!(
                "the subject of '{name}' has no OU naming a role (meta, worker, gateway, client)"
            ))
        })?;
    Ok(PeerIdentity { role, name })
}
