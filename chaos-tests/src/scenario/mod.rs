//! Chaos scenarios: a real cluster ([`ProcCluster`]), a workload (archiving tenants fed
//! by the workload generator, backups, copies, and random `CANCEL` / `STOP` / `START` /
//! `SUSPEND` / `RESUME` through the real gateway), named nemeses on a seeded schedule,
//! then — after every fault is healed — the invariants, each one function.
//!
//! A run is replayable: the fault schedule and the operations come from the seed alone
//! (the cluster's own timing still varies). Every run writes `report.json` and prints a
//! table.
//!
//! - `nemesis.rs`: the faults and their schedule;
//! - `operations.rs`: what a run does to the cluster: statements, operations, faults;
//! - `report.rs`: what a run reports;
//! - `invariants/`: one file per invariant;
//! - this file: the scenarios and the run loop (setup, workload, faults, heal, check).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use backstop_proto::meta::*;
use serde::Serialize;

use crate::procs::ProcCluster;
use crate::workload::{self, RunLimits, Shape};

mod invariants;
mod nemesis;
mod operations;
mod report;

use invariants::{
    acknowledged_work_kept, archive_continuity, cancels_within_bound, catalog_equals_storage,
    copies_validate_and_restore, jobs_settle, leader_times_monotonic, postgres_restores_exact,
    replicas_agree,
};
pub use nemesis::{Fault, Nemesis, Rng};
pub use report::{Operation, Report, Verdict};

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
    /// Also protect a PostgreSQL cluster under pgbench (tenant `pg1`), checked by
    /// `postgres_restores_exact`.
    pub postgres: bool,
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
            postgres: false,
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
            postgres: false,
        },
        Scenario {
            name: "failpoints",
            about: "workers crash, fail or stall at exact steps of backup, archive, copy, commit and cleanup",
            nemeses: vec![Nemesis::Failpoint],
            metas: 3,
            workers: 2,
            postgres: false,
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
            postgres: false,
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
            postgres: false,
        },
        Scenario {
            name: "disk-full",
            about: "the piece-copy destination (a 24 MiB tmpfs) fills up while copies run; a worker killed",
            nemeses: vec![Nemesis::DiskFull, Nemesis::KillWorker],
            metas: 3,
            workers: 2,
            postgres: false,
        },
        Scenario {
            name: "postgres",
            about: "a PostgreSQL tenant under pgbench beside the dir:// ones: workers killed mid-stream and mid-backup, backup_backup_dest on S3 failing and slow; restores start PostgreSQL",
            nemeses: vec![Nemesis::KillWorker, Nemesis::S3Errors, Nemesis::S3Slow],
            metas: 3,
            workers: 2,
            postgres: true,
        },
        Scenario {
            name: "everything",
            about: "every nemesis, including the gateway and S3",
            nemeses: Nemesis::ALL.to_vec(),
            metas: 3,
            workers: 2,
            postgres: false,
        },
    ]
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

/// The PostgreSQL tenant of a `postgres` scenario.
const PG_TENANT: &str = "pg1";

/// A PostgreSQL cluster a run protects, and the pgbench writing to it.
struct PgWorld {
    server: backstop_testkit::pg::PgServer,
    load: Option<std::process::Child>,
}

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
    /// The `postgres` scenario's cluster.
    pg: Option<PgWorld>,
}

impl Run {
    /// The tenants operations pick from.
    fn tenants(&self) -> Vec<&'static str> {
        let mut all = vec![TENANTS[0], TENANTS[1], IDLE];
        if self.pg.is_some() {
            all.push(PG_TENANT);
        }
        all
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
        pg: None,
    };
    if scenario.postgres {
        r.pg = Some(start_postgres(dir).context("start PostgreSQL")?);
    }
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
    if let Some(pg) = r.pg.as_mut()
        && let Some(mut load) = pg.load.take()
    {
        let _ = load.kill();
        let _ = load.wait();
    }
    let mut report = report?;
    report.total_s = started.elapsed().as_secs_f64();
    std::fs::write(dir.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

/// A PostgreSQL cluster (`pgbench -i -s 2` and a `markers` table) with pgbench
/// writing about 50 transactions a second until the run ends. The run's directory is
/// opened to the `postgres` user, who runs the restored clusters under it.
fn start_postgres(dir: &Path) -> anyhow::Result<PgWorld> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let mut server = backstop_testkit::pg::PgServer::init("wal_level = replica")?;
    server.start(60)?;
    let init = server.pgbench(&["-i", "-q", "-s", "2"]).output()?;
    if !init.status.success() {
        bail!("pgbench -i: {}", String::from_utf8_lossy(&init.stderr));
    }
    server.query("CREATE TABLE markers (id int PRIMARY KEY)")?;
    let load = server
        .pgbench(&["-n", "-c", "2", "-R", "50", "-T", "3600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    Ok(PgWorld {
        server,
        load: Some(load),
    })
}

async fn setup(r: &mut Run, dir: &Path) -> anyhow::Result<()> {
    let mut m = r.meta().await?;
    workload::init(&dir.join(IDLE), Shape::of_size(1 << 20, 1), 99)?;
    let mut sources: Vec<(&str, String)> = TENANTS
        .into_iter()
        .chain([IDLE])
        .map(|t| (t, format!("dir://{}", dir.join(t).display())))
        .collect();
    if let Some(pg) = &r.pg {
        sources.push((PG_TENANT, pg.server.uri("postgres")));
    }
    let archived = sources.len();
    for (t, source) in sources {
        m.create_tenant(CreateTenantRequest {
            tenant_name: t.to_string(),
            source,
            comment: String::new(),
            if_not_exists: true,
            root_password: None,
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
            Ok(rounds.iter().filter(|x| x.status == "DOING").count() == archived)
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
    for t in r.tenants() {
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
    if r.pg.is_some() {
        verdicts.push(postgres_restores_exact(r).await);
    }
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
