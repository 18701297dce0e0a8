//! Membership of the meta group: add a learner, promote it to voter, remove a node.

use super::forward::Redirect;
use super::{ForwardReply, ForwardRequest, MetaNode};
use crate::command::{Reply, Response};
use crate::error::MetaError;
use crate::types::NodeId;
use backstop_common::Code;
use openraft::{BasicNode, ChangeMembers};
use std::collections::BTreeSet;
use tracing::info;

impl MetaNode {
    /// Adds a node as learner and, unless `learner_only`, promotes it to voter once
    /// it caught up. Adding an existing member with the same address is a no-op.
    pub async fn add_node(
        &self,
        node_id: NodeId,
        addr: String,
        learner_only: bool,
    ) -> Result<(), MetaError> {
        self.with_leader(ForwardRequest::AddNode {
            node_id,
            addr,
            learner_only,
        })
        .await
        .map(|_| ())
    }

    /// Promotes a learner to voter.
    pub async fn promote_node(&self, node_id: NodeId) -> Result<(), MetaError> {
        self.with_leader(ForwardRequest::PromoteNode(node_id))
            .await
            .map(|_| ())
    }

    /// Removes a voter or learner from the group.
    pub async fn remove_node(&self, node_id: NodeId) -> Result<(), MetaError> {
        self.with_leader(ForwardRequest::RemoveNode(node_id))
            .await
            .map(|_| ())
    }

    pub(super) fn is_learner(&self, node_id: NodeId) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        let m = metrics.membership_config.membership();
        m.learner_ids().any(|id| id == node_id)
    }

    pub(super) async fn leader_add_node(
        &self,
        node_id: NodeId,
        addr: String,
        learner_only: bool,
    ) -> Result<ForwardReply, Redirect> {
        let membership = self.raft.metrics().borrow().membership_config.clone();
        if let Some(existing) = membership.membership().get_node(&node_id)
            && existing.addr != addr
        {
            return Ok(Err(MetaError::new(
                Code::EntryExist,
                format!(
                    "node {node_id} is already a member at {}; remove it first",
                    existing.addr
                ),
            )));
        }
        let is_voter = membership.voter_ids().any(|id| id == node_id);
        if !is_voter && membership.membership().get_node(&node_id).is_none() {
            info!(node_id, addr = %addr, "adding learner");
            if let Err(e) = self
                .raft
                .add_learner(node_id, BasicNode::new(&addr), true)
                .await
            {
                return self.write_error(e).map(Err);
            }
        }
        if learner_only || is_voter {
            return Ok(Ok(Response::Ok(Reply::Done)));
        }
        info!(node_id, "promoting learner to voter");
        self.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([node_id])))
            .await
    }

    pub(super) async fn change_membership(
        &self,
        change: ChangeMembers<NodeId, BasicNode>,
    ) -> Result<ForwardReply, Redirect> {
        match self.raft.change_membership(change, false).await {
            Ok(_) => Ok(Ok(Response::Ok(Reply::Done))),
            Err(e) => self.write_error(e).map(Err),
        }
    }
}
