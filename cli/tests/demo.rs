//! `backstop standalone --demo` where PostgreSQL is installed: beside the `dir://`
//! tenant it protects a small PostgreSQL cluster (`pgdemo`) under pgbench; that
//! backup restores and PostgreSQL starts on it, and a SIGKILLed `standalone` leaves no
//! PostgreSQL server behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use backstop_testkit::pg::{PgServer, chown_postgres};
use harness::{BIN, free_port, restore, spawn_env, wait_for};
use serde_json::Value;

#[test]
fn the_demo_protects_a_postgresql_tenant_and_leaves_no_server_behind() {
    let tmp = tempfile::tempdir().unwrap();
    // The cluster lives under the data dir, and its owner (postgres) must reach it.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    let (meta, sql) = (free_port(), free_port());
    let meta_addr = format!("127.0.0.1:{meta}");
    let p = spawn_env(
        &[
            "standalone",
            "--demo",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &meta_addr,
            "--sql-listen",
            &format!("127.0.0.1:{sql}"),
        ],
        &tmp.path().join("standalone.log"),
        &[(
            "BACKSTOP_DEMO_TENANT_BYTES".into(),
            (2u64 << 20).to_string(),
        )],
    );
    let ctl = |args: &[&str]| -> Option<Value> {
        let out = Command::new(BIN)
            .args(["ctl", "--meta", &meta_addr, "--timeout", "5", "--json"])
            .args(args)
            .output()
            .ok()?;
        serde_json::from_slice(&out.stdout).ok()
    };
    let set = wait_for("the pgdemo backup", 180, || {
        let sets = ctl(&["sets", "--tenant", "pgdemo"])?;
        let set = sets.as_array()?.first()?.clone();
        assert_ne!(set["status"], "FAILED", "{set}");
        (set["status"] == "SUCCESS" && set["file_status"] == "AVAILABLE").then_some(set)
    });
    assert_eq!(set["backup_type"], "D");

    let dest = format!("file://{}/demo/backup", data.display());
    let to = tmp.path().join("restored");
    restore(&dest, "pgdemo", &to, &["--owner", "postgres"]).unwrap();
    let sock = tmp.path().join("sock");
    std::fs::create_dir_all(&sock).unwrap();
    chown_postgres(&sock).unwrap();
    let mut s = PgServer::on(&to, &sock);
    s.start(120).unwrap();
    wait_for("promotion", 60, || {
        (s.query("SELECT pg_is_in_recovery()").ok()? == "f").then_some(())
    });
    assert_eq!(
        s.query("SELECT count(*) FROM pgbench_accounts").unwrap(),
        "100000"
    );
    s.stop();

    // SIGKILL standalone: its PostgreSQL server goes with it.
    let pid_file = data.join("demo/postgres/data/postmaster.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    drop(p);
    wait_for("the demo's postmaster to end", 30, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
        // Gone, or a zombie nobody reaps yet.
        stat.is_none_or(|s| s.split_whitespace().nth(2) == Some("Z"))
            .then_some(())
    });
}
