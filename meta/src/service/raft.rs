//! `RaftService`: peers' Raft RPCs and followers' forwarded requests.

use std::sync::Arc;

use backstop_proto::raft::RaftPayload;
use backstop_proto::raft::raft_service_server::RaftService;
use tonic::{Request, Response, Status};

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

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<RaftPayload>, Status> {
    Ok(Response::new(to_payload(value)?))
}

#[tonic::async_trait]
impl RaftService for RaftSvc {
    async fn vote(&self, request: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let req: VoteRequest = from_payload(request.get_ref())?;
        reply(&self.node.raft().vote(req).await)
    }

    async fn append_entries(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let req: AppendEntriesRequest = from_payload(request.get_ref())?;
        reply(&self.node.raft().append_entries(req).await)
    }

    async fn install_snapshot(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let req: InstallSnapshotRequest = from_payload(request.get_ref())?;
        reply(&self.node.raft().install_snapshot(req).await)
    }

    async fn forward(
        &self,
        request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let req: ForwardRequest = from_payload(request.get_ref())?;
        let answer: ForwardReply = self.node.execute_forwarded(req).await;
        reply(&answer)
    }

    async fn read_index(
        &self,
        _request: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        reply(&self.node.leader_read_index().await)
    }
}
