//! A running meta node: the Raft instance, its gRPC server, and the operations the
//! services call (write, linearizable read, membership, status). Followers forward
//! writes and membership changes to the leader, and serve reads after obtaining a
//! read index from it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backstop_common::Code;
use backstop_common::auth::PasswordHash;
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::meta_service_server::MetaServiceServer;
use backstop_proto::meta::{AddNodeRequest, ClusterStatus, Member};
use backstop_proto::raft::raft_service_server::RaftServiceServer;
use backstop_proto::worker::worker_service_server::WorkerServiceServer;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, RwLock};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::command::{Command, Reply, Request, Response};
use crate::config::MetaConfig;
use crate::error::MetaError;
use crate::network::{
    MAX_MESSAGE_BYTES, NetworkFactory, channel, from_payload, raft_client, to_payload,
};
use crate::scheduler::Leases;
use crate::service::{MetaSvc, RaftSvc, WorkerSvc};
use crate::state::MetaState;
use crate::store::{self, Applied, LogStore};
use crate::types::{CheckIsLeaderError, LogId, NodeId, Raft};

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

/// The leader's wall clock, ms since the epoch (shifted by the `meta::clock` failpoint
/// in failpoints builds: a clock jump). Applied times never go back whatever it says:
/// the state machine takes the max with the last applied time.
pub(crate) fn now_ms() -> u64 {
    backstop_common::failpoints::clock_ms(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}

fn fatal(e: impl std::fmt::Display) -> MetaError {
    MetaError::internal(format!("raft stopped: {e}"))
}

impl MetaNode {
    /// Opens the data dir, starts Raft and the gRPC server, then bootstraps a new
    /// one-node group (no `join`, fresh data dir) or joins through `join`.
    ///
    /// Errors: `OB_IO_ERROR` if the data dir cannot be opened (in use by another
    /// process, written by a newer release); `OB_INVALID_ARGUMENT` for a bad config;
    /// `OB_RPC_SEND_ERROR` if the listen address cannot be bound or no join address
    /// answered.
    pub async fn start(config: MetaConfig) -> Result<Arc<MetaNode>, MetaError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            MetaError::storage(format!(
                "create data dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let db_dir = config.data_dir.join("raft");
        let (log, sm) = open_with_retry(&db_dir).await?;
        let applied = sm.applied();
        let raft_config = config.openraft_config().map_err(MetaError::invalid)?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            NetworkFactory {
                routes: Arc::new(config.peer_addrs.clone()),
            },
            log.clone(),
            sm,
        )
        .await
        .map_err(fatal)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|e| MetaError::rpc(format!("bind {}: {e}", config.listen)))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| MetaError::rpc(format!("read bound address: {e}")))?;
        let addr = config
            .advertise
            .clone()
            .unwrap_or_else(|| local_addr.to_string());
        let node = Arc::new(MetaNode {
            id: config.node_id,
            addr,
            local_addr,
            raft,
            applied,
            log,
            config,
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            leases: Arc::new(Leases::default()),
        });
        node.spawn_server(listener).await;
        node.bootstrap_or_join().await?;
        let identity = node.clone();
        let scheduler = tokio::spawn(crate::scheduler::run(
            node.clone(),
            node.leases.clone(),
            node.task_lease(),
        ));
        let mut tasks = node.tasks.lock().await;
        tasks.push(tokio::spawn(async move {
            identity.ensure_cluster_identity().await
        }));
        tasks.push(scheduler);
        drop(tasks);
        info!(node_id = node.id, addr = %node.addr, "meta node started");
        Ok(node)
    }

    async fn spawn_server(self: &Arc<Self>, listener: TcpListener) {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let raft_svc = RaftServiceServer::new(RaftSvc::new(self.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let meta_svc = MetaServiceServer::new(MetaSvc::new(self.clone()));
        let worker_svc = WorkerServiceServer::new(WorkerSvc::new(self.clone()));
        let stop = self.shutdown.clone();
        let server = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .add_service(raft_svc)
            .add_service(meta_svc)
            .add_service(worker_svc)
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned());
        let handle = tokio::spawn(async move {
            if let Err(e) = server.await {
                warn!(error = %e, "grpc server stopped");
            }
        });
        self.tasks.lock().await.push(handle);
    }

    async fn bootstrap_or_join(self: &Arc<Self>) -> Result<(), MetaError> {
        if self.raft.is_initialized().await.map_err(fatal)? {
            info!(node_id = self.id, "restarting from existing data");
            return Ok(());
        }
        if self.config.join.is_empty() {
            info!(node_id = self.id, "bootstrapping a new one-node group");
            let members = BTreeMap::from([(self.id, BasicNode::new(&self.addr))]);
            return match self.raft.initialize(members).await {
                Ok(()) => Ok(()),
                Err(RaftError::APIError(e)) => Err(MetaError::internal(format!("initialize: {e}"))),
                Err(RaftError::Fatal(e)) => Err(fatal(e)),
            };
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last_error = MetaError::rpc("no join address given");
        while Instant::now() < deadline && !self.shutdown.is_cancelled() {
            for target in &self.config.join {
                match self.ask_to_join(target).await {
                    Ok(()) => {
                        info!(node_id = self.id, via = %target, "joined the meta group");
                        return Ok(());
                    }
                    Err(e) => {
                        warn!(via = %target, error = %e, "join attempt failed");
                        last_error = e;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(MetaError::new(
            last_error.code,
            format!(
                "could not join through {:?}: {}",
                self.config.join, last_error.message
            ),
        ))
    }

    async fn ask_to_join(&self, target: &str) -> Result<(), MetaError> {
        let mut client = MetaServiceClient::new(channel(target)?);
        let mut request = tonic::Request::new(AddNodeRequest {
            node_id: self.id,
            addr: self.addr.clone(),
            learner_only: false,
        });
        request.set_timeout(Duration::from_secs(60));
        client
            .add_node(request)
            .await
            .map_err(|s| MetaError::from_status(&s))?;
        Ok(())
    }

    /// Until the cluster has an identity, the leader proposes one. The first
    /// `InitCluster` applied wins; later ones are no-ops.
    async fn ensure_cluster_identity(self: Arc<Self>) {
        loop {
            if self.applied.read().await.state.cluster.is_some() {
                return;
            }
            if self.raft.current_leader().await == Some(self.id) {
                let cmd = Command::InitCluster {
                    cluster_name: self.config.cluster_name.clone(),
                    cluster_id: rand::random::<u32>() as u64 % 1_000_000 + 1,
                    root_password: PasswordHash::new(&self.config.root_password),
                };
                if let Err(e) = self.write(cmd).await {
                    warn!(error = %e, "propose cluster identity");
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address peers and clients use (`host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
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

    /// Runs `req` here if this node leads, else on the leader; retries while no
    /// leader is known.
    async fn with_leader(&self, req: ForwardRequest) -> ForwardReply {
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

    async fn forward(&self, addr: &str, req: &ForwardRequest) -> ForwardReply {
        let mut client = raft_client(addr)?;
        let mut request = tonic::Request::new(to_payload(req)?);
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

    async fn execute_local(&self, req: ForwardRequest) -> Result<ForwardReply, Redirect> {
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

    fn is_learner(&self, node_id: NodeId) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        let m = metrics.membership_config.membership();
        m.learner_ids().any(|id| id == node_id)
    }

    async fn leader_add_node(
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

    async fn change_membership(
        &self,
        change: ChangeMembers<NodeId, BasicNode>,
    ) -> Result<ForwardReply, Redirect> {
        match self.raft.change_membership(change, false).await {
            Ok(_) => Ok(Ok(Response::Ok(Reply::Done))),
            Err(e) => self.write_error(e).map(Err),
        }
    }

    fn write_error(
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

    /// Returns once this node has applied everything committed before the call.
    async fn linearize(&self) -> Result<(), MetaError> {
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

    async fn follower_read_index(&self, leader_addr: &str) -> Result<(), MetaError> {
        let mut client = raft_client(leader_addr)?;
        let mut request = tonic::Request::new(to_payload(&())?);
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

/// Whether a failed RPC certainly never reached the server (the connection could
/// not be opened), so retrying cannot apply a command twice.
fn never_sent(status: &tonic::Status) -> bool {
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
enum Redirect {
    To(String),
    Unknown,
}

/// Opens the store, retrying briefly while a previous instance in this process still
/// holds the RocksDB lock.
async fn open_with_retry(
    dir: &std::path::Path,
) -> Result<(LogStore, store::StateMachineStore), MetaError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match store::open(dir).await {
            Ok(stores) => return Ok(stores),
            Err(e @ store::OpenError::Rocks { .. })
                if Instant::now() < deadline && e.to_string().contains("lock") =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(MetaError::storage(e.to_string())),
        }
    }
}
