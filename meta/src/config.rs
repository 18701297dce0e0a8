//! Configuration of one meta node.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Raft timing and log compaction. Defaults suit a LAN or loopback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftTuning {
    /// Leader heartbeat period, ms.
    pub heartbeat_ms: u64,
    /// Lower bound of the randomized election timeout, ms.
    pub election_timeout_min_ms: u64,
    /// Upper bound of the randomized election timeout, ms.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept after a snapshot (so slightly lagging followers need no snapshot).
    pub logs_to_keep: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat_ms: 100,
            election_timeout_min_ms: 500,
            election_timeout_max_ms: 1000,
            snapshot_logs_since_last: 5000,
            logs_to_keep: 1000,
        }
    }
}

/// Everything a meta node needs to start.
#[derive(Debug, Clone)]
pub struct MetaConfig {
    /// Raft node id, unique in the group, chosen by the operator.
    pub node_id: u64,
    /// Address the gRPC server binds (`127.0.0.1:2882`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Address peers and clients use to reach this node; defaults to the bound address.
    pub advertise: Option<String>,
    /// Directory of this node's RocksDB (created if missing).
    pub data_dir: PathBuf,
    /// Existing members to join through.
    pub join: Vec<String>,
    /// Create a new cluster when the data dir holds none (`--bootstrap`). Without it
    /// (the default) and without `join`, a node on an empty data dir refuses to start
    /// instead of silently founding a second cluster. Ignored once the data dir holds
    /// a cluster.
    pub bootstrap: bool,
    /// `cluster_name` given to a new cluster.
    pub cluster_name: String,
    /// Initial password of `root@sys` in a new cluster (empty by default).
    pub root_password: String,
    /// Raft tuning.
    pub raft: RaftTuning,
    /// A task attempt without a heartbeat for this long is moved to another worker, ms.
    pub task_lease_ms: u64,
    /// Addresses to reach peers by instead of the ones in the membership, by node id
    /// (NAT, tunnels, the chaos harness's per-link proxies); empty by default.
    pub peer_addrs: BTreeMap<u64, String>,
    /// TLS of the gRPC port and of every call to peers (`--tls-ca/--tls-cert/
    /// --tls-key`, `[tls]`). `None` (plaintext) is allowed only when `listen` is a
    /// loopback address; [`crate::MetaNode::start`] refuses anything else.
    pub tls: Option<backstop_proto::tls::Tls>,
}

impl MetaConfig {
    /// A config with defaults for everything but id, address and directory.
    pub fn new(node_id: u64, listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_id,
            listen,
            advertise: None,
            data_dir: data_dir.into(),
            join: Vec::new(),
            bootstrap: false,
            cluster_name: "backstop".to_string(),
            root_password: String::new(),
            raft: RaftTuning::default(),
            task_lease_ms: 10_000,
            peer_addrs: BTreeMap::new(),
            tls: None,
        }
    }

    /// Where to reach node `id` that advertised `addr`.
    pub(crate) fn route(&self, id: Option<u64>, addr: String) -> String {
        id.and_then(|id| self.peer_addrs.get(&id).cloned())
            .unwrap_or(addr)
    }

    pub(crate) fn openraft_config(&self) -> Result<openraft::Config, String> {
        let t = &self.raft;
        openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: t.heartbeat_ms,
            election_timeout_min: t.election_timeout_min_ms,
            election_timeout_max: t.election_timeout_max_ms,
            install_snapshot_timeout: 10_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(t.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: t.logs_to_keep,
            ..Default::default()
        }
        .validate()
        .map_err(|e| e.to_string())
    }

    /// How long a write may wait for a leader before `OB_NOT_MASTER`.
    pub(crate) fn leader_wait(&self) -> Duration {
        Duration::from_millis(self.raft.election_timeout_max_ms * 8).max(Duration::from_secs(5))
    }
}
