//! The short deterministic chaos set CI runs: every scenario for 20 s of faults on a
//! fixed seed, then every invariant. `backstop-chaos run --scenario NAME --seed S
//! --duration 30m` is the soak form.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use backstop_chaos::procs::backstop_bin;
use backstop_chaos::scenario::{run, scenarios};

/// Makes sure the `backstop` binary exists (it does under `cargo nextest run
/// --workspace`; `cargo test -p backstop-chaos` alone builds it here).
fn ensure_binary() {
    if backstop_bin().is_ok() {
        return;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let ok = std::process::Command::new(cargo)
        .args(["build", "-p", "backstop", "--bin", "backstop"])
        .status()
        .expect("run cargo build -p backstop")
        .success();
    assert!(ok, "cargo build -p backstop failed");
}

/// One scenario at a time: each starts 3 meta nodes, 2 workers and a gateway, and
/// `cargo test` would otherwise run them all at once on two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn scenario(name: &str, seed: u64) -> backstop_chaos::scenario::Report {
    scenario_for(name, seed, Duration::from_secs(20))
}

fn scenario_for(name: &str, seed: u64, duration: Duration) -> backstop_chaos::scenario::Report {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    ensure_binary();
    let s = scenarios().into_iter().find(|s| s.name == name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // BACKSTOP_CHAOS_KEEP=1 keeps the run's directory (logs, destinations, report).
    let kept = std::env::var_os("BACKSTOP_CHAOS_KEEP").map(|_| dir.path().to_path_buf());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(run(&s, seed, duration, dir.path())).unwrap();
    if let Some(path) = kept {
        std::mem::forget(dir);
        println!("kept {}", path.display());
    }
    println!("{}", report.table());
    assert!(
        !report.faults.is_empty(),
        "the schedule injected no fault: {}",
        report.table()
    );
    assert!(report.passed(), "{}", report.table());
    report
}

#[test]
fn meta_failover() {
    scenario("meta-failover", 1);
}

#[test]
fn meta_partitions() {
    scenario("meta-partitions", 2);
}

/// Test builds have failpoints (the dev-dependency turns the feature on): the points
/// must really fire in the worker processes, crashes included.
fn failpoints(seed: u64) {
    let report = scenario_for("failpoints", seed, Duration::from_secs(30));
    assert!(
        !report.failpoints_hit.is_empty(),
        "no failpoint fired: is the backstop binary built without the failpoints feature? {}",
        report.table()
    );
}

/// The first half of the points in turn (the seed picks where the turn starts).
#[test]
fn failpoints_backup_and_archive() {
    failpoints(0);
}

/// The second half: archive commit, copies, task commit, cleanup.
#[test]
fn failpoints_copy_commit_cleanup() {
    failpoints(6);
}

#[test]
fn worker_faults() {
    scenario("worker-faults", 7);
}

#[test]
fn everything() {
    scenario("everything", 3);
}

#[test]
fn storage_faults() {
    scenario("storage-faults", 5);
}

#[test]
fn disk_full() {
    scenario("disk-full", 11);
}

#[test]
fn postgres() {
    scenario("postgres", 13);
}
