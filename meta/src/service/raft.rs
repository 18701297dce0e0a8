//! `RaftService`: peers' Raft RPCs and followers' forwarded requests.

use std::sync::Arc;

use backstop_proto::raft::RaftPayload;
use backstop_proto::raft::raft_service_server::RaftService;
use tonic::{Request, Response, Status};

use backstop_common::Code;
use backstop_proto::CLUSTER_ID_KEY;
use tracing::warn;

use crate::error::MetaError;
use crate::network::{from_payload, to_payload};
use crate::node::{ForwardReply, ForwardRequest, MetaNode};
use crate::types::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};

/// Serves Raft RPCs for one node.
pub struct RaftSvc {
    node: Arc<MetaNode>,
}

impl RaftSvc {
    pub(crate) fn new(node: Arc<MetaNode>) -> Self {
        Self { node }
    }
}

/// Refuses a Raft RPC or forwarded command from a node of another cluster: both
/// sides know their `cluster_id` and they differ. A node that has none yet (a new
/// member catching up) is let through.
async fn same_cluster<T>(node: &MetaNode, request: &Request<T>) -> Result<(), Status> {
    let theirs = request
        .metadata()
        .get(CLUSTER_ID_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let ours = node.cluster_id().await;
    if theirs != 0 && ours != 0 && theirs != ours {
        warn!(ours, theirs, "refused a Raft message from another cluster");
        return Err(MetaError::new(
            Code::NoPrivilege,
            format!("this node belongs to cluster_id {ours}, the sender to cluster_id {theirs}"),
        )
        .to_status());
    }
    Ok(())
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    Ok(Response::new(to_payload(value)?))
}

#[tonic::async_trait]
impl RaftService for RaftSvc {
    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        same_cluster(&self.node, &request).await?;
        let req: VoteRequest = from_payload(request.get_ref())?;
        reply(&self.node.raft().vote(req).await)
    }

    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        same_cluster(&self.node, &request).await?;
        let req: AppendEntriesRequest = from_payload(request.get_ref())?;
        reply(&self.node.raft().append_entries(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        same_cluster(&self.node, &request).await?;
        let req: InstallSnapshotRequest = from_payload(request.get_ref())?;
        reply(&self.node.raft().install_snapshot(req).await)
    }

    async fn forward(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        same_cluster(&self.node, &request).await?;
        let req: ForwardRequest = from_payload(request.get_ref())?;
        let answer: ForwardReply = self.node.execute_forwarded(req).await;
        reply(&answer)
    }

    async fn read_index(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        same_cluster(&self.node, &request).await?;
        reply(&self.node.leader_read_index().await)
    }
}
