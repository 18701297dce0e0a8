//! Raft transport over tonic: the client side ([`Network`]) that openraft uses to
//! reach peers, and the payload encoding shared with the server in
//! `service/raft.rs`.

use std::time::Duration;

use backstop_proto::raft::RaftPayload;
use backstop_proto::raft::raft_service_client::RaftServiceClient;
use openraft::error::{NetworkError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use backstop_proto::CLUSTER_ID_KEY;
use backstop_proto::tls::Tls;
use tokio::sync::RwLock;
use tonic::transport::Channel;

use crate::store::Applied;

use crate::codec::{decode, encode};
use crate::error::MetaError;
use crate::types::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotError, InstallSnapshotRequest,
    InstallSnapshotResponse, Node, NodeId, RaftError, RpcError, TypeConfig, VoteRequest,
    VoteResponse,
};

/// Version of the payload encoding inside `RaftPayload`.
pub const PAYLOAD_VERSION: u32 = 1;
/// Largest gRPC message between meta nodes (snapshot chunks are 3 MiB by default).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Encodes a value into a `RaftPayload`.
pub fn to_payload<T: Serialize>(value: &T) -> Result<RaftPayload, MetaError> {
    Ok(RaftPayload {
        version: PAYLOAD_VERSION,
        data: encode(value)
            .map_err(|e| MetaError::internal(format!("encode raft payload: {e}")))?,
    })
}

/// Decodes a `RaftPayload`.
pub fn from_payload<T: DeserializeOwned>(payload: &RaftPayload) -> Result<T, MetaError> {
    if payload.version != PAYLOAD_VERSION {
        return Err(MetaError::invalid(format!(
            "raft payload version {} is not {PAYLOAD_VERSION}: nodes run different releases",
            payload.version
        )));
    }
    decode(&payload.data).map_err(|e| MetaError::invalid(format!("decode raft payload: {e}")))
}

/// A lazily connecting gRPC channel to `addr` (`host:port`): plaintext without
/// `tls`, else TLS verified against the cluster CA, presenting this node's
/// certificate (the peer's must name the host of `addr`).
pub fn channel(addr: &str, tls: Option<&Tls>) -> Result<Channel, MetaError> {
    let endpoint = backstop_proto::tls::endpoint(addr, tls)
        .map_err(|e| MetaError::invalid(format!("bad node address '{addr}': {e}")))?
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    Ok(endpoint.connect_lazy())
}

/// A Raft client for `addr`.
pub fn raft_client(addr: &str, tls: Option<&Tls>) -> Result<RaftServiceClient<Channel>, MetaError> {
    Ok(RaftServiceClient::new(channel(addr, tls)?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// Attaches this node's `cluster_id` ([`CLUSTER_ID_KEY`]) to a Raft RPC or a
/// forwarded command, so that a node of another cluster refuses it.
pub fn with_cluster_id<T>(mut request: tonic::Request<T>, cluster_id: u64) -> tonic::Request<T> {
    request.metadata_mut().insert(
        CLUSTER_ID_KEY,
        tonic::metadata::MetadataValue::from(cluster_id),
    );
    request
}

/// The `cluster_id` of the catalog in `applied` (`0` before the cluster has one).
pub(crate) async fn cluster_id_of(applied: &RwLock<Applied>) -> u64 {
    applied
        .read()
        .await
        .state
        .cluster
        .as_ref()
        .map_or(0, |c| c.cluster_id)
}

/// Builds [`Network`] connections for openraft.
#[derive(Clone)]
pub struct NetworkFactory {
    /// `MetaConfig::peer_addrs`: node id → address overriding the membership's.
    pub routes: std::sync::Arc<std::collections::BTreeMap<NodeId, String>>,
    /// `MetaConfig::tls`.
    pub tls: Option<Tls>,
    /// This node's catalog, for the `cluster_id` every RPC carries.
    pub applied: Arc<RwLock<Applied>>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        let mut node = node.clone();
        if let Some(addr) = self.routes.get(&target) {
            node.addr = addr.clone();
        }
        Network {
            target,
            client: raft_client(&node.addr, self.tls.as_ref()).ok(),
            node,
            applied: self.applied.clone(),
        }
    }
}

/// One peer connection.
pub struct Network {
    target: NodeId,
    node: Node,
    client: Option<RaftServiceClient<Channel>>,
    applied: Arc<RwLock<Applied>>,
}

/// Which RPC to call.
enum Rpc {
    Vote,
    Append,
    Snapshot,
}

impl Network {
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let unreachable = |e: &dyn std::fmt::Display| {
            RpcError::<E>::Unreachable(Unreachable::new(&std::io::Error::other(e.to_string())))
        };
        let Some(client) = self.client.as_mut() else {
            return Err(unreachable(&format!("bad address '{}'", self.node.addr)));
        };
        let payload = to_payload(req).map_err(|e| RpcError::<E>::Network(NetworkError::new(&e)))?;
        let cluster_id = cluster_id_of(&self.applied).await;
        let mut request = with_cluster_id(tonic::Request::new(payload), cluster_id);
        request.set_timeout(option.hard_ttl());
        let result = match rpc {
            Rpc::Vote => client.vote(request).await,
            Rpc::Append => client.append_entries(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = result.map_err(|status| unreachable(&status))?.into_inner();
        let decoded: Result<Resp, RaftError<E>> =
            from_payload(&reply).map_err(|e| RpcError::<E>::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| {
            RpcError::<E>::RemoteError(RemoteError::new_with_node(
                self.target,
                self.node.clone(),
                e,
            ))
        })
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RpcError> {
        self.call(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse, RpcError<InstallSnapshotError>> {
        self.call(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RpcError> {
        self.call(Rpc::Vote, &rpc, &option).await
    }
}
