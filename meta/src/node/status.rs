//! What a node reports about itself and the group (`ctl status`).

use super::MetaNode;
use crate::store::{self};
use crate::types::NodeId;
use backstop_proto::meta::{ClusterStatus, Member};
use openraft::ServerState;
use std::collections::{BTreeMap, BTreeSet};

impl MetaNode {
    /// Cluster status as this node sees it.
    pub async fn status(&self) -> ClusterStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership().clone();
        let matched: BTreeMap<NodeId, Option<u64>> = m
            .replication
            .as_ref()
            .map(|r| {
                r.iter()
                    .map(|(id, log)| (*id, log.map(|l| l.index)))
                    .collect()
            })
            .unwrap_or_default();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| Member {
                node_id: *id,
                addr: node.addr.clone(),
                role: if voters.contains(id) {
                    "voter"
                } else {
                    "learner"
                }
                .to_string(),
                matched_index: matched.get(id).copied().flatten(),
            })
            .collect();
        let leader_addr = m
            .current_leader
            .and_then(|id| membership.get_node(&id).map(|n| n.addr.clone()))
            .unwrap_or_default();
        let cluster = self.applied.read().await.state.cluster.clone();
        let commit_index = self.log.committed_index();
        ClusterStatus {
            cluster_name: cluster
                .as_ref()
                .map(|c| c.cluster_name.clone())
                .unwrap_or_default(),
            cluster_id: cluster.map_or(0, |c| c.cluster_id),
            node_id: self.id,
            state: match m.state {
                ServerState::Leader => "Leader",
                ServerState::Follower => "Follower",
                ServerState::Candidate => "Candidate",
                ServerState::Learner => "Learner",
                ServerState::Shutdown => "Shutdown",
            }
            .to_string(),
            leader_id: m.current_leader,
            leader_addr,
            term: m.current_term,
            last_log_index: m.last_log_index,
            commit_index,
            applied_index: m.last_applied.map(|l| l.index),
            snapshot_index: m.snapshot.map(|l| l.index),
            purged_index: m.purged.map(|l| l.index),
            members,
            data_version: store::DATA_VERSION,
            state_digest: String::new(),
        }
    }

    /// [`MetaNode::status`] plus an xxh3-64 digest of the applied catalog, with
    /// `applied_index` read under the same lock: two replicas at the same applied
    /// index must report the same digest.
    pub async fn status_with_digest(&self) -> (ClusterStatus, String) {
        let (digest, applied) = {
            let a = self.applied.read().await;
            let bytes = crate::codec::encode(&a.state).unwrap_or_default();
            (
                format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)),
                a.last_applied.map(|l| l.index),
            )
        };
        let mut s = self.status().await;
        s.applied_index = applied;
        (s, digest)
    }
}
