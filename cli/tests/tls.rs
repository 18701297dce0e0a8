//! The production setup of `docs/SECURITY.md`, as real processes: certificates from
//! `backstop cert`, a meta node serving TLS with a `root@sys` password, a worker
//! with a worker certificate, and `ctl` over TLS with a login. A backup runs and is
//! restored through it, and each attack on the gRPC port fails with a clear error:
//! unauthenticated `ctl`, a wrong or guessed password (throttled), a fake worker, a
//! forged Raft append, and tenant users setting hooks, choosing destinations or
//! running backups without `BACKUP_ADMIN`. A meta node on a non-loopback address
//! without TLS refuses to start. The MySQL port speaks TLS to `mysql --ssl` and, with
//! `--require-secure-transport`, refuses plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::path::Path;
use std::process::{Command, Output};

use backstop_client::{Tls, TlsFiles};
use backstop_workload::{self as workload, Shape};
use harness::{BIN, Cluster, ROOT_PASSWORD, cert, free_port, restore, tls_args};

/// `ctl --json ARGS` against `c` with exactly these extra flags and environment
/// (none of the harness's own login).
fn ctl_as(c: &Cluster, extra: &[String], env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["ctl", "--meta", &c.meta, "--timeout", "3", "--json"])
        .args(extra)
        .env_remove("BACKSTOP_PASSWORD")
        .env_remove("BACKSTOP_USER")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .expect("run ctl")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ctl` over TLS logged in as `user` with `password`.
fn login(c: &Cluster, user: &str, password: &str, args: &[&str]) -> Output {
    let certs = c.tls.clone().unwrap();
    let mut extra = tls_args(&certs, None);
    extra.extend(["--user".to_string(), user.to_string()]);
    ctl_as(c, &extra, &[("BACKSTOP_PASSWORD", password)], args)
}

fn refused(out: &Output, what: &str, needle: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "{what} was accepted");
    assert!(err.contains(needle), "{what}: wanted '{needle}' in: {err}");
}

fn tls_of(certs: &Path, name: Option<&str>) -> Tls {
    Tls::load(&TlsFiles {
        ca: certs.join("ca.pem"),
        cert: name.map(|n| certs.join(format!("{n}.pem"))),
        key: name.map(|n| certs.join(format!("{n}.key"))),
    })
    .unwrap()
}

/// Calls `RaftService.AppendEntries` with a forged payload; the error answered.
async fn forged_append(meta: &str, tls: &Tls) -> tonic::Status {
    let ch = backstop_client::channel(meta, Some(tls)).unwrap();
    let mut raft = backstop_proto::raft::raft_service_client::RaftServiceClient::new(ch);
    raft.append_entries(backstop_proto::raft::RaftPayload {
        version: 1,
        data: vec![0xde, 0xad],
    })
    .await
    .expect_err("a forged append was accepted")
}

/// Calls `WorkerService.RegisterWorker` as a fake worker; the error answered.
async fn fake_worker(meta: &str, tls: &Tls) -> tonic::Status {
    let ch = backstop_client::channel(meta, Some(tls)).unwrap();
    let mut w = backstop_proto::worker::worker_service_client::WorkerServiceClient::new(ch);
    w.register_worker(backstop_proto::worker::RegisterWorkerRequest {
        worker_id: 4242,
        addr: "fake".into(),
        slots: 8,
        tenants: vec![],
    })
    .await
    .expect_err("a fake worker was registered")
}

#[test]
fn tls_cluster_backs_up_restores_and_refuses_every_attack() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start_tls(dir.path(), 1, 3000);
    let certs = c.tls.clone().unwrap();

    // A backup through the TLS cluster, restored and compared.
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(1 << 20, 2), 3).unwrap();
    let dest = format!("file://{}", dir.path().join("dest").display());
    let made = c.ctl(&[
        "tenant",
        "create",
        "t1",
        "--source",
        &format!("dir://{}", src.display()),
        "--root-password",
        "T1-root-pw",
    ]);
    assert_eq!(made["tenant_name"], "t1", "{made}");
    c.ctl(&["param", "set", "backup_dest", &dest, "--tenant", "t1"]);
    c.ctl(&[
        "param",
        "set",
        "backup_dest_option",
        "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=3s",
        "--tenant",
        "t1",
    ]);
    c.start_archive("t1");
    let set = c.backup("t1", false);
    assert_eq!(set["status"], "SUCCESS");
    let to = dir.path().join("restored");
    restore(&dest, "t1", &to, &[]).unwrap();
    workload::verify(&to, &src, None).unwrap();

    // Unauthenticated ctl: plaintext to a TLS port, and TLS without a login.
    let plain = ctl_as(&c, &[], &[], &["status"]);
    assert!(!plain.status.success(), "plaintext ctl was answered");
    refused(
        &ctl_as(&c, &tls_args(&certs, None), &[], &["status"]),
        "TLS ctl without a login",
        "log in",
    );
    // A client certificate naming root@sys logs in without a password.
    harness::issue(&certs, "client", "root@sys", None);
    let by_cert = ctl_as(&c, &tls_args(&certs, Some("root@sys")), &[], &["status"]);
    assert!(by_cert.status.success(), "{}", stderr(&by_cert));

    // Tenant users: t1's root may back up t1 but not set hooks or choose a
    // destination; a user without BACKUP_ADMIN reads only.
    let ok = login(&c, "root@t1", "T1-root-pw", &["sets", "--tenant", "t1"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    refused(
        &login(
            &c,
            "root@t1",
            "T1-root-pw",
            &["tenant", "hooks", "t1", "--begin", "touch /tmp/pwned"],
        ),
        "a tenant root setting a hook",
        "root@sys",
    );
    refused(
        &login(
            &c,
            "root@t1",
            "T1-root-pw",
            &[
                "param",
                "set",
                "backup_backup_dest",
                "file:///tmp/elsewhere",
                "--tenant",
                "t1",
            ],
        ),
        "a tenant root choosing a destination",
        "root@sys",
    );
    refused(
        &login(&c, "root@t1", "T1-root-pw", &["sets", "--tenant", "sys"]),
        "a tenant root reading another tenant",
        "OB_ERR_NO_PRIVILEGE",
    );
    let alice = login(
        &c,
        "root@t1",
        "T1-root-pw",
        &["user", "create", "alice@t1", "--password", "Alice-pw-1"],
    );
    assert!(alice.status.success(), "{}", stderr(&alice));
    refused(
        &login(&c, "alice@t1", "Alice-pw-1", &["backup", "--tenant", "t1"]),
        "a user without BACKUP_ADMIN starting a backup",
        "BACKUP_ADMIN",
    );
    let read = login(&c, "alice@t1", "Alice-pw-1", &["sets", "--tenant", "t1"]);
    assert!(read.status.success(), "{}", stderr(&read));

    // Guessing: wrong passwords are refused, and after five the right one is too.
    for _ in 0..5 {
        refused(
            &login(&c, "alice@t1", "guess", &["status"]),
            "a wrong password",
            "access denied",
        );
    }
    refused(
        &login(&c, "alice@t1", "Alice-pw-1", &["status"]),
        "a login during the lockout",
        "too many failed logins",
    );
    let meta_log = std::fs::read_to_string(dir.path().join("meta.log")).unwrap();
    assert!(
        meta_log.contains("failed login"),
        "failed logins are not logged"
    );

    // A fake worker and a forged Raft append, with a certificate of the right CA
    // but the wrong role, and a forged append with no certificate at all.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let as_client = tls_of(&certs, Some("root@sys"));
    let s = rt.block_on(fake_worker(&c.meta, &as_client));
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("worker processes"), "{s:?}");
    let s = rt.block_on(forged_append(&c.meta, &as_client));
    assert_eq!(s.code(), tonic::Code::PermissionDenied, "{s:?}");
    let s = rt.block_on(forged_append(&c.meta, &tls_of(&certs, None)));
    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");
    let workers = c.ctl(&["workers"]);
    assert_eq!(workers.as_array().map(Vec::len), Some(1), "{workers}");

    // The cluster is unharmed: the real worker still backs up.
    let again = c.backup("t1", true);
    assert_eq!(again["status"], "SUCCESS");
    let to2 = dir.path().join("restored2");
    restore(&dest, "t1", &to2, &[]).unwrap();
    workload::verify(&to2, &src, None).unwrap();
}

#[test]
fn meta_refuses_a_non_loopback_listen_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["meta", "--node-id", "1", "--bootstrap", "--data-dir"])
        .arg(dir.path().join("m"))
        .args(["--listen", &format!("0.0.0.0:{}", free_port())])
        .env_remove("BACKSTOP_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without TLS"), "{err}");
    let _ = ROOT_PASSWORD;
}

/// `mysql` against `port` as root@sys with `ssl` flags; (succeeded, stdout+stderr).
fn mysql(port: u16, ssl: &[String], sql: &str) -> (bool, String) {
    let out = Command::new("mysql")
        .args(["-h127.0.0.1", &format!("-P{port}"), "-uroot@sys"])
        .arg(format!("-p{ROOT_PASSWORD}"))
        .args(["-B", "-N"])
        .args(ssl)
        .args(["-e", sql])
        .output()
        .expect("mysql (scripts/setup.sh installs mariadb-client)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_mysql_port_speaks_tls_and_refuses_plaintext_when_told() {
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start_tls(dir.path(), 0, 3000);
    let certs = c.tls.clone().unwrap();
    harness::issue(&certs, "gateway", "gw1", Some("127.0.0.1"));
    // The gateway's own certificate serves the MySQL port too (no --ssl-cert).
    let port = free_port();
    let mut args = vec![
        "gateway".to_string(),
        "--meta".to_string(),
        c.meta.clone(),
        "--listen".to_string(),
        format!("127.0.0.1:{port}"),
        "--require-secure-transport".to_string(),
        "--max-execution-time".to_string(),
        "1000".to_string(),
    ];
    args.extend(tls_args(&certs, Some("gw1")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let _gw = harness::spawn(&refs, &dir.path().join("gateway.log"));
    let ca = format!("--ssl-ca={}", certs.join("ca.pem").display());
    let verified = vec![
        "--ssl".to_string(),
        ca,
        "--ssl-verify-server-cert".to_string(),
    ];
    harness::wait_for("the TLS gateway", 30, || {
        mysql(port, &verified, "SELECT 1").0.then_some(())
    });

    // mysql --ssl: the certificate verifies against the cluster CA, the session is
    // encrypted, and statements and views work inside it.
    let (ok, out) = mysql(port, &verified, "\\s");
    assert!(ok && out.contains("Cipher in use is TLS"), "{out}");
    let (ok, out) = mysql(
        port,
        &verified,
        "SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES",
    );
    assert!(ok && out.trim() == "0", "{out}");
    // The gateway's guards hold inside TLS too: a LIKE bomb answers at once, a
    // recursive CTE is stopped with 3024, and the gateway answers the next query.
    let bomb = format!("SHOW VARIABLES LIKE '{}b'", "%a".repeat(500));
    let (ok, out) = mysql(port, &verified, &bomb);
    assert!(ok, "{out}");
    let (ok, out) = mysql(
        port,
        &verified,
        "SELECT count(*) FROM (WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT x FROM r)",
    );
    assert!(!ok && out.contains("ERROR 3024"), "{out}");
    assert!(mysql(port, &verified, "SELECT 1").0);
    // Another CA's certificate does not verify.
    let other = dir.path().join("other-ca");
    cert(&["init", "--dir", other.to_str().unwrap()]);
    let wrong_ca = vec![
        "--ssl".to_string(),
        format!("--ssl-ca={}", other.join("ca.pem").display()),
        "--ssl-verify-server-cert".to_string(),
    ];
    let (ok, out) = mysql(port, &wrong_ca, "SELECT 1");
    assert!(!ok && out.contains("ERROR 2026"), "{out}");
    // Plaintext is refused before a password is sent, with MySQL's 3159.
    let (ok, out) = mysql(port, &["--skip-ssl".to_string()], "SELECT 1");
    assert!(!ok && out.contains("ERROR 3159"), "{out}");

    // Without a certificate the gateway refuses a non-loopback address, and
    // --require-secure-transport anywhere.
    for (listen, needle) in [
        (format!("0.0.0.0:{}", free_port()), "without TLS"),
        (format!("127.0.0.1:{}", free_port()), "needs a certificate"),
    ] {
        let out = Command::new(BIN)
            .args(["gateway", "--meta", &c.meta, "--listen", &listen])
            .arg("--require-secure-transport")
            .env_remove("BACKSTOP_CONFIG")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{listen}: {err}"
        );
    }
}

/// `ctl --json` over TLS to `meta` (comma-separated), logged in as root@sys.
fn root_ctl(meta: &str, certs: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["ctl", "--meta", meta, "--timeout", "5", "--json"])
        .args(tls_args(certs, None))
        .args(["--user", "root@sys"])
        .env("BACKSTOP_PASSWORD", ROOT_PASSWORD)
        .env_remove("BACKSTOP_CONFIG")
        .args(args)
        .output()
        .expect("run ctl")
}

fn voters(meta: &str, certs: &Path) -> usize {
    let out = root_ctl(meta, certs, &["status"]);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|s| {
            s["members"]
                .as_array()
                .map(|m| m.iter().filter(|m| m["role"] == "voter").count())
        })
        .unwrap_or(0)
}

#[test]
fn three_meta_nodes_over_tls_join_forward_and_survive_sigkill_of_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    cert(&["init", "--dir", certs.to_str().unwrap()]);
    let addrs: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_port()))
        .collect();
    let start = |i: usize| {
        let name = format!("m{}", i + 1);
        harness::issue(&certs, "meta", &name, Some("127.0.0.1"));
        let data = dir.path().join(&name);
        let id = (i + 1).to_string();
        let mut args: Vec<String> = [
            "meta",
            "--node-id",
            &id,
            "--listen",
            &addrs[i],
            "--data-dir",
            data.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if i == 0 {
            args.push("--bootstrap".to_string());
        } else {
            args.extend(["--join".to_string(), addrs[0].clone()]);
        }
        args.extend(tls_args(&certs, Some(&name)));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        harness::spawn_env(
            &refs,
            &dir.path().join(format!("{name}.log")),
            &[(
                "BACKSTOP_ROOT_PASSWORD".to_string(),
                ROOT_PASSWORD.to_string(),
            )],
        )
    };
    let mut procs = vec![Some(start(0))];
    harness::wait_for("node 1 to lead", 30, || {
        (voters(&addrs[0], &certs) == 1).then_some(())
    });
    procs.push(Some(start(1)));
    procs.push(Some(start(2)));
    harness::wait_for("three voters (joined over TLS)", 60, || {
        (voters(&addrs[0], &certs) == 3).then_some(())
    });

    // Writes through followers are forwarded to the leader over TLS.
    for (i, via) in addrs.iter().enumerate() {
        let out = root_ctl(
            via,
            &certs,
            &[
                "tenant",
                "create",
                &format!("t{i}"),
                "--source",
                "dir:///data/x",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let status: serde_json::Value =
        serde_json::from_slice(&root_ctl(&addrs[0], &certs, &["status"]).stdout).unwrap();
    let leader = status["leader_id"].as_u64().unwrap() as usize;
    procs[leader - 1].take(); // SIGKILL
    let survivors: Vec<String> = (1..=3)
        .filter(|i| *i != leader)
        .map(|i| addrs[i - 1].clone())
        .collect();
    let survivors = survivors.join(",");
    harness::wait_for("a new leader to accept a write", 20, || {
        root_ctl(
            &survivors,
            &certs,
            &[
                "tenant",
                "create",
                "after",
                "--source",
                "dir:///data/x",
                "--if-not-exists",
            ],
        )
        .status
        .success()
        .then_some(())
    });
    let out = root_ctl(&survivors, &certs, &["tenant", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for t in ["t0", "t1", "t2", "after"] {
        assert!(text.contains(&format!("\"{t}\"")), "{t} lost: {text}");
    }
}
