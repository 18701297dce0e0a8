//! The continuous archive copy (`START BACKUP ARCHIVELOG`) with real processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use backstop_workload::{self as workload, RunLimits, Shape};
use harness::{Cluster, restore, wait_for};

fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Issue 11 point 12: an idle tenant's archive is DOING at the log end and a full
/// backup is copied. `START BACKUP ARCHIVELOG` must copy what is already archived at
/// once (the primary's next checkpoint never comes), and after `STOP` the copy alone
/// restores the tenant.
#[test]
fn the_continuous_copy_of_an_idle_tenant_catches_up_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = Cluster::start(dir, 1, 2000);
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(2 << 20, 1), 3).unwrap();
    let limits = RunLimits {
        rate: 0,
        duration: Duration::from_secs(30),
        segment_bytes: 1 << 30,
        max_writes: 30,
    };
    let stats = workload::run(&src, 4, limits, &AtomicBool::new(false)).unwrap();
    assert!(stats.log_end > 0);
    let (bk, bk2) = (dir.join("bk"), dir.join("bk2"));
    c.ctl(&[
        "tenant",
        "create",
        "t1",
        "--source",
        &format!("dir://{}", src.display()),
    ]);
    c.ctl(&["param", "set", "backup_dest", &file_uri(&bk)]);
    c.ctl(&[
        "param",
        "set",
        "backup_dest_option",
        "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=1h",
    ]);
    c.ctl(&["param", "set", "backup_backup_dest", &file_uri(&bk2)]);
    c.start_archive("t1");
    let set = c.backup("t1", false)["backup_set_id"].as_u64().unwrap();
    c.ctl(&["copy", "set"]);
    wait_for("the set copy", 120, || {
        let sets = c.try_ctl(&["sets"])?;
        let row = sets
            .as_array()?
            .iter()
            .find(|s| s["backup_set_id"] == set && s["copy_id"] == 1)?
            .clone();
        assert_ne!(row["file_status"], "INCOMPLETE", "copy failed: {row}");
        (row["file_status"] == "AVAILABLE").then_some(())
    });
    let primary = c.round("t1")["checkpoint_scn"].as_u64().unwrap();
    assert_eq!(primary, stats.log_end, "the idle archive is at the log end");

    c.ctl(&["copy", "start"]);
    let started = Instant::now();
    let copy = wait_for("the copy to reach the primary's checkpoint", 15, || {
        let copies = c.try_ctl(&["copies"])?;
        let row = copies["copies"].as_array()?.first()?.clone();
        (row["status"] == "DOING" && row["checkpoint_scn"].as_u64()? == primary).then_some(row)
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}: {copy}",
        started.elapsed()
    );
    c.ctl(&["copy", "stop"]);
    wait_for("the copy to pause", 30, || {
        (c.try_ctl(&["copies"])?["copies"][0]["status"] == "PAUSED").then_some(())
    });

    let to = dir.join("restored");
    let info = restore(&file_uri(&bk2), "t1", &to, &[]).unwrap();
    assert_eq!(info["until_scn"].as_u64(), Some(primary), "{info}");
    workload::verify(&to, &src, None).unwrap();
}
