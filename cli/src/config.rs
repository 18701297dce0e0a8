//! The TOML config file and how it merges with flags and environment.
//!
//! ```toml
//! [log]
//! format = "text"          # or "json"
//! filter = "info"
//!
//! [meta]
//! node_id = 1
//! listen = "127.0.0.1:2882"
//! data_dir = "/var/lib/backstop"
//! join = []                 # e.g. ["10.0.0.1:2882"]
//! cluster_name = "backstop"
//! root_password = ""        # or BACKSTOP_ROOT_PASSWORD
//! task_lease_ms = 10000     # a worker silent this long loses its tasks
//!
//! [tls]                    # or --tls-ca/--tls-cert/--tls-key (docs/SECURITY.md)
//! ca = "/etc/backstop/tls/ca.pem"
//! cert = "/etc/backstop/tls/meta1.pem"
//! key = "/etc/backstop/tls/meta1.key"
//!
//! [meta.raft]
//! heartbeat_ms = 100
//! election_timeout_min_ms = 500
//! election_timeout_max_ms = 1000
//! snapshot_logs_since_last = 5000
//! logs_to_keep = 1000
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use backstop_meta::{MetaConfig, RaftTuning};
use serde::Deserialize;

use crate::args::{LogFormat, MetaArgs, StandaloneArgs};

use crate::shared::DEFAULT_META_ADDR;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `[log]`.
    pub log: LogSection,
    /// `[meta]`.
    pub meta: MetaSection,
    /// `[tls]`: this process's TLS files, used when no `--tls-ca` is given.
    pub tls: Option<backstop_client::TlsFiles>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// Format.
    pub format: Option<LogFormat>,
    /// `tracing` filter.
    pub filter: Option<String>,
}

/// `[meta]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaSection {
    /// Raft id.
    pub node_id: Option<u64>,
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// Advertised address.
    pub advertise: Option<String>,
    /// Data dir.
    pub data_dir: Option<PathBuf>,
    /// Join addresses.
    pub join: Vec<String>,
    /// Cluster name for a new cluster.
    pub cluster_name: Option<String>,
    /// Initial root@sys password for a new cluster.
    pub root_password: Option<String>,
    /// Raft tuning.
    pub raft: RaftTuning,
    /// Task lease, ms (a worker silent this long loses its tasks).
    pub task_lease_ms: Option<u64>,
}

impl FileConfig {
    /// Reads `path`, or returns defaults when `path` is `None`.
    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parse config file {}", path.display()))
    }
}

fn root_password(file: &MetaSection) -> String {
    std::env::var("BACKSTOP_ROOT_PASSWORD")
        .ok()
        .or_else(|| file.root_password.clone())
        .unwrap_or_default()
}

/// Resolves `backstop meta` settings: flag/env, then file; id, listen and data dir
/// are required.
pub fn meta_config(args: &MetaArgs, file: &FileConfig) -> anyhow::Result<MetaConfig> {
    let f = &file.meta;
    let Some(node_id) = args.node_id.or(f.node_id) else {
        bail!("--node-id is required (or meta.node_id in the config file)");
    };
    if node_id == 0 {
        bail!("--node-id must be greater than 0");
    }
    let Some(listen) = args.listen.or(f.listen) else {
        bail!("--listen is required (or meta.listen in the config file)");
    };
    let Some(data_dir) = args.data_dir.clone().or_else(|| f.data_dir.clone()) else {
        bail!("--data-dir is required (or meta.data_dir in the config file)");
    };
    let mut config = MetaConfig::new(node_id, listen, data_dir);
    config.advertise = args.advertise.clone().or_else(|| f.advertise.clone());
    config.join = if args.join.is_empty() {
        f.join.clone()
    } else {
        args.join.clone()
    };
    config.join.retain(|a| !a.trim().is_empty());
    config.bootstrap = args.bootstrap;
    config.tls = args.tls.load(file.tls.as_ref())?;
    apply_file(&mut config, f);
    if let Some(name) = args.cluster_name.clone() {
        config.cluster_name = name;
    }
    for route in &args.peer_addrs {
        let parsed = route
            .split_once('=')
            .and_then(|(id, addr)| Some((id.trim().parse::<u64>().ok()?, addr.trim())));
        let Some((id, addr)) = parsed.filter(|(_, a)| !a.is_empty()) else {
            bail!("--peer-addr wants ID=HOST:PORT, got '{route}'");
        };
        config.peer_addrs.insert(id, addr.to_string());
    }
    Ok(config)
}

/// Resolves `backstop standalone` settings: node 1, bootstrap, defaults everywhere.
pub fn standalone_config(args: &StandaloneArgs, file: &FileConfig) -> anyhow::Result<MetaConfig> {
    let f = &file.meta;
    let listen = match args.listen.or(f.listen) {
        Some(l) => l,
        None => DEFAULT_META_ADDR.parse().context("parse default address")?,
    };
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| f.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("backstop-data"));
    let mut config = MetaConfig::new(f.node_id.unwrap_or(1), listen, data_dir.join("meta"));
    // standalone founds its own one-node cluster in its own data dir.
    config.bootstrap = true;
    apply_file(&mut config, f);
    Ok(config)
}

/// Settings `meta` and `standalone` share, from the file (and the root password's env).
fn apply_file(config: &mut MetaConfig, f: &MetaSection) {
    if let Some(name) = f.cluster_name.clone() {
        config.cluster_name = name;
    }
    config.root_password = root_password(f);
    config.raft = f.raft.clone();
    if let Some(ms) = f.task_lease_ms {
        config.task_lease_ms = ms;
    }
}
