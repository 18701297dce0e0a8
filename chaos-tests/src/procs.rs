//! A cluster of real `backstop` processes for chaos runs: 3 or 5 meta nodes, workers
//! that reach the meta group only through fault-injecting proxies (one per worker and
//! meta node, so one worker can be partitioned alone), and a SQL gateway. Every child
//! is killed when the cluster drops, so a run never leaves processes behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use backstop_client::{MetaClient, Route};
use backstop_proto::meta::ClusterStatusRequest;
use backstop_proto::meta::meta_service_client::MetaServiceClient;

use crate::proxy::{Mode, Proxy};

pub use backstop_testkit::Proc;

/// The `backstop` binary: `BACKSTOP_BIN`, or next to this executable (also from
/// `target/*/deps/` where tests run).
pub fn backstop_bin() -> anyhow::Result<PathBuf> {
    Ok(backstop_testkit::backstop_bin()?)
}

/// A port nobody listens on, the same for the same seed (replayable runs).
pub fn free_port(seed: u64) -> u16 {
    backstop_testkit::free_port_from(seed)
}

/// The processes of one chaos run.
pub struct ProcCluster {
    /// Everything lives here.
    pub dir: PathBuf,
    bin: PathBuf,
    /// Meta node addresses (node `i + 1` at index `i`).
    pub meta_addrs: Vec<String>,
    /// The shared meta client over `meta_addrs` (the harness's own calls: setup, the
    /// workload's deletes, the invariants' reads).
    meta: std::sync::Arc<MetaClient>,
    metas: Vec<Option<Proc>>,
    /// Workers.
    workers: Vec<Option<Proc>>,
    /// `worker_proxies[w][m]`: worker `w`'s way to meta node `m`.
    pub worker_proxies: Vec<Vec<Proxy>>,
    /// `meta_links[i][j]`: meta node `i`'s way to meta node `j` (`None` for `i == j`),
    /// given to node `i` as `--peer-addr`, so any link can be cut.
    pub meta_links: Vec<Vec<Option<Proxy>>>,
    /// The gateway and its MySQL port.
    gateway: Option<Proc>,
    /// MySQL port of the gateway.
    pub sql_port: u16,
    config: PathBuf,
    seed: u64,
    /// The S3-compatible server (moto) and the proxy in front of it, when asked for.
    s3: Option<(Proc, Proxy)>,
    /// Size-limited file systems mounted for this run (unmounted on drop).
    mounts: Vec<PathBuf>,
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        // Processes first (fields drop after this), so nothing holds the mounts open.
        self.workers.clear();
        self.metas.clear();
        self.gateway.take();
        for m in &self.mounts {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

impl ProcCluster {
    /// Starts `metas` meta nodes (node 1 bootstraps, the others join), `workers`
    /// workers behind proxies and a gateway. `lease_ms` is the task lease.
    pub async fn start(
        dir: &Path,
        metas: usize,
        workers: usize,
        lease_ms: u64,
        seed: u64,
    ) -> anyhow::Result<ProcCluster> {
        let bin = backstop_bin()?;
        let config = dir.join("backstop.toml");
        std::fs::write(&config, format!("[meta]\ntask_lease_ms = {lease_ms}\n"))?;
        let meta_addrs: Vec<String> = (0..metas)
            .map(|i| format!("127.0.0.1:{}", free_port(seed + i as u64)))
            .collect();
        let meta = MetaClient::with(meta_addrs.clone(), Route::Leader, Duration::from_secs(10));
        let mut c = ProcCluster {
            dir: dir.to_path_buf(),
            bin,
            meta_addrs,
            meta,
            metas: Vec::new(),
            workers: Vec::new(),
            worker_proxies: Vec::new(),
            meta_links: Vec::new(),
            gateway: None,
            sql_port: 0,
            config,
            seed,
            s3: None,
            mounts: Vec::new(),
        };
        for i in 0..metas {
            let mut links = Vec::new();
            for j in 0..metas {
                links.push(if i == j {
                    None
                } else {
                    Some(Proxy::start(c.meta_addrs[j].parse()?).await?)
                });
            }
            c.meta_links.push(links);
        }
        for i in 0..metas {
            let p = c.spawn_meta(i)?;
            c.metas.push(Some(p));
            if i == 0 {
                c.wait_leader(Duration::from_secs(30)).await?;
            }
        }
        c.wait_voters(metas, Duration::from_secs(60)).await?;
        for w in 0..workers {
            let mut proxies = Vec::new();
            for addr in &c.meta_addrs {
                let target: SocketAddr = addr.parse()?;
                proxies.push(Proxy::start(target).await?);
            }
            c.worker_proxies.push(proxies);
            let p = c.spawn_worker(w)?;
            c.workers.push(Some(p));
        }
        c.sql_port = free_port(seed + 100);
        c.gateway = Some(c.spawn_gateway()?);
        Ok(c)
    }

    /// The failpoints file of process `name` (`worker0`, `meta1`): what it holds is
    /// armed in the running process (failpoints builds only).
    pub fn failpoints_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.failpoints"))
    }

    /// Arms `spec` (`point=actions;…`, empty disarms) in process `name`.
    pub fn arm(&self, name: &str, spec: &str) -> anyhow::Result<()> {
        std::fs::write(self.failpoints_file(name), spec)?;
        Ok(())
    }

    /// How often each failpoint fired in any process of the run, from the logs.
    pub fn failpoint_hits(&self) -> std::collections::BTreeMap<String, u64> {
        let mut hits = std::collections::BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return hits;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "log") {
                continue;
            }
            let Ok(text) = std::fs::read(&path) else {
                continue;
            };
            for line in String::from_utf8_lossy(&text).lines() {
                if let Some(rest) = line.strip_prefix("failpoint ")
                    && let Some((name, _)) = rest.split_once(" fired")
                {
                    *hits.entry(name.to_string()).or_insert(0) += 1;
                }
            }
        }
        hits
    }

    fn spawn(&self, args: &[&str], log: &str) -> anyhow::Result<Proc> {
        let name = log.trim_end_matches(".log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(log))?;
        let child = Command::new(&self.bin)
            .args(args)
            .env("BACKSTOP_FAILPOINTS_FILE", self.failpoints_file(name))
            .env_remove("FAILPOINTS")
            .env_remove("BACKSTOP_CONFIG")
            .env("BACKSTOP_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        Ok(Proc(child))
    }

    fn spawn_meta(&self, i: usize) -> anyhow::Result<Proc> {
        let id = (i + 1).to_string();
        let data = self.dir.join(format!("meta{}", i + 1));
        let data = data.to_string_lossy().into_owned();
        let config = self.config.to_string_lossy().into_owned();
        let mut args = vec![
            "--config",
            config.as_str(),
            "meta",
            "--node-id",
            &id,
            "--listen",
            &self.meta_addrs[i],
            "--data-dir",
            &data,
        ];
        if i > 0 {
            args.extend(["--join", &self.meta_addrs[0]]);
        } else {
            args.push("--bootstrap");
        }
        let routes: Vec<String> = self.meta_links[i]
            .iter()
            .enumerate()
            .filter_map(|(j, p)| Some(format!("{}={}", j + 1, p.as_ref()?.listen)))
            .collect();
        for route in &routes {
            args.extend(["--peer-addr", route]);
        }
        self.spawn(&args, &format!("meta{}.log", i + 1))
    }

    fn spawn_worker(&self, w: usize) -> anyhow::Result<Proc> {
        let meta: Vec<String> = self.worker_proxies[w]
            .iter()
            .map(|p| p.listen.to_string())
            .collect();
        let meta = meta.join(",");
        let data = self.dir.join(format!("worker{w}"));
        let data = data.to_string_lossy().into_owned();
        self.spawn(
            &[
                "worker",
                "--meta",
                &meta,
                "--data-dir",
                &data,
                "--slots",
                "2",
                "--allow-path",
                &self.dir.to_string_lossy(),
            ],
            &format!("worker{w}.log"),
        )
    }

    fn spawn_gateway(&self) -> anyhow::Result<Proc> {
        let listen = format!("127.0.0.1:{}", self.sql_port);
        self.spawn(
            &[
                "gateway",
                "--meta",
                &self.meta_addrs.join(","),
                "--listen",
                &listen,
            ],
            "gateway.log",
        )
    }

    /// A gRPC client of the current meta leader, through the shared client
    /// ([`MetaClient::leader_service`]: found afresh, since the nemeses move it).
    pub async fn client(&self) -> anyhow::Result<MetaServiceClient<tonic::transport::Channel>> {
        Ok(self.meta.leader_service().await?)
    }

    /// The leader's index (node id − 1).
    pub async fn leader(&self) -> anyhow::Result<usize> {
        for (i, addr) in self.meta_addrs.iter().enumerate() {
            if !self.metas.get(i).is_some_and(Option::is_some) {
                continue;
            }
            let Ok(ch) = backstop_client::channel(addr, None) else {
                continue;
            };
            let mut c = MetaServiceClient::new(ch);
            if let Ok(s) = c
                .get_cluster_status(ClusterStatusRequest { with_digest: false })
                .await
            {
                let s = s.into_inner();
                if let Some(l) = s.leader_id {
                    return Ok(l as usize - 1);
                }
            }
        }
        bail!("no leader")
    }

    async fn wait_leader(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.leader().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("no meta leader within {within:?}")
    }

    async fn wait_voters(&self, n: usize, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(mut c) = self.client().await
                && let Ok(s) = c
                    .get_cluster_status(ClusterStatusRequest { with_digest: false })
                    .await
            {
                let s = s.into_inner();
                if s.members.iter().filter(|m| m.role == "voter").count() == n && s.cluster_id != 0
                {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{n} voters did not form within {within:?}")
    }

    /// Number of meta nodes.
    pub fn meta_count(&self) -> usize {
        self.metas.len()
    }

    /// Number of workers.
    pub fn worker_count(&self) -> usize {
        self.workers.len()
    }

    /// SIGKILLs meta node `i` (index).
    pub fn kill_meta(&mut self, i: usize) {
        self.metas[i].take();
    }

    /// Restarts meta node `i` from its data dir.
    pub fn restart_meta(&mut self, i: usize) -> anyhow::Result<()> {
        if self.metas[i].is_none() {
            self.metas[i] = Some(self.spawn_meta(i)?);
        }
        Ok(())
    }

    /// SIGKILLs worker `w`.
    pub fn kill_worker(&mut self, w: usize) {
        self.workers[w].take();
    }

    /// Restarts worker `w` (same id, from its data dir).
    pub fn restart_worker(&mut self, w: usize) -> anyhow::Result<()> {
        if self.workers[w].is_none() {
            self.workers[w] = Some(self.spawn_worker(w)?);
        }
        Ok(())
    }

    /// SIGSTOP (`true`) or SIGCONT a worker.
    pub fn pause_worker(&self, w: usize, stop: bool) -> anyhow::Result<()> {
        match &self.workers[w] {
            Some(p) => Ok(p.signal(if stop { "-STOP" } else { "-CONT" })?),
            None => Ok(()),
        }
    }

    /// SIGKILLs and restarts the gateway.
    pub fn restart_gateway(&mut self) -> anyhow::Result<()> {
        self.gateway.take();
        self.gateway = Some(self.spawn_gateway()?);
        Ok(())
    }

    /// Cuts (or heals) the links between meta node `i` and every other meta node:
    /// `Mode::Drop` both ways isolates it; `Mode::OneWay` on the links into it lets
    /// it send but never hear back.
    pub fn partition_meta(&self, i: usize, inbound: Mode, outbound: Mode) {
        for (j, links) in self.meta_links.iter().enumerate() {
            if j == i {
                for p in links.iter().flatten() {
                    p.set(outbound);
                }
            } else if let Some(p) = &links[i] {
                p.set(inbound);
            }
        }
    }

    /// Restarts workers that exited (a `crash` failpoint); returns their indexes.
    pub fn restart_exited_workers(&mut self) -> anyhow::Result<Vec<usize>> {
        let mut restarted = Vec::new();
        for w in 0..self.workers.len() {
            if self.workers[w].as_mut().is_some_and(Proc::exited) {
                self.workers[w] = None;
                self.restart_worker(w)?;
                restarted.push(w);
            }
        }
        Ok(restarted)
    }

    /// Partitions worker `w` from every meta node (or heals it).
    pub fn partition_worker(&self, w: usize, cut: bool) {
        for p in &self.worker_proxies[w] {
            p.set(if cut { Mode::Drop } else { Mode::Pass });
        }
    }

    /// Heals every fault this cluster controls: proxies pass, paused workers continue,
    /// dead processes restart.
    pub fn heal(&mut self) -> anyhow::Result<()> {
        for links in &self.meta_links {
            for p in links.iter().flatten() {
                p.set(Mode::Pass);
                p.delay(Duration::ZERO);
            }
        }
        for w in 0..self.workers.len() {
            self.arm(&format!("worker{w}"), "")?;
        }
        for i in 0..self.metas.len() {
            self.arm(&format!("meta{}", i + 1), "")?;
        }
        self.restart_exited_workers()?;
        for w in 0..self.workers.len() {
            self.partition_worker(w, false);
            for p in &self.worker_proxies[w] {
                p.delay(Duration::ZERO);
            }
            self.pause_worker(w, false)?;
            self.restart_worker(w)?;
        }
        for i in 0..self.metas.len() {
            self.restart_meta(i)?;
        }
        if self.gateway.is_none() {
            self.gateway = Some(self.spawn_gateway()?);
        }
        if let Some(p) = self.s3_proxy() {
            p.set(Mode::Pass);
            p.delay(Duration::ZERO);
        }
        Ok(())
    }

    /// The seed the cluster was started with.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Starts an S3-compatible server (moto, from `scripts/setup.sh`) with `bucket`,
    /// behind a fault-injecting proxy; returns the `s3://` URI through the proxy.
    pub async fn start_s3(&mut self, bucket: &str) -> anyhow::Result<String> {
        let port = free_port(self.seed + 200);
        let (log, b) = (self.dir.join("moto.log"), bucket.to_string());
        let moto =
            tokio::task::spawn_blocking(move || backstop_testkit::start_moto(&log, port, &b))
                .await??;
        let proxy = Proxy::start(format!("127.0.0.1:{port}").parse()?).await?;
        let uri = backstop_testkit::moto_uri(&proxy.listen.to_string(), bucket, "copies");
        self.s3 = Some((moto, proxy));
        Ok(uri)
    }

    /// Mounts a `bytes`-sized tmpfs at `path` (a `file://` destination that can fill
    /// up). `Ok(false)` where mounting is not permitted (not root).
    pub fn small_fs(&mut self, path: &Path, bytes: u64) -> anyhow::Result<bool> {
        std::fs::create_dir_all(path)?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(path)
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            self.mounts.push(path.to_path_buf());
        }
        Ok(ok)
    }

    /// Fills the file system holding `dir` until writes fail with ENOSPC; returns
    /// the filler file to remove when the fault ends.
    pub fn fill(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        use std::io::Write;
        let filler = dir.join(".chaos-filler");
        let mut f = std::fs::File::create(&filler)?;
        let chunk = vec![0u8; 256 * 1024];
        for _ in 0..4096 {
            if f.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        Ok(filler)
    }

    /// The proxy in front of the S3 server, if there is one.
    pub fn s3_proxy(&self) -> Option<&Proxy> {
        self.s3.as_ref().map(|(_, p)| p)
    }
}
