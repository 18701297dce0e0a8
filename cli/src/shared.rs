//! What every command's flags share, below `args.rs`, `config.rs` and `ctl/`: the
//! default meta address and the TLS files of one process.

use std::path::PathBuf;

/// Where a client looks for the meta service without `--meta`.
pub const DEFAULT_META_ADDR: &str = "127.0.0.1:2882";

/// TLS files of one process (`docs/SECURITY.md`); the config file's `[tls]`
/// section gives the same. Without them a process speaks plaintext gRPC, which a
/// meta node allows on loopback only.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// The cluster CA certificate (PEM) that signs every peer (`backstop cert init`).
    #[arg(long, env = "BACKSTOP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// This process's certificate (PEM), signed by the CA (`backstop cert issue`).
    #[arg(long, env = "BACKSTOP_TLS_CERT", requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,
    /// This process's private key (PEM).
    #[arg(long, env = "BACKSTOP_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// The flags, else the config file's `[tls]`; `None` for plaintext.
    pub fn files(
        &self,
        file: Option<&backstop_client::TlsFiles>,
    ) -> Option<backstop_client::TlsFiles> {
        match &self.tls_ca {
            Some(ca) => Some(backstop_client::TlsFiles {
                ca: ca.clone(),
                cert: self.tls_cert.clone(),
                key: self.tls_key.clone(),
            }),
            None => file.cloned(),
        }
    }

    /// [`TlsArgs::files`], loaded.
    pub fn load(
        &self,
        file: Option<&backstop_client::TlsFiles>,
    ) -> anyhow::Result<Option<backstop_client::Tls>> {
        match self.files(file) {
            Some(files) => Ok(Some(backstop_client::Tls::load(&files)?)),
            None => Ok(None),
        }
    }
}
