//! Real PostgreSQL servers for tests (installed by `scripts/setup.sh`): a throwaway
//! cluster with its own data directory (0700, owned by `postgres`), port and socket
//! directory, started as the `postgres` user when the test runs as root (`initdb` and
//! `postgres` refuse root), listening on its socket only, stopped (fast shutdown,
//! then SIGKILL) when its guard drops. Also a server started on a restored data
//! directory, and `psql` / `pgbench` against either.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{TestkitError, free_port};

/// The newest `/usr/lib/postgresql/N/bin` holding `initdb`.
///
/// Errors: [`TestkitError::NoBinary`] when PostgreSQL is not installed.
pub fn bin_dir() -> Result<PathBuf, TestkitError> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            TestkitError::NoBinary(format!(
                "/usr/lib/postgresql: {e} (scripts/setup.sh installs PostgreSQL)"
            ))
        })?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .ok_or_else(|| TestkitError::NoBinary("no initdb under /usr/lib/postgresql/*/bin".into()))
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `bin` run as `postgres` when this process is root (`setpriv` execs, so the pid is
/// the program's), as this user otherwise.
pub fn as_postgres(bin: &Path) -> Command {
    if !is_root() {
        return Command::new(bin);
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
        .arg(bin);
    c
}

fn run(what: &str, c: &mut Command) -> Result<Output, TestkitError> {
    c.output()
        .map_err(|e| TestkitError::Io(what.to_string(), e))
}

/// Gives `p` (recursively) to `postgres` when this process is root.
pub fn chown_postgres(p: &Path) -> Result<(), TestkitError> {
    if is_root() {
        let out = run(
            "chown",
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(p),
        )?;
        if !out.status.success() {
            return Err(TestkitError::NoBinary(format!(
                "chown {}: {}",
                p.display(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    Ok(())
}

/// A PostgreSQL server for a test.
pub struct PgServer {
    /// Socket directory (and parent of a fresh cluster's data directory).
    pub root: PathBuf,
    /// Data directory.
    pub pgdata: PathBuf,
    /// Port (the socket's number).
    pub port: u16,
    child: Option<Child>,
    remove_on_drop: bool,
}

impl PgServer {
    /// `initdb`s a new cluster under a fresh directory in the system temp dir
    /// (`trust` authentication, superuser `postgres`) and appends `extra_conf` to its
    /// `postgresql.conf`. Not started.
    ///
    /// Errors: `Io`, or `NoBinary` with initdb's stderr when it fails.
    pub fn init(extra_conf: &str) -> Result<PgServer, TestkitError> {
        let root = std::env::temp_dir().join(format!(
            "backstop-pg-{}-{}",
            std::process::id(),
            free_port()
        ));
        let io = |e| TestkitError::Io(root.display().to_string(), e);
        std::fs::create_dir_all(&root).map_err(io)?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        chown_postgres(&root)?;
        let pgdata = root.join("data");
        let out = run(
            "initdb",
            as_postgres(&bin_dir()?.join("initdb"))
                .args(["-N", "-U", "postgres", "--auth=trust", "-D"])
                .arg(&pgdata)
                .stdout(Stdio::null()),
        )?;
        if !out.status.success() {
            return Err(TestkitError::NoBinary(format!(
                "initdb: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let conf = format!("\nlisten_addresses = ''\nfsync = off\n{extra_conf}\n");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(pgdata.join("postgresql.conf"))
            .map_err(io)?;
        std::io::Write::write_all(&mut f, conf.as_bytes()).map_err(io)?;
        Ok(PgServer {
            root: root.clone(),
            pgdata,
            port: free_port(),
            child: None,
            remove_on_drop: true,
        })
    }

    /// A server on an existing data directory (a restore's result), with a new port
    /// and `socket_dir` (which must be writable by `postgres`); nothing is removed on
    /// drop.
    pub fn on(pgdata: &Path, socket_dir: &Path) -> PgServer {
        PgServer {
            root: socket_dir.to_path_buf(),
            pgdata: pgdata.to_path_buf(),
            port: free_port(),
            child: None,
            remove_on_drop: false,
        }
    }

    /// Starts `postgres -D pgdata -p port -k root` (stderr to `pgdata/../NAME.log`
    /// next to the socket dir) and waits up to `secs` until it accepts connections.
    ///
    /// Errors: `Timeout` (with the server log's tail) when it does not.
    pub fn start(&mut self, secs: u64) -> Result<(), TestkitError> {
        let log_path = self.root.join(format!("postgres-{}.log", self.port));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| TestkitError::Io(log_path.display().to_string(), e))?;
        let _ = chown_postgres(&log_path);
        let child = as_postgres(&bin_dir()?.join("postgres"))
            .arg("-D")
            .arg(&self.pgdata)
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| TestkitError::Io("postgres".into(), e))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if self.psql("SELECT 1").is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited || Instant::now() > deadline {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: String = text
                    .lines()
                    .rev()
                    .take(15)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                return Err(TestkitError::Timeout {
                    what: format!(
                        "postgres on {} to accept connections:\n{tail}",
                        self.pgdata.display()
                    ),
                    secs,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join(format!("postgres-{}.log", self.port)))
            .unwrap_or_default()
    }

    /// Fast shutdown (SIGINT), SIGKILL after 30 s.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Runs `psql -c sql` as `postgres` on database `postgres`.
    pub fn psql(&self, sql: &str) -> Result<Output, TestkitError> {
        run(
            "psql",
            Command::new("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-U", "postgres", "-d", "postgres", "-h"])
                .arg(&self.root)
                .args(["-p", &self.port.to_string(), "-c", sql]),
        )
    }

    /// `sql`'s output (unaligned, tuples only), trimmed.
    ///
    /// Errors: `NoBinary` carrying psql's stderr when the statement fails.
    pub fn query(&self, sql: &str) -> Result<String, TestkitError> {
        let out = self.psql(sql)?;
        if !out.status.success() {
            return Err(TestkitError::NoBinary(format!(
                "psql {sql}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `pgbench` against this server, as `postgres` on database `postgres`, with
    /// `args` (the caller adds `-i`, `-T`, …).
    pub fn pgbench(&self, args: &[&str]) -> Command {
        let mut c = Command::new("pgbench");
        c.args(["-U", "postgres", "-h"])
            .arg(&self.root)
            .args(["-p", &self.port.to_string()])
            .args(args)
            .arg("postgres");
        c
    }

    /// The source URI of this server for a tenant (`postgresql://USER@/postgres`
    /// with `host=` the socket dir).
    pub fn uri(&self, user: &str) -> String {
        format!(
            "postgresql://{user}@/postgres?host={}&port={}&pgdata={}",
            self.root.display(),
            self.port,
            self.pgdata.display()
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        if self.remove_on_drop {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
