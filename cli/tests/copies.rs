//! Backup-of-backup end to end, with real processes: the seed's procedure verbatim
//! through the `mysql` CLI with a backupset copy, a piece copy and the continuous
//! archive copy in flight; restores from the copy alone, exact by the workload
//! generator; VALIDATE … COPY finding a corrupt object; SIGKILL of the copying worker
//! and of the meta leader during a copy and during a cancel.
//!
//! Longer than the house's ~600 lines on purpose: every file in `cli/tests/` is its
//! own test binary (one more link of the whole dependency tree in CI), and these
//! tests share this file's fixtures and checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backstop_workload::{self as workload, RunLimits, Shape};
use harness::mysql::{Mysql, file_uri, start_gateway};
use harness::{BIN, Cluster, MetaCluster, wait_for};

/// Copy bandwidth of each copy task in these tests, so copies are in flight long
/// enough to be cancelled (bytes per second).
const COPY_RATE: &str = "2000000";

struct Load {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<workload::RunStats>,
}

fn start_load(src: &Path, rate: u64) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let (s, p) = (stop.clone(), src.to_path_buf());
    let handle = std::thread::spawn(move || {
        let limits = RunLimits {
            rate,
            duration: Duration::from_secs(600),
            segment_bytes: 1 << 20,
            max_writes: 0,
        };
        workload::run(&p, 42, limits, &s).expect("workload")
    });
    Load { stop, handle }
}

impl Load {
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap();
    }
}

/// Every file under `root`, relative.
fn files(root: &Path) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The tenant's directory inside a destination (`CLUSTER/ID/incarnation_1/TENANT`),
/// if anything was ever written there.
fn try_tenant_root(dest: &Path, tenant_id: u64) -> Option<PathBuf> {
    let mut found = Vec::new();
    let dirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .map(|r| r.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for cluster in dirs(dest) {
        for id in dirs(&cluster) {
            for inc in dirs(&id) {
                let t = inc.join(tenant_id.to_string());
                if t.exists() {
                    found.push(t);
                }
            }
        }
    }
    assert!(found.len() <= 1, "one tenant dir in {}", dest.display());
    found.pop()
}

fn tenant_root(dest: &Path, tenant_id: u64) -> PathBuf {
    try_tenant_root(dest, tenant_id)
        .unwrap_or_else(|| panic!("nothing of tenant {tenant_id} in {}", dest.display()))
}

/// Objects under the tenant's `data/` and `clog/` that no manifest references
/// (object_store's staging files of a killed writer, `name#N`, are listed apart).
fn unreferenced(tenant: &Path) -> (Vec<String>, Vec<String>) {
    let all = files(tenant);
    let mut referenced: BTreeSet<String> = BTreeSet::new();
    for f in &all {
        let is_set_manifest = f.starts_with("data/") && f.ends_with("/manifest");
        let is_piece_manifest = f.starts_with("clog/") && f.ends_with("/manifest");
        if !(is_set_manifest || is_piece_manifest) {
            continue;
        }
        let dir = f.trim_end_matches("/manifest");
        referenced.insert(f.clone());
        referenced.insert(format!("{dir}/.complete"));
        referenced.insert(format!("{dir}/.frozen"));
        // An open piece's base is continued by its writer's journal entries. Read them
        // now, not from the listing above (the archive may have added one since, with
        // objects the listing saw), and again if the writer compacted meanwhile.
        let parts = backstop_testkit::manifest_parts(tenant, dir).unwrap();
        referenced.extend(parts.iter().skip(1).map(|(key, _)| key.clone()));
        for (_, part) in &parts {
            for o in part["objects"].as_array().unwrap() {
                referenced.insert(o["key"].as_str().unwrap().to_string());
            }
        }
    }
    let (mut orphans, mut staging) = (Vec::new(), Vec::new());
    for f in all {
        if !(f.starts_with("data/") || f.starts_with("clog/")) || referenced.contains(&f) {
            continue;
        }
        // A set's own part manifests are bookkeeping of the primary backup only.
        if f.starts_with("data/") && f.ends_with(".manifest") {
            continue;
        }
        // A journal entry the writer folded into its base after the listing.
        if f.contains("/manifest.d/") && !tenant.join(&f).exists() {
            continue;
        }
        if f.rsplit('/').next().is_some_and(|n| n.contains('#')) {
            staging.push(f);
        } else {
            orphans.push(f);
        }
    }
    (orphans, staging)
}

fn validate(dest: &str, tenant: &str, what: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["validate", "--dest", dest, "--tenant", tenant])
        .args(what)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Every piece of the tenant at `dest` validates: contiguous, checksums right.
fn pieces_validate(dest_dir: &Path, tenant_id: u64) -> usize {
    let Some(root) = try_tenant_root(dest_dir, tenant_id) else {
        return 0;
    };
    let mut n = 0;
    for f in files(&root) {
        let Some(dir) = f.strip_suffix("/manifest") else {
            continue;
        };
        let Some(rest) = dir.strip_prefix("clog/round_") else {
            continue;
        };
        let (round, piece) = rest.split_once("/piece_").unwrap();
        let (ok, out) = validate(
            &file_uri(dest_dir),
            &tenant_id.to_string(),
            &["--piece", &format!("{round}/{piece}")],
        );
        assert!(ok, "piece {round}/{piece} at {}: {out}", dest_dir.display());
        n += 1;
    }
    n
}

#[test]
fn the_seed_procedure_cancels_and_stops_copies_in_flight_through_the_mysql_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = Cluster::start_env(dir, 2, 3000, &[("BACKSTOP_COPY_RATE", COPY_RATE)]);
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(32 << 20, 4), 5).unwrap();
    let load = start_load(&src, 400_000);
    let (_gw, m) = start_gateway(dir, &c.meta);
    let (bk, bk2, bk3) = (dir.join("bk"), dir.join("bk2"), dir.join("bk3"));
    m.archive("t1", &src, &bk, Some(&bk2), "2s");
    m.exec("ALTER SYSTEM BACKUP DATABASE;");
    wait_for("the full backup", 60, || {
        (m.count("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID = 0 AND FILE_STATUS = 'AVAILABLE'") == 1)
            .then_some(())
    });
    wait_for("frozen pieces", 60, || {
        (m.count("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_PIECE_FILES WHERE COPY_ID = 0 AND STATUS = 'FROZEN'") >= 4)
            .then_some(())
    });

    // All three kinds of copy in flight: the continuous archive copy and the set
    // copy to backup_backup_dest, a piece copy to a third place.
    m.exec(&format!(
        "ALTER SYSTEM START BACKUP ARCHIVELOG;
         ALTER SYSTEM BACKUP BACKUPSET ALL;
         ALTER SYSTEM BACKUP BACKUPPIECE ALL BACKUP_BACKUP_DEST = '{}';",
        file_uri(&bk3)
    ));
    // The seed's procedure, verbatim.
    let seed = "SELECT * FROM oceanbase.CDB_OB_BACKUP_BACKUPPIECE_JOB;
ALTER SYSTEM CANCEL BACKUP BACKUPPIECE;
SELECT * FROM oceanbase.CDB_OB_BACKUP_BACKUPSET_JOB;
ALTER SYSTEM CANCEL BACKUP BACKUPSET;
ALTER SYSTEM STOP BACKUP ARCHIVELOG;
SELECT status FROM oceanbase.CDB_OB_BACKUP_BACKUP_ARCHIVELOG WHERE tenant_id=1;";
    let out = m.exec(seed);
    assert!(out.contains("| DOING"), "a live piece job: {out}");
    assert!(out.contains("| BACKUP"), "a live backupset job: {out}");
    assert!(out.contains("| PAUSED |"), "{out}");
    // The jobs end (CANCEL → CLEAN → FINISH) and leave the live views.
    wait_for("copy job views empty", 30, || {
        (m.count("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_BACKUPPIECE_JOB") == 0
            && m.count("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_BACKUPSET_JOB") == 0)
            .then_some(())
    });
    assert_eq!(
        m.rows("SELECT STATUS, RESULT_NAME FROM oceanbase.CDB_OB_BACKUP_BACKUPSET_JOB_HISTORY"),
        vec![vec!["FINISH".to_string(), "OB_CANCELED".to_string()]]
    );
    let piece_hist =
        m.rows("SELECT STATUS, RESULT_NAME FROM oceanbase.CDB_OB_BACKUP_BACKUPPIECE_JOB_HISTORY");
    assert_eq!(piece_hist.len(), 1);
    assert_eq!(piece_hist[0][0], "FINISH");
    assert_eq!(
        m.rows(
            "SELECT COPY_ID, FILE_STATUS FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID > 0"
        ),
        vec![vec!["1".to_string(), "INCOMPLETE".to_string()]]
    );
    // Nothing the cancelled jobs wrote is left unreferenced.
    let bk2_tenant = tenant_root(&bk2, 1001);
    assert!(
        !files(&bk2_tenant)
            .iter()
            .any(|f| f.starts_with("data/") || f.starts_with("info/backup_set")),
        "the cancelled set copy left {:?}",
        files(&bk2_tenant)
    );
    for d in [&bk2, &bk3] {
        let Some(t) = try_tenant_root(d, 1001) else {
            continue;
        };
        let (orphans, staging) = unreferenced(&t);
        assert!(
            orphans.is_empty(),
            "orphans at {}: {orphans:?}",
            d.display()
        );
        assert!(
            staging.is_empty(),
            "staging files at {}: {staging:?}",
            d.display()
        );
    }
    // Cancelling again when nothing runs is a no-op.
    m.exec("ALTER SYSTEM CANCEL BACKUP BACKUPSET; ALTER SYSTEM CANCEL BACKUP BACKUPPIECE;");
    // STOP stopped at a consistent checkpoint; START resumes with no gap.
    let paused_at: u64 = m.rows(
        "SELECT CHECKPOINT_SCN FROM oceanbase.CDB_OB_BACKUP_BACKUP_ARCHIVELOG WHERE tenant_id=1",
    )[0][0]
        .parse()
        .unwrap();
    m.exec("ALTER SYSTEM START BACKUP ARCHIVELOG;");
    wait_for("the archive copy to move on", 60, || {
        let r = m.rows(
            "SELECT STATUS, CHECKPOINT_SCN FROM oceanbase.CDB_OB_BACKUP_BACKUP_ARCHIVELOG WHERE tenant_id=1",
        );
        (r[0][0] == "DOING" && r[0][1].parse::<u64>().unwrap() > paused_at).then_some(())
    });
    // A new set copy starts over and completes.
    m.exec("ALTER SYSTEM BACKUP BACKUPSET ALL;");
    wait_for("the set copy", 60, || {
        (m.rows("SELECT FILE_STATUS FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID = 1")
            == vec![vec!["AVAILABLE".to_string()]])
        .then_some(())
    });
    // Let the copy of the archive pass the set's restore point, then stop the load.
    let target: u64 = m.rows(
        "SELECT CHECKPOINT_SCN FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID = 1001",
    )[0][0]
        .parse()
        .unwrap();
    wait_for("the archive copy to catch up", 60, || {
        let r = m.rows(
            "SELECT CHECKPOINT_SCN FROM oceanbase.CDB_OB_BACKUP_BACKUP_ARCHIVELOG WHERE TENANT_ID = 1001",
        );
        (r[0][0].parse::<u64>().unwrap() >= target).then_some(())
    });
    load.finish();
    assert!(pieces_validate(&bk2, 1001) > 0, "copied pieces validate");
    pieces_validate(&bk3, 1001);

    // Restore from the copy alone: the primary destination is gone.
    m.exec("ALTER SYSTEM NOARCHIVELOG;");
    wait_for("archive STOP", 30, || {
        (m.rows("SELECT STATUS FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID = 1001")
            == vec![vec!["STOP".to_string()]])
        .then_some(())
    });
    std::fs::rename(&bk, dir.join("bk.gone")).unwrap();
    let to = dir.join("restored");
    let info = harness::restore(&file_uri(&bk2), "t1", &to, &[]).unwrap();
    let until = info["until_scn"].as_u64().unwrap();
    assert!(
        until >= target,
        "restored to {until}, archive copy reached {target}"
    );
    workload::verify(&to, &src, None).expect("exact restore from the copy");

    // VALIDATE … COPY: clean, then one flipped byte is found.
    m.exec("ALTER SYSTEM VALIDATE BACKUPSET 1 COPY 1;");
    let obj = files(&bk2_tenant)
        .into_iter()
        .find(|f| f.contains("/obj_"))
        .unwrap();
    let validations = |m: &Mysql| {
        m.rows("SELECT RESULT, COMMENT FROM oceanbase.CDB_OB_BACKUP_VALIDATION_JOB_HISTORY ORDER BY JOB_ID")
    };
    wait_for("validation of the copy", 60, || {
        (validations(&m).len() == 1).then_some(())
    });
    let path = bk2_tenant.join(&obj);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    m.exec("ALTER SYSTEM VALIDATE BACKUPSET 1 COPY 1;");
    wait_for("validation of the corrupt copy", 60, || {
        (validations(&m).len() == 2).then_some(())
    });
    let v = validations(&m);
    assert_eq!(v[0][0], "", "the copy validates: {v:?}");
    assert_eq!(v[1][0], "OB_CHECKSUM_ERROR", "{v:?}");
    assert!(v[1][1].contains(&obj), "the bad object is named: {v:?}");
}

fn worker_ids(dir: &Path, n: usize) -> Vec<u64> {
    (0..n)
        .map(|i| {
            std::fs::read_to_string(dir.join(format!("worker{i}/worker_id")))
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn copies_end_correctly_when_the_worker_or_the_meta_leader_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut c = MetaCluster::start_env(dir, 3, 2000, &[("BACKSTOP_COPY_RATE", COPY_RATE)]);
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(24 << 20, 4), 6).unwrap();
    let load = start_load(&src, 300_000);
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
        "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=2s",
    ]);
    c.ctl(&["param", "set", "backup_backup_dest", &file_uri(&bk2)]);
    c.ctl(&["archivelog"]);
    let backup = |c: &MetaCluster, incremental: bool| {
        let mut args = vec!["backup", "--tenant", "t1"];
        if incremental {
            args.push("--incremental");
        }
        let job = c.ctl(&args)["job_ids"][0].as_u64().unwrap();
        wait_for("backup set", 120, || {
            let sets = c.try_ctl(&["sets"])?;
            let set = sets
                .as_array()?
                .iter()
                .find(|s| s["job_id"] == job)?
                .clone();
            (set["status"] == "SUCCESS").then_some(set["backup_set_id"].as_u64().unwrap())
        })
    };
    wait_for("archive DOING", 60, || {
        let r = c.try_ctl(&["archive"])?;
        (r.as_array()?.last()?["status"] == "DOING").then_some(())
    });
    let set1 = backup(&c, false);
    c.ctl(&["copy", "start"]);

    // 1. SIGKILL the worker running the set copy: the task moves, the copy completes.
    let job = c.ctl(&["copy", "set"])["job_ids"][0].as_u64().unwrap();
    let ids = worker_ids(dir, 3);
    let runner = wait_for("the copy task to run", 30, || {
        let tasks = c.try_ctl(&["tasks", "--job", &job.to_string()])?;
        let w = tasks.as_array()?.first()?["worker_id"].as_u64()?;
        ids.iter().position(|id| *id == w)
    });
    std::thread::sleep(Duration::from_millis(1500));
    drop(c.workers.remove(runner));
    let copy_done = |c: &MetaCluster, set: u64| {
        wait_for("the set copy", 120, || {
            let sets = c.try_ctl(&["sets"])?;
            let row = sets
                .as_array()?
                .iter()
                .find(|s| s["backup_set_id"] == set && s["copy_id"] == 1)?
                .clone();
            assert_ne!(row["file_status"], "INCOMPLETE", "copy failed: {row}");
            (row["file_status"] == "AVAILABLE").then_some(())
        })
    };
    copy_done(&c, set1);
    let tenant_dir = tenant_root(&bk2, 1001);
    let (ok, out) = validate(&file_uri(&bk2), "t1", &["--backup-set", &set1.to_string()]);
    assert!(ok, "{out}");

    // 2. SIGKILL the meta leader during a copy: the copy still completes.
    let set2 = backup(&c, false);
    c.ctl(&["copy", "set"]);
    std::thread::sleep(Duration::from_millis(1000));
    let leader = c.leader();
    c.metas[leader].take();
    copy_done(&c, set2);
    c.restart_meta(leader);

    // 3. SIGKILL the meta leader right after a cancel commits: the job still ends
    //    cancelled, and its partial copy is gone.
    let set3 = backup(&c, false);
    c.ctl(&["copy", "set"]);
    std::thread::sleep(Duration::from_millis(1000));
    c.ctl(&["cancel", "backupset"]);
    let leader = c.leader();
    c.metas[leader].take();
    wait_for("the cancelled copy job to end", 60, || {
        let jobs = c.try_ctl(&["jobs", "--all"])?;
        let j = jobs
            .as_array()?
            .iter()
            .rfind(|j| j["job_type"] == "BACKUP_BACKUPSET")?
            .clone();
        (j["status"] == "CANCELED").then_some(())
    });
    c.restart_meta(leader);
    let sets = c.ctl(&["sets"]);
    let row = sets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["backup_set_id"] == set3 && s["copy_id"] == 1)
        .unwrap();
    assert_eq!(row["file_status"], "INCOMPLETE");
    wait_for("the partial copy to be cleaned", 30, || {
        (!files(&tenant_dir)
            .iter()
            .any(|f| f.starts_with(&format!("data/backup_set_{set3}_"))))
        .then_some(())
    });

    // The continuous copy has no gap, and nothing is left unreferenced.
    load.finish();
    assert!(pieces_validate(&bk2, 1001) > 0);
    // The continuous copy may be between an object and the manifest that lists it
    // when the check starts: that is in flight, not an orphan, so give it its turn.
    let staging = wait_for(
        "no unreferenced objects at the copy destination",
        30,
        || {
            let (orphans, staging) = unreferenced(&tenant_dir);
            orphans.is_empty().then_some(staging)
        },
    );
    if !staging.is_empty() {
        eprintln!("staging files of killed writers (invisible to object_store): {staging:?}");
    }
}

#[test]
fn a_policy_with_secondary_backup_backs_up_copies_and_stops_when_turned_off() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = Cluster::start(dir, 1, 3000);
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(8 << 20, 2), 8).unwrap();
    let load = start_load(&src, 200_000);
    c.ctl(&[
        "tenant",
        "create",
        "t1",
        "--source",
        &format!("dir://{}", src.display()),
    ]);
    c.ctl(&["param", "set", "backup_dest", &file_uri(&dir.join("bk"))]);
    c.ctl(&[
        "param",
        "set",
        "backup_dest_option",
        "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=3s",
    ]);
    c.ctl(&[
        "param",
        "set",
        "backup_backup_dest",
        &file_uri(&dir.join("bk2")),
    ]);
    c.start_archive("t1");
    c.ctl(&["policy", "set", "--full-every", "1h", "--secondary", "on"]);
    assert_eq!(c.ctl(&["policy", "list"])[0]["secondary"], true);
    // The policy takes a full backup (none exists), copies it, and starts the
    // continuous archive copy.
    wait_for("the policy's backup and its copy", 90, || {
        let sets = c.try_ctl(&["sets"])?;
        let sets = sets.as_array()?;
        let copied = sets
            .iter()
            .any(|s| s["copy_id"] == 1 && s["file_status"] == "AVAILABLE");
        let primary = sets
            .iter()
            .any(|s| s["copy_id"] == 0 && s["status"] == "SUCCESS");
        (primary && copied).then_some(())
    });
    wait_for("the continuous copy", 30, || {
        (c.try_ctl(&["copies"])?["copies"][0]["status"] == "DOING").then_some(())
    });
    // Secondary off: the backup-of-backup work stops as STOP BACKUP ARCHIVELOG would.
    c.ctl(&["policy", "set", "--full-every", "1h", "--secondary", "off"]);
    assert_eq!(c.ctl(&["copies"])["copies"][0]["status"], "PAUSED");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        c.ctl(&["copies"])["copies"][0]["status"],
        "PAUSED",
        "the policy does not restart what it stopped"
    );
    assert_eq!(c.ctl(&["policy", "drop"])["dropped"], true);
    load.finish();
}

/// `DELETE BACKUPSET n [COPY k]` through the mysql CLI: refused while an incremental
/// depends on the set, then each set and a copy go DELETING → DELETED with nothing left
/// at their destination; a deleted set neither restores nor serves as a base.
#[test]
fn delete_backupset_removes_sets_and_copies_in_dependency_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let c = Cluster::start(dir, 1, 3000);
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(4 << 20, 2), 9).unwrap();
    let load = start_load(&src, 100_000);
    let (_gw, m) = start_gateway(dir, &c.meta);
    let (bk, bk2) = (dir.join("bk"), dir.join("bk2"));
    m.archive("t1", &src, &bk, Some(&bk2), "3s");
    let available = |copy: u64| {
        m.count(&format!(
            "SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID = {copy} AND FILE_STATUS = 'AVAILABLE'"
        ))
    };
    m.exec("ALTER SYSTEM BACKUP DATABASE;");
    wait_for("the full backup", 60, || (available(0) == 1).then_some(()));
    m.exec("ALTER SYSTEM BACKUP INCREMENTAL DATABASE;");
    wait_for("the incremental", 60, || (available(0) == 2).then_some(()));
    m.exec("ALTER SYSTEM BACKUP BACKUPSET ALL;");
    wait_for("both sets copied", 60, || (available(1) == 2).then_some(()));
    let status = |set: u64, copy: u64| {
        m.rows(&format!(
            "SELECT FILE_STATUS FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE BS_KEY = {set} AND COPY_ID = {copy}"
        ))
    };
    let wait_deleted = |set: u64, copy: u64| {
        wait_for("DELETED", 30, || {
            (status(set, copy) == vec![vec!["DELETED".to_string()]]).then_some(())
        })
    };
    let t = tenant_root(&bk, 1001);
    let t2 = tenant_root(&bk2, 1001);
    let set_dirs = |root: &Path| {
        files(root)
            .into_iter()
            .filter(|f| f.starts_with("data/") || f.starts_with("info/backup_set_"))
            .map(|f| f.split('/').take(2).collect::<Vec<_>>().join("/"))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        set_dirs(&t),
        BTreeSet::from([
            "data/backup_set_1_full".to_string(),
            "data/backup_set_2_inc".to_string(),
            "info/backup_set_1".to_string(),
            "info/backup_set_2".to_string(),
        ])
    );

    // The full set is the incremental's base: refused, nothing changes.
    let (ok, _, err) = m.run(&[], "ALTER SYSTEM DELETE BACKUPSET 1");
    assert!(
        !ok && err.contains("OB_NOT_SUPPORTED") && err.contains("set 2"),
        "{err}"
    );
    assert_eq!(status(1, 0), vec![vec!["AVAILABLE".to_string()]]);
    let (ok, _, err) = m.run(&[], "ALTER SYSTEM DELETE BACKUPSET 9");
    assert!(!ok && err.contains("OB_INVALID_BACKUP_SET_ID"), "{err}");

    // The incremental, then the full set; the copy at backup_backup_dest stays.
    m.exec("ALTER SYSTEM DELETE BACKUPSET 2;");
    wait_deleted(2, 0);
    let (ok, _, err) = m.run(&[], "ALTER SYSTEM DELETE BACKUPSET 2");
    assert!(!ok && err.contains("already DELETED"), "{err}");
    m.exec("ALTER SYSTEM DELETE BACKUPSET 1;");
    wait_deleted(1, 0);
    assert!(set_dirs(&t).is_empty(), "{:?}", set_dirs(&t));
    assert_eq!(available(1), 2, "the copies are untouched");
    let (ok, err) = validate(&file_uri(&bk2), "t1", &["--backup-set", "2"]);
    assert!(ok, "the copy still validates: {err}");

    // No usable base left at backup_dest: an incremental is refused; a restore of a
    // deleted set finds nothing.
    let (ok, _, err) = m.run(&[], "ALTER SYSTEM BACKUP INCREMENTAL DATABASE");
    assert!(!ok && err.contains("take a full backup first"), "{err}");
    let restored = harness::restore(
        &file_uri(&bk),
        "t1",
        &dir.join("restore"),
        &["--backup-set", "1"],
    );
    assert!(restored.is_err(), "{restored:?}");

    // A copy: COPY k deletes at backup_backup_dest only.
    m.exec("ALTER SYSTEM DELETE BACKUPSET 2 COPY 1;");
    wait_deleted(2, 1);
    assert_eq!(
        set_dirs(&t2),
        BTreeSet::from([
            "data/backup_set_1_full".to_string(),
            "info/backup_set_1".to_string(),
        ])
    );
    load.finish();
}
