//! openraft type configuration. This is the only file that names openraft's generic
//! parameters; everything else uses the aliases below.

use std::io::Cursor;

use crate::command::{Request, Response};

openraft::declare_raft_types!(
    /// Backstop's Raft types: `Request` in the log, `Response` out of the state machine,
    /// `u64` node ids, `BasicNode { addr }` (gRPC `host:port`) per node.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A meta node's id.
pub type NodeId = u64;
/// A meta node's address record.
pub type Node = openraft::BasicNode;
/// The Raft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id (term + leader + index).
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// Storage error.
pub type StorageError = openraft::StorageError<NodeId>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// A snapshot.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
/// Membership as stored with its log id.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Log state (last purged, last log id).
pub type LogState = openraft::storage::LogState<TypeConfig>;
/// Raft metrics.
pub type RaftMetrics = openraft::RaftMetrics<NodeId, Node>;
/// Raft error with an API error.
pub type RaftError<E = openraft::error::Infallible> = openraft::error::RaftError<NodeId, E>;
/// Client write error.
pub type ClientWriteError = openraft::error::ClientWriteError<NodeId, Node>;
/// Leader check error.
pub type CheckIsLeaderError = openraft::error::CheckIsLeaderError<NodeId, Node>;
/// RPC error as the network reports it.
pub type RpcError<E = openraft::error::Infallible> =
    openraft::error::RPCError<NodeId, Node, RaftError<E>>;
/// Install-snapshot error.
pub type InstallSnapshotError = openraft::error::InstallSnapshotError;
/// Vote request.
pub type VoteRequest = openraft::raft::VoteRequest<NodeId>;
/// Vote response.
pub type VoteResponse = openraft::raft::VoteResponse<NodeId>;
/// Append-entries request.
pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
/// Append-entries response.
pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<NodeId>;
/// Install-snapshot request (one chunk).
pub type InstallSnapshotRequest = openraft::raft::InstallSnapshotRequest<TypeConfig>;
/// Install-snapshot response.
pub type InstallSnapshotResponse = openraft::raft::InstallSnapshotResponse<NodeId>;
