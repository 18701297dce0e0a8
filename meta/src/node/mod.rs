//! A running meta node: the Raft instance, its gRPC server, and the operations the
//! services call (write, linearizable read, membership, status). Followers forward
//! writes and membership changes to the leader, and serve reads after obtaining a
//! read index from it.
//!
//! - `lifecycle.rs`: start, bootstrap or join, cluster identity;
//! - `forward.rs`: followers forwarding to the leader;
//! - `membership.rs`: add, promote, remove;
//! - `read_index.rs`: linearizable reads;
//! - `status.rs`: the node's and the group's status;
//! - this file: the node, its accessors, write and read.

use crate::command::{Command, Reply, Response};
use crate::config::MetaConfig;
use crate::error::MetaError;
use crate::scheduler::{Leases, Replica};
use crate::state::MetaState;
use crate::store::{Applied, LogStore};
use crate::types::{NodeId, Raft};
use backstop_common::Code;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, RwLock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

mod forward;
mod lifecycle;
mod membership;
mod read_index;
mod status;

/// What a follower asks the leader to do on its behalf.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Propose a command.
    Write(Command),
    /// Add a node (learner, then voter unless `learner_only`).
    AddNode {
        /// Node id.
        node_id: NodeId,
        /// gRPC address.
        addr: String,
        /// Stop after adding it as a learner.
        learner_only: bool,
    },
    /// Promote a learner to voter.
    PromoteNode(NodeId),
    /// Remove a voter or learner.
    RemoveNode(NodeId),
}

/// The leader's answer to a [`ForwardRequest`].
pub type ForwardReply = Result<Response, MetaError>;

/// One running meta node.
pub struct MetaNode {
    id: NodeId,
    addr: String,
    local_addr: SocketAddr,
    raft: Raft,
    applied: Arc<RwLock<Applied>>,
    log: LogStore,
    config: MetaConfig,
    shutdown: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    leases: Arc<Leases>,
}

pub(crate) use crate::clock::now_ms;

fn fatal(e: impl std::fmt::Display) -> MetaError {
    MetaError::internal(format!("raft stopped: {e}"))
}

impl MetaNode {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address peers and clients use (`host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The TLS this node serves and calls peers with (`None`: plaintext on loopback).
    pub fn tls(&self) -> Option<&backstop_proto::tls::Tls> {
        self.config.tls.as_ref()
    }

    /// This node's `cluster_id` as its catalog holds it (`0` before it has one).
    pub async fn cluster_id(&self) -> u64 {
        crate::network::cluster_id_of(&self.applied).await
    }

    /// The address the gRPC server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How long a task attempt lives without a heartbeat.
    pub fn task_lease(&self) -> Duration {
        Duration::from_millis(self.config.task_lease_ms.max(100))
    }

    /// The leader's lease table.
    pub(crate) fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The Raft handle (metrics, tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Proposes `command` (forwarding to the leader if needed) and returns the state
    /// machine's reply. Waits up to a few election timeouts for a leader.
    ///
    /// Errors: the command's own refusal (`OB_ENTRY_EXIST`, …); `OB_NOT_MASTER` if no
    /// leader appeared in time; `OB_RPC_SEND_ERROR` if the leader could not be reached
    /// (the command may or may not have been applied).
    pub async fn write(&self, command: Command) -> Result<Reply, MetaError> {
        let response = self.with_leader(ForwardRequest::Write(command)).await?;
        match response {
            Response::Ok(reply) => Ok(reply),
            Response::Err { code, message } => Err(MetaError::new(code, message)),
        }
    }

    /// Runs `f` on the catalog after making sure this node has applied everything
    /// committed before the call (linearizable read, through the leader's read index).
    pub async fn read<T>(&self, f: impl FnOnce(&MetaState) -> T) -> Result<T, MetaError> {
        self.linearize().await?;
        let applied = self.applied.read().await;
        Ok(f(&applied.state))
    }

    /// Waits until the group has a leader and this node has applied the cluster
    /// identity (and with it root@sys), so that logins can be checked and jobs can
    /// name their destinations. Errors with `OB_NOT_MASTER` after `timeout`, or when
    /// the node shuts down.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), MetaError> {
        let deadline = Instant::now() + timeout;
        loop {
            let leader = self.raft.current_leader().await;
            let identity = self.applied.read().await.state.cluster.is_some();
            if leader.is_some() && identity {
                return Ok(());
            }
            if Instant::now() >= deadline || self.shutdown.is_cancelled() {
                return Err(MetaError::new(
                    Code::NotMaster,
                    format!(
                        "the metadata service is not ready after {timeout:?} (leader: {leader:?}, cluster identity applied: {identity})"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs `f` on this node's catalog without asking the leader (may be stale).
    pub async fn read_local<T>(&self, f: impl FnOnce(&MetaState) -> T) -> T {
        f(&self.applied.read().await.state)
    }

    /// Stops accepting requests, lets in-flight ones finish (up to 5 s), stops Raft
    /// and closes the database.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        let tasks: Vec<JoinHandle<()>> = self.tasks.lock().await.drain(..).collect();
        for task in tasks {
            if tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
            {
                warn!("a meta task did not stop within 5 s");
            }
        }
        if let Err(e) = self.raft.shutdown().await {
            warn!(error = %e, "raft shutdown");
        }
        info!(node_id = self.id, "meta node stopped");
    }

    /// Whether [`MetaNode::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

impl Replica for MetaNode {
    fn node_id(&self) -> u64 {
        self.id
    }

    fn is_shutting_down(&self) -> bool {
        MetaNode::is_shutting_down(self)
    }

    async fn leads(&self) -> bool {
        self.raft.current_leader().await == Some(self.id)
    }

    async fn propose(&self, command: Command) -> Result<Reply, MetaError> {
        self.write(command).await
    }

    async fn read_applied<T: Send>(&self, f: impl FnOnce(&MetaState) -> T + Send) -> T {
        self.read_local(f).await
    }
}
