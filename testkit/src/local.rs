//! An in-process meta cluster over real gRPC on 127.0.0.1 with RocksDB in a temp dir
//! (feature `local-cluster`), for the benchmarks that measure the meta service alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop_meta::{MetaConfig, MetaNode, RaftTuning};

use crate::TestkitError;

/// A running group of meta nodes; dropped data lives in a temp dir.
pub struct LocalCluster {
    /// The nodes, node id `i + 1` at index `i`.
    pub nodes: Vec<Arc<MetaNode>>,
    _dir: tempfile::TempDir,
}

impl LocalCluster {
    /// Starts `n` nodes: node 1 bootstraps, the others join through it. Returns once
    /// all `n` are voters and a leader is known (within 30 s, else
    /// [`TestkitError::Timeout`]); [`TestkitError::Meta`] when a node does not start.
    pub async fn start(n: u64, raft: RaftTuning) -> Result<LocalCluster, TestkitError> {
        let dir = tempfile::tempdir().map_err(|e| TestkitError::Io("create temp dir".into(), e))?;
        let mut nodes: Vec<Arc<MetaNode>> = Vec::new();
        for id in 1..=n {
            let mut config = MetaConfig::new(
                id,
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                dir.path().join(format!("n{id}")),
            );
            config.raft = raft.clone();
            match nodes.first() {
                Some(first) => config.join = vec![first.addr().to_string()],
                None => config.bootstrap = true,
            }
            nodes.push(
                MetaNode::start(config)
                    .await
                    .map_err(|e| TestkitError::Meta(format!("start node {id}: {e}")))?,
            );
        }
        let c = LocalCluster { nodes, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = c.nodes[0].status().await;
            if s.leader_id.is_some()
                && s.members.iter().filter(|m| m.role == "voter").count() == n as usize
            {
                return Ok(c);
            }
            if Instant::now() > deadline {
                return Err(TestkitError::Timeout {
                    what: format!("{n} voters and a leader (last status {s:?})"),
                    secs: 30,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The current leader's gRPC address.
    pub async fn leader_addr(&self) -> Result<String, TestkitError> {
        let s = self.nodes[0].status().await;
        if s.leader_addr.is_empty() {
            return Err(TestkitError::Meta("no leader".into()));
        }
        Ok(s.leader_addr)
    }

    /// Shuts every node down.
    pub async fn shutdown(self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
    }
}
