//! Linearizable reads: the leader confirms its leadership (read index); a follower
//! asks the leader for one and waits until it has applied that far.

use super::{MetaNode, fatal};
use crate::error::MetaError;
use crate::network::{from_payload, raft_client, to_payload};
use crate::types::{CheckIsLeaderError, LogId};
use backstop_common::Code;
use openraft::error::RaftError;
use std::time::{Duration, Instant};

impl MetaNode {
    /// Returns once this node has applied everything committed before the call.
    pub(super) async fn linearize(&self) -> Result<(), MetaError> {
        let deadline = Instant::now() + self.config.leader_wait();
        loop {
            let result = match self.raft.ensure_linearizable().await {
                Ok(_) => return Ok(()),
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    match f.leader_node {
                        Some(node) if f.leader_id != Some(self.id) => {
                            let addr = self.config.route(f.leader_id, node.addr);
                            self.follower_read_index(&addr).await
                        }
                        _ => Err(MetaError::no_leader("no meta leader elected yet")),
                    }
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                    Err(MetaError::no_leader(format!("leader lost its quorum: {e}")))
                }
                Err(RaftError::Fatal(e)) => Err(fatal(e)),
            };
            match result {
                Err(e) if e.code == Code::NotMaster && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    pub(super) async fn follower_read_index(&self, leader_addr: &str) -> Result<(), MetaError> {
        let mut client = raft_client(leader_addr, self.tls())?;
        let mut request = crate::network::with_cluster_id(
            tonic::Request::new(to_payload(&())?),
            self.cluster_id().await,
        );
        request.set_timeout(Duration::from_secs(5));
        // Reads are idempotent: any transport failure just means "ask again".
        let reply = client.read_index(request).await.map_err(|s| {
            MetaError::no_leader(format!(
                "read index from leader at {leader_addr}: {}",
                s.message()
            ))
        })?;
        let read_log_id: Option<LogId> =
            from_payload::<Result<Option<LogId>, MetaError>>(&reply.into_inner())??;
        if let Some(log_id) = read_log_id {
            self.raft
                .wait(Some(Duration::from_secs(5)))
                .applied_index_at_least(Some(log_id.index), "read index")
                .await
                .map_err(|e| {
                    MetaError::new(
                        Code::Timeout,
                        format!("catch up to read index {}: {e}", log_id.index),
                    )
                })?;
        }
        Ok(())
    }

    /// The leader's read index, for a follower's linearizable read.
    pub(crate) async fn leader_read_index(&self) -> Result<Option<LogId>, MetaError> {
        match self.raft.ensure_linearizable().await {
            Ok(id) => Ok(id),
            Err(RaftError::APIError(e)) => {
                Err(MetaError::no_leader(format!("not the leader: {e}")))
            }
            Err(RaftError::Fatal(e)) => Err(fatal(e)),
        }
    }
}
