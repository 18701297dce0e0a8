//! Roles and passwords through the `mysql` client (`docs/SECURITY.md`): a new
//! tenant's root gets a generated password shown once (or `ROOT PASSWORD`), backup
//! statements need `BACKUP_ADMIN`, only `root@sys` chooses a destination,
//! `SET PASSWORD` really changes the password, `SET` of anything Backstop does not
//! keep is an error, and a gateway on a non-loopback address refuses every login
//! while a user has an empty password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::path::Path;
use std::process::Command;

use backstop_workload::{self as workload, Shape};
use harness::mysql::{Mysql, file_uri};
use harness::{BIN, Proc, cert, free_port, spawn, wait_for};

/// `backstop standalone` on loopback, and its MySQL port.
fn standalone(dir: &Path) -> (Proc, Mysql, String) {
    let (port, meta) = (free_port(), format!("127.0.0.1:{}", free_port()));
    let p = spawn(
        &[
            "standalone",
            "--data-dir",
            dir.join("bs").to_str().unwrap(),
            "--listen",
            &meta,
            "--sql-listen",
            &format!("127.0.0.1:{port}"),
        ],
        &dir.join("standalone.log"),
    );
    let m = Mysql { port };
    wait_for("the gateway", 30, || m.run(&[], "SELECT 1").0.then_some(()));
    (p, m, meta)
}

/// The MySQL error number of a client's error line (`ERROR 1227 (42000) …`).
fn errno(stderr: &str) -> u32 {
    stderr
        .split("ERROR ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a server error: {stderr}"))
}

fn source(dir: &Path, name: &str) -> String {
    let src = dir.join(name);
    if !src.exists() {
        workload::init(&src, Shape::of_size(1 << 20, 1), 2).unwrap();
    }
    format!("dir://{}", src.display())
}

#[test]
fn tenant_roots_backup_admin_and_passwords_work_as_in_mysql() {
    let dir = tempfile::tempdir().unwrap();
    let (_p, m, meta) = standalone(dir.path());
    m.exec(&format!(
        "ALTER SYSTEM SET backup_dest = '{}';",
        file_uri(&dir.path().join("bk"))
    ));

    // No ROOT PASSWORD: one is generated and shown this once, MySQL's RANDOM PASSWORD form.
    let (ok, out, err) = m.run_as(
        "root@sys",
        None,
        &format!("CREATE TENANT t1 SOURCE '{}';", source(dir.path(), "t1")),
    );
    assert!(ok, "{err}");
    let row: Vec<&str> = out.trim().split('\t').collect();
    assert_eq!((row[0], row[1], row[3]), ("root", "%", "t1"), "{out}");
    let t1root = row[2].to_string();
    assert_eq!(t1root.len(), 20, "{out}");
    let (ok, _, err) = m.run_as("root@t1", None, "SELECT 1");
    assert!(
        !ok && [1045, 1698].contains(&errno(&err)),
        "an empty password must not log in: {err}"
    );
    assert!(m.run_as("root@t1", Some(&t1root), "SELECT 1").0);
    // IF NOT EXISTS on an existing tenant shows no password.
    let (ok, out, _) = m.run_as(
        "root@sys",
        None,
        &format!(
            "CREATE TENANT IF NOT EXISTS t1 SOURCE '{}';",
            source(dir.path(), "t1")
        ),
    );
    assert!(ok && out.trim().is_empty(), "{out}");
    // ROOT PASSWORD sets it.
    m.exec(&format!(
        "CREATE TENANT t2 SOURCE '{}' ROOT PASSWORD 'r2-pw';",
        source(dir.path(), "t2")
    ));
    assert!(m.run_as("root@t2", Some("r2-pw"), "SELECT 1").0);

    // A user without BACKUP_ADMIN reads the views and runs no backup statement.
    let root1 = |sql: &str| {
        let (ok, out, err) = m.run_as("root@t1", Some(&t1root), sql);
        assert!(ok, "{sql}: {err}");
        out
    };
    root1("CREATE USER 'alice'@'%' IDENTIFIED BY 'a1';");
    let alice = |pw: &str, sql: &str| m.run_as("alice@t1", Some(pw), sql);
    let (ok, out, err) = alice("a1", "SHOW GRANTS;");
    assert!(
        ok && out.trim() == "GRANT USAGE ON *.* TO `alice`@`%`",
        "{out}{err}"
    );
    assert!(
        alice(
            "a1",
            "SELECT count(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES"
        )
        .0
    );
    for sql in [
        "ALTER SYSTEM ARCHIVELOG",
        "ALTER SYSTEM BACKUP DATABASE",
        "ALTER SYSTEM VALIDATE BACKUPSET 1",
        "ALTER SYSTEM CANCEL BACKUP",
        "ALTER SYSTEM DELETE BACKUPSET 1",
    ] {
        let (ok, _, err) = alice("a1", sql);
        assert!(
            !ok && errno(&err) == 1227 && err.contains("BACKUP_ADMIN"),
            "{sql}: {err}"
        );
    }
    // GRANT gives it; the statement then runs; REVOKE takes it back at once.
    root1("GRANT BACKUP_ADMIN ON *.* TO 'alice'@'%';");
    let grants = root1("SHOW GRANTS FOR alice;");
    assert!(
        grants.contains("GRANT BACKUP_ADMIN ON *.* TO `alice`@`%`"),
        "{grants}"
    );
    let (ok, _, err) = alice("a1", "ALTER SYSTEM ARCHIVELOG");
    assert!(ok, "{err}");
    let (ok, _, err) = alice("a1", "ALTER SYSTEM NOARCHIVELOG");
    assert!(ok, "{err}");
    // Destinations are root@sys's to choose, BACKUP_ADMIN or not.
    let (ok, _, err) = alice(
        "a1",
        "ALTER SYSTEM BACKUP BACKUPSET ALL BACKUP_BACKUP_DEST = 'file:///tmp/elsewhere'",
    );
    assert!(
        !ok && errno(&err) == 1227 && err.contains("BACKUP_BACKUP_DEST"),
        "{err}"
    );
    root1("REVOKE BACKUP_ADMIN ON *.* FROM 'alice'@'%';");
    let (ok, _, err) = alice("a1", "ALTER SYSTEM ARCHIVELOG");
    assert!(!ok && errno(&err) == 1227, "{err}");
    // Only the tenant's root grants, and root keeps BACKUP_ADMIN.
    let (ok, _, err) = alice("a1", "GRANT BACKUP_ADMIN ON *.* TO alice");
    assert!(!ok && errno(&err) == 1227, "{err}");
    let (ok, _, err) = m.run_as(
        "root@t1",
        Some(&t1root),
        "REVOKE BACKUP_ADMIN ON *.* FROM root",
    );
    assert!(!ok && err.contains("OB_NOT_SUPPORTED"), "{err}");
    let (ok, _, err) = m.run_as("root@t1", Some(&t1root), "GRANT SUPER ON *.* TO alice");
    assert!(!ok && err.contains("OB_NOT_SUPPORTED"), "{err}");

    // SET PASSWORD changes the password, for oneself or (root) for another user.
    let (ok, _, err) = alice("a1", "SET PASSWORD = 'a2'");
    assert!(ok, "{err}");
    assert!(!alice("a1", "SELECT 1").0);
    assert!(alice("a2", "SELECT 1").0);
    root1("SET PASSWORD FOR 'alice'@'%' = 'a3';");
    assert!(alice("a3", "SELECT 1").0);
    let (ok, _, err) = alice("a3", "SET PASSWORD FOR root = 'mine'");
    assert!(!ok && errno(&err) == 1227, "{err}");
    root1("ALTER USER alice IDENTIFIED BY 'a4';");
    assert!(alice("a4", "SELECT 1").0 && !alice("a3", "SELECT 1").0);

    // SET keeps what clients set and refuses the rest.
    let (ok, out, err) = alice(
        "a4",
        "SET NAMES utf8mb4; SET autocommit = 0, sql_mode = 'ANSI'; SELECT @@autocommit, @@sql_mode",
    );
    assert!(ok && out.trim() == "0\tANSI", "{out}{err}");
    // What MariaDB Connector/J sends on every connect.
    let (ok, out, err) = alice(
        "a4",
        "set autocommit=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES'); SELECT @@sql_mode",
    );
    assert!(
        ok && out.trim() == "STRICT_TRANS_TABLES,STRICT_TRANS_TABLES",
        "{out}{err}"
    );
    for (sql, code) in [
        ("SET no_such_variable = 1", 1193),
        ("SET wait_timeout = 1", 1238),
        ("SET max_execution_time = 0", 1238),
        ("SET GLOBAL max_connections = 1", 1227),
        ("SET @@global.autocommit = 1", 1227),
        ("SET autocommit = (SELECT 1)", 1231),
        ("SET sql_mode = concat(concat('a'), 'b')", 1231),
        ("SET sql_mode = concat(@x)", 1231),
    ] {
        let (ok, _, err) = alice("a4", sql);
        assert!(!ok && errno(&err) == code, "{sql}: {err}");
    }
    let (ok, _, err) = alice("a4", "SET @x = 1");
    assert!(!ok && err.contains("OB_NOT_SUPPORTED"), "{err}");

    // ctl shows who holds BACKUP_ADMIN and who has an empty password.
    let out = Command::new(BIN)
        .args(["ctl", "--meta", &meta, "--json", "user", "list"])
        .output()
        .unwrap();
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let find = |u: &str, t: &str| {
        users
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["user_name"] == u && x["tenant_name"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("{u}@{t} in {users}"))
    };
    assert_eq!(find("alice", "t1")["backup_admin"], false);
    assert_eq!(find("root", "t1")["backup_admin"], true);
    assert_eq!(find("root", "sys")["empty_password"], true);
    assert_eq!(find("root", "t2")["empty_password"], false);
}

/// Runs `cmd` in the network namespace of process `pid`.
fn in_netns(pid: u32, program: &str) -> Command {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/proc/{pid}/ns/net")).arg(program);
    c
}

/// `mysql` over TLS to the namespace's 10.200.0.1, verifying the gateway's
/// certificate against the CA in `certs`.
fn mysql_in(
    pid: u32,
    certs: &Path,
    port: u16,
    user: &str,
    password: Option<&str>,
    sql: &str,
) -> (bool, String) {
    let mut c = in_netns(pid, "mysql");
    c.args([
        "-h10.200.0.1",
        &format!("-P{port}"),
        &format!("-u{user}"),
        "-B",
        "-N",
        "--ssl",
        "--ssl-verify-server-cert",
    ]);
    c.arg(format!("--ssl-ca={}", certs.join("ca.pem").display()));
    if let Some(pw) = password {
        c.arg(format!("-p{pw}"));
    }
    let out = c.args(["-e", sql]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `backstop standalone` in a network namespace of the test's own, whose only
/// address besides loopback is 10.200.0.1 (on `lo`): the gateway listens there, as
/// on a LAN address; the meta node on the namespace's loopback.
/// With `certs`, the MySQL port presents `certs/gw.pem` (issued for 10.200.0.1).
fn standalone_in_netns(
    data: &Path,
    log: &Path,
    sql_port: u16,
    meta_port: u16,
    root_pw: Option<&str>,
    certs: Option<&Path>,
) -> Proc {
    let ssl = certs.map_or(String::new(), |c| {
        format!(
            " --ssl-cert {} --ssl-key {}",
            c.join("gw.pem").display(),
            c.join("gw.key").display()
        )
    });
    let script = format!(
        "ip link set lo up && ip addr add 10.200.0.1/32 dev lo && exec {BIN} standalone --data-dir {} --listen 127.0.0.1:{meta_port} --sql-listen 10.200.0.1:{sql_port}{ssl}",
        data.display()
    );
    let mut c = Command::new("unshare");
    c.args(["--net", "--fork", "--kill-child", "sh", "-c", &script])
        .env("BACKSTOP_LOG", "info,openraft=warn")
        .env_remove("BACKSTOP_ROOT_PASSWORD")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    if let Some(pw) = root_pw {
        c.env("BACKSTOP_ROOT_PASSWORD", pw);
    }
    Proc(c.spawn().unwrap())
}

#[test]
fn a_gateway_on_a_non_loopback_address_refuses_while_a_password_is_empty() {
    if !backstop_testkit::pg::is_root() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (port, meta_port) = (free_port(), free_port());
    // Without a certificate for the MySQL port, standalone does not start there.
    let log = dir.path().join("plaintext.log");
    let mut p = standalone_in_netns(
        &dir.path().join("bs00"),
        &log,
        port,
        meta_port,
        Some("sys-pw"),
        None,
    );
    wait_for("standalone to refuse plaintext", 30, || {
        p.exited().then_some(())
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("without TLS"), "{text}");
    let certs = dir.path().join("certs");
    cert(&["init", "--dir", certs.to_str().unwrap()]);
    harness::issue(&certs, "gateway", "gw", Some("10.200.0.1"));
    // root@sys without a password: standalone does not start, and says why.
    let log = dir.path().join("refused.log");
    let mut p = standalone_in_netns(
        &dir.path().join("bs0"),
        &log,
        port,
        meta_port,
        None,
        Some(&certs),
    );
    wait_for("standalone to refuse", 30, || p.exited().then_some(()));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("refusing to serve SQL on 10.200.0.1") && text.contains("root@sys"),
        "{text}"
    );

    let log = dir.path().join("standalone.log");
    let p = standalone_in_netns(
        &dir.path().join("bs"),
        &log,
        port,
        meta_port,
        Some("sys-pw"),
        Some(&certs),
    );
    let pid = p.pid();
    wait_for("the gateway", 30, || {
        mysql_in(pid, &certs, port, "root@sys", Some("sys-pw"), "SELECT 1")
            .0
            .then_some(())
    });
    // A tenant created with an explicitly empty root password closes the gateway
    // at the next login (the check reads the catalog at each one).
    let (ok, out) = mysql_in(
        pid,
        &certs,
        port,
        "root@sys",
        Some("sys-pw"),
        &format!(
            "CREATE TENANT t1 SOURCE '{}' ROOT PASSWORD '';",
            source(dir.path(), "t1")
        ),
    );
    assert!(ok, "{out}");
    let (ok, out) = mysql_in(pid, &certs, port, "root@sys", Some("sys-pw"), "SELECT 1");
    assert!(
        !ok && out.contains("ERROR 1045") && out.contains("empty password: root@t1"),
        "{out}"
    );
    // The operator sets it with ctl (over the namespace's loopback), and it opens.
    let out = in_netns(pid, BIN)
        .args(["ctl", "--meta", &format!("127.0.0.1:{meta_port}")])
        .args(["user", "alter", "root@t1", "--password", "t1-pw"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(mysql_in(pid, &certs, port, "root@sys", Some("sys-pw"), "SELECT 1").0);
    assert!(mysql_in(pid, &certs, port, "root@t1", Some("t1-pw"), "SELECT 1").0);
}

/// `ctl --json ARGS` against `meta`.
fn ctl(meta: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["ctl", "--meta", meta, "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits for job `id` to end; its JSON row.
fn ended_job(meta: &str, id: u64) -> serde_json::Value {
    wait_for("the job to end", 60, || {
        ctl(meta, &["jobs", "--all"])
            .as_array()?
            .iter()
            .find(|j| j["job_id"] == id && !j["end_time_ms"].is_null() && j["end_time_ms"] != 0)
            .cloned()
    })
}

#[test]
fn workers_write_destinations_and_restore_targets_only_under_their_allow_path_roots() {
    let dir = tempfile::tempdir().unwrap();
    let allowed = dir.path().join("allowed");
    let outside = dir.path().join("outside");
    let (port, meta) = (free_port(), format!("127.0.0.1:{}", free_port()));
    let _p = harness::spawn_env(
        &[
            "standalone",
            "--data-dir",
            dir.path().join("bs").to_str().unwrap(),
            "--listen",
            &meta,
            "--sql-listen",
            &format!("127.0.0.1:{port}"),
        ],
        &dir.path().join("standalone.log"),
        &[(
            "BACKSTOP_ALLOW_PATH".to_string(),
            allowed.display().to_string(),
        )],
    );
    let m = Mysql { port };
    wait_for("the gateway", 30, || m.run(&[], "SELECT 1").0.then_some(()));
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(1 << 20, 2), 4).unwrap();

    // Under the root: archive and backup work.
    let load = harness::start_load(&src, 200_000);
    m.archive("t1", &src, &allowed.join("bk"), None, "2s");
    m.exec("ALTER SYSTEM BACKUP DATABASE");
    wait_for("the set", 60, || {
        (m.count(
            "SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES WHERE COPY_ID = 0 AND FILE_STATUS = 'AVAILABLE'",
        ) == 1)
            .then_some(())
    });
    load.finish();
    m.exec("ALTER SYSTEM NOARCHIVELOG");
    wait_for("archive STOP", 30, || {
        (m.rows("SELECT STATUS FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID = 1001")
            == vec![vec!["STOP".to_string()]])
        .then_some(())
    });

    // A restore target outside the roots is refused with a clear error, and
    // nothing is written there.
    let job = |v: serde_json::Value| v["job_ids"][0].as_u64().unwrap();
    let bad = job(ctl(
        &meta,
        &[
            "restore",
            "--tenant",
            "t1",
            "--to",
            outside.join("r").to_str().unwrap(),
        ],
    ));
    let row = ended_job(&meta, bad);
    let comment = row["comment"].as_str().unwrap_or_default();
    assert!(
        row["result"] != "SUCCESS"
            && comment.contains("--allow-path")
            && comment.contains("outside/r"),
        "{row}"
    );
    assert!(
        !outside.exists(),
        "the refused restore wrote {}",
        outside.display()
    );
    // A copy to a destination outside them fails the same way.
    m.exec(&format!(
        "ALTER SYSTEM SET backup_backup_dest = '{}'",
        file_uri(&outside.join("copy"))
    ));
    m.exec("ALTER SYSTEM BACKUP BACKUPSET ALL");
    let copy = wait_for("the copy job", 30, || {
        ctl(&meta, &["jobs", "--all"])
            .as_array()?
            .iter()
            .find(|j| {
                j["job_type"]
                    .as_str()
                    .is_some_and(|t| t.contains("BACKUPSET"))
            })
            .and_then(|j| j["job_id"].as_u64())
    });
    let row = ended_job(&meta, copy);
    assert!(
        row["result"] != "SUCCESS"
            && row["comment"]
                .as_str()
                .unwrap_or_default()
                .contains("--allow-path"),
        "{row}"
    );
    assert!(!outside.exists());

    // Inside the roots the same restore works, exactly.
    let to = allowed.join("restored");
    let good = job(ctl(
        &meta,
        &["restore", "--tenant", "t1", "--to", to.to_str().unwrap()],
    ));
    let row = ended_job(&meta, good);
    assert!(
        row["status"] == "FINISH"
            && row["comment"]
                .as_str()
                .unwrap_or_default()
                .contains("restored backup set 1"),
        "{row}"
    );
    workload::verify(&to, &src, None).unwrap();
}
