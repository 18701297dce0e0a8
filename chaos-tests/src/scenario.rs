//! Chaos scenarios: a real cluster ([`ProcCluster`]), a workload (archiving tenants fed
//! by the workload generator, backups, copies, and random `CANCEL` / `STOP` / `START` /
//! `SUSPEND` / `RESUME` through the real gateway), named nemeses on a seeded schedule,
//! then — after every fault is healed — the invariants, each one function.
//!
//! A run is replayable: the fault schedule and the operations come from the seed alone
//! (the cluster's own timing still varies). Every run writes `report.json` and prints a
//! table.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::*;
use mysql_async::prelude::Queryable;
use serde::Serialize;
use tonic::transport::Channel;

use crate::procs::{ProcCluster, backstop_bin};
use crate::proxy::Mode;
use crate::workload::{self, RunLimits, Shape};

/// A fault the harness can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Nemesis {
    /// SIGKILL the meta leader; restart it when the fault ends.
    KillMetaLeader,
    /// SIGKILL a meta follower; restart it when the fault ends.
    KillMetaFollower,
    /// SIGKILL a worker; restart it when the fault ends.
    KillWorker,
    /// SIGKILL the gateway; restart it when the fault ends.
    KillGateway,
    /// SIGSTOP a worker for longer than its lease (a zombie), then SIGCONT.
    PauseWorker,
    /// Cut a worker off from every meta node (proxy), then heal.
    PartitionWorker,
    /// Delay a worker's traffic to the meta group by 300 ms each way, then heal.
    SlowWorkerLink,
    /// The S3 server behind `backup_backup_dest` unreachable (connections dropped).
    S3Outage,
    /// 200 ms added to every chunk to and from the S3 server.
    S3Slow,
    /// The piece-copy destination's file system full (ENOSPC), then space again.
    DiskFull,
    /// The meta leader cut off from the other meta nodes (both ways), then healed.
    PartitionMetaLeader,
    /// A meta follower cut off from the other meta nodes (both ways), then healed.
    PartitionMetaFollower,
    /// A meta node that can send to its peers but hears nothing back from them
    /// (every link into it dropped): it times out, calls elections, disrupts.
    OneWayMeta,
    /// The S3 server answers every request with `503 SlowDown`.
    S3Errors,
    /// Answers from the S3 server cut after 1,500 bytes: reads end before their
    /// `Content-Length`.
    S3TruncatedReads,
    /// The meta leader's clock jumps 30–120 s back or forward (`meta::clock`
    /// failpoint), then returns: leader-assigned times must stay monotonic.
    ClockJump,
    /// A worker failpoint armed on every worker (the points in turn; crash, error or
    /// a 1.5 s stall, by the seed), with the statements that start work passing it;
    /// crashed workers restart when it is disarmed.
    Failpoint,
}

impl Nemesis {
    /// Every nemesis.
    pub const ALL: [Nemesis; 17] = [
        Nemesis::KillMetaLeader,
        Nemesis::KillMetaFollower,
        Nemesis::KillWorker,
        Nemesis::KillGateway,
        Nemesis::PauseWorker,
        Nemesis::PartitionWorker,
        Nemesis::SlowWorkerLink,
        Nemesis::S3Outage,
        Nemesis::S3Slow,
        Nemesis::DiskFull,
        Nemesis::PartitionMetaLeader,
        Nemesis::PartitionMetaFollower,
        Nemesis::OneWayMeta,
        Nemesis::S3Errors,
        Nemesis::S3TruncatedReads,
        Nemesis::ClockJump,
        Nemesis::Failpoint,
    ];

    /// Name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Nemesis::KillMetaLeader => "kill-meta-leader",
            Nemesis::KillMetaFollower => "kill-meta-follower",
            Nemesis::KillWorker => "kill-worker",
            Nemesis::KillGateway => "kill-gateway",
            Nemesis::PauseWorker => "pause-worker",
            Nemesis::PartitionWorker => "partition-worker",
            Nemesis::SlowWorkerLink => "slow-worker-link",
            Nemesis::S3Outage => "s3-outage",
            Nemesis::S3Slow => "s3-slow",
            Nemesis::DiskFull => "disk-full",
            Nemesis::PartitionMetaLeader => "partition-meta-leader",
            Nemesis::PartitionMetaFollower => "partition-meta-follower",
            Nemesis::OneWayMeta => "one-way-meta",
            Nemesis::S3Errors => "s3-errors",
            Nemesis::S3TruncatedReads => "s3-truncated-reads",
            Nemesis::ClockJump => "clock-jump",
            Nemesis::Failpoint => "failpoint",
        }
    }

    /// Whether it needs the S3 server.
    pub fn needs_s3(self) -> bool {
        matches!(
            self,
            Nemesis::S3Outage | Nemesis::S3Slow | Nemesis::S3Errors | Nemesis::S3TruncatedReads
        )
    }
}

/// A named scenario: which nemeses run, on what cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Name.
    pub name: &'static str,
    /// What it exercises.
    pub about: &'static str,
    /// Nemeses drawn from.
    pub nemeses: Vec<Nemesis>,
    /// Meta nodes.
    pub metas: usize,
    /// Workers.
    pub workers: usize,
}

/// Every scenario.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "meta-failover",
            about: "meta leader and followers killed and restarted while jobs run",
            nemeses: vec![Nemesis::KillMetaLeader, Nemesis::KillMetaFollower],
            metas: 3,
            workers: 2,
        },
        Scenario {
            name: "meta-partitions",
            about: "meta nodes cut off from each other (leader, follower, one-way) and the leader's clock jumping",
            nemeses: vec![
                Nemesis::PartitionMetaLeader,
                Nemesis::PartitionMetaFollower,
                Nemesis::OneWayMeta,
                Nemesis::ClockJump,
            ],
            metas: 3,
            workers: 2,
        },
        Scenario {
            name: "failpoints",
            about: "workers crash, fail or stall at exact steps of backup, archive, copy, commit and cleanup",
            nemeses: vec![Nemesis::Failpoint],
            metas: 3,
            workers: 2,
        },
        Scenario {
            name: "worker-faults",
            about: "workers killed, paused past their lease (zombies), partitioned and slowed",
            nemeses: vec![
                Nemesis::KillWorker,
                Nemesis::PauseWorker,
                Nemesis::PartitionWorker,
                Nemesis::SlowWorkerLink,
            ],
            metas: 3,
            workers: 2,
        },
        Scenario {
            name: "storage-faults",
            about: "backup_backup_dest on S3 (moto) behind a proxy that drops, slows, fails (503) and truncates it; a worker killed",
            nemeses: vec![
                Nemesis::S3Outage,
                Nemesis::S3Slow,
                Nemesis::S3Errors,
                Nemesis::S3TruncatedReads,
                Nemesis::KillWorker,
            ],
            metas: 3,
            workers: 2,
        },
        Scenario {
            name: "disk-full",
            about: "the piece-copy destination (a 24 MiB tmpfs) fills up while copies run; a worker killed",
            nemeses: vec![Nemesis::DiskFull, Nemesis::KillWorker],
            metas: 3,
            workers: 2,
        },
        Scenario {
            name: "everything",
            about: "every nemesis, including the gateway and S3",
            nemeses: Nemesis::ALL.to_vec(),
            metas: 3,
            workers: 2,
        },
    ]
}

/// SplitMix64: a tiny deterministic generator, so a seed replays the same schedule
/// whatever the dependency versions.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// From a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One injected fault.
#[derive(Debug, Clone, Serialize)]
pub struct Fault {
    /// Seconds into the run.
    pub at_s: f64,
    /// Which.
    pub nemesis: &'static str,
    /// Which process (index).
    pub target: usize,
    /// How long it lasted (s).
    pub held_s: f64,
    /// What exactly (a failpoint and its action, a clock shift), if more than the
    /// nemesis says.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One operation of the workload.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    /// Seconds into the run.
    pub at_s: f64,
    /// Statement or call.
    pub what: String,
    /// Acknowledged (`ok`) or the error.
    pub result: String,
    /// Wall clock when it returned (ms since the epoch).
    pub returned_ms: u64,
}

/// One invariant's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Invariant.
    pub invariant: &'static str,
    /// Held.
    pub ok: bool,
    /// What was checked, or what broke.
    pub detail: String,
}

/// What a run did and found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Seconds of faults.
    pub duration_s: u64,
    /// Faults injected.
    pub faults: Vec<Fault>,
    /// Operations.
    pub operations: Vec<Operation>,
    /// Invariants.
    pub invariants: Vec<Verdict>,
    /// Seconds from healing to a quiet cluster.
    pub settle_s: f64,
    /// Failpoints that fired, with counts (from the processes' logs).
    pub failpoints_hit: std::collections::BTreeMap<String, u64>,
    /// Seconds of the whole run.
    pub total_s: f64,
}

impl Report {
    /// Every invariant held.
    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|v| v.ok)
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "scenario {} seed {} ({} s of faults, {} faults, {} operations, settled in {:.1} s, {:.0} s in all)\n",
            self.scenario,
            self.seed,
            self.duration_s,
            self.faults.len(),
            self.operations.len(),
            self.settle_s,
            self.total_s
        );
        if !self.failpoints_hit.is_empty() {
            let hits: Vec<String> = self
                .failpoints_hit
                .iter()
                .map(|(k, v)| format!("{k}×{v}"))
                .collect();
            s.push_str(&format!("  failpoints fired: {}\n", hits.join(", ")));
        }
        for v in &self.invariants {
            s.push_str(&format!(
                "  {:<28} {:<4} {}\n",
                v.invariant,
                if v.ok { "ok" } else { "FAIL" },
                v.detail
            ));
        }
        s
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn list() -> ListRequest {
    ListRequest {
        tenant_name: String::new(),
        job_id: 0,
        all: true,
    }
}

/// Tenants of a run fed by the workload generator.
const TENANTS: [&str; 2] = ["t1", "t2"];
/// A tenant that is archived and backed up but never written: its archive stays at
/// the log end (an idle tenant must still back up, copy and restore).
const IDLE: &str = "t3";

struct Run {
    /// `backup_backup_dest` (a `file://` dir, or S3 behind the proxy).
    copy_dest: String,
    /// The piece-copy destination is a size-limited tmpfs.
    small_fs: bool,
    cluster: ProcCluster,
    rng: Rng,
    started: Instant,
    faults: Vec<Fault>,
    ops: Vec<Operation>,
    dir: PathBuf,
    /// Failpoint faults so far (they take the points in turn).
    failpoints_armed: usize,
    /// Wall clock (ms since the epoch) when `started` was taken.
    started_ms: u64,
    /// Leader clock jumps: (wall ms when armed, shift ms).
    clock_shifts: Vec<(u64, i64)>,
}

impl Run {
    fn at(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    async fn meta(&self) -> anyhow::Result<MetaServiceClient<Channel>> {
        self.cluster.client().await
    }

    fn record(&mut self, at: f64, what: String, result: Result<(), String>) {
        self.ops.push(Operation {
            at_s: at,
            what,
            result: match result {
                Ok(()) => "ok".to_string(),
                Err(e) => e,
            },
            returned_ms: now_ms(),
        });
    }

    /// One statement through the gateway (a fresh connection each time, as a DBA's
    /// `mysql -e` would).
    async fn sql(&mut self, stmt: &str) {
        let at = self.at();
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(self.cluster.sql_port)
            .user(Some("root@sys"));
        let result = tokio::time::timeout(Duration::from_secs(10), async {
            let mut c = mysql_async::Conn::new(opts).await?;
            c.query_drop(stmt).await?;
            c.disconnect().await?;
            Ok::<(), mysql_async::Error>(())
        })
        .await;
        let result = match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        self.record(at, stmt.to_string(), result);
    }

    /// One operation chosen by the seed.
    async fn operate(&mut self) {
        let all = [TENANTS[0], TENANTS[1], IDLE];
        let t = all[self.rng.below(all.len() as u64) as usize];
        // Rarely, the escape hatch: it ends every job and pauses the copies; the next
        // START BACKUP ARCHIVELOG resumes them.
        if self.rng.below(40) == 0 {
            self.sql("ALTER SYSTEM CANCEL ALL BACKUP FORCE").await;
            return;
        }
        // The life-cycle operations (issue 11): deletes, tenant-level copies, archive
        // rounds ending and starting, destination changes.
        match self.rng.below(16) {
            0 => return self.delete_a_set(t).await,
            1 => return self.archive_cycle(t).await,
            2 => return self.change_destination().await,
            3 => {
                return self
                    .sql(&format!("ALTER SYSTEM BACKUP BACKUPSET ALL TENANT = {t}"))
                    .await;
            }
            _ => {}
        }
        let stmt = match self.rng.below(10) {
            0 | 1 => format!("ALTER SYSTEM BACKUP DATABASE TENANT = {t}"),
            2 => format!("ALTER SYSTEM BACKUP INCREMENTAL DATABASE TENANT = {t}"),
            3 => "ALTER SYSTEM BACKUP BACKUPSET ALL".to_string(),
            4 => "ALTER SYSTEM CANCEL BACKUP BACKUPSET".to_string(),
            5 => format!(
                "ALTER SYSTEM BACKUP BACKUPPIECE ALL BACKUP_BACKUP_DEST = 'file://{}'",
                self.dir.join("pieces").display()
            ),
            6 => "ALTER SYSTEM CANCEL BACKUP BACKUPPIECE".to_string(),
            7 => {
                if self.rng.below(2) == 0 {
                    "ALTER SYSTEM STOP BACKUP ARCHIVELOG".to_string()
                } else {
                    "ALTER SYSTEM START BACKUP ARCHIVELOG".to_string()
                }
            }
            8 => format!("ALTER SYSTEM CANCEL BACKUP TENANT = {t}"),
            _ => {
                if self.rng.below(2) == 0 {
                    "ALTER SYSTEM SUSPEND BACKUP".to_string()
                } else {
                    "ALTER SYSTEM RESUME BACKUP".to_string()
                }
            }
        };
        self.sql(&stmt).await;
    }

    /// `DELETE BACKUPSET n [COPY 1]` of one of the tenant's available sets (the
    /// refusals — a base of an available incremental, a busy set — are part of it).
    async fn delete_a_set(&mut self, tenant: &str) {
        let Ok(mut m) = self.meta().await else {
            return;
        };
        let Ok(tenants) = m.list_tenants(ListTenantsRequest {}).await else {
            return;
        };
        let Some(tenant_id) = tenants
            .into_inner()
            .tenants
            .iter()
            .find(|t| t.tenant_name == tenant)
            .map(|t| t.tenant_id)
        else {
            return;
        };
        let Ok(sets) = m.list_backup_sets(list()).await else {
            return;
        };
        let candidates: Vec<(u64, u64)> = sets
            .into_inner()
            .sets
            .iter()
            .filter(|s| s.tenant_id == tenant_id && s.file_status == "AVAILABLE")
            .filter(|s| s.copy_id <= 1)
            .map(|s| (s.backup_set_id, s.copy_id))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (id, copy) = candidates[self.rng.below(candidates.len() as u64) as usize];
        let stmt = if copy == 0 {
            format!("ALTER SYSTEM DELETE BACKUPSET {id} TENANT = {tenant}")
        } else {
            format!("ALTER SYSTEM DELETE BACKUPSET {id} COPY {copy} TENANT = {tenant}")
        };
        self.sql(&stmt).await;
    }

    /// `NOARCHIVELOG` for one tenant, then `ARCHIVELOG` again once the round stopped
    /// (a new round: a set taken meanwhile must fail, not show AVAILABLE without log).
    async fn archive_cycle(&mut self, tenant: &str) {
        self.sql(&format!("ALTER SYSTEM NOARCHIVELOG TENANT = {tenant}"))
            .await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.sql(&format!("ALTER SYSTEM ARCHIVELOG TENANT = {tenant}"))
                .await;
            let done = self.ops.last().is_some_and(|o| o.result == "ok");
            if done || Instant::now() > deadline {
                return;
            }
        }
    }

    /// A destination change: `backup_dest` elsewhere (refused while tenants archive to
    /// it) or, on S3, `backup_backup_dest` with rotated credentials (the same place:
    /// every guard must still recognize it).
    async fn change_destination(&mut self) {
        if self.copy_dest.starts_with("s3://") {
            let key = if self.rng.below(2) == 0 {
                "test"
            } else {
                "rotated"
            };
            let uri = self
                .copy_dest
                .replace("access_key=test", &format!("access_key={key}"))
                .replace("access_key=rotated", &format!("access_key={key}"));
            self.copy_dest = uri.clone();
            self.sql(&format!("ALTER SYSTEM SET backup_backup_dest = '{uri}'"))
                .await;
        } else {
            let moved = format!("file://{}", self.dir.join("bk-moved").display());
            self.sql(&format!("ALTER SYSTEM SET backup_dest = '{moved}'"))
                .await;
        }
    }

    /// Injects one fault for `hold`, then heals it.
    async fn fault(&mut self, n: Nemesis, hold: Duration, lease: Duration) -> anyhow::Result<()> {
        let at = self.at();
        let workers = self.cluster.worker_count() as u64;
        let target;
        let mut detail = String::new();
        match n {
            Nemesis::KillMetaLeader => {
                target = self.cluster.leader().await.unwrap_or(0);
                self.cluster.kill_meta(target);
                tokio::time::sleep(hold).await;
                self.cluster.restart_meta(target)?;
            }
            Nemesis::KillMetaFollower => {
                let leader = self.cluster.leader().await.unwrap_or(0);
                let n = self.cluster.meta_count();
                target = (leader + 1 + self.rng.below(n as u64 - 1) as usize) % n;
                self.cluster.kill_meta(target);
                tokio::time::sleep(hold).await;
                self.cluster.restart_meta(target)?;
            }
            Nemesis::KillWorker => {
                target = self.rng.below(workers) as usize;
                self.cluster.kill_worker(target);
                tokio::time::sleep(hold).await;
                self.cluster.restart_worker(target)?;
            }
            Nemesis::KillGateway => {
                target = 0;
                self.cluster.restart_gateway()?;
                tokio::time::sleep(hold).await;
            }
            Nemesis::PauseWorker => {
                target = self.rng.below(workers) as usize;
                self.cluster.pause_worker(target, true)?;
                // Past the lease: the leader hands the work on; the zombie wakes up.
                tokio::time::sleep(hold.max(lease + Duration::from_secs(1))).await;
                self.cluster.pause_worker(target, false)?;
            }
            Nemesis::PartitionWorker => {
                target = self.rng.below(workers) as usize;
                self.cluster.partition_worker(target, true);
                tokio::time::sleep(hold.max(lease + Duration::from_secs(1))).await;
                self.cluster.partition_worker(target, false);
            }
            Nemesis::S3Outage | Nemesis::S3Slow | Nemesis::S3Errors | Nemesis::S3TruncatedReads => {
                target = 0;
                if let Some(p) = self.cluster.s3_proxy() {
                    match n {
                        Nemesis::S3Outage => p.set(Mode::Drop),
                        Nemesis::S3Errors => p.set(Mode::HttpError),
                        Nemesis::S3TruncatedReads => p.set(Mode::Truncate),
                        _ => p.delay(Duration::from_millis(200)),
                    }
                }
                tokio::time::sleep(hold).await;
                if let Some(p) = self.cluster.s3_proxy() {
                    p.set(Mode::Pass);
                    p.delay(Duration::ZERO);
                }
            }
            Nemesis::PartitionMetaLeader | Nemesis::PartitionMetaFollower | Nemesis::OneWayMeta => {
                let leader = self.cluster.leader().await.unwrap_or(0);
                let metas = self.cluster.meta_count();
                target = match n {
                    Nemesis::PartitionMetaLeader => leader,
                    Nemesis::PartitionMetaFollower => {
                        (leader + 1 + self.rng.below(metas as u64 - 1) as usize) % metas
                    }
                    _ => self.rng.below(metas as u64) as usize,
                };
                if n == Nemesis::OneWayMeta {
                    self.cluster.partition_meta(target, Mode::Drop, Mode::Pass);
                } else {
                    self.cluster.partition_meta(target, Mode::Drop, Mode::Drop);
                }
                // Longer than an election: the majority side elects a new leader.
                tokio::time::sleep(hold.max(Duration::from_secs(3))).await;
                self.cluster.partition_meta(target, Mode::Pass, Mode::Pass);
            }
            Nemesis::ClockJump => {
                target = self.cluster.leader().await.unwrap_or(0);
                let secs = 30 + self.rng.below(91) as i64;
                let shift_ms = if self.rng.below(2) == 0 { -secs } else { secs } * 1000;
                detail = format!("leader clock {shift_ms:+} ms");
                self.clock_shifts.push((now_ms(), shift_ms));
                let name = format!("meta{}", target + 1);
                self.cluster.arm(
                    &name,
                    &format!(
                        "{}=return({shift_ms})",
                        backstop_common::failpoints::CLOCK_POINT
                    ),
                )?;
                tokio::time::sleep(hold).await;
                self.cluster.arm(&name, "")?;
            }
            Nemesis::Failpoint => {
                use backstop_common::failpoints::WORKER_POINTS;
                let point = WORKER_POINTS[self.failpoints_armed % WORKER_POINTS.len()];
                self.failpoints_armed += 1;
                target = self.failpoints_armed - 1;
                // The action follows the turn (not the clock-dependent generator), so a
                // seed arms the same point with the same action every time.
                let action = match (self.cluster.seed() as usize + target) % 3 {
                    0 => "1*return(crash)",
                    1 => "return",
                    _ => "return(stall)",
                };
                detail = format!("{point}={action}");
                for w in 0..workers as usize {
                    self.cluster.arm(&format!("worker{w}"), &detail)?;
                }
                // Start the work that passes the point (archiving always runs).
                let t = TENANTS[self.rng.below(TENANTS.len() as u64) as usize];
                let backup = format!("ALTER SYSTEM BACKUP DATABASE TENANT = {t}");
                let statements: Vec<String> = match point.split("::").next() {
                    Some("backup") | Some("task") => vec![backup],
                    Some("copy") => vec![
                        "ALTER SYSTEM BACKUP BACKUPSET ALL".to_string(),
                        format!(
                            "ALTER SYSTEM BACKUP BACKUPPIECE ALL BACKUP_BACKUP_DEST = 'file://{}'",
                            self.dir.join("pieces").display()
                        ),
                    ],
                    Some("clean") => vec![
                        backup,
                        "ALTER SYSTEM BACKUP BACKUPSET ALL".to_string(),
                        format!("ALTER SYSTEM CANCEL BACKUP TENANT = {t}"),
                        "ALTER SYSTEM CANCEL BACKUP BACKUPSET".to_string(),
                    ],
                    _ => Vec::new(),
                };
                for stmt in statements {
                    self.sql(&stmt).await;
                }
                tokio::time::sleep(hold.min(Duration::from_secs(2))).await;
                for w in 0..workers as usize {
                    self.cluster.arm(&format!("worker{w}"), "")?;
                }
                // Give a crash that is under way a moment, then bring the dead back.
                tokio::time::sleep(Duration::from_millis(200)).await;
                let restarted = self.cluster.restart_exited_workers()?;
                if !restarted.is_empty() {
                    detail.push_str(&format!("; restarted crashed workers {restarted:?}"));
                }
            }
            Nemesis::DiskFull => {
                target = 0;
                let dir = self.dir.join("pieces");
                if self.small_fs {
                    let filler = self.cluster.fill(&dir)?;
                    tokio::time::sleep(hold).await;
                    let _ = std::fs::remove_file(filler);
                } else {
                    // No tmpfs (not root): nothing to fill without filling the disk.
                    tokio::time::sleep(hold).await;
                }
            }
            Nemesis::SlowWorkerLink => {
                target = self.rng.below(workers) as usize;
                for p in &self.cluster.worker_proxies[target] {
                    p.delay(Duration::from_millis(300));
                }
                tokio::time::sleep(hold).await;
                for p in &self.cluster.worker_proxies[target] {
                    p.delay(Duration::ZERO);
                }
            }
        }
        let held = self.at() - at;
        self.faults.push(Fault {
            at_s: at,
            nemesis: n.name(),
            target,
            held_s: held,
            detail,
        });
        Ok(())
    }
}

/// Runs `scenario` for `duration` with `seed` in `dir`; returns the report (also
/// written to `dir/report.json`). `Err` only when the harness itself cannot run.
pub async fn run(
    scenario: &Scenario,
    seed: u64,
    duration: Duration,
    dir: &Path,
) -> anyhow::Result<Report> {
    std::fs::create_dir_all(dir)?;
    let lease = Duration::from_millis(3000);
    let started = Instant::now();
    let mut cluster = ProcCluster::start(
        dir,
        scenario.metas,
        scenario.workers,
        lease.as_millis() as u64,
        seed,
    )
    .await
    .context("start the cluster")?;
    let copy_dest = if scenario.nemeses.iter().any(|n| n.needs_s3()) {
        cluster.start_s3("chaos").await?
    } else {
        format!("file://{}", dir.join("bk2").display())
    };
    let small_fs = if scenario.nemeses.contains(&Nemesis::DiskFull) {
        cluster.small_fs(&dir.join("pieces"), 24 << 20)?
    } else {
        false
    };
    let mut r = Run {
        copy_dest,
        small_fs,
        cluster,
        rng: Rng::new(seed),
        started,
        faults: Vec::new(),
        ops: Vec::new(),
        dir: dir.to_path_buf(),
        // The seed picks where the turn of failpoints starts.
        failpoints_armed: (seed % backstop_common::failpoints::WORKER_POINTS.len() as u64) as usize,
        started_ms: now_ms().saturating_sub(started.elapsed().as_millis() as u64),
        clock_shifts: Vec::new(),
    };
    // Tenants fed by the generator.
    let stop_load = Arc::new(AtomicBool::new(false));
    let mut loads = Vec::new();
    for (i, t) in TENANTS.iter().enumerate() {
        let src = dir.join(t);
        workload::init(&src, Shape::of_size(4 << 20, 2), seed + i as u64)?;
        let (stop, seed) = (stop_load.clone(), seed + 10 + i as u64);
        loads.push(std::thread::spawn(move || {
            let limits = RunLimits {
                rate: 100_000,
                duration: Duration::from_secs(24 * 3600),
                segment_bytes: 1 << 20,
                max_writes: 0,
            };
            workload::run(&src, seed, limits, &stop)
        }));
    }
    let setup = setup(&mut r, dir).await;
    let report = match setup {
        Ok(()) => exercise(&mut r, scenario, duration, lease).await,
        Err(e) => Err(e),
    };
    stop_load.store(true, Ordering::Relaxed);
    for l in loads {
        let _ = l.join();
    }
    let mut report = report?;
    report.total_s = started.elapsed().as_secs_f64();
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

async fn setup(r: &mut Run, dir: &Path) -> anyhow::Result<()> {
    let mut m = r.meta().await?;
    workload::init(&dir.join(IDLE), Shape::of_size(1 << 20, 1), 99)?;
    for t in TENANTS.into_iter().chain([IDLE]) {
        m.create_tenant(CreateTenantRequest {
            tenant_name: t.to_string(),
            source: format!("dir://{}", dir.join(t).display()),
            comment: String::new(),
            if_not_exists: true,
        })
        .await?;
    }
    for (name, value) in [
        (
            "backup_dest",
            format!("file://{}", dir.join("bk").display()),
        ),
        (
            "backup_dest_option",
            "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=3s".to_string(),
        ),
        ("backup_backup_dest", r.copy_dest.clone()),
    ] {
        m.set_parameter(SetParameterRequest {
            name: name.to_string(),
            value,
            tenant_name: String::new(),
        })
        .await?;
    }
    m.archivelog(ArchivelogRequest {
        tenant_name: String::new(),
        enable: true,
    })
    .await?;
    wait(Duration::from_secs(60), "archiving", || {
        let mut m = m.clone();
        async move {
            let rounds = m.list_archive(list()).await?.into_inner().rounds;
            Ok(rounds.iter().filter(|x| x.status == "DOING").count() == TENANTS.len() + 1)
        }
    })
    .await?;
    r.sql("ALTER SYSTEM START BACKUP ARCHIVELOG").await;
    Ok(())
}

async fn wait<F, Fut>(within: Duration, what: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(true) => return Ok(()),
            Ok(false) | Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(false) => bail!("{what}: not within {within:?}"),
            Err(e) => return Err(e.context(format!("{what}: not within {within:?}"))),
        }
    }
}

async fn exercise(
    r: &mut Run,
    scenario: &Scenario,
    duration: Duration,
    lease: Duration,
) -> anyhow::Result<Report> {
    let end = Instant::now() + duration;
    let mut next_fault = Instant::now() + Duration::from_secs(2 + r.rng.below(3));
    while Instant::now() < end {
        r.operate().await;
        if Instant::now() >= next_fault && !scenario.nemeses.is_empty() {
            let n = scenario.nemeses[r.rng.below(scenario.nemeses.len() as u64) as usize];
            let hold = Duration::from_millis(1000 + r.rng.below(3000));
            r.fault(n, hold, lease).await?;
            // Failpoints take their turns quickly: each one is armed only briefly.
            let gap = if n == Nemesis::Failpoint {
                1
            } else {
                2 + r.rng.below(4)
            };
            next_fault = Instant::now() + Duration::from_secs(gap);
        }
        tokio::time::sleep(Duration::from_millis(300 + r.rng.below(900))).await;
    }
    // Heal everything, let the work finish, then check.
    r.cluster.heal()?;
    let healed = Instant::now();
    let healed_ms = now_ms();
    r.sql("ALTER SYSTEM RESUME BACKUP").await;
    // An archive cycle cut short by a fault may have left a tenant without a round.
    for t in TENANTS.into_iter().chain([IDLE]) {
        r.sql(&format!("ALTER SYSTEM ARCHIVELOG TENANT = {t}"))
            .await;
    }
    // A random STOP (or CANCEL ALL … FORCE) may have paused the continuous copy:
    // resume it so the copy destination catches up before it is restored from.
    r.sql("ALTER SYSTEM START BACKUP ARCHIVELOG").await;
    let mut verdicts = Vec::new();
    verdicts.push(jobs_settle(r, Duration::from_secs(180)).await);
    let settle_s = healed.elapsed().as_secs_f64();
    verdicts.push(replicas_agree(r).await);
    verdicts.push(acknowledged_work_kept(r).await);
    verdicts.push(cancels_within_bound(r, healed_ms).await);
    verdicts.push(leader_times_monotonic(r).await);
    verdicts.push(archive_continuity(r).await);
    verdicts.push(catalog_equals_storage(r).await);
    verdicts.push(copies_validate_and_restore(r).await);
    Ok(Report {
        scenario: scenario.name.to_string(),
        seed: r.cluster.seed(),
        duration_s: duration.as_secs(),
        faults: r.faults.clone(),
        operations: r.ops.clone(),
        invariants: verdicts,
        settle_s,
        failpoints_hit: r.cluster.failpoint_hits(),
        total_s: 0.0,
    })
}

fn verdict(invariant: &'static str, result: anyhow::Result<String>) -> Verdict {
    match result {
        Ok(detail) => Verdict {
            invariant,
            ok: true,
            detail,
        },
        Err(e) => Verdict {
            invariant,
            ok: false,
            detail: format!("{e:#}"),
        },
    }
}

const FOLLOWERS: [&str; 2] = ["ARCHIVE", "BACKUP_ARCHIVELOG"];

/// Every job ends in a terminal state within a bound after healing (followers —
/// archive rounds and continuous copies — legitimately keep running).
async fn jobs_settle(r: &Run, within: Duration) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let deadline = Instant::now() + within;
        loop {
            let jobs = match m.list_jobs(list()).await {
                Ok(j) => j.into_inner().jobs,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    m = r.meta().await?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let open: Vec<String> = jobs
                .iter()
                .filter(|j| !matches!(j.status.as_str(), "FINISH" | "FAILED" | "CANCELED"))
                .filter(|j| !FOLLOWERS.contains(&j.job_type.as_str()))
                .map(|j| format!("{} {} {}", j.job_id, j.job_type, j.status))
                .collect();
            if open.is_empty() {
                return Ok(format!("{} jobs, all ended or following", jobs.len()));
            }
            if Instant::now() >= deadline {
                bail!("still open after {within:?}: {open:?}");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    .await;
    verdict("jobs_end_after_healing", result)
}

/// All meta replicas apply the same state: equal digests at the same applied index.
async fn replicas_agree(r: &Run) -> Verdict {
    let result = async {
        // Archiving keeps committing, so the replicas are polled together, many times:
        // every index that two replicas report must have the same digest, and some
        // index must be reported by all of them.
        let mut clients = Vec::new();
        for addr in &r.cluster.meta_addrs {
            clients.push(MetaServiceClient::connect(format!("http://{addr}")).await?);
        }
        let n = clients.len();
        let mut seen: std::collections::BTreeMap<u64, Vec<(usize, String)>> =
            std::collections::BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let polls = clients.iter().map(|c| {
                let mut c = c.clone();
                async move {
                    c.get_cluster_status(ClusterStatusRequest { with_digest: true })
                        .await
                        .map(|s| s.into_inner())
                }
            });
            for (i, status) in futures::future::join_all(polls).await.into_iter().enumerate() {
                let s = status?;
                let Some(index) = s.applied_index else {
                    continue;
                };
                let at = seen.entry(index).or_default();
                if let Some((other, digest)) = at.iter().find(|(_, d)| *d != s.state_digest) {
                    bail!(
                        "replicas diverged at index {index}: node {} has digest {}, node {} has {digest}",
                        i + 1,
                        s.state_digest,
                        other + 1
                    );
                }
                if !at.iter().any(|(x, _)| *x == i) {
                    at.push((i, s.state_digest));
                }
            }
            if let Some((index, at)) = seen.iter().rev().find(|(_, at)| at.len() == n) {
                return Ok(format!(
                    "{n} replicas at index {index}, digest {}; {} indexes compared",
                    at[0].1,
                    seen.len()
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "no index reported by all {n} replicas within 60 s (seen: {:?})",
            seen.iter().rev().take(5).collect::<Vec<_>>()
        )
    }
    .await;
    verdict("replicas_agree", result)
}

/// No acknowledged command lost: every acknowledged backup statement left a job, the
/// tenants and parameters set up are all there.
async fn acknowledged_work_kept(r: &Run) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let tenants = m
            .list_tenants(ListTenantsRequest {})
            .await?
            .into_inner()
            .tenants;
        for t in TENANTS.into_iter().chain([IDLE]) {
            if !tenants.iter().any(|x| x.tenant_name == t) {
                bail!("tenant {t} lost");
            }
        }
        let jobs = m.list_jobs(list()).await?.into_inner().jobs;
        let acked = |prefix: &str| {
            r.ops
                .iter()
                .filter(|o| o.result == "ok" && o.what.starts_with(prefix))
                .count()
        };
        let full = acked("ALTER SYSTEM BACKUP DATABASE") + acked("ALTER SYSTEM BACKUP INCREMENTAL");
        let backups = jobs.iter().filter(|j| j.job_type == "BACKUP").count();
        if backups < full {
            bail!("{full} backups acknowledged, {backups} jobs");
        }
        let copies = acked("ALTER SYSTEM BACKUP BACKUPSET");
        let copy_jobs = jobs
            .iter()
            .filter(|j| j.job_type == "BACKUP_BACKUPSET")
            .count();
        if copy_jobs < copies {
            bail!("{copies} backupset copies acknowledged, {copy_jobs} jobs");
        }
        Ok(format!(
            "{full} backups, {copies} set copies acknowledged; {} jobs in the catalog",
            jobs.len()
        ))
    }
    .await;
    verdict("acknowledged_work_kept", result)
}

/// Every cancel completed within its bound after the faults healed: jobs ended by
/// `OB_CANCELED` have an end time no later than bound after max(heal, last cancel).
async fn cancels_within_bound(r: &Run, healed_ms: u64) -> Verdict {
    const BOUND_MS: u64 = 10_000;
    let result = async {
        let mut m = r.meta().await?;
        let jobs = m.list_jobs(list()).await?.into_inner().jobs;
        // Fault windows in wall-clock ms.
        let windows: Vec<(u64, u64)> = r
            .faults
            .iter()
            .map(|f| {
                let start = r.started_ms + (f.at_s * 1000.0) as u64;
                (start, start + (f.held_s * 1000.0) as u64)
            })
            .collect();
        let mut checked = 0;
        for j in jobs.iter().filter(|j| j.result == "OB_CANCELED") {
            // The last acknowledged cancel before the job ended.
            let cancel_ms = r
                .ops
                .iter()
                .filter(|o| o.result == "ok" && o.what.contains("CANCEL"))
                .map(|o| o.returned_ms)
                .filter(|t| *t <= j.end_time_ms)
                .max()
                .unwrap_or(j.start_time_ms);
            // The bound runs from the cancel, or from the healing of a fault that was
            // on while the job was ending (it may have held the cancel up), or from
            // the final healing.
            let mut from = cancel_ms;
            for (start, end) in &windows {
                if *start <= j.end_time_ms && *end >= cancel_ms {
                    from = from.max(*end);
                }
            }
            if j.end_time_ms > healed_ms {
                from = from.max(healed_ms);
            }
            // A leader clock that jumped forward stamps times ahead of the wall clock
            // until the wall clock catches up (applied times never go back).
            let ahead = r
                .clock_shifts
                .iter()
                .filter(|(at, shift)| *shift > 0 && *at <= j.end_time_ms)
                .map(|(at, shift)| {
                    (*shift as u64).saturating_sub(cancel_ms.saturating_sub(*at))
                })
                .max()
                .unwrap_or(0);
            if j.end_time_ms > from + BOUND_MS + ahead {
                bail!(
                    "job {} ended {} ms after its cancel (or the healing of a fault holding it up)",
                    j.job_id,
                    j.end_time_ms - from
                );
            }
            checked += 1;
        }
        Ok(format!(
            "{checked} cancelled jobs ended within {BOUND_MS} ms of the cancel or of the fault that held it up"
        ))
    }
    .await;
    verdict("cancels_within_bound", result)
}

/// Each round's pieces cover a contiguous SCN range; a gap is recorded as
/// `INTERRUPTED`, never silent.
async fn archive_continuity(r: &Run) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let pieces = m.list_pieces(list()).await?.into_inner().pieces;
        let rounds = m.list_archive(list()).await?.into_inner().rounds;
        let mut checked = 0;
        for round in &rounds {
            let mut ps: Vec<&Piece> = pieces
                .iter()
                .filter(|p| {
                    p.tenant_id == round.tenant_id && p.round_id == round.round_id && p.copy_id == 0
                })
                .collect();
            ps.sort_by_key(|p| p.backup_piece_id);
            for w in ps.windows(2) {
                let end = w[0].max_scn.unwrap_or(w[0].checkpoint_scn);
                if w[1].start_scn != end && round.status != "INTERRUPTED" {
                    bail!(
                        "tenant {} round {}: piece {} ends at {end}, piece {} starts at {}",
                        round.tenant_id,
                        round.round_id,
                        w[0].backup_piece_id,
                        w[1].backup_piece_id,
                        w[1].start_scn
                    );
                }
            }
            checked += ps.len();
        }
        // Every piece at every destination validates (contiguous objects, checksums).
        let bin = backstop_bin()?;
        let mut validated = 0;
        for dest in ["bk", "bk-moved", "bk2", "pieces"] {
            let root = r.dir.join(dest);
            for (tenant, key) in manifests(&root, "clog/") {
                let Some(dir) = key.strip_suffix("/manifest") else {
                    continue;
                };
                let Some(rest) = dir.strip_prefix("clog/round_") else {
                    continue;
                };
                let Some((round, piece)) = rest.split_once("/piece_") else {
                    continue;
                };
                let out = std::process::Command::new(&bin)
                    .args([
                        "validate",
                        "--dest",
                        &format!("file://{}", root.display()),
                        "--tenant",
                        &tenant,
                        "--piece",
                        &format!("{round}/{piece}"),
                    ])
                    .output()?;
                if !out.status.success() {
                    bail!(
                        "piece {round}/{piece} of tenant {tenant} at {dest}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                validated += 1;
            }
        }
        Ok(format!(
            "{} rounds, {checked} pieces contiguous; {validated} piece manifests validate",
            rounds.len()
        ))
    }
    .await;
    verdict("archive_continuity", result)
}

/// `(tenant id, key)` of every manifest under `prefix` at a `file://` destination.
fn manifests(root: &Path, prefix: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in tenant_dirs(root) {
        let tenant = t
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for f in files(&t) {
            if f.starts_with(prefix) && f.ends_with("/manifest") {
                out.push((tenant.clone(), f));
            }
        }
    }
    out
}

fn tenant_dirs(root: &Path) -> Vec<PathBuf> {
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for cluster in dirs(root) {
        for id in dirs(&cluster) {
            for inc in dirs(&id) {
                out.extend(dirs(&inc));
            }
        }
    }
    out
}

fn files(root: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// A manifest and, for an open piece, the journal entries that continue it
/// (`manifest.d/EPOCH_SEQ` of the attempt the base names, from `journal_seq` on), as
/// `(key, JSON)`. Read after the directory listing they are checked against, and
/// read again if the writer compacted its journal meanwhile, so every object listed
/// before is in what is read.
fn manifest_parts(t: &Path, dir: &str) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
    let key = format!("{dir}/manifest");
    for _ in 0..20 {
        let bytes = std::fs::read(t.join(&key))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        let mut parts = vec![(key.clone(), v.clone())];
        if let Some(epoch) = v["journal"].as_str() {
            let from = v["journal_seq"].as_u64().unwrap_or(0);
            let prefix = format!("{epoch}_");
            let mut names: Vec<String> = std::fs::read_dir(t.join(dir).join("manifest.d"))
                .map(|r| {
                    r.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            for name in names {
                let Some(seq) = name
                    .strip_prefix(&prefix)
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    continue;
                };
                if seq < from {
                    continue;
                }
                let j = format!("{dir}/manifest.d/{name}");
                // Deleted by a compaction since the listing: the base read again
                // below has changed, and the loop reads everything once more.
                if let Ok(data) = std::fs::read(t.join(&j)) {
                    parts.push((j, serde_json::from_slice(&data)?));
                }
            }
        }
        if std::fs::read(t.join(&key))? == bytes {
            return Ok(parts);
        }
    }
    anyhow::bail!("{dir}: the manifest kept changing while it was read")
}

/// Catalog equals storage: no object that no manifest references (after the clean
/// phase and the cleaner ran), at every destination.
async fn catalog_equals_storage(r: &Run) -> Verdict {
    let result = async {
        // The cleaner retries leftovers; give it its turn.
        let m = r.meta().await?;
        // Scrubs of failed-over pieces and sets wait 30 s (`SCRUB_DELAY_MS`).
        let cleaned = wait(Duration::from_secs(120), "leftovers to be cleaned", || {
            let mut m = m.clone();
            async move {
                Ok(m.list_archive(list())
                    .await?
                    .into_inner()
                    .leftovers
                    .is_empty())
            }
        })
        .await;
        if cleaned.is_err() {
            let left = m.clone().list_archive(list()).await?.into_inner().leftovers;
            let jobs = m.clone().list_jobs(list()).await?.into_inner().jobs;
            let cleaners: Vec<String> = jobs
                .iter()
                .filter(|j| j.job_type == "CLEAN")
                .map(|j| format!("{} {} {} {}", j.job_id, j.status, j.result, j.comment))
                .collect();
            bail!(
                "leftovers not cleaned within 120 s: {:?}; cleaner jobs: {cleaners:?}",
                left.iter()
                    .map(|l| format!("{} {} ({})", l.backup_dest, l.dir, l.reason))
                    .collect::<Vec<_>>()
            );
        }
        let mut objects = 0;
        let mut staging = 0;
        let mut stale_journal = 0;
        for dest in ["bk", "bk-moved", "bk2", "pieces"] {
            for t in tenant_dirs(&r.dir.join(dest)) {
                let all = files(&t);
                let mut referenced = std::collections::BTreeSet::new();
                for f in all.iter().filter(|f| f.ends_with("/manifest")) {
                    let dir = f.trim_end_matches("/manifest");
                    referenced.insert(f.clone());
                    referenced.insert(format!("{dir}/.complete"));
                    referenced.insert(format!("{dir}/.frozen"));
                    for (key, part) in manifest_parts(&t, dir)? {
                        referenced.insert(key);
                        for o in part["objects"].as_array().into_iter().flatten() {
                            if let Some(k) = o["key"].as_str() {
                                referenced.insert(k.to_string());
                            }
                        }
                    }
                }
                for f in &all {
                    if !(f.starts_with("data/") || f.starts_with("clog/")) {
                        continue;
                    }
                    objects += 1;
                    if referenced.contains(f)
                        || (f.starts_with("data/") && f.ends_with(".manifest"))
                    {
                        continue;
                    }
                    if f.rsplit('/').next().is_some_and(|n| n.contains('#')) {
                        staging += 1;
                        continue;
                    }
                    // A journal entry no base reads any more (a writer died between
                    // its new base and the removal of the old entries): small, and
                    // deleted when the piece is sealed.
                    if f.contains("/manifest.d/") {
                        stale_journal += 1;
                        continue;
                    }
                    bail!("{dest}/{}: {f} is referenced by no manifest", t.display());
                }
            }
        }
        Ok(format!(
            "{objects} objects, all referenced ({staging} staging files of killed writers, {stale_journal} unread journal entries)"
        ))
    }
    .await;
    verdict("catalog_equals_storage", result)
}

/// Leader-assigned times never go back, whatever the leaders' clocks did: jobs in id
/// order start at non-decreasing times and end no earlier than they start; a round's
/// pieces are created in piece-id order at non-decreasing times.
async fn leader_times_monotonic(r: &Run) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let mut jobs = m.list_jobs(list()).await?.into_inner().jobs;
        jobs.sort_by_key(|j| j.job_id);
        for w in jobs.windows(2) {
            if w[1].start_time_ms < w[0].start_time_ms {
                bail!(
                    "job {} starts at {} ms, before job {} ({} ms)",
                    w[1].job_id,
                    w[1].start_time_ms,
                    w[0].job_id,
                    w[0].start_time_ms
                );
            }
        }
        if let Some(j) = jobs
            .iter()
            .find(|j| j.end_time_ms != 0 && j.end_time_ms < j.start_time_ms)
        {
            bail!(
                "job {} ends at {} ms, before it starts ({} ms)",
                j.job_id,
                j.end_time_ms,
                j.start_time_ms
            );
        }
        let mut pieces = m.list_pieces(list()).await?.into_inner().pieces;
        pieces.retain(|p| p.copy_id == 0);
        pieces.sort_by_key(|p| (p.tenant_id, p.round_id, p.backup_piece_id));
        for w in pieces.windows(2) {
            if (w[0].tenant_id, w[0].round_id) == (w[1].tenant_id, w[1].round_id)
                && w[1].create_time_ms < w[0].create_time_ms
            {
                bail!(
                    "piece {} of tenant {} round {} created at {} ms, before piece {} ({} ms)",
                    w[1].backup_piece_id,
                    w[1].tenant_id,
                    w[1].round_id,
                    w[1].create_time_ms,
                    w[0].backup_piece_id,
                    w[0].create_time_ms
                );
            }
        }
        Ok(format!(
            "{} jobs and {} pieces in order of their leader-assigned times",
            jobs.len(),
            pieces.len()
        ))
    }
    .await;
    verdict("leader_times_monotonic", result)
}

/// Where a restore of the invariant goes to.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// `--until-scn`.
    Scn(u64),
    /// `--until-time` (ms since the epoch).
    Time(u64),
    /// Neither: the latest restorable point.
    End,
}

/// Every set marked AVAILABLE on any copy validates, and restores exactly (by the
/// workload generator's digests) from the primary and from the copy destination.
async fn copies_validate_and_restore(r: &Run) -> Verdict {
    let result = async {
        let mut m = r.meta().await?;
        let sets = m.list_backup_sets(list()).await?.into_inner().sets;
        let tenants = m
            .list_tenants(ListTenantsRequest {})
            .await?
            .into_inner()
            .tenants;
        let bin = backstop_bin()?;
        let mut validated = 0;
        for s in sets.iter().filter(|s| s.file_status == "AVAILABLE") {
            let out = std::process::Command::new(&bin)
                .args([
                    "validate",
                    "--dest",
                    // Views and lists never show S3 secrets: use the harness's URI.
                    if s.backup_dest.starts_with("s3://") {
                        &r.copy_dest
                    } else {
                        &s.backup_dest
                    },
                    "--tenant",
                    &s.tenant_id.to_string(),
                    "--backup-set",
                    &s.backup_set_id.to_string(),
                ])
                .output()?;
            if !out.status.success() {
                bail!(
                    "set {} copy {} of tenant {}: {}",
                    s.backup_set_id,
                    s.copy_id,
                    s.tenant_id,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            validated += 1;
        }
        // The continuous copy catches up with what the primary had archived when the
        // check began.
        let rounds = m.list_archive(list()).await?.into_inner().rounds;
        let mut copy_end = std::collections::BTreeMap::new();
        for t in tenants.iter().filter(|t| t.tenant_id != 1) {
            let target = rounds
                .iter()
                .filter(|x| x.tenant_id == t.tenant_id)
                .map(|x| x.checkpoint_scn)
                .max()
                .unwrap_or(0);
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let copies = m.list_archive(list()).await?.into_inner().copies;
                let at = copies
                    .iter()
                    .filter(|c| c.tenant_id == t.tenant_id)
                    .map(|c| c.checkpoint_scn)
                    .max()
                    .unwrap_or(0);
                if at >= target {
                    copy_end.insert(t.tenant_id, at);
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "the continuous copy of tenant {} stays at {at}, the archive reached {target}",
                        t.tenant_name
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        // Restores, each checked against the workload generator's digests:
        // - from the primary: the newest 4 available sets at their earliest restorable
        //   SCN, and the newest one also halfway to and at the archive's checkpoint;
        // - from the copy destination: the newest copied set the copied archive
        //   reaches, at its earliest restorable SCN and at everything copied.
        let mut restored = 0;
        let mut points = Vec::new();
        for t in tenants.iter().filter(|t| t.tenant_id != 1) {
            // The log a set restores with is its own round's (the last one started
            // before it): NOARCHIVELOG / ARCHIVELOG cycles leave gaps between rounds.
            let archived_for = |set: &BackupSet| {
                rounds
                    .iter()
                    .filter(|x| x.tenant_id == t.tenant_id && x.start_scn <= set.start_replay_scn)
                    .max_by_key(|x| x.round_id)
                    .map_or(0, |x| x.checkpoint_scn)
            };
            let mut newest: Vec<&BackupSet> = sets
                .iter()
                .filter(|s| {
                    s.tenant_id == t.tenant_id && s.copy_id == 0 && s.file_status == "AVAILABLE"
                })
                .collect();
            newest.sort_by_key(|s| std::cmp::Reverse(s.backup_set_id));
            newest.truncate(4);
            for (i, set) in newest.iter().enumerate() {
                let min = set.min_restore_scn;
                let archived = archived_for(set);
                let primary = set.backup_dest.clone();
                let mut targets = vec![Target::Scn(min)];
                if i == 0 && archived > min {
                    targets.extend([Target::Scn(min + (archived - min) / 2), Target::Scn(archived)]);
                }
                // A point in time after the set: the restore says which SCN that was.
                if i == 0 {
                    targets.push(Target::Time(now_ms()));
                }
                for target in targets {
                    points.push((t.tenant_name.clone(), primary.clone(), "bk", set.backup_set_id, target));
                }
            }
            let end = copy_end.get(&t.tenant_id).copied().unwrap_or(0);
            if let Some(set) = sets
                .iter()
                .filter(|s| {
                    s.tenant_id == t.tenant_id
                        && s.copy_id == 1
                        && s.file_status == "AVAILABLE"
                        && s.min_restore_scn <= end
                })
                .max_by_key(|s| s.backup_set_id)
            {
                for target in [Target::Scn(set.min_restore_scn), Target::End] {
                    points.push((t.tenant_name.clone(), r.copy_dest.clone(), "bk2", set.backup_set_id, target));
                }
            }
        }
        for (n, (tenant, uri, dest, set_id, target)) in points.into_iter().enumerate() {
            let to = r.dir.join(format!("restore-{n}-{tenant}-{dest}"));
            let mut args = vec![
                "restore".to_string(),
                "--dest".into(),
                uri,
                "--tenant".into(),
                tenant.clone(),
                "--to".into(),
                to.display().to_string(),
                "--backup-set".into(),
                set_id.to_string(),
            ];
            match target {
                Target::Scn(scn) => args.extend(["--until-scn".into(), scn.to_string()]),
                Target::Time(ms) => args.extend(["--until-time".into(), ms.to_string()]),
                Target::End => {}
            }
            args.push("--json".into());
            let at = match target {
                Target::Scn(scn) => format!("SCN {scn}"),
                Target::Time(ms) => format!("time {ms} ms"),
                Target::End => "the end".to_string(),
            };
            let out = std::process::Command::new(&bin).args(&args).output()?;
            if !out.status.success() {
                bail!(
                    "restore of {tenant} set {set_id} from {dest} at {at}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // What the restore reached, as it reports it; a point in time is checked
            // at that SCN.
            let info: serde_json::Value = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("restore --json of {tenant} set {set_id}"))?;
            let scn = match target {
                Target::Scn(scn) => Some(scn),
                Target::Time(_) => info["until_scn"].as_u64(),
                Target::End => None,
            };
            workload::verify(&to, &r.dir.join(&tenant), scn)
                .with_context(|| format!("verify {tenant} set {set_id} restored from {dest} at {at}"))?;
            let _ = std::fs::remove_dir_all(&to);
            restored += 1;
        }
        Ok(format!(
            "{validated} available sets validate; {restored} restores exact"
        ))
    }
    .await;
    verdict("sets_validate_and_restore", result)
}
