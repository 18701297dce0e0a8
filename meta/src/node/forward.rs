//! Forwarding: a follower sends writes and membership changes to the leader (with a
//! redirect when the leader moved), the leader executes them locally.

use super::{ForwardReply, ForwardRequest, MetaNode, fatal, now_ms};
use crate::command::Request;
use crate::error::MetaError;
use crate::network::{from_payload, raft_client, to_payload};
use crate::types::NodeId;
use backstop_common::Code;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Whether a failed RPC certainly never reached the server (the connection could
/// not be opened), so retrying cannot apply a command twice.
pub(super) fn never_sent(status: &tonic::Status) -> bool {
    if status.code() != tonic::Code::Unavailable {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(status);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        source = e.source();
    }
    status.message().contains("tcp connect error")
}

/// Where a request must go instead.
pub(super) enum Redirect {
    To(String),
    Unknown,
}

impl MetaNode {
    /// Runs `req` here if this node leads, else on the leader; retries while no
    /// leader is known.
    pub(super) async fn with_leader(&self, req: ForwardRequest) -> ForwardReply {
        let deadline = Instant::now() + self.config.leader_wait();
        loop {
            let result = match self.execute_local(req.clone()).await {
                Err(Redirect::To(addr)) => self.forward(&addr, &req).await,
                Err(Redirect::Unknown) => Err(MetaError::no_leader("no meta leader elected yet")),
                Ok(reply) => reply,
            };
            match result {
                Err(e) if e.code == Code::NotMaster && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    pub(super) async fn forward(&self, addr: &str, req: &ForwardRequest) -> ForwardReply {
        let mut client = raft_client(addr, self.tls())?;
        let mut request = crate::network::with_cluster_id(
            tonic::Request::new(to_payload(req)?),
            self.cluster_id().await,
        );
        request.set_timeout(Duration::from_secs(60));
        let reply = client.forward(request).await.map_err(|s| {
            if never_sent(&s) {
                // The leader we knew is gone; nothing was proposed, so wait for the
                // next one like any other leaderless moment.
                MetaError::no_leader(format!("leader at {addr} unreachable: {}", s.message()))
            } else {
                MetaError::rpc(format!("forward to leader at {addr}: {}", s.message()))
            }
        })?;
        from_payload::<ForwardReply>(&reply.into_inner())?
    }

    /// Executes a forwarded request on this node, which must be the leader; answers
    /// `OB_NOT_MASTER` otherwise (a request is forwarded at most once).
    pub(crate) async fn execute_forwarded(&self, req: ForwardRequest) -> ForwardReply {
        match self.execute_local(req).await {
            Ok(reply) => reply,
            Err(_) => Err(MetaError::no_leader(format!(
                "node {} is no longer the leader",
                self.id
            ))),
        }
    }

    pub(super) async fn execute_local(
        &self,
        req: ForwardRequest,
    ) -> Result<ForwardReply, Redirect> {
        match req {
            ForwardRequest::Write(command) => {
                let request = Request {
                    time_ms: now_ms(),
                    command,
                };
                match self.raft.client_write(request).await {
                    Ok(resp) => Ok(Ok(resp.data)),
                    Err(e) => self.write_error(e).map(Err),
                }
            }
            ForwardRequest::AddNode {
                node_id,
                addr,
                learner_only,
            } => self.leader_add_node(node_id, addr, learner_only).await,
            ForwardRequest::PromoteNode(node_id) => {
                if !self.is_learner(node_id) {
                    return Ok(Err(MetaError::new(
                        Code::EntryNotExist,
                        format!("node {node_id} is not a learner"),
                    )));
                }
                let change = ChangeMembers::AddVoterIds(BTreeSet::from([node_id]));
                self.change_membership(change).await
            }
            ForwardRequest::RemoveNode(node_id) => {
                let membership = self.raft.metrics().borrow().membership_config.clone();
                let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
                let change = if voters.contains(&node_id) {
                    if voters.len() == 1 {
                        return Ok(Err(MetaError::new(
                            Code::NotSupported,
                            "removing the last voter",
                        )));
                    }
                    ChangeMembers::RemoveVoters(BTreeSet::from([node_id]))
                } else if membership.nodes().any(|(id, _)| *id == node_id) {
                    ChangeMembers::RemoveNodes(BTreeSet::from([node_id]))
                } else {
                    return Ok(Err(MetaError::new(
                        Code::EntryNotExist,
                        format!("node {node_id} is not a member"),
                    )));
                };
                self.change_membership(change).await
            }
        }
    }

    pub(super) fn write_error(
        &self,
        e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
    ) -> Result<MetaError, Redirect> {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => match f.leader_node {
                Some(node) if f.leader_id != Some(self.id) => {
                    Err(Redirect::To(self.config.route(f.leader_id, node.addr)))
                }
                _ => Err(Redirect::Unknown),
            },
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => Ok(MetaError::new(
                Code::InvalidArgument,
                format!("membership change refused: {e}"),
            )),
            RaftError::Fatal(e) => Ok(fatal(e)),
        }
    }
}
