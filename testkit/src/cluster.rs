//! Real `backstop` processes for integration tests: a meta node (or three), workers,
//! `ctl`, `restore`, `cert`, an S3-compatible server (moto) and a workload writing
//! into a source while it is backed up. Every child is killed with SIGKILL when its
//! guard drops, so a failing test leaves nothing.
//!
//! Test support fails loudly: a step that cannot be done panics with what failed,
//! which fails the test that asked for it (hence the `unwrap`s, allowed here only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backstop_workload::{self as workload, RunLimits};

use serde_json::Value;

use crate::{Proc, free_port, wait_for};

/// The `backstop` binary under test ([`crate::backstop_bin`]); panics when there is none.
pub fn bin() -> PathBuf {
    crate::backstop_bin().unwrap_or_else(|e| panic!("{e}"))
}

pub fn spawn(args: &[&str], log: &Path) -> Proc {
    spawn_env(args, log, &[])
}

pub fn spawn_env(args: &[&str], log: &Path, env: &[(String, String)]) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(bin())
            .args(args)
            // Tests keep their destinations and restore targets in temporary
            // directories: workers may write there (a test may narrow it).
            .env("BACKSTOP_ALLOW_PATH", std::env::temp_dir())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("BACKSTOP_CONFIG")
            .env("BACKSTOP_LOG", "info,openraft=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn backstop"),
    )
}

/// A one-node meta cluster plus workers, all real processes.
pub struct Cluster {
    pub dir: PathBuf,
    pub meta: String,
    pub meta_proc: Proc,
    pub workers: Vec<Option<Proc>>,
    pub worker_env: Vec<(String, String)>,
    /// Extra `ctl` flags (TLS and login of [`Cluster::start_tls`]).
    pub ctl_args: Vec<String>,
    /// Extra `ctl` environment (the login's password).
    pub ctl_env: Vec<(String, String)>,
    /// The certificates directory of a TLS cluster.
    pub tls: Option<PathBuf>,
}

/// The `root@sys` password of [`Cluster::start_tls`].
pub const ROOT_PASSWORD: &str = "Sys-r00t-pw";

/// Runs `backstop cert ARGS`; panics with its stderr on failure.
pub fn cert(args: &[&str]) {
    let out = Command::new(bin())
        .arg("cert")
        .args(args)
        .output()
        .expect("run cert");
    assert!(
        out.status.success(),
        "cert {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `backstop cert issue --dir certs --role ROLE NAME [--host HOST]`: `certs/NAME.pem`
/// and `certs/NAME.key`.
pub fn issue(certs: &Path, role: &str, name: &str, host: Option<&str>) {
    let dir = certs.to_str().unwrap();
    let mut args = vec!["issue", "--dir", dir, "--role", role, name];
    if let Some(h) = host {
        args.extend(["--host", h]);
    }
    cert(&args);
}

/// `--tls-ca` (and, with `name`, `--tls-cert`/`--tls-key` of that certificate).
pub fn tls_args(certs: &Path, name: Option<&str>) -> Vec<String> {
    let mut v = vec![
        "--tls-ca".to_string(),
        certs.join("ca.pem").display().to_string(),
    ];
    if let Some(n) = name {
        v.push("--tls-cert".to_string());
        v.push(certs.join(format!("{n}.pem")).display().to_string());
        v.push("--tls-key".to_string());
        v.push(certs.join(format!("{n}.key")).display().to_string());
    }
    v
}

impl Cluster {
    pub fn start(dir: &Path, workers: usize, lease_ms: u64) -> Cluster {
        Cluster::start_env(dir, workers, lease_ms, &[])
    }

    /// Like [`Cluster::start`], with extra environment for the workers.
    pub fn start_env(
        dir: &Path,
        workers: usize,
        lease_ms: u64,
        worker_env: &[(&str, &str)],
    ) -> Cluster {
        Cluster::start_with(dir, workers, lease_ms, worker_env, false)
    }

    /// The documented production setup (`docs/SECURITY.md`): a CA and certificates
    /// from `backstop cert`, a meta node serving TLS with a `root@sys` password
    /// ([`ROOT_PASSWORD`]), workers with worker certificates, and `ctl` over TLS
    /// logged in as `root@sys`. The files are in `dir/certs`.
    pub fn start_tls(dir: &Path, workers: usize, lease_ms: u64) -> Cluster {
        Cluster::start_with(dir, workers, lease_ms, &[], true)
    }

    fn start_with(
        dir: &Path,
        workers: usize,
        lease_ms: u64,
        worker_env: &[(&str, &str)],
        tls: bool,
    ) -> Cluster {
        let config = dir.join("backstop.toml");
        std::fs::write(&config, format!("[meta]\ntask_lease_ms = {lease_ms}\n")).unwrap();
        let meta = format!("127.0.0.1:{}", free_port());
        let meta_dir = dir.join("meta");
        let certs = dir.join("certs");
        let mut meta_args: Vec<String> = [
            "--config",
            config.to_str().unwrap(),
            "meta",
            "--node-id",
            "1",
            "--listen",
            &meta,
            "--data-dir",
            meta_dir.to_str().unwrap(),
            "--bootstrap",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut meta_env = Vec::new();
        let (mut ctl_args, mut ctl_env) = (Vec::new(), Vec::new());
        if tls {
            cert(&["init", "--dir", certs.to_str().unwrap()]);
            issue(&certs, "meta", "m1", Some("127.0.0.1"));
            meta_args.extend(tls_args(&certs, Some("m1")));
            meta_env.push((
                "BACKSTOP_ROOT_PASSWORD".to_string(),
                ROOT_PASSWORD.to_string(),
            ));
            ctl_args = tls_args(&certs, None);
            ctl_args.extend(["--user".to_string(), "root@sys".to_string()]);
            ctl_env.push(("BACKSTOP_PASSWORD".to_string(), ROOT_PASSWORD.to_string()));
        }
        let refs: Vec<&str> = meta_args.iter().map(String::as_str).collect();
        let meta_proc = spawn_env(&refs, &dir.join("meta.log"), &meta_env);
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            meta,
            meta_proc,
            workers: Vec::new(),
            worker_env: worker_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ctl_args,
            ctl_env,
            tls: tls.then_some(certs),
        };
        wait_for("meta leader", 30, || {
            c.try_ctl(&["status"])
                .filter(|s| s["leader_id"] == 1 && s["cluster_id"] != 0)
        });
        for _ in 0..workers {
            c.add_worker();
        }
        let n = workers;
        wait_for("workers registered", 30, || {
            c.try_ctl(&["workers"])
                .filter(|w| w.as_array().is_some_and(|a| a.len() == n))
        });
        c
    }

    pub fn add_worker(&mut self) -> usize {
        let i = self.workers.len();
        let wdir = self.dir.join(format!("worker{i}"));
        let mut args: Vec<String> = [
            "worker",
            "--meta",
            &self.meta,
            "--data-dir",
            wdir.to_str().unwrap(),
            "--slots",
            "2",
            "--allow-hooks",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(certs) = &self.tls {
            let name = format!("w{i}");
            issue(certs, "worker", &name, None);
            args.extend(tls_args(certs, Some(&name)));
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let p = spawn_env(
            &refs,
            &self.dir.join(format!("worker{i}.log")),
            &self.worker_env,
        );
        self.workers.push(Some(p));
        i
    }

    pub fn try_ctl(&self, args: &[&str]) -> Option<Value> {
        let out = self.ctl_raw(args);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn ctl_raw(&self, args: &[&str]) -> Output {
        Command::new(bin())
            .args(["ctl", "--meta", &self.meta, "--timeout", "5", "--json"])
            .args(&self.ctl_args)
            .envs(self.ctl_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .output()
            .expect("run ctl")
    }

    /// Runs ctl and returns its JSON; panics with stderr on failure.
    pub fn ctl(&self, args: &[&str]) -> Value {
        let out = self.ctl_raw(args);
        assert!(
            out.status.success(),
            "ctl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    /// Creates a tenant with a backup_dest and a fast archive.
    pub fn setup_tenant(&self, name: &str, source: &Path, dest: &str, hooks: bool) {
        self.ctl(&[
            "tenant",
            "create",
            name,
            "--source",
            &format!("dir://{}", source.display()),
        ]);
        if hooks {
            let hook = format!("flock {}/workload/write.lock true", source.display());
            self.ctl(&["tenant", "hooks", name, "--begin", &hook]);
        }
        self.ctl(&["param", "set", "backup_dest", dest, "--tenant", name]);
        self.ctl(&[
            "param",
            "set",
            "backup_dest_option",
            "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=3s",
            "--tenant",
            name,
        ]);
    }

    pub fn round(&self, tenant: &str) -> Value {
        let rounds = self.ctl(&["archive", "--tenant", tenant]);
        rounds
            .as_array()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub fn start_archive(&self, tenant: &str) {
        self.ctl(&["archivelog", "--tenant", tenant]);
        wait_for("archive DOING", 30, || {
            (self.round(tenant)["status"] == "DOING").then_some(())
        });
    }

    /// Starts a backup and waits for its set to succeed; returns the set row.
    pub fn backup(&self, tenant: &str, incremental: bool) -> Value {
        let mut args = vec!["backup", "--tenant", tenant];
        if incremental {
            args.push("--incremental");
        }
        let jobs = self.ctl(&args);
        let job = jobs["job_ids"][0].as_u64().unwrap();
        self.wait_set_of_job(tenant, job)
    }

    pub fn wait_set_of_job(&self, tenant: &str, job: u64) -> Value {
        wait_for("backup set", 120, || {
            let sets = self.ctl(&["sets", "--tenant", tenant]);
            let set = sets
                .as_array()?
                .iter()
                .find(|s| s["job_id"] == job)?
                .clone();
            assert_ne!(set["status"], "FAILED", "backup failed: {set}");
            (set["status"] == "SUCCESS").then_some(set)
        })
    }

    /// Waits until the archive checkpoint reaches `scn`.
    pub fn wait_archived(&self, tenant: &str, scn: u64) {
        wait_for("archive to catch up", 60, || {
            (self.round(tenant)["checkpoint_scn"].as_u64()? >= scn).then_some(())
        });
    }

    pub fn kill_worker(&mut self, i: usize) {
        self.workers[i].take();
    }
}

/// Runs `backstop restore`; returns its JSON or the error text.
pub fn restore(dest: &str, tenant: &str, to: &Path, extra: &[&str]) -> Result<Value, String> {
    let out = Command::new(bin())
        .args([
            "restore",
            "--dest",
            dest,
            "--tenant",
            tenant,
            "--to",
            to.to_str().unwrap(),
            "--json",
        ])
        .args(extra)
        .output()
        .expect("run restore");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// An S3-compatible server (moto) on a free port with one bucket.
pub struct S3 {
    pub proc: Option<Proc>,
    pub port: u16,
}

impl S3 {
    pub fn start(dir: &Path, bucket: &str) -> S3 {
        let port = free_port();
        let moto = crate::start_moto(&dir.join("moto.log"), port, bucket)
            .unwrap_or_else(|e| panic!("{e}"));
        S3 {
            proc: Some(moto),
            port,
        }
    }

    pub fn uri(&self, bucket: &str, prefix: &str) -> String {
        crate::moto_uri(&format!("127.0.0.1:{}", self.port), bucket, prefix)
    }

    pub fn stop(&mut self) {
        self.proc.take();
    }
}

/// Three real meta processes (node 1 bootstraps, 2 and 3 join) plus workers.
pub struct MetaCluster {
    pub dir: PathBuf,
    pub addrs: Vec<String>,
    pub metas: Vec<Option<Proc>>,
    pub workers: Vec<Proc>,
    config: PathBuf,
}

impl MetaCluster {
    pub fn start(dir: &Path, workers: usize, lease_ms: u64) -> MetaCluster {
        MetaCluster::start_env(dir, workers, lease_ms, &[])
    }

    /// Like [`MetaCluster::start`], with extra environment for the workers.
    pub fn start_env(
        dir: &Path,
        workers: usize,
        lease_ms: u64,
        worker_env: &[(&str, &str)],
    ) -> MetaCluster {
        let worker_env: Vec<(String, String)> = worker_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = dir.join("backstop.toml");
        std::fs::write(&config, format!("[meta]\ntask_lease_ms = {lease_ms}\n")).unwrap();
        let addrs: Vec<String> = (0..3)
            .map(|_| format!("127.0.0.1:{}", free_port()))
            .collect();
        let mut c = MetaCluster {
            dir: dir.to_path_buf(),
            addrs,
            metas: Vec::new(),
            workers: Vec::new(),
            config,
        };
        c.metas.push(Some(c.spawn_meta(0)));
        wait_for("node 1 to lead", 30, || {
            c.try_ctl(&["status"])
                .filter(|s| s["leader_id"] == 1 && s["cluster_id"] != 0)
        });
        c.metas.push(Some(c.spawn_meta(1)));
        c.metas.push(Some(c.spawn_meta(2)));
        wait_for("three voters", 60, || {
            c.try_ctl(&["status"]).filter(|s| {
                s["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|m| m["role"] == "voter")
                    .count()
                    == 3
            })
        });
        for i in 0..workers {
            let wdir = dir.join(format!("worker{i}"));
            c.workers.push(spawn_env(
                &[
                    "worker",
                    "--meta",
                    &c.addrs.join(","),
                    "--data-dir",
                    wdir.to_str().unwrap(),
                    "--slots",
                    "2",
                    "--allow-hooks",
                ],
                &dir.join(format!("worker{i}.log")),
                &worker_env,
            ));
        }
        wait_for("workers registered", 30, || {
            c.try_ctl(&["workers"])
                .filter(|w| w.as_array().is_some_and(|a| a.len() == workers))
        });
        c
    }

    fn spawn_meta(&self, i: usize) -> Proc {
        let id = (i + 1).to_string();
        let data = self.dir.join(format!("meta{}", i + 1));
        let mut args = vec![
            "--config",
            self.config.to_str().unwrap(),
            "meta",
            "--node-id",
            &id,
            "--listen",
            &self.addrs[i],
            "--data-dir",
            data.to_str().unwrap(),
        ];
        if i > 0 {
            args.extend(["--join", &self.addrs[0]]);
        } else {
            args.push("--bootstrap");
        }
        spawn(&args, &self.dir.join(format!("meta{}.log", i + 1)))
    }

    pub fn restart_meta(&mut self, i: usize) {
        self.metas[i] = Some(self.spawn_meta(i));
    }

    pub fn try_ctl(&self, args: &[&str]) -> Option<Value> {
        let out = Command::new(bin())
            .args([
                "ctl",
                "--meta",
                &self.addrs.join(","),
                "--timeout",
                "5",
                "--json",
            ])
            .args(args)
            .output()
            .ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn ctl(&self, args: &[&str]) -> Value {
        wait_for(&format!("ctl {args:?}"), 30, || self.try_ctl(args))
    }

    pub fn leader(&self) -> usize {
        let s = self.ctl(&["status"]);
        s["leader_id"].as_u64().unwrap() as usize - 1
    }
}

/// The workload generator writing in a thread; `finish` stops it.
pub struct Load {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<workload::RunStats>,
}

/// Starts the workload generator on `src` at `rate` log bytes/s (seed 42, at most 300 s).
pub fn start_load(src: &Path, rate: u64) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let (s, p) = (stop.clone(), src.to_path_buf());
    let handle = std::thread::spawn(move || {
        let limits = RunLimits {
            rate,
            duration: Duration::from_secs(300),
            segment_bytes: 1 << 20,
            max_writes: 0,
        };
        workload::run(&p, 42, limits, &s).expect("workload")
    });
    Load { stop, handle }
}

impl Load {
    pub fn finish(self) -> workload::RunStats {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap()
    }
}
