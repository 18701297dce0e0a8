//! An in-process meta cluster over real gRPC on 127.0.0.1 with RocksDB in a temp dir.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use backstop_meta::{MetaConfig, MetaNode, RaftTuning};

/// A running group of meta nodes; dropped data lives in a temp dir.
pub struct LocalCluster {
    /// The nodes, node id `i + 1` at index `i`.
    pub nodes: Vec<Arc<MetaNode>>,
    _dir: tempfile::TempDir,
}

impl LocalCluster {
    /// Starts `n` nodes: node 1 bootstraps, the others join through it. Returns once
    /// all `n` are voters and a leader is known.
    pub async fn start(n: u64, raft: RaftTuning) -> anyhow::Result<LocalCluster> {
        let dir = tempfile::tempdir().context("create temp dir")?;
        let mut nodes: Vec<Arc<MetaNode>> = Vec::new();
        for id in 1..=n {
            let mut config = MetaConfig::new(
                id,
                "127.0.0.1:0".parse()?,
                dir.path().join(format!("n{id}")),
            );
            config.raft = raft.clone();
            match nodes.first() {
                Some(first) => config.join = vec![first.addr().to_string()],
                None => config.bootstrap = true,
            }
            nodes.push(MetaNode::start(config).await?);
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
                bail!("cluster did not form: {s:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The current leader's gRPC address.
    pub async fn leader_addr(&self) -> anyhow::Result<String> {
        let s = self.nodes[0].status().await;
        if s.leader_addr.is_empty() {
            bail!("no leader");
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
