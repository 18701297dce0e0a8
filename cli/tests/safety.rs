//! Data-safety defects of issue 11 as a DBA meets them, through the `mysql` CLI with
//! real processes; each test failed on the code before its fix. The rules themselves
//! are unit-tested in `meta/src/state/safety_tests.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::path::Path;

use backstop_chaos::workload::{self, Shape};
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
