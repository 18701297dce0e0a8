//! The data plane end to end with real processes (a meta node, workers killed with
//! SIGKILL), real object stores (file:// and an S3-compatible server) and the
//! workload generator as the oracle: every restore is replayed and compared with the
//! state the generator recorded at that SCN.
//!
//! Longer than the house's ~600 lines on purpose: every file in `cli/tests/` is its
//! own test binary (one more link of the whole dependency tree in CI), and these
//! tests share this file's fixtures and checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use backstop_workload::{self as workload, RunLimits, Shape};
use harness::{Cluster, S3, restore, start_load, wait_for};
use serde_json::Value;

/// The tenant's prefix directory at a file:// destination.
fn tenant_root(dest_dir: &Path) -> PathBuf {
    let mut found = Vec::new();
    for entry in walk(dest_dir) {
        if entry.ends_with("info/tenant") {
            found.push(entry.parent().unwrap().parent().unwrap().to_path_buf());
        }
    }
    assert_eq!(found.len(), 1, "{found:?}");
    found.remove(0)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn scn(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Full + two incrementals while the generator writes; five restores, each exact.
fn backups_under_load_restore_exactly(dest: &str, dir: &Path, c: &Cluster) {
    let src = dir.join("t1");
    workload::init(&src, Shape::of_size(32 << 20, 4), 7).unwrap();
    c.setup_tenant("t1", &src, dest, true);
    c.start_archive("t1");
    let load = start_load(&src, 1_000_000);
    std::thread::sleep(Duration::from_millis(800));
    let full = c.backup("t1", false);
    std::thread::sleep(Duration::from_millis(800));
    let inc1 = c.backup("t1", true);
    std::thread::sleep(Duration::from_millis(800));
    let inc2 = c.backup("t1", true);
    std::thread::sleep(Duration::from_millis(800));
    let stats = load.finish();
    c.wait_archived("t1", stats.log_end);
    assert_eq!(full["backup_type"], "D");
    assert_eq!(inc1["backup_type"], "I");
    assert_eq!(inc1["base_set_id"], full["backup_set_id"]);
    assert_eq!(inc2["base_set_id"], inc1["backup_set_id"]);
    assert!(
        // Changed blocks only: about a third of the full under this load on a quiet
        // machine; up to half when the machine is busy and the backups take longer.
        scn(&inc1, "output_bytes") < scn(&full, "output_bytes") * 3 / 4,
        "an incremental stores only changed blocks: full {} vs inc {}",
        full["output_bytes"],
        inc1["output_bytes"]
    );
    let targets = [
        scn(&full, "min_restore_scn"),
        (scn(&full, "min_restore_scn") + scn(&inc1, "min_restore_scn")) / 2,
        scn(&inc1, "min_restore_scn"),
        scn(&inc2, "min_restore_scn") + 100_000,
        stats.log_end,
    ];
    for (i, target) in targets.iter().enumerate() {
        let to = dir.join(format!("restore{i}"));
        let info = restore(dest, "t1", &to, &["--until-scn", &target.to_string()]).unwrap();
        assert_eq!(scn(&info, "until_scn"), *target);
        let v = workload::verify(&to, &src, Some(*target))
            .unwrap_or_else(|e| panic!("restore to {target}: {e}"));
        assert!(v.pages > 0);
    }
    // A target before the first set's min_restore_scn cannot be restored: clear error.
    let early = restore(
        dest,
        "t1",
        &dir.join("early"),
        &["--until-scn", &(scn(&full, "start_replay_scn")).to_string()],
    );
    assert!(early.unwrap_err().contains("no complete backup set"));
}

#[test]
fn full_and_incrementals_under_load_restore_exactly_on_file_dest() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), 2, 3000);
    let dest = format!("file://{}/dest", dir.path().display());
    backups_under_load_restore_exactly(&dest, dir.path(), &c);
}

#[test]
fn full_and_incrementals_under_load_restore_exactly_on_s3_then_s3_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let mut s3 = S3::start(dir.path(), "backups");
    let c = Cluster::start(dir.path(), 2, 3000);
    let dest = s3.uri("backups", "prod");
    backups_under_load_restore_exactly(&dest, dir.path(), &c);
    // The access key never shows.
    let rounds = c.ctl(&["archive", "--tenant", "t1"]).to_string();
    assert!(
        rounds.contains("access_key=***") && !rounds.contains("access_key=test"),
        "{rounds}"
    );
    // The S3 server stops: a backup fails with a clear reason, the archive retries and says why.
    s3.stop();
    let src = dir.path().join("t1");
    let limits = RunLimits {
        rate: 1_000_000,
        duration: Duration::from_secs(1),
        segment_bytes: 1 << 20,
        max_writes: 0,
    };
    workload::run(&src, 43, limits, &AtomicBool::new(false)).unwrap();
    let jobs = c.ctl(&["backup", "--tenant", "t1", "--incremental"]);
    let job = jobs["job_ids"][0].as_u64().unwrap();
    let set = wait_for("the backup to fail", 120, || {
        let sets = c.ctl(&["sets", "--tenant", "t1"]);
        let set = sets
            .as_array()?
            .iter()
            .find(|s| s["job_id"] == job)?
            .clone();
        (set["status"] == "FAILED").then_some(set)
    });
    assert_eq!(set["file_status"], "INCOMPLETE");
    let comment = set["comment"].as_str().unwrap();
    assert!(comment.contains("storage"), "{comment}");
    wait_for("the round to report its retries", 60, || {
        let round = c.round("t1");
        (round["status"] == "DOING" && round["comment"].as_str()?.starts_with("retrying"))
            .then_some(())
    });
}

#[test]
fn s3_keys_from_the_environment_stay_out_of_the_catalog_and_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3::start(dir.path(), "backups");
    let keys = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let c = Cluster::start_env(dir.path(), 1, 3000, &keys);
    // No access_id / access_key: the worker signs with its own environment's keys.
    let dest = format!("s3://backups/envkeys?host=http://127.0.0.1:{}", s3.port);
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(2 << 20, 2), 9).unwrap();
    c.setup_tenant("t1", &src, &dest, false);
    c.start_archive("t1");
    let set = c.backup("t1", false);
    let params = c.ctl(&["param", "show"]).to_string();
    assert!(
        !params.contains("access_key") && !set.to_string().contains("access_key"),
        "{params}"
    );
    // restore reads it with keys from its environment too, nothing on the command line.
    let to = dir.path().join("restored");
    let out = std::process::Command::new(harness::BIN)
        .args(["restore", "--dest", &dest, "--tenant", "t1", "--to"])
        .arg(&to)
        .envs(keys)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    workload::verify(&to, &src, None).unwrap();
    // ... or from an AWS shared credentials file and profile, as the AWS CLI reads them.
    let creds = dir.path().join("aws-credentials");
    std::fs::write(
        &creds,
        "[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong\n\n\
         [backup]\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    let restore_with_file = |to: &Path, profile: &str| {
        std::process::Command::new(harness::BIN)
            .args(["restore", "--dest", &dest, "--tenant", "t1", "--to"])
            .arg(to)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_PROFILE", profile)
            .output()
            .unwrap()
    };
    let to = dir.path().join("restored_by_file");
    let out = restore_with_file(&to, "backup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    workload::verify(&to, &src, None).unwrap();
    let out = restore_with_file(&dir.path().join("never"), "nosuch");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("no profile [nosuch]"),
        "{err}"
    );
}

#[test]
fn a_real_source_tree_backs_up_and_restores_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), 1, 3000);
    let src = dir.path().join("tree");
    std::fs::create_dir_all(src.join("log")).unwrap();
    std::fs::write(src.join("log").join(format!("{:020}.log", 0)), b"").unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::create_dir_all(src.join("data")).unwrap();
    for part in ["meta", "worker", "common", "proto"] {
        let ok = std::process::Command::new("cp")
            .arg("-r")
            .arg(repo.join(part))
            .arg(src.join("data"))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let dest = format!("file://{}/dest", dir.path().display());
    c.setup_tenant("tree", &src, &dest, false);
    c.start_archive("tree");
    let set = c.backup("tree", false);
    assert!(scn(&set, "file_count") > 20);
    let to = dir.path().join("restored");
    restore(&dest, "tree", &to, &[]).unwrap();
    let diff = std::process::Command::new("diff")
        .arg("-r")
        .arg(src.join("data"))
        .arg(to.join("data"))
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "diff -r: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert!(!to.join(".backstop_restore_in_progress").exists());
    // The same through the metadata service: a RESTORE job run by a worker.
    let to2 = dir.path().join("restored_by_job");
    let jobs = c.ctl(&["restore", "--tenant", "tree", "--to", to2.to_str().unwrap()]);
    let job = jobs["job_ids"][0].clone();
    let finished = wait_for("restore job", 60, || {
        let all = c.ctl(&["jobs", "--all"]);
        let j = all.as_array()?.iter().find(|j| j["job_id"] == job)?.clone();
        assert_ne!(j["status"], "FAILED", "{j}");
        (j["status"] == "FINISH").then_some(j)
    });
    assert_eq!(finished["job_type"], "RESTORE");
    let diff = std::process::Command::new("diff")
        .arg("-r")
        .arg(src.join("data"))
        .arg(to2.join("data"))
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "diff -r: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
}

#[test]
fn killed_workers_lose_nothing_mid_backup_and_mid_archive() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 2, 2000);
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(8 << 20, 2), 9).unwrap();
    let dest_dir = dir.path().join("dest");
    let dest = format!("file://{}", dest_dir.display());
    c.setup_tenant("t1", &src, &dest, false);
    // A slow begin_backup hook keeps the prepare step in flight long enough to kill it.
    let hook = format!("sleep 3; flock {}/workload/write.lock true", src.display());
    c.ctl(&["tenant", "hooks", "t1", "--begin", &hook]);
    c.start_archive("t1");
    let load = start_load(&src, 1_000_000);
    let worker_of = |c: &Cluster, kind: &str| -> Option<usize> {
        let tasks = c.ctl(&["tasks"]);
        let t = tasks
            .as_array()?
            .iter()
            .find(|t| t["task_type"] == kind && t["status"] == "DOING")?
            .clone();
        let pid: u32 = t["worker_addr"]
            .as_str()?
            .strip_prefix("pid ")?
            .parse()
            .ok()?;
        c.workers
            .iter()
            .position(|w| w.as_ref().is_some_and(|p| p.0.id() == pid))
    };
    // Kill the worker running the archive; the other one takes over from the checkpoint.
    let archiver = wait_for("archive task", 30, || worker_of(&c, "ARCHIVE"));
    let before = scn(&c.round("t1"), "checkpoint_scn");
    c.kill_worker(archiver);
    c.add_worker();
    wait_for("archive to advance on another worker", 60, || {
        (scn(&c.round("t1"), "checkpoint_scn") > before + 1_000_000).then_some(())
    });
    // Kill the worker in the middle of a backup.
    let jobs = c.ctl(&["backup", "--tenant", "t1"]);
    let job = jobs["job_ids"][0].as_u64().unwrap();
    let preparer = wait_for("prepare task", 30, || worker_of(&c, "BACKUP_PREPARE"));
    c.kill_worker(preparer);
    c.add_worker();
    let set = c.wait_set_of_job("t1", job);
    let stats = load.finish();
    c.wait_archived("t1", stats.log_end);
    let tasks = c.ctl(&["tasks", "--job", &job.to_string(), "--all"]);
    let prepare = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_type"] == "BACKUP_PREPARE")
        .unwrap();
    assert!(
        scn(prepare, "attempt") >= 2,
        "the prepare task moved: {prepare}"
    );
    // Freeze everything, then check the pieces: contiguous, no overlap, no orphan.
    c.ctl(&["noarchivelog", "--tenant", "t1"]);
    wait_for("round STOP", 30, || {
        (c.round("t1")["status"] == "STOP").then_some(())
    });
    let root = tenant_root(&dest_dir);
    let mut covered: Vec<(u64, u64)> = Vec::new();
    for m in walk(&root.join("clog"))
        .into_iter()
        .filter(|p| p.ends_with("manifest"))
    {
        let manifest: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
        assert_eq!(manifest["frozen"], true, "{}", m.display());
        let listed: Vec<String> = manifest["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["key"].as_str().unwrap().to_string())
            .collect();
        for o in manifest["objects"].as_array().unwrap() {
            covered.push((scn(o, "start"), scn(o, "end")));
        }
        for f in walk(m.parent().unwrap()) {
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            if name.starts_with("log_") {
                let key = f.strip_prefix(&root).unwrap().to_str().unwrap().to_string();
                assert!(listed.contains(&key), "orphan log object {key}");
            }
        }
    }
    covered.sort();
    for pair in covered.windows(2) {
        assert_eq!(
            pair[0].1, pair[1].0,
            "archive gap or overlap between {:?} and {:?}",
            pair[0], pair[1]
        );
    }
    // Every object in the set directory is referenced by the set manifest.
    let set_dir = root.join(format!(
        "data/backup_set_{}_full",
        scn(&set, "backup_set_id")
    ));
    let manifest: Value = backstop_testkit::manifest_json(
        "manifest",
        &std::fs::read(set_dir.join("manifest")).unwrap(),
    )
    .unwrap();
    let objects: Vec<String> = manifest["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["key"].as_str().unwrap().to_string())
        .collect();
    for f in walk(&set_dir) {
        let key = f.strip_prefix(&root).unwrap().to_str().unwrap().to_string();
        let name = f.file_name().unwrap().to_str().unwrap();
        let known = objects.contains(&key)
            || name == "manifest"
            || name == ".complete"
            || name.ends_with(".manifest");
        assert!(known, "unreferenced object {key}");
    }
    let to = dir.path().join("restored");
    restore(&dest, "t1", &to, &[]).unwrap();
    workload::verify(&to, &src, None).unwrap();
}

#[test]
fn a_flipped_byte_is_named_by_validate_and_by_restore() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), 1, 3000);
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(4 << 20, 2), 3).unwrap();
    let dest_dir = dir.path().join("dest");
    let dest = format!("file://{}", dest_dir.display());
    c.setup_tenant("t1", &src, &dest, false);
    c.start_archive("t1");
    let set = c.backup("t1", false);
    let id = scn(&set, "backup_set_id").to_string();
    let root = tenant_root(&dest_dir);
    let obj = walk(&root.join("data"))
        .into_iter()
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("obj_"))
        .unwrap();
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&obj, bytes).unwrap();
    let key = obj
        .strip_prefix(&root)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let out = std::process::Command::new(harness::BIN)
        .args([
            "validate",
            "--dest",
            &dest,
            "--tenant",
            "t1",
            "--backup-set",
            &id,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&key),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let jobs = c.ctl(&["validate", "--tenant", "t1", "--backup-set", &id]);
    let job = jobs["job_ids"][0].clone();
    let failed = wait_for("validate job", 60, || {
        let all = c.ctl(&["jobs", "--all"]);
        let j = all.as_array()?.iter().find(|j| j["job_id"] == job)?.clone();
        (j["status"] == "FAILED").then_some(j)
    });
    assert!(
        failed["comment"].as_str().unwrap().contains(&key),
        "{failed}"
    );
    let to = dir.path().join("restored");
    let err = restore(&dest, "t1", &to, &[]).unwrap_err();
    assert!(err.contains(&key), "{err}");
    assert!(to.join(".backstop_restore_in_progress").exists());
    assert!(!to.join("backstop_restore.json").exists());
}

#[test]
fn a_destination_that_refuses_writes_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), 1, 3000);
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(1 << 20, 1), 3).unwrap();
    // A regular file where the destination directory should be.
    std::fs::write(dir.path().join("blocker"), b"not a directory").unwrap();
    let dest = format!("file://{}/blocker/dest", dir.path().display());
    c.setup_tenant("t1", &src, &dest, false);
    c.ctl(&["archivelog", "--tenant", "t1"]);
    let round = wait_for("the archive to report its failure", 60, || {
        let r = c.round("t1");
        r["comment"]
            .as_str()
            .filter(|s| s.starts_with("retrying"))?;
        Some(r)
    });
    assert_eq!(round["status"], "BEGINNING");
    assert!(
        round["comment"].as_str().unwrap().contains("blocker"),
        "{round}"
    );
    let out = c.ctl_raw(&["backup", "--tenant", "t1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OB_BACKUP_CAN_NOT_START") && err.contains("BEGINNING"),
        "{err}"
    );
}

#[test]
fn log_lost_before_archiving_marks_the_round_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 1, 2000);
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(1 << 20, 1), 5).unwrap();
    let dest = format!("file://{}/dest", dir.path().display());
    c.setup_tenant("t1", &src, &dest, false);
    c.start_archive("t1");
    // No worker runs while the tenant writes three segments and recycles the first.
    c.kill_worker(0);
    let limits = RunLimits {
        rate: 0,
        duration: Duration::from_secs(30),
        segment_bytes: 100_000,
        max_writes: 40,
    };
    workload::run(&src, 6, limits, &AtomicBool::new(false)).unwrap();
    let mut segments: Vec<PathBuf> = std::fs::read_dir(src.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    std::fs::remove_file(&segments[0]).unwrap();
    c.add_worker();
    let round = wait_for("INTERRUPTED", 60, || {
        let r = c.round("t1");
        (r["status"] == "INTERRUPTED").then_some(r)
    });
    assert!(
        round["comment"].as_str().unwrap().contains("gone"),
        "{round}"
    );
    // Backups refuse to start; NOARCHIVELOG closes the round; ARCHIVELOG starts a new one.
    let out = c.ctl_raw(&["backup", "--tenant", "t1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("INTERRUPTED"));
    c.ctl(&["noarchivelog", "--tenant", "t1"]);
    assert_eq!(
        c.round("t1")["status"],
        "INTERRUPTED",
        "the gap stays recorded on the old round"
    );
    c.start_archive("t1");
    assert_eq!(c.round("t1")["round_id"], 2);
}

/// Issue 11 point 8: the active segment is cut back below what was archived and
/// regrown with other bytes. The archive must not splice the new bytes onto the old
/// ones: the round goes INTERRUPTED, naming the segment.
#[test]
fn a_log_rewritten_under_the_archive_marks_the_round_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(dir.path(), 1, 2000);
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(1 << 20, 1), 5).unwrap();
    let dest = format!("file://{}/dest", dir.path().display());
    c.setup_tenant("t1", &src, &dest, false);
    c.start_archive("t1");
    let limits = RunLimits {
        rate: 0,
        duration: Duration::from_secs(30),
        segment_bytes: 1 << 30,
        max_writes: 20,
    };
    let stats = workload::run(&src, 6, limits, &AtomicBool::new(false)).unwrap();
    c.wait_archived("t1", stats.log_end);
    let mut segments: Vec<PathBuf> = std::fs::read_dir(src.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    let active = segments.last().unwrap().clone();
    let old = std::fs::read(&active).unwrap();
    let mut new = old[..old.len() / 2].to_vec();
    new.extend(std::iter::repeat_n(0x5a, old.len()));
    let tmp = dir.path().join("rewritten.log");
    std::fs::write(&tmp, &new).unwrap();
    std::fs::rename(&tmp, &active).unwrap();
    let round = wait_for("INTERRUPTED", 30, || {
        let r = c.round("t1");
        (r["status"] == "INTERRUPTED").then_some(r)
    });
    let comment = round["comment"].as_str().unwrap();
    let name = active.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        comment.contains("rewritten") && comment.contains(&name),
        "{round}"
    );
}

#[test]
fn killing_the_meta_leader_mid_backup_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = harness::MetaCluster::start(dir.path(), 2, 2000);
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(16 << 20, 4), 13).unwrap();
    let dest = format!("file://{}/dest", dir.path().display());
    c.ctl(&[
        "tenant",
        "create",
        "t1",
        "--source",
        &format!("dir://{}", src.display()),
    ]);
    let hook = format!("sleep 2; flock {}/workload/write.lock true", src.display());
    c.ctl(&["tenant", "hooks", "t1", "--begin", &hook]);
    c.ctl(&["param", "set", "backup_dest", &dest]);
    c.ctl(&[
        "param",
        "set",
        "backup_dest_option",
        "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=3s",
    ]);
    c.ctl(&["archivelog", "--tenant", "t1"]);
    let round = |c: &harness::MetaCluster| {
        c.ctl(&["archive", "--tenant", "t1"])
            .as_array()
            .unwrap()
            .last()
            .cloned()
            .unwrap()
    };
    wait_for("archive DOING", 30, || {
        (round(&c)["status"] == "DOING").then_some(())
    });
    let load = start_load(&src, 1_000_000);
    let jobs = c.ctl(&["backup", "--tenant", "t1"]);
    let job = jobs["job_ids"][0].as_u64().unwrap();
    // Kill the leader while the backup's prepare step runs (its hook sleeps 2 s).
    std::thread::sleep(Duration::from_millis(500));
    let leader = c.leader();
    c.metas[leader].take();
    let set = wait_for("the backup to finish under the new leader", 120, || {
        let sets = c.try_ctl(&["sets", "--tenant", "t1"])?;
        let set = sets
            .as_array()?
            .iter()
            .find(|s| s["job_id"] == job)?
            .clone();
        assert_ne!(set["status"], "FAILED", "{set}");
        (set["status"] == "SUCCESS").then_some(set)
    });
    c.restart_meta(leader);
    let stats = load.finish();
    wait_for("archive to catch up", 60, || {
        (scn(&round(&c), "checkpoint_scn") >= stats.log_end).then_some(())
    });
    let to = dir.path().join("restored");
    restore(&dest, "t1", &to, &[]).unwrap();
    let v = workload::verify(&to, &src, None).unwrap();
    assert_eq!(v.scn, stats.log_end);
    assert!(scn(&set, "min_restore_scn") <= stats.log_end);
}
