//! The SQL gateway through the real `mysql` client (Debian's mariadb-client) against
//! `backstop standalone`: statements, views that follow the archive and backups,
//! OceanBase-style error numbers, and tenant isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::process::Command;

use backstop_workload::{self as workload, Shape};
use harness::{BIN, free_port, spawn, wait_for};

struct Mysql {
    port: u16,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Mysql {
    fn run(&self, user: &str, password: Option<&str>, extra: &[&str], sql: &str) -> Out {
        let mut cmd = Command::new("mysql");
        cmd.args([
            "-h127.0.0.1",
            &format!("-P{}", self.port),
            &format!("-u{user}"),
            "--batch",
            "--raw",
            "--skip-ssl",
        ]);
        if let Some(pw) = password {
            cmd.arg(format!("-p{pw}"));
        }
        let out = cmd
            .args(extra)
            .args(["-e", sql])
            .output()
            .expect("the mysql client (apt-get install mariadb-client)");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn root(&self, sql: &str) -> Out {
        self.run("root@sys", None, &[], sql)
    }

    fn root_ok(&self, sql: &str) -> String {
        let out = self.root(sql);
        assert!(out.ok, "{sql}: {}", out.stderr);
        out.stdout
    }
}

/// `backstop standalone` on free ports; returns once the gateway answers.
fn start_standalone() -> (tempfile::TempDir, String, harness::Proc, Mysql) {
    let dir = tempfile::tempdir().unwrap();
    let meta = format!("127.0.0.1:{}", free_port());
    let port = free_port();
    let data = dir.path().join("bs");
    let p = spawn(
        &[
            "standalone",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            &meta,
            "--sql-listen",
            &format!("127.0.0.1:{port}"),
        ],
        &dir.path().join("standalone.log"),
    );
    let m = Mysql { port };
    wait_for("the gateway", 30, || {
        m.root("SELECT 1 FROM oceanbase.CDB_OB_BACKUP_SET_FILES LIMIT 0")
            .ok
            .then_some(())
    });
    (dir, meta, p, m)
}

#[test]
fn a_dba_drives_backups_and_reads_the_views_with_the_mysql_client() {
    let (dir, meta, _p, m) = start_standalone();
    let src = dir.path().join("t1");
    workload::init(&src, Shape::of_size(2 << 20, 2), 1).unwrap();
    let dest = dir.path().join("dest");
    m.root_ok(&format!(
        "CREATE TENANT t1 SOURCE = 'dir://{}' COMMENT 'demo';",
        src.display()
    ));
    m.root_ok(&format!(
        "ALTER SYSTEM SET backup_dest = 'file://{}';",
        dest.display()
    ));
    m.root_ok("ALTER SYSTEM SET backup_dest_option = 'log_archive_checkpoint_interval=1s';");
    assert!(m.root_ok("SHOW TENANTS").contains("1001\tt1\tNORMAL"));
    m.root_ok("ALTER SYSTEM ARCHIVELOG TENANT = t1;");
    wait_for("archive DOING in the view", 30, || {
        m.root_ok("SELECT status FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE tenant_id=1001;")
            .contains("DOING")
            .then_some(())
    });
    // The cluster-level row on sys answers for the whole cluster.
    assert!(
        m.root_ok("SELECT status FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE tenant_id=1;")
            .contains("DOING")
    );
    m.root_ok("ALTER SYSTEM BACKUP DATABASE;");
    let row = wait_for("a completed set in CDB_OB_BACKUP_SET_FILES", 60, || {
        let out = m.root_ok("SELECT BS_KEY, BACKUP_TYPE, STATUS, FILE_STATUS FROM oceanbase.CDB_OB_BACKUP_SET_FILES;");
        out.lines()
            .find(|l| l.contains("COMPLETED"))
            .map(str::to_string)
    });
    assert_eq!(row, "1\tD\tCOMPLETED\tAVAILABLE");
    // Exact OceanBase column order, Backstop's extras appended.
    let header = m
        .root_ok("SELECT * FROM oceanbase.CDB_OB_BACKUP_SET_FILES LIMIT 1")
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(header.starts_with("INCARNATION\tTENANT_ID\tBS_KEY\tCOPY_ID\tBACKUP_TYPE\tENCRYPTION_MODE\tSTATUS\tFILE_STATUS\tSTART_TIME\tCOMPLETION_TIME\tELAPSED_SECONDES\tKEEP\tKEEP_UNTIL\tCOMPRESSED\tOUTPUT_BYTES\tOUTPUT_RATE_BYTES\tCOMPRESSION_RATIO\tOUTPUT_BYTES_DISPLAY\tOUTPUT_RATE_BYTES_DISPLAY\tTIME_TAKEN_DISPLAY\tSTART_REPLAY_SCN"), "{header}");
    // A real SQL engine: aggregates, joins, ORDER BY.
    let agg = m.root_ok(
        "SELECT p.TENANT_ID, COUNT(*) AS pieces FROM oceanbase.CDB_OB_BACKUP_PIECE_FILES p JOIN oceanbase.CDB_OB_BACKUP_ARCHIVELOG a ON a.TENANT_ID = p.TENANT_ID GROUP BY p.TENANT_ID ORDER BY 1",
    );
    assert!(agg.contains("1001\t1"), "{agg}");
    // Progress, details, summary, and which worker runs what.
    let progress =
        m.root_ok("SELECT BS_KEY, STATUS, PERCENT FROM oceanbase.CDB_OB_BACKUP_PROGRESS;");
    assert!(progress.contains("1\tCOMPLETED\t100"), "{progress}");
    let details =
        m.root_ok("SELECT BS_KEY, STATUS, DEVICE_TYPE FROM oceanbase.CDB_OB_BACKUP_SET_DETAILS;");
    assert!(details.contains("1\tCOMPLETED\tfile"), "{details}");
    let summary = m.root_ok("SELECT LOG_ARCHIVE_ROUND, TENANT_ID, STATUS FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG_SUMMARY;");
    assert!(summary.contains("1\t1001\tDOING"), "{summary}");
    let tasks = m.root_ok("SELECT TASK_TYPE, STATUS, WORKER_ADDR FROM oceanbase.CDB_OB_BACKUP_TASKS WHERE STATUS = 'DOING';");
    assert!(tasks.contains("ARCHIVE\tDOING\tstandalone@"), "{tasks}");
    // USE oceanbase (COM_INIT_DB) and the client's start-up queries.
    let tables = m.run(
        "root@sys",
        None,
        &["-D", "oceanbase"],
        "SHOW TABLES; SELECT DATABASE();",
    );
    assert!(
        tables.ok
            && tables.stdout.contains("CDB_OB_BACKUP_PIECE_FILES")
            && tables.stdout.contains("oceanbase"),
        "{}",
        tables.stderr
    );
    // Errors carry numbers.
    let err = m.root("ALTER SYSTEM DELETE OBSOLETE BACKUP;");
    assert!(
        err.stderr.contains("ERROR 9002") && err.stderr.contains("OB_NOT_SUPPORTED"),
        "{}",
        err.stderr
    );
    let err = m.root("ALTER SYSTEM BACKUP DATABSE;");
    assert!(err.stderr.contains("ERROR 1064"), "{}", err.stderr);
    let err = m.root("SELECT * FROM oceanbase.CDB_NOPE;");
    assert!(err.stderr.contains("ERROR 1146"), "{}", err.stderr);
    let err = m.root("ALTER SYSTEM SET backup_dest = 'file://relative';");
    assert!(
        err.stderr.contains("ERROR 9002") || err.stderr.contains("ERROR 9010"),
        "{}",
        err.stderr
    );
    // Tenant isolation: a tenant user sees only its rows and cannot act for others.
    let other = dir.path().join("t2");
    workload::init(&other, Shape::of_size(1 << 20, 1), 2).unwrap();
    m.root_ok(&format!(
        "CREATE TENANT t2 SOURCE 'dir://{}' ROOT PASSWORD 't2root';",
        other.display()
    ));
    m.root_ok("ALTER SYSTEM ARCHIVELOG TENANT = t2;");
    // The tenant's root (its password from CREATE TENANT) creates a user; ctl can too.
    let created = m.run(
        "root@t2",
        Some("t2root"),
        &[],
        "CREATE USER 'alice'@'%' IDENTIFIED BY 's3cret';",
    );
    assert!(created.ok, "{}", created.stderr);
    let out = Command::new(BIN)
        .args([
            "ctl",
            "--meta",
            &meta,
            "user",
            "create",
            "bob@t2",
            "--password",
            "pw",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let denied = m.run("bob@t2", Some("pw"), &[], "DROP USER alice;");
    assert!(denied.stderr.contains("ERROR 1227"), "{}", denied.stderr);
    let changed = m.run(
        "bob@t2",
        Some("pw"),
        &[],
        "ALTER USER bob IDENTIFIED BY 'pw2';",
    );
    assert!(changed.ok, "{}", changed.stderr);
    assert!(
        m.run(
            "bob@t2",
            Some("pw2"),
            &[],
            "SELECT 1 FROM oceanbase.CDB_OB_BACKUP_TASKS LIMIT 0"
        )
        .ok
    );
    let mine = m.run(
        "alice@t2",
        Some("s3cret"),
        &[],
        "SELECT DISTINCT TENANT_ID FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG;",
    );
    assert!(mine.ok, "{}", mine.stderr);
    assert!(
        !mine.stdout.contains("1001") && mine.stdout.contains("1002"),
        "{}",
        mine.stdout
    );
    let denied = m.run(
        "alice@t2",
        Some("s3cret"),
        &[],
        "ALTER SYSTEM BACKUP DATABASE TENANT = t1;",
    );
    assert!(denied.stderr.contains("ERROR 1227"), "{}", denied.stderr);
    let denied = m.run(
        "alice@t2",
        Some("s3cret"),
        &[],
        "CREATE TENANT t3 SOURCE 'dir:///x';",
    );
    assert!(denied.stderr.contains("ERROR 1227"), "{}", denied.stderr);
    let wrong = m.run("alice@t2", Some("nope"), &[], "SELECT 1");
    assert!(
        !wrong.ok && wrong.stderr.contains("ERROR"),
        "{}",
        wrong.stderr
    );
}

#[test]
fn pymysql_connects_runs_statements_and_reads_views() {
    let (_dir, _meta, _p, m) = start_standalone();
    let sql_port = m.port;
    let script = format!(
        r#"
import pymysql
c = pymysql.connect(host="127.0.0.1", port={sql_port}, user="root@sys", password="", database="oceanbase")
cur = c.cursor()
cur.execute("CREATE TENANT IF NOT EXISTS t1 SOURCE 'dir:///tmp/nowhere'")
cur.execute("SHOW TENANTS")
assert [(r[0], r[1]) for r in cur.fetchall()] == [(1, "sys"), (1001, "t1")], "ids are integers"
cur.execute("SELECT * FROM oceanbase.CDB_OB_BACKUP_SET_FILES")
assert [d[0] for d in cur.description][:3] == ["INCARNATION", "TENANT_ID", "BS_KEY"]
try:
    cur.execute("ALTER SYSTEM DELETE OBSOLETE BACKUP")
    raise SystemExit("expected an error")
except pymysql.err.MySQLError as e:
    assert e.args[0] == 9002 and e.args[1].startswith("OB_NOT_SUPPORTED"), e.args
print("ok")
"#
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 with PyMySQL (scripts/setup.sh)");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn a_gateway_on_a_public_address_refuses_an_empty_root_password() {
    let (dir, meta, _p, _m) = start_standalone();
    let listen = format!("0.0.0.0:{}", free_port());
    let gateway = |extra: &[String]| {
        let out = Command::new(BIN)
            .args(["gateway", "--meta", &meta, "--listen", &listen])
            .args(extra)
            .env_remove("BACKSTOP_CONFIG")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // Without TLS on the MySQL port it does not start at all.
    let err = gateway(&[]);
    assert!(err.contains("without TLS"), "{err}");
    // With a certificate, it still refuses while root@sys has no password.
    let certs = dir.path().join("certs");
    harness::cert(&["init", "--dir", certs.to_str().unwrap()]);
    harness::issue(&certs, "gateway", "gw", None);
    let err = gateway(&[
        "--ssl-cert".to_string(),
        certs.join("gw.pem").display().to_string(),
        "--ssl-key".to_string(),
        certs.join("gw.key").display().to_string(),
    ]);
    assert!(err.contains("refusing to serve SQL"), "{err}");
}

#[test]
fn mysql_async_connects_runs_statements_and_reads_views() {
    use mysql_async::prelude::Queryable;
    let (dir, _meta, _p, m) = start_standalone();
    let port = m.port;
    let dest = dir.path().join("dest");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let opts = mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(port)
            .user(Some("root@sys"))
            .db_name(Some("oceanbase"));
        let mut conn = mysql_async::Conn::new(opts).await.expect("connect");
        conn.query_drop("CREATE TENANT IF NOT EXISTS t1 SOURCE 'dir:///tmp/nowhere'")
            .await
            .unwrap();
        conn.query_drop(format!(
            "ALTER SYSTEM SET backup_dest = 'file://{}'",
            dest.display()
        ))
        .await
        .unwrap();
        let tenants: Vec<mysql_async::Row> = conn.query("SHOW TENANTS").await.unwrap();
        let tenants: Vec<(u64, String)> = tenants
            .into_iter()
            .map(|r| (r.get(0).unwrap(), r.get(1).unwrap()))
            .collect();
        assert_eq!(tenants, vec![(1, "sys".into()), (1001, "t1".into())]);
        let n: Vec<u64> = conn
            .query("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES")
            .await
            .unwrap();
        assert_eq!(n, vec![0]);
        let err = conn
            .query_drop("ALTER SYSTEM DELETE OBSOLETE BACKUP")
            .await
            .unwrap_err();
        match err {
            mysql_async::Error::Server(e) => {
                assert_eq!(e.code, 9002);
                assert!(e.message.starts_with("OB_NOT_SUPPORTED"), "{}", e.message);
            }
            other => panic!("expected a server error, got {other}"),
        }
        let err = conn
            .query_drop("SELECT * FROM oceanbase.CDB_NOPE")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, mysql_async::Error::Server(e) if e.code == 1146),
            "{err}"
        );
        // The connection is still usable after errors.
        let one: Vec<u64> = conn.query("SELECT 1").await.unwrap();
        assert_eq!(one, vec![1]);
        conn.disconnect().await.unwrap();
    });
}

#[test]
fn oversized_packets_deep_nesting_and_bad_text_get_errors_and_the_gateway_lives_on() {
    let (dir, _meta, _p, m) = start_standalone();
    let dir_of_test = || dir.path().to_path_buf();
    // A 20 MiB query (the client allows it; the gateway's limit is 16 MiB).
    let big = dir_of_test().join("big.sql");
    std::fs::write(&big, format!("SELECT '{}';\n", "x".repeat(20 << 20))).unwrap();
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "mysql -h127.0.0.1 -P{} -uroot@sys --skip-ssl --max-allowed-packet=64M < {} > /dev/null 2>&1",
                m.port,
                big.display()
            ),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an oversized packet must fail");
    // Deeply nested expressions, unterminated strings, unknown statements.
    let nested = format!("SELECT {}1{}", "abs(".repeat(5000), ")".repeat(5000));
    let out = m.run("root@sys", None, &[], &nested);
    assert!(!out.ok && out.stderr.contains("ERROR"), "{}", out.stderr);
    // Parentheses alone: SQLite's parser copes or refuses; either way an answer.
    let parens = format!("SELECT {}1{}", "(".repeat(30_000), ")".repeat(30_000));
    let _ = m.run("root@sys", None, &[], &parens);
    let out = m.run(
        "root@sys",
        None,
        &[],
        "ALTER SYSTEM SET backup_dest = 'unterminated",
    );
    assert!(out.stderr.contains("ERROR 1064"), "{}", out.stderr);
    let out = m.run("root@sys", None, &[], "FROB THE WIDGETS");
    assert!(!out.ok && out.stderr.contains("ERROR"), "{}", out.stderr);
    // The gateway still answers.
    assert!(m.root_ok("SELECT 1").contains('1'));
}

#[test]
fn a_jdbc_driver_connects_runs_statements_and_reads_views() {
    let (dir, _meta, _p, m) = start_standalone();
    let src = dir.path().join("Jdbc.java");
    std::fs::write(
        &src,
        r#"import java.sql.*;
public class Jdbc {
  public static void main(String[] a) throws Exception {
    try (Connection c = DriverManager.getConnection("jdbc:mariadb://127.0.0.1:" + a[0] + "/oceanbase?user=root@sys&password=")) {
      Statement s = c.createStatement();
      s.execute("CREATE TENANT IF NOT EXISTS t1 SOURCE 'dir:///tmp/nowhere'");
      ResultSet r = s.executeQuery("SHOW TENANTS");
      int n = 0;
      while (r.next()) { n++; }
      if (n != 2) throw new Exception("expected 2 tenants, got " + n);
      r = s.executeQuery("SELECT COUNT(*) FROM oceanbase.CDB_OB_BACKUP_SET_FILES");
      r.next();
      if (r.getLong(1) != 0) throw new Exception("expected no sets");
      try {
        s.execute("ALTER SYSTEM DELETE OBSOLETE BACKUP");
        throw new Exception("expected an error");
      } catch (SQLException e) {
        if (e.getErrorCode() != 9002) throw e;
      }
      r = s.executeQuery("SELECT 1");
      r.next();
      System.out.println("ok " + r.getInt(1));
    }
    // Without pipelining the driver waits for each connect-time statement's answer
    // (what it falls back to when the pipelined connect is slow).
    try (Connection c = DriverManager.getConnection("jdbc:mariadb://127.0.0.1:" + a[0] + "/oceanbase?user=root@sys&password=&usePipelineAuth=false")) {
      ResultSet r = c.createStatement().executeQuery("SELECT @@sql_mode");
      r.next();
      System.out.println("mode " + r.getString(1));
    }
  }
}
"#,
    )
    .unwrap();
    let out = Command::new("java")
        .args([
            "-cp",
            "/usr/share/java/mariadb-java-client.jar",
            src.to_str().unwrap(),
            &m.port.to_string(),
        ])
        .output()
        .expect("java (scripts/setup.sh installs a JDK and libmariadb-java)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("ok 1")
            && stdout.contains("mode STRICT_TRANS_TABLES"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
