//! Data-safety defects of issue 11 as a DBA meets them, through the `mysql` CLI with
//! real processes; each test failed on the code before its fix. The rules themselves
//! are unit-tested in `meta/src/state/safety_tests.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::path::Path;

use backstop_workload::{self as workload, Shape};
use harness::mysql::{file_uri, start_gateway};
use harness::{Cluster, restore, wait_for};

/// Every file under `root` with its size, relative.
fn files(root: &Path) -> Vec<(String, u64)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, u64)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let size = e.metadata().map_or(0, |m| m.len());
                out.push((p.strip_prefix(base).unwrap().display().to_string(), size));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Reproduced as a new user: a complete copy 1 of a set, then `BACKUP BACKUPSET ALL
/// TENANT = t1` to the same `backup_backup_dest` started copy 20001 into the same
/// directories, and `CANCEL BACKUP BACKUPSET` deleted copy 1's data (32 KB left of 770
/// MB) while the view still said AVAILABLE. Now the tenant-level copy reuses copy 1
/// and is a no-op, nothing is deleted, and the tenant restores from the copy alone.
#[test]
fn a_second_copy_to_the_same_destination_never_deletes_the_complete_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = Cluster::start(dir, 1, 3000);
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(8 << 20, 4), 11).unwrap();
    let (_gw, m) = start_gateway(dir, &c.meta);
    let (bk, bk2) = (dir.join("bk"), dir.join("bk2"));
    m.archive("t1", &src, &bk, Some(&bk2), "1m");
    m.exec("ALTER SYSTEM BACKUP DATABASE;");
    wait_for("the full backup", 60, || {
        (m.count("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID = 0 AND FILE_STATUS = 'AVAILABLE'") == 1)
            .then_some(())
    });
    m.exec("ALTER SYSTEM BACKUP BACKUPSET ALL;");
    wait_for("copy 1", 60, || {
        (m.count("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID = 1 AND FILE_STATUS = 'AVAILABLE'") == 1)
            .then_some(())
    });
    let before = files(&bk2);
    let bytes: u64 = before.iter().map(|(_, n)| n).sum();
    assert!(bytes > 1 << 20, "the copy holds the set: {bytes} bytes");

    m.exec("ALTER SYSTEM BACKUP BACKUPSET ALL TENANT = t1;");
    m.exec("ALTER SYSTEM CANCEL BACKUP BACKUPSET;");
    wait_for("no live backupset job", 30, || {
        (m.count("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_BACKUPSET_JOB") == 0).then_some(())
    });
    let history = m.rows(
        "SELECT RESULT_NAME FROM oceanbase.CDB_OB_BACKUP_BACKUPSET_JOB_HISTORY ORDER BY JOB_ID",
    );
    assert_eq!(
        history.last().map(|r| r[0].as_str()),
        Some("OB_BACKUP_BACKUP_REACH_COPY_LIMIT"),
        "{history:?}"
    );
    assert_eq!(
        m.rows(
            "SELECT COPY_ID, FILE_STATUS FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID > 0"
        ),
        vec![vec!["1".to_string(), "AVAILABLE".to_string()]],
        "one copy id at one destination"
    );
    assert_eq!(files(&bk2), before, "nothing at the copy changed");

    // The copy alone restores the tenant exactly.
    std::fs::rename(&bk, dir.join("bk.gone")).unwrap();
    let to = dir.join("restored");
    restore(&file_uri(&bk2), "t1", &to, &[]).unwrap();
    workload::verify(&to, &src, None).expect("exact restore from the copy");
}

/// `backup_dest` moved while archiving (new sets at the new place, their log at the
/// old one) and `NOARCHIVELOG` during a backup (a set AVAILABLE without its log).
/// Now the move is refused while the tenant archives, and a backup whose log was
/// never archived fails with the reason in its job.
#[test]
fn a_set_is_available_only_with_its_log_archived_at_its_own_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = Cluster::start(dir, 1, 3000);
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(6 << 20, 3), 12).unwrap();
    let (_gw, m) = start_gateway(dir, &c.meta);
    let bk = dir.join("bk");
    m.archive("t1", &src, &bk, None, "1m");
    // The end_backup hook holds the backup between its datafile copy and its
    // min_restore_scn, so NOARCHIVELOG lands mid-backup.
    c.ctl(&["tenant", "hooks", "t1", "--end", "sleep 4"]);
    let err = m.fails(&format!(
        "ALTER SYSTEM SET backup_dest = '{}';",
        file_uri(&dir.join("elsewhere"))
    ));
    assert!(err.contains("OB_BACKUP_IN_PROGRESS"), "{err}");

    m.exec("ALTER SYSTEM BACKUP DATABASE;");
    // Some log while the datafiles are copied, then the archive stops.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (src, stop) = (src.clone(), stop.clone());
        std::thread::spawn(move || {
            let limits = workload::RunLimits {
                rate: 200_000,
                duration: std::time::Duration::from_secs(60),
                segment_bytes: 1 << 20,
                max_writes: 0,
            };
            workload::run(&src, 3, limits, &stop).unwrap()
        })
    };
    wait_for("the backup in its end_backup hook", 30, || {
        (m.count("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_TASKS WHERE STATUS = 'DOING' AND TASK_TYPE = 'BACKUP_FINALIZE'") >= 1)
            .then_some(())
    });
    m.exec("ALTER SYSTEM NOARCHIVELOG;");
    wait_for("the backup to end", 90, || {
        let rows = m.rows(
            "SELECT STATUS, FILE_STATUS FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID = 0",
        );
        (rows.len() == 1 && rows[0][0] != "RUNNING").then(|| rows[0].clone())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let set = m.rows("SELECT STATUS, FILE_STATUS, COMMENT FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID = 0");
    assert_eq!(set[0][0], "FAILED", "{set:?}");
    assert!(set[0][2].contains("was not archived"), "{set:?}");
    // Not archiving any more: now backup_dest may move.
    m.exec(&format!(
        "ALTER SYSTEM SET backup_dest = '{}';",
        file_uri(&dir.join("elsewhere"))
    ));
}

fn start_writer(
    src: &Path,
    rate: u64,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<workload::RunStats>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (src, s) = (src.to_path_buf(), stop.clone());
    let handle = std::thread::spawn(move || {
        let limits = workload::RunLimits {
            rate,
            duration: std::time::Duration::from_secs(120),
            segment_bytes: 1 << 20,
            max_writes: 0,
        };
        workload::run(&src, 4, limits, &s).unwrap()
    });
    (stop, handle)
}

/// After `NOARCHIVELOG` / `ARCHIVELOG` a restore without a target failed with "gap"
/// until the new round had a set; a broken newest set never fell back to an older
/// good one; two clusters with the tenant at one destination were resolved by listing
/// order. Now: the latest restorable point, a fallback that says so, and an error that
/// names both candidates.
#[test]
fn restores_take_the_latest_restorable_point_fall_back_and_refuse_ambiguity() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = Cluster::start(dir, 1, 3000);
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(4 << 20, 2), 13).unwrap();
    let (stop, writer) = start_writer(&src, 200_000);
    let (_gw, m) = start_gateway(dir, &c.meta);
    let bk = dir.join("bk");
    m.archive("t1", &src, &bk, None, "1m");
    for n in 1..=2 {
        m.exec("ALTER SYSTEM BACKUP DATABASE;");
        wait_for("a full backup", 60, || {
            (m.count("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE FILE_STATUS = 'AVAILABLE'") == n)
                .then_some(())
        });
    }
    // A new round after a gap: the writer keeps writing while nothing archives.
    m.exec("ALTER SYSTEM NOARCHIVELOG;");
    wait_for("round 1 stopped", 30, || {
        (m.rows("SELECT STATUS FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID = 1001")
            == vec![vec!["STOP".to_string()]])
        .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    m.exec("ALTER SYSTEM ARCHIVELOG;");
    wait_for("round 2 archiving", 30, || {
        (m.rows("SELECT STATUS FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID = 1001")
            == vec![vec!["DOING".to_string()]])
        .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let round1_end: u64 = m.rows(
        "SELECT CHECKPOINT_SCN FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG_SUMMARY WHERE TENANT_ID = 1001 AND LOG_ARCHIVE_ROUND = 1",
    )[0][0]
        .parse()
        .unwrap();

    // The default target is round 1's end, from set 2.
    let to = dir.join("r1");
    let info = restore(&file_uri(&bk), "t1", &to, &[]).unwrap();
    assert_eq!(info["backup_set_id"], 2, "{info}");
    assert_eq!(info["until_scn"].as_u64(), Some(round1_end), "{info}");
    assert!(
        info["target"]
            .as_str()
            .unwrap()
            .contains("latest restorable point"),
        "{info}"
    );
    workload::verify(&to, &src, Some(round1_end)).expect("exact at round 1's end");

    // Set 2 broken (one of its data objects gone): set 1 takes over, and says so.
    let (object, _) = files(&bk)
        .into_iter()
        .find(|(f, _)| f.contains("data/backup_set_2_full/part_") && f.contains("/obj_"))
        .expect("a data object of set 2");
    std::fs::remove_file(bk.join(object)).unwrap();
    let to = dir.join("r2");
    let info = restore(&file_uri(&bk), "t1", &to, &[]).unwrap();
    assert_eq!(info["backup_set_id"], 1, "{info}");
    assert!(
        info["fallbacks"][0]
            .as_str()
            .unwrap()
            .contains("backup set 2"),
        "{info}"
    );
    workload::verify(&to, &src, Some(round1_end)).expect("exact from the older set");

    // A second cluster with a tenant of that name at the same destination.
    let cluster = std::fs::read_dir(&bk)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    // The archive still writes there: a staging file may vanish mid-copy, so copy
    // again until one copy sees a still moment.
    let copied = (0..10).any(|_| {
        let _ = std::fs::remove_dir_all(bk.join("other_cluster"));
        std::process::Command::new("cp")
            .args([
                "-r",
                cluster.to_str().unwrap(),
                bk.join("other_cluster").to_str().unwrap(),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    assert!(copied, "cp -r of the destination");
    for (f, _) in files(&bk.join("other_cluster")) {
        if f.ends_with("info/tenant") {
            let path = bk.join("other_cluster").join(&f);
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            v["cluster_name"] = "other_cluster".into();
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        }
    }
    let err = restore(&file_uri(&bk), "t1", &dir.join("r3"), &[]).unwrap_err();
    assert!(
        err.contains("ambiguous") && err.contains("other_cluster"),
        "{err}"
    );
}

/// A `dir://` tenant whose log segments are not named by their start SCN retried its
/// archive task every second without end, `BEGINNING` and no reason. Now `CREATE
/// TENANT` refuses such a layout and says how to fix it; one that goes bad later
/// interrupts its round after bounded attempts, with the reason in `COMMENT`.
#[test]
fn a_source_layout_that_cannot_work_is_refused_or_interrupts_the_round() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = Cluster::start(dir, 1, 3000);
    let (_gw, m) = start_gateway(dir, &c.meta);
    let bad = |root: &Path| {
        std::fs::create_dir_all(root.join("data")).unwrap();
        std::fs::create_dir_all(root.join("log")).unwrap();
        std::fs::write(root.join("data/f"), b"datafile").unwrap();
        std::fs::write(root.join("log/000001.log"), [1u8; 100]).unwrap();
        std::fs::write(root.join("log/000002.log"), [2u8; 100]).unwrap();
    };
    let t1 = dir.join("t1");
    bad(&t1);
    let err = m.fails(&format!(
        "CREATE TENANT t1 SOURCE 'dir://{}';",
        t1.display()
    ));
    assert!(
        err.contains("not contiguous") && err.contains("name each segment"),
        "{err}"
    );

    // Created before its directory existed (the refused t1 took no id, so t2 is
    // 1001); the layout is wrong when archiving starts.
    let t2 = dir.join("t2");
    m.exec(&format!(
        "CREATE TENANT t2 SOURCE 'dir://{}';
         ALTER SYSTEM SET backup_dest = '{}';
         ALTER SYSTEM SET backup_dest_option = 'log_archive_checkpoint_interval=1s';",
        t2.display(),
        file_uri(&dir.join("bk"))
    ));
    bad(&t2);
    m.exec("ALTER SYSTEM ARCHIVELOG TENANT = t2;");
    let row = wait_for("the round interrupted", 30, || {
        let rows = m.rows(
            "SELECT STATUS, COMMENT FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID = 1001",
        );
        (rows.first().is_some_and(|r| r[0] == "INTERRUPTED")).then(|| rows[0].clone())
    });
    assert!(row[1].contains("not contiguous"), "{row:?}");
    let cluster_row =
        m.rows("SELECT COMMENT FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID = 1");
    assert!(cluster_row[0][0].contains("tenant 1001"), "{cluster_row:?}");
}

/// A zombie writer: attempt 1 of the archive is parked right before a piece manifest
/// write (a failpoint holds it, then the whole worker is SIGSTOPped, as a VM pause or
/// a GC stall would), attempt 2 on another worker takes the round over and seals the
/// piece; when attempt 1 wakes, its fence (timer-driven, checked before every shared
/// key) refuses the late write, so the successor's frozen manifest stands and the piece
/// validates. Before, a worker fenced itself only after a heartbeat call failed, and
/// its late manifest overwrote the successor's.
#[test]
fn a_parked_attempt_never_overwrites_its_successors_piece() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = Cluster::start_env(
        dir,
        1,
        3000,
        &[("FAILPOINTS", "archive::before_manifest=1*sleep(2000)")],
    );
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(1 << 20, 1), 14).unwrap();
    let bk = dir.join("bk");
    c.setup_tenant("t1", &src, &file_uri(&bk), false);
    c.ctl(&["archivelog", "--tenant", "t1"]);
    // Attempt 1 is in the failpoint (its first manifest write): pause the process.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let zombie = c.workers[0].as_ref().unwrap().0.id().to_string();
    let signal = |sig: &str| {
        assert!(
            std::process::Command::new("kill")
                .args([sig, &zombie])
                .status()
                .unwrap()
                .success()
        )
    };
    signal("-STOP");
    // The second worker has no failpoint; it gets the round when the lease is gone.
    c.worker_env.clear();
    c.add_worker();
    let (stop, writer) = start_writer(&src, 100_000);
    wait_for("piece 1 frozen by the successor", 60, || {
        let pieces = c.ctl(&["pieces", "--tenant", "t1"]);
        pieces
            .as_array()?
            .iter()
            .any(|p| p["backup_piece_id"] == 1 && p["copy_id"] == 0 && p["status"] == "FROZEN")
            .then_some(())
    });
    // The zombie wakes and goes on from where it stood: right before its write.
    signal("-CONT");
    std::thread::sleep(std::time::Duration::from_secs(4));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let root = files(&bk);
    let manifest = root
        .iter()
        .find(|(f, _)| f.ends_with("clog/round_1/piece_1/manifest"))
        .map(|(f, _)| bk.join(f))
        .expect("piece 1's manifest");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(
        m["frozen"], true,
        "the successor's frozen manifest stands: {m}"
    );
    let out = std::process::Command::new(harness::BIN)
        .args([
            "validate",
            "--dest",
            &file_uri(&bk),
            "--tenant",
            "t1",
            "--piece",
            "1/1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(dir.join("worker0.log")).unwrap();
    assert!(
        log.contains("fence"),
        "the parked attempt fenced itself:\n{log}"
    );
}
