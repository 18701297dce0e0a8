//! Command-line arguments. Every flag can also come from a `BACKSTOP_…` environment
//! variable; flags and environment win over the config file, which wins over defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use crate::shared::TlsArgs;

/// Backstop: a distributed, multi-tenant backup service with backup-of-backup.
#[derive(Debug, Parser)]
#[command(name = "backstop", version, about, propagate_version = true)]
pub struct Args {
    /// TOML config file (see deploy/backstop.example.toml).
    #[arg(long, global = true, env = "BACKSTOP_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, env = "BACKSTOP_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `backstop_meta=debug,openraft=warn`.
    #[arg(long, global = true, env = "BACKSTOP_LOG")]
    pub log: Option<String>,
    /// What to run.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run everything in one process on an embedded default: a one-node meta group
    /// (the same Raft code path as a cluster).
    Standalone(StandaloneArgs),
    /// Run one meta node of a replicated cluster.
    Meta(MetaArgs),
    /// Run a worker: archive, back up, validate for the meta cluster.
    Worker(WorkerArgs),
    /// Run the SQL gateway (MySQL protocol) in front of a meta cluster.
    Gateway(GatewayArgs),
    /// Operate a running cluster over gRPC.
    Ctl(crate::ctl::CtlArgs),
    /// Restore a tenant from a destination alone (no meta cluster needed).
    Restore(RestoreArgs),
    /// Check every checksum of a backup set or piece at a destination.
    Validate(ValidateArgs),
    /// PostgreSQL's archive_command for a tenant whose source has `archive=push`:
    /// `archive_command = 'backstop wal-push --dest URI --tenant NAME %p %f'`.
    WalPush(WalPushArgs),
    /// Create a cluster CA and issue the certificates of meta nodes, workers,
    /// gateways and clients (for installs without a PKI of their own).
    Cert(crate::cert::CertArgs),
}

/// TLS on the MySQL port (MySQL's `ssl_cert`, `ssl_key` and
/// `require_secure_transport`; `docs/SECURITY.md`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SqlTlsArgs {
    /// Certificate chain (PEM) the MySQL port presents to `mysql --ssl`
    /// [default: a gateway's own --tls-cert].
    #[arg(long, env = "BACKSTOP_SSL_CERT", requires = "ssl_key")]
    pub ssl_cert: Option<PathBuf>,
    /// Its private key (PEM) [default: a gateway's own --tls-key].
    #[arg(long, env = "BACKSTOP_SSL_KEY", requires = "ssl_cert")]
    pub ssl_key: Option<PathBuf>,
    /// Refuse MySQL clients that do not switch to TLS (error 3159), before they
    /// send a password.
    #[arg(long, env = "BACKSTOP_REQUIRE_SECURE_TRANSPORT")]
    pub require_secure_transport: bool,
}

impl SqlTlsArgs {
    /// The MySQL port's TLS: `--ssl-cert/--ssl-key`, else the certificate of
    /// `fallback` (a gateway's own TLS files); `None` for plaintext.
    pub fn load(
        &self,
        fallback: Option<&backstop_client::TlsFiles>,
    ) -> anyhow::Result<Option<backstop_sql_gateway::SqlTls>> {
        let pair = match (&self.ssl_cert, &self.ssl_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            _ => fallback.and_then(|f| f.cert.clone().zip(f.key.clone())),
        };
        match pair {
            Some((cert, key)) => Ok(Some(backstop_sql_gateway::SqlTls::load(&cert, &key)?)),
            None => Ok(None),
        }
    }
}

/// `backstop wal-push`.
#[derive(Debug, clap::Args)]
pub struct WalPushArgs {
    /// The tenant's backup_dest (with credentials for s3://).
    #[arg(long)]
    pub dest: String,
    /// Tenant name or id.
    #[arg(long)]
    pub tenant: String,
    /// Incarnation (default: the newest at the destination).
    #[arg(long)]
    pub incarnation: Option<u64>,
    /// The file to archive (%p, relative to the data directory).
    pub path: PathBuf,
    /// Its name (%f).
    pub name: String,
}

/// `backstop gateway`.
#[derive(Debug, clap::Args)]
pub struct GatewayArgs {
    /// Meta node addresses (comma-separated host:port; any members: requests are
    /// spread over the reachable ones).
    #[arg(long, env = "BACKSTOP_META", default_value = crate::shared::DEFAULT_META_ADDR)]
    pub meta: String,
    /// MySQL listen address.
    #[arg(long, env = "BACKSTOP_SQL_LISTEN", default_value = "127.0.0.1:2881")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub limits: SqlLimitArgs,
    /// TLS to the meta service (a `gateway` certificate).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// TLS on the MySQL port.
    #[command(flatten)]
    pub sql_tls: SqlTlsArgs,
}

/// What SQL clients may hold (MySQL's variable names; `docs/OPERATIONS.md`).
#[derive(Debug, Clone, clap::Args)]
pub struct SqlLimitArgs {
    /// Connections served at once (max_connections); more are refused with 1040.
    #[arg(long, env = "BACKSTOP_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// Seconds a client has from connecting to logging in (connect_timeout).
    #[arg(long, env = "BACKSTOP_CONNECT_TIMEOUT", default_value_t = 10)]
    pub connect_timeout: u64,
    /// Seconds a logged-in connection may sit idle (wait_timeout).
    #[arg(long, env = "BACKSTOP_WAIT_TIMEOUT", default_value_t = 28_800)]
    pub wait_timeout: u64,
    /// Milliseconds a SELECT on the views may run (max_execution_time); past it
    /// the query is interrupted with 3024.
    #[arg(long, env = "BACKSTOP_MAX_EXECUTION_TIME", default_value_t = 10_000)]
    pub max_execution_time: u64,
    /// Bytes of text a SELECT's result may hold; a bigger one fails with 1104.
    #[arg(long, env = "BACKSTOP_MAX_RESULT_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_result_bytes: usize,
}

impl SqlLimitArgs {
    /// The gateway's limits.
    pub fn limits(&self) -> backstop_sql_gateway::Limits {
        use std::time::Duration;
        backstop_sql_gateway::Limits {
            max_connections: self.max_connections,
            connect_timeout: Duration::from_secs(self.connect_timeout),
            wait_timeout: Duration::from_secs(self.wait_timeout),
            max_execution_time: Duration::from_millis(self.max_execution_time),
            max_result_bytes: self.max_result_bytes,
        }
    }
}

/// `backstop worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Meta node addresses (comma-separated host:port); any member works.
    #[arg(long, env = "BACKSTOP_META", value_delimiter = ',', default_value = crate::shared::DEFAULT_META_ADDR)]
    pub meta: Vec<String>,
    /// Directory for the worker's id [default: ./backstop-worker].
    #[arg(long, env = "BACKSTOP_WORKER_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Concurrent tasks.
    #[arg(long, env = "BACKSTOP_SLOTS", default_value_t = 4)]
    pub slots: u32,
    /// Only these tenants' sources can be read here (comma-separated); default all.
    #[arg(long, value_delimiter = ',')]
    pub tenants: Vec<String>,
    /// Bandwidth of each backup-of-backup copy task, bytes per second (0 = unlimited),
    /// so copies do not starve the primary's backups (OceanBase `backup_net_limit`).
    #[arg(long, env = "BACKSTOP_COPY_RATE", default_value_t = 0)]
    pub copy_rate: u64,
    /// TLS to the meta service (a `worker` certificate).
    #[command(flatten)]
    pub tls: TlsArgs,
    /// What the worker may do on its host.
    #[command(flatten)]
    pub policy: WorkerPolicyArgs,
}

/// What a worker (or standalone's embedded worker) may do on its host.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WorkerPolicyArgs {
    /// Run tenants' begin/end backup hook commands (shell commands only root@sys can
    /// set). Without it, a backup of a tenant with hooks fails with a clear error.
    #[arg(long, env = "BACKSTOP_ALLOW_HOOKS")]
    pub allow_hooks: bool,
    /// A directory under which the worker may write file:// destinations and
    /// restore targets (repeatable; the environment takes a ':'-separated list).
    /// Its data dir (standalone: the standalone data dir) is always allowed; every
    /// other local path is refused.
    #[arg(
        long = "allow-path",
        env = "BACKSTOP_ALLOW_PATH",
        value_delimiter = ':'
    )]
    pub allow_paths: Vec<PathBuf>,
}

/// `backstop restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// Destination to restore from (backup_dest or a backup_backup_dest copy).
    #[arg(long)]
    pub dest: String,
    /// Tenant name or id.
    #[arg(long)]
    pub tenant: String,
    /// Empty or new directory to restore into.
    #[arg(long)]
    pub to: PathBuf,
    /// Target, set, incarnation, owner and tablespaces.
    #[command(flatten)]
    pub target: crate::shared::RestoreTargetArgs,
    /// Passwords of encrypted sets (OceanBase's `SET DECRYPTION IDENTIFIED BY`), one
    /// per line; each set's key is tried with each password.
    #[arg(long)]
    pub decryption_password_file: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `backstop validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Destination.
    #[arg(long)]
    pub dest: String,
    /// Tenant name or id.
    #[arg(long)]
    pub tenant: String,
    /// Backup set to check.
    #[arg(long, conflicts_with = "piece")]
    pub backup_set: Option<u64>,
    /// Piece to check, as ROUND/PIECE (e.g. 1/3).
    #[arg(long)]
    pub piece: Option<String>,
    /// The incarnation the set or piece is in (default: the newest).
    #[arg(long)]
    pub incarnation: Option<u64>,
}

/// `backstop standalone`.
#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// Data directory [default: ./backstop-data].
    #[arg(long, env = "BACKSTOP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC listen address of the meta service [default: 127.0.0.1:2882].
    #[arg(long, env = "BACKSTOP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// MySQL listen address of the SQL gateway.
    #[arg(long, env = "BACKSTOP_SQL_LISTEN", default_value = "127.0.0.1:2881")]
    pub sql_listen: SocketAddr,
    #[command(flatten)]
    pub sql_limits: SqlLimitArgs,
    /// TLS on the MySQL port (required for a non-loopback --sql-listen).
    #[command(flatten)]
    pub sql_tls: SqlTlsArgs,
    /// Set up a demo: a tenant fed by the workload generator, archiving, a full
    /// backup and its copy to a second destination (all under the data dir).
    #[arg(long)]
    pub demo: bool,
    /// What the embedded worker may do on this host.
    #[command(flatten)]
    pub policy: WorkerPolicyArgs,
}

/// `backstop meta`.
#[derive(Debug, clap::Args)]
pub struct MetaArgs {
    /// This node's Raft id (unique, > 0).
    #[arg(long, env = "BACKSTOP_NODE_ID")]
    pub node_id: Option<u64>,
    /// gRPC listen address, e.g. 127.0.0.1:2882.
    #[arg(long, env = "BACKSTOP_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address other nodes and clients use, if not the listen address.
    #[arg(long, env = "BACKSTOP_ADVERTISE")]
    pub advertise: Option<String>,
    /// Data directory (created if missing).
    #[arg(long, env = "BACKSTOP_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Join an existing cluster through these members (comma-separated host:port).
    #[arg(
        long,
        env = "BACKSTOP_JOIN",
        value_delimiter = ',',
        conflicts_with = "bootstrap"
    )]
    pub join: Vec<String>,
    /// Create a new cluster if the data dir holds none. Without it or --join, a node
    /// on an empty data dir refuses to start (it never founds a cluster by accident).
    #[arg(long)]
    pub bootstrap: bool,
    /// Name given to a new cluster [default: backstop].
    #[arg(long, env = "BACKSTOP_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Reach peer node ID at HOST:PORT instead of the address it advertised
    /// (`ID=HOST:PORT`, repeatable): NAT, tunnels, or the chaos harness's per-link
    /// proxies.
    #[arg(long = "peer-addr", value_name = "ID=HOST:PORT")]
    pub peer_addrs: Vec<String>,
    /// TLS of the gRPC port and of calls to peers (a `meta` certificate naming this
    /// node's host). Required unless `--listen` is a loopback address.
    #[command(flatten)]
    pub tls: TlsArgs,
}
