//! Real `backstop` processes on 127.0.0.1: `standalone` with `ctl`, and a 3-node
//! `backstop meta` cluster that survives SIGKILL of its leader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_backstop");

use backstop_testkit::{Proc, free_port, wait_for};

fn spawn(args: &[&str], log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(BIN)
            .args(args)
            .env_remove("BACKSTOP_CONFIG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn backstop"),
    )
}

fn ctl(meta: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["ctl", "--meta", meta, "--timeout", "2", "--json"])
        .args(args)
        .output()
        .expect("run ctl")
}

fn ctl_json(meta: &str, args: &[&str]) -> Option<Value> {
    let out = ctl(meta, args);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn tenant_names(meta: &str) -> Vec<String> {
    let list = ctl_json(meta, &["tenant", "list"]).expect("tenant list");
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant_name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn standalone_serves_ctl_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let addr = format!("127.0.0.1:{}", free_port());
    let sql = format!("127.0.0.1:{}", free_port());
    let data_arg = data.to_str().unwrap();
    let mut p = spawn(
        &[
            "standalone",
            "--data-dir",
            data_arg,
            "--listen",
            &addr,
            "--sql-listen",
            &sql,
        ],
        &dir.path().join("log1"),
    );
    let status = wait_for("a one-node cluster with a leader", 30, || {
        ctl_json(&addr, &["status"])
            .filter(|s| s["leader_id"] == 1 && s["cluster_name"] == "backstop")
    });
    assert_eq!(status["members"].as_array().unwrap().len(), 1);
    assert_eq!(status["state"], "Leader");

    let out = ctl(
        &addr,
        &["tenant", "create", "t1", "--source", "dir:///data/t1"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dup = ctl(
        &addr,
        &["tenant", "create", "t1", "--source", "dir:///data/t1"],
    );
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("OB_ENTRY_EXIST"));
    let bad = ctl(&addr, &["param", "set", "backup_dest", "file://relative"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("OB_INVALID_BACKUP_DEST"));

    Command::new("kill")
        .args(["-TERM", &p.0.id().to_string()])
        .status()
        .unwrap();
    let code = wait_for("exit after SIGTERM", 15, || p.0.try_wait().unwrap());
    assert!(code.success(), "standalone exited with {code:?}");
    let log = std::fs::read_to_string(dir.path().join("log1")).unwrap();
    assert!(log.contains("meta node stopped"), "{log}");

    let _p = spawn(
        &[
            "standalone",
            "--data-dir",
            data_arg,
            "--listen",
            &addr,
            "--sql-listen",
            &sql,
        ],
        &dir.path().join("log2"),
    );
    let names = wait_for("restarted standalone", 30, || {
        ctl_json(&addr, &["status"]).filter(|s| s["leader_id"] == 1)?;
        Some(tenant_names(&addr))
    });
    assert_eq!(names, vec!["sys", "t1"]);
}

#[test]
fn three_meta_processes_survive_sigkill_of_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let start = |i: usize, log: &str| {
        let data = dir.path().join(format!("n{}", i + 1));
        let id = (i + 1).to_string();
        let mut args = vec![
            "meta",
            "--node-id",
            &id,
            "--listen",
            &addrs[i],
            "--data-dir",
            data.to_str().unwrap(),
        ];
        if i > 0 {
            args.extend(["--join", &addrs[0]]);
        } else {
            args.push("--bootstrap");
        }
        spawn(&args, &dir.path().join(log))
    };
    let mut procs: Vec<Option<Proc>> = vec![Some(start(0, "n1.log"))];
    wait_for("node 1 to lead", 30, || {
        ctl_json(&addrs[0], &["status"]).filter(|s| s["leader_id"] == 1)
    });
    procs.push(Some(start(1, "n2.log")));
    procs.push(Some(start(2, "n3.log")));
    let all = addrs.join(",");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let voters = ctl_json(&addrs[0], &["status"]).map_or(0, |s| {
            s["members"]
                .as_array()
                .map_or(0, |m| m.iter().filter(|m| m["role"] == "voter").count())
        });
        if voters == 3 {
            break;
        }
        if Instant::now() > deadline {
            let log = |n: &str| std::fs::read_to_string(dir.path().join(n)).unwrap_or_default();
            panic!(
                "timed out waiting for three voters ({voters})\n--- n1\n{}\n--- n2\n{}\n--- n3\n{}",
                log("n1.log"),
                log("n2.log"),
                log("n3.log")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut acked = Vec::new();
    for i in 0..10 {
        // Through a follower too: writes are forwarded to the leader.
        let via = &addrs[i % 3];
        let name = format!("t{i}");
        let out = ctl(
            via,
            &["tenant", "create", &name, "--source", "dir:///data/x"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        acked.push(name);
    }
    let leader = ctl_json(&addrs[0], &["status"]).unwrap()["leader_id"]
        .as_u64()
        .unwrap() as usize;
    procs[leader - 1].take(); // SIGKILL
    let killed_at = Instant::now();
    let survivors: Vec<String> = (1..=3)
        .filter(|i| *i != leader)
        .map(|i| addrs[i - 1].clone())
        .collect();
    let survivors = survivors.join(",");
    wait_for("a new leader to accept a write", 10, || {
        let out = ctl(
            &survivors,
            &[
                "tenant",
                "create",
                "after_kill",
                "--source",
                "dir:///data/x",
                "--if-not-exists",
            ],
        );
        out.status.success().then_some(())
    });
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "new leader served after {took:?}"
    );
    acked.push("after_kill".to_string());
    let names = tenant_names(&survivors);
    for a in &acked {
        assert!(names.contains(a), "lost acknowledged tenant {a}: {names:?}");
    }

    // The killed node restarts from its data dir and catches up.
    procs[leader - 1] = Some(start(leader - 1, "restarted.log"));
    let own = &addrs[leader - 1];
    wait_for("restarted node to catch up", 30, || {
        let s = ctl_json(own, &["status"])?;
        let applied = s["applied_index"].as_u64()?;
        let leader_applied = ctl_json(&survivors, &["status"])?["applied_index"].as_u64()?;
        (s["node_id"] == leader as u64 && applied >= leader_applied).then_some(())
    });
    let names = tenant_names(own);
    for a in &acked {
        assert!(names.contains(a), "restarted node misses {a}");
    }
    let _ = all;
}

#[test]
fn a_meta_node_on_an_empty_data_dir_needs_bootstrap_or_join() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("n1");
    let addr = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("log");
    let mut p = spawn(
        &[
            "meta",
            "--node-id",
            "1",
            "--listen",
            &addr,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &log,
    );
    let code = wait_for("meta to refuse", 30, || p.0.try_wait().unwrap());
    assert!(!code.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("holds no cluster")
            && text.contains("--bootstrap")
            && text.contains("--join"),
        "{text}"
    );
    assert!(ctl_json(&addr, &["status"]).is_none(), "nothing serves");
    // Both flags at once is a usage error.
    let out = Command::new(BIN)
        .args(["meta", "--node-id", "1", "--listen", &addr, "--data-dir"])
        .arg(&data)
        .args(["--bootstrap", "--join", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
