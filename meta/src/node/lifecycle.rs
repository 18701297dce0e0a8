//! Starting a node: open the stores, start Raft and the gRPC server, bootstrap a new
//! cluster or join an existing one, and record the cluster identity once.

use super::{MetaNode, fatal};
use crate::command::Command;
use crate::config::MetaConfig;
use crate::error::MetaError;
use crate::network::{MAX_MESSAGE_BYTES, NetworkFactory, channel};
use crate::scheduler::Leases;
use crate::service::auth::{Auth, require_process};
use crate::service::{MetaSvc, RaftSvc, WorkerSvc};
use crate::store::{self, LogStore};
use crate::types::Raft;
use backstop_common::auth::PasswordHash;
use backstop_proto::meta::AddNodeRequest;
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::meta_service_server::MetaServiceServer;
use backstop_proto::raft::raft_service_server::RaftServiceServer;
use backstop_proto::tls::Role;
use backstop_proto::worker::worker_service_server::WorkerServiceServer;
use openraft::BasicNode;
use openraft::error::RaftError;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tracing::{info, warn};

/// Opens the store, retrying briefly while a previous instance in this process still
/// holds the RocksDB lock.
pub(super) async fn open_with_retry(
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

impl MetaNode {
    /// Opens the data dir, starts Raft and the gRPC server, then bootstraps a new
    /// one-node group (`bootstrap`, fresh data dir) or joins through `join`. A fresh
    /// data dir with neither is `OB_INVALID_ARGUMENT`.
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
        if config.tls.as_ref().is_some_and(|t| !t.has_identity()) {
            return Err(MetaError::invalid(
                "a meta node serving TLS needs its own certificate: give --tls-cert and --tls-key (backstop cert issue --role meta NAME)",
            ));
        }
        if config.tls.is_none() {
            if !config.listen.ip().is_loopback() {
                return Err(MetaError::invalid(format!(
                    "refusing to listen on {} without TLS: anyone who reaches the port would own the cluster; give --tls-ca, --tls-cert and --tls-key (docs/SECURITY.md), or listen on loopback",
                    config.listen
                )));
            }
            warn!(listen = %config.listen, "plaintext gRPC on loopback: every local user of this machine can run any command (fine for one machine; docs/SECURITY.md sets up TLS)");
        }
        let db_dir = config.data_dir.join("raft");
        let (log, sm) = open_with_retry(&db_dir).await?;
        let applied = sm.applied();
        let raft_config = config.openraft_config().map_err(MetaError::invalid)?;
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config),
            NetworkFactory {
                routes: Arc::new(config.peer_addrs.clone()),
                tls: config.tls.clone(),
                applied: applied.clone(),
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
        node.spawn_server(listener).await?;
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

    pub(super) async fn spawn_server(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> Result<(), MetaError> {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let tls = self.config.tls.is_some();
        let raft_svc = RaftServiceServer::new(RaftSvc::new(self.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let raft_svc = InterceptedService::new(raft_svc, move |req: tonic::Request<()>| {
            require_process(&req, tls, Role::Meta).map(|()| req)
        });
        let auth = Auth::new(self.clone(), tls);
        let meta_svc = MetaServiceServer::new(MetaSvc::new(self.clone(), auth));
        let worker_svc = WorkerServiceServer::new(WorkerSvc::new(self.clone()));
        let worker_svc = InterceptedService::new(worker_svc, move |req: tonic::Request<()>| {
            require_process(&req, tls, Role::Worker).map(|()| req)
        });
        let stop = self.shutdown.clone();
        let mut builder = tonic::transport::Server::builder().tcp_nodelay(true);
        if let Some(t) = &self.config.tls {
            match t.server().map(|c| builder.clone().tls_config(c)) {
                Ok(Ok(b)) => builder = b,
                Ok(Err(e)) => return Err(MetaError::invalid(format!("TLS: {e}"))),
                Err(e) => return Err(MetaError::invalid(format!("TLS: {e}"))),
            }
        }
        let server = builder
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
        Ok(())
    }

    pub(super) async fn bootstrap_or_join(self: &Arc<Self>) -> Result<(), MetaError> {
        if self.raft.is_initialized().await.map_err(fatal)? {
            info!(node_id = self.id, "restarting from existing data");
            return Ok(());
        }
        if self.config.join.is_empty() && !self.config.bootstrap {
            return Err(MetaError::invalid(format!(
                "data dir {} holds no cluster: pass --bootstrap to create a new cluster here, or --join HOST:PORT to join an existing one (a member whose data dir was lost rejoins with --join after `ctl node remove`)",
                self.config.data_dir.display()
            )));
        }
        if self.config.join.is_empty() {
            info!(
                node_id = self.id,
                "bootstrapping a new one-node group (--bootstrap)"
            );
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

    pub(super) async fn ask_to_join(&self, target: &str) -> Result<(), MetaError> {
        let mut client = MetaServiceClient::new(channel(target, self.tls())?);
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
    pub(super) async fn ensure_cluster_identity(self: Arc<Self>) {
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
}
