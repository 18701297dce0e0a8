//! Backstop's gRPC API and Raft transport, generated from `proto/backstop/*.proto`.
//!
//! - [`meta`]: the metadata API every meta node serves (`MetaService`).
//! - [`raft`]: node-to-node Raft messages (`RaftService`).
//! - [`worker`]: what workers call (`WorkerService`).
//! - [`tls`]: the TLS material every link uses and the role a peer's certificate names.

/// `backstop.meta.v1`: tenants, parameters, users, membership, cluster status.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod meta {
    tonic::include_proto!("backstop.meta.v1");
}

/// `backstop.raft.v1`: vote, append entries, snapshot, forward to leader.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod raft {
    tonic::include_proto!("backstop.raft.v1");
}

/// `backstop.worker.v1`: register, acquire, heartbeat, report.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod worker {
    tonic::include_proto!("backstop.worker.v1");
}

pub mod tls;

/// gRPC metadata key carrying the leader's address on `OB_NOT_MASTER` answers.
pub const LEADER_ADDR_KEY: &str = "x-backstop-leader";

/// gRPC metadata key a meta leader sets on its answers to workers (heartbeat, reports):
/// its clock in ms since the epoch, as it stamps commands (never behind an applied
/// command's time). Workers stamp archive checkpoints with it (`--until-time`); a
/// missing or `0` value means unknown.
pub const LEADER_TIME_KEY: &str = "x-backstop-leader-time-ms";

/// gRPC metadata key carrying a stable error code name (e.g. `OB_ENTRY_EXIST`).
pub const ERROR_CODE_KEY: &str = "x-backstop-code";
/// gRPC metadata key carrying the MySQL error number of that code.
pub const ERROR_ERRNO_KEY: &str = "x-backstop-errno";

/// Request metadata: the `user@tenant` a password login is for (`ctl --user`).
pub const LOGIN_USER_KEY: &str = "x-backstop-user";

/// Request metadata: the password of [`LOGIN_USER_KEY`]; sent only over TLS, or to
/// a plaintext server on loopback.
pub const LOGIN_PASSWORD_KEY: &str = "x-backstop-password";

/// Request metadata on every Raft RPC and forwarded command: the sender's
/// `cluster_id` (decimal; `0` while the sender's cluster has none yet). A node of
/// another cluster is refused.
pub const CLUSTER_ID_KEY: &str = "x-backstop-cluster-id";

/// Largest gRPC message Backstop's clients and servers accept (bytes): catalog lists
/// and Raft snapshots grow with the catalog, far past tonic's 4 MiB default.
pub const MAX_LIST_MESSAGE_BYTES: usize = 256 * 1024 * 1024;
