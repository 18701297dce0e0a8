//! The `mysql` CLI (Debian's mariadb-client) against a gateway, as a DBA runs it.
//! Like [`crate::cluster`], a step that cannot run panics with what failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use crate::cluster::spawn;
use crate::{Proc, free_port, wait_for};

/// Runs the `mysql` client: (exit ok, stdout, stderr).
fn outcome(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .output()
        .expect("mysql client (scripts/setup.sh installs mariadb-client)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A gateway's MySQL port.
pub struct Mysql {
    pub port: u16,
}

impl Mysql {
    /// Runs `sql` with `mysql -e` as root@sys: (exit ok, stdout, stderr).
    pub fn run(&self, extra: &[&str], sql: &str) -> (bool, String, String) {
        let mut cmd = Command::new("mysql");
        cmd.args([
            "-h127.0.0.1",
            &format!("-P{}", self.port),
            "-uroot@sys",
            "--connect-timeout=5",
        ])
        .args(extra)
        .args(["-e", sql]);
        outcome(&mut cmd)
    }

    /// Runs `sql` with `mysql -B -N -e` as `user` (`user@tenant`), with a password
    /// when given: (exit ok, stdout, stderr).
    pub fn run_as(&self, user: &str, password: Option<&str>, sql: &str) -> (bool, String, String) {
        let mut cmd = Command::new("mysql");
        cmd.args([
            "-h127.0.0.1",
            &format!("-P{}", self.port),
            &format!("-u{user}"),
            "--connect-timeout=5",
            "-B",
            "-N",
        ]);
        if let Some(pw) = password {
            cmd.arg(format!("-p{pw}"));
        }
        cmd.args(["-e", sql]);
        outcome(&mut cmd)
    }

    /// Runs statements; panics with the server's error.
    pub fn exec(&self, sql: &str) -> String {
        let (ok, out, err) = self.run(&["--table"], sql);
        assert!(ok, "{sql}: {err}");
        out
    }

    /// Runs a statement that must fail; returns the client's error line.
    pub fn fails(&self, sql: &str) -> String {
        let (ok, out, err) = self.run(&[], sql);
        assert!(!ok, "{sql} succeeded: {out}");
        err
    }

    /// Rows of a query, tab-separated fields.
    pub fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let (ok, out, err) = self.run(&["-N", "-B"], sql);
        assert!(ok, "{sql}: {err}");
        out.lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    /// The first column of the first row, as a number.
    pub fn count(&self, sql: &str) -> u64 {
        self.rows(sql)[0][0].parse().unwrap()
    }

    /// Creates tenant `name` on `src`, sets `backup_dest` (`bk`), `backup_backup_dest`
    /// (`bk2`, if given) and a 1 s checkpoint with pieces of `piece_switch`, starts
    /// archiving and waits until the tenant's round is DOING.
    pub fn archive(
        &self,
        name: &str,
        src: &Path,
        bk: &Path,
        bk2: Option<&Path>,
        piece_switch: &str,
    ) {
        let copy = bk2.map_or(String::new(), |p| {
            format!("ALTER SYSTEM SET backup_backup_dest = '{}';", file_uri(p))
        });
        self.exec(&format!(
            "CREATE TENANT {name} SOURCE 'dir://{}';
             ALTER SYSTEM SET backup_dest = '{}';
             ALTER SYSTEM SET backup_dest_option = 'log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval={piece_switch}';
             {copy}
             ALTER SYSTEM ARCHIVELOG;",
            src.display(),
            file_uri(bk),
        ));
        wait_for("archive DOING", 30, || {
            // The tenant just created has the highest id.
            (self.rows(
                "SELECT STATUS FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG WHERE TENANT_ID = \
                 (SELECT MAX(TENANT_ID) FROM oceanbase.CDB_OB_BACKUP_ARCHIVELOG)",
            ) == vec![vec!["DOING".to_string()]])
            .then_some(())
        });
    }
}

/// Starts `backstop gateway` against `meta` and waits until it answers.
pub fn start_gateway(dir: &Path, meta: &str) -> (Proc, Mysql) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let p = spawn(
        &["gateway", "--meta", meta, "--listen", &listen],
        &dir.join("gateway.log"),
    );
    let m = Mysql { port };
    wait_for("gateway", 30, || m.run(&[], "SELECT 1").0.then_some(()));
    (p, m)
}

/// `file://` URI of a path.
pub fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}
