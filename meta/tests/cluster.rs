//! In-process meta clusters over real gRPC on 127.0.0.1 with real RocksDB in temp
//! dirs: failover, restart, snapshot catch-up and typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop_common::Code;
use backstop_meta::command::{Command, Reply};
use backstop_meta::{MetaConfig, MetaError, MetaNode, RaftTuning};
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::{CreateTenantRequest, DropTenantRequest, SetParameterRequest};

fn tuning() -> RaftTuning {
    RaftTuning {
        heartbeat_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
        snapshot_logs_since_last: 30,
        logs_to_keep: 5,
    }
}

async fn start(id: u64, dir: &Path, listen: SocketAddr, join: Vec<String>) -> Arc<MetaNode> {
    let mut config = MetaConfig::new(id, listen, dir.join(format!("n{id}")));
    config.bootstrap = join.is_empty();
    config.join = join;
    config.raft = tuning();
    MetaNode::start(config).await.expect("start node")
}

struct Cluster {
    _dir: tempfile::TempDir,
    path: PathBuf,
    nodes: Vec<Option<Arc<MetaNode>>>,
    addrs: Vec<SocketAddr>,
}

impl Cluster {
    async fn new(n: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let first = start(1, &path, "127.0.0.1:0".parse().unwrap(), vec![]).await;
        let seed = first.addr().to_string();
        let mut nodes = vec![Some(first)];
        for id in 2..=n {
            nodes.push(Some(
                start(
                    id,
                    &path,
                    "127.0.0.1:0".parse().unwrap(),
                    vec![seed.clone()],
                )
                .await,
            ));
        }
        let addrs = nodes
            .iter()
            .map(|n| n.as_ref().unwrap().local_addr())
            .collect();
        let c = Cluster {
            _dir: dir,
            path,
            nodes,
            addrs,
        };
        c.wait_voters(n as usize).await;
        c
    }

    fn node(&self, id: u64) -> &Arc<MetaNode> {
        self.nodes[(id - 1) as usize]
            .as_ref()
            .expect("node running")
    }

    fn running(&self) -> impl Iterator<Item = &Arc<MetaNode>> {
        self.nodes.iter().flatten()
    }

    async fn wait_voters(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.running().next().unwrap().status().await;
            if s.members.iter().filter(|m| m.role == "voter").count() == n && s.leader_id.is_some()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster never reached {n} voters: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for n in self.running() {
                if n.status().await.state == "Leader" {
                    return n.id();
                }
            }
            assert!(Instant::now() < deadline, "no leader");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self, id: u64) {
        let node = self.nodes[(id - 1) as usize].take().expect("running");
        node.shutdown().await;
    }

    async fn restart(&mut self, id: u64, join: Vec<String>) {
        let node = start(id, &self.path, self.addrs[(id - 1) as usize], join).await;
        self.nodes[(id - 1) as usize] = Some(node);
    }

    async fn shutdown_all(&mut self) {
        for id in 1..=self.nodes.len() as u64 {
            if self.nodes[(id - 1) as usize].is_some() {
                self.stop(id).await;
            }
        }
    }
}

fn create(name: &str) -> Command {
    Command::CreateTenant {
        name: name.to_string(),
        source: format!("dir:///data/{name}"),
        comment: String::new(),
        if_not_exists: false,
        root_password: backstop_common::auth::PasswordHash::new(""),
    }
}

async fn tenant_names(node: &MetaNode) -> Vec<String> {
    node.read(|s| s.tenants.values().map(|t| t.name.clone()).collect())
        .await
        .unwrap()
}

async fn wait_applied(node: &MetaNode, index: u64) {
    node.raft()
        .wait(Some(Duration::from_secs(20)))
        .applied_index_at_least(Some(index), "catch up")
        .await
        .expect("node catches up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_loses_no_acknowledged_write_and_old_leader_catches_up() {
    let mut c = Cluster::new(3).await;
    let mut acked = Vec::new();
    for i in 0..15 {
        // Writes through every node: followers forward to the leader.
        let via = c.node(i % 3 + 1);
        let name = format!("t{i}");
        via.write(create(&name)).await.unwrap();
        acked.push(name);
    }
    let old = c.leader().await;
    c.stop(old).await;
    let survivor = (1..=3).find(|id| *id != old).unwrap();
    let stopped_at = Instant::now();
    c.node(survivor)
        .write(create("after_failover"))
        .await
        .unwrap();
    let took = stopped_at.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "new leader served after {took:?}"
    );
    acked.push("after_failover".to_string());
    for i in 15..25 {
        let name = format!("t{i}");
        c.node(survivor).write(create(&name)).await.unwrap();
        acked.push(name);
    }
    for n in c.running() {
        let names = tenant_names(n).await;
        for a in &acked {
            assert!(names.contains(a), "node {} lost {a}", n.id());
        }
    }
    c.restart(old, vec![]).await;
    let target = c
        .node(survivor)
        .raft()
        .metrics()
        .borrow()
        .last_applied
        .unwrap()
        .index;
    wait_applied(c.node(old), target).await;
    let names = c
        .node(old)
        .read_local(|s| {
            s.tenants
                .values()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>()
        })
        .await;
    for a in &acked {
        assert!(names.contains(a), "restarted node lost {a}");
    }
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_cluster_restart_keeps_every_acknowledged_write() {
    let mut c = Cluster::new(3).await;
    let mut acked = Vec::new();
    for i in 0..40 {
        let name = format!("r{i}");
        c.node(i % 3 + 1).write(create(&name)).await.unwrap();
        acked.push(name);
    }
    let cluster_id = c.node(1).status().await.cluster_id;
    c.shutdown_all().await;
    for id in 1..=3 {
        c.restart(id, vec![]).await;
    }
    c.wait_voters(3).await;
    let names = tenant_names(c.node(2)).await;
    for a in &acked {
        assert!(names.contains(a), "lost {a} across a full restart");
    }
    assert_eq!(c.node(3).status().await.cluster_id, cluster_id);
    // Ids keep counting from where they were: no reuse after restart.
    let Reply::Tenant(t) = c.node(1).write(create("after_restart")).await.unwrap() else {
        panic!()
    };
    assert_eq!(t.tenant_id.0, 1001 + 40);
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiped_node_catches_up_from_a_snapshot() {
    let mut c = Cluster::new(3).await;
    for i in 0..120 {
        c.node(1).write(create(&format!("s{i}"))).await.unwrap();
    }
    let leader = c.leader().await;
    let wiped = (1..=3).find(|id| *id != leader).unwrap();
    c.stop(wiped).await;
    for i in 120..160 {
        c.node(leader)
            .write(create(&format!("s{i}")))
            .await
            .unwrap();
    }
    let purged = c.node(leader).raft().metrics().borrow().purged;
    assert!(
        purged.is_some_and(|p| p.index > 50),
        "leader should have purged its log: {purged:?}"
    );
    std::fs::remove_dir_all(c.path.join(format!("n{wiped}"))).unwrap();
    let seed = c.node(leader).addr().to_string();
    c.restart(wiped, vec![seed]).await;
    let target = c
        .node(leader)
        .raft()
        .metrics()
        .borrow()
        .last_applied
        .unwrap()
        .index;
    wait_applied(c.node(wiped), target).await;
    let m = c.node(wiped).raft().metrics().borrow().clone();
    assert!(
        m.snapshot.is_some(),
        "wiped node must have installed a snapshot: {m:?}"
    );
    let names = c.node(wiped).read_local(|s| s.tenants.len()).await;
    assert_eq!(names, 161, "sys + 160 tenants");
    c.shutdown_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn membership_add_learner_promote_and_remove() {
    let mut c = Cluster::new(1).await;
    let n1 = c.node(1).clone();
    // Node 2 starts with a join address where nothing listens, so it waits, serving
    // Raft, until an operator adds it by hand.
    // A port below the ephemeral range, so no outgoing connection can take it.
    let addr: SocketAddr = (20_000..32_000)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p + (std::process::id() % 1000) as u16)))
        .find(|a| std::net::TcpListener::bind(a).is_ok())
        .unwrap();
    let mut config = MetaConfig::new(2, addr, c.path.join("n2"));
    config.raft = tuning();
    config.join = vec!["127.0.0.1:1".to_string()];
    let starting = tokio::spawn(MetaNode::start(config));
    tokio::time::sleep(Duration::from_millis(300)).await;
    n1.add_node(2, addr.to_string(), true).await.unwrap();
    let s = n1.status().await;
    assert_eq!(
        s.members.iter().find(|m| m.node_id == 2).unwrap().role,
        "learner"
    );
    n1.promote_node(2).await.unwrap();
    let s = n1.status().await;
    assert_eq!(
        s.members.iter().find(|m| m.node_id == 2).unwrap().role,
        "voter"
    );
    let err = n1.promote_node(2).await.unwrap_err();
    assert_eq!(err.code, Code::EntryNotExist);
    n1.remove_node(2).await.unwrap();
    let s = n1.status().await;
    assert!(s.members.iter().all(|m| m.node_id != 2));
    let err = n1.remove_node(1).await.unwrap_err();
    assert_eq!(err.code, Code::NotSupported, "{err}");
    starting.abort();
    c.shutdown_all().await;
}

fn code_of(status: &tonic::Status) -> Code {
    MetaError::from_status(status).code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_typed_errors_over_grpc() {
    let mut c = Cluster::new(1).await;
    let addr = c.node(1).addr().to_string();
    let mut client = MetaServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let tenant = |name: &str, source: &str| CreateTenantRequest {
        tenant_name: name.into(),
        source: source.into(),
        comment: String::new(),
        if_not_exists: false,
        root_password: None,
    };
    client
        .create_tenant(tenant("t1", "dir:///data/t1"))
        .await
        .unwrap();
    let cases: Vec<(tonic::Status, Code)> = vec![
        (
            client
                .create_tenant(tenant("t1", "dir:///data/x"))
                .await
                .unwrap_err(),
            Code::EntryExist,
        ),
        (
            client
                .create_tenant(tenant("bad name", "dir:///x"))
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            client
                .create_tenant(tenant("t2", "dir://relative"))
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            client
                .create_tenant(tenant("t2", "s3://bucket"))
                .await
                .unwrap_err(),
            Code::InvalidArgument,
        ),
        (
            client
                .drop_tenant(DropTenantRequest {
                    tenant_name: "nope".into(),
                    if_exists: false,
                })
                .await
                .unwrap_err(),
            Code::EntryNotExist,
        ),
    ];
    for (status, want) in cases {
        assert_eq!(code_of(&status), want, "{status:?}");
    }
    let set = |name: &str, value: &str, tenant: &str| SetParameterRequest {
        name: name.into(),
        value: value.into(),
        tenant_name: tenant.into(),
    };
    let param_cases = [
        (set("backup_dst", "file:///x", ""), Code::InvalidArgument),
        (
            set("backup_dest", "file://relative", ""),
            Code::InvalidBackupDest,
        ),
        (
            set("backup_dest", "file:///x?host=y", ""),
            Code::NotSupported,
        ),
        (
            set("backup_dest", "s3://b/p?access_id=a", ""),
            Code::InvalidBackupDest,
        ),
        (
            set("backup_dest_option", "recovery_window=7w", ""),
            Code::InvalidArgument,
        ),
        (
            set("backup_backup_dest", "file:///copy", ""),
            Code::NotSupported,
        ),
        (
            set("backup_dest", "file:///x", "no_such_tenant"),
            Code::EntryNotExist,
        ),
    ];
    for (req, want) in param_cases {
        let status = client.set_parameter(req.clone()).await.unwrap_err();
        assert_eq!(code_of(&status), want, "{req:?}: {status:?}");
        assert!(
            status.message().starts_with(want.name()),
            "{}",
            status.message()
        );
    }
    let ok = client
        .set_parameter(set(
            "backup_dest",
            "s3://bkt/p?host=http://127.0.0.1:9000&access_id=a&access_key=TOPSECRET",
            "",
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !ok.value.contains("TOPSECRET") && ok.value.contains("access_key=***"),
        "{}",
        ok.value
    );
    // The node is still healthy after all of that.
    assert_eq!(c.node(1).status().await.state, "Leader");
    c.shutdown_all().await;
}
