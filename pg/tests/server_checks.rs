//! `backstop_pg::check` against real PostgreSQL servers started here as the
//! `postgres` user (initdb and postgres refuse root): what `CREATE TENANT … SOURCE =
//! 'postgresql://…'` accepts, and the clear error for each thing a DBA must fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backstop_common::source::PgSource;
use backstop_pg::{PgError, check};
use backstop_testkit::free_port;

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/setup.sh installs it)")
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .expect("an initdb under /usr/lib/postgresql/*/bin")
}

/// Runs `bin` as postgres when this process is root (`setpriv` exec's, so the pid is
/// the program's); as this user otherwise.
fn as_postgres(bin: &Path) -> Command {
    if !is_root() {
        return Command::new(bin);
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
        .arg(bin);
    c
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn chown_postgres(p: &Path) {
    if is_root() {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(p)
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown {}", p.display());
    }
}

/// A throwaway cluster: its own data dir (0700, owned by postgres), port and
/// socket dir; stopped and removed on drop.
struct Server {
    root: PathBuf,
    pgdata: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Server {
    fn init(extra_conf: &str) -> Server {
        let root = std::env::temp_dir().join(format!(
            "backstop-pgcheck-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let pgdata = root.join("data");
        chown_postgres(&root);
        let out = as_postgres(&bin_dir().join("initdb"))
            .args(["-N", "-U", "postgres", "--auth=trust", "-D"])
            .arg(&pgdata)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let conf = format!(
            "\nport = {port}\nlisten_addresses = ''\nunix_socket_directories = '{}'\nfsync = off\n{extra_conf}\n",
            root.display()
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(pgdata.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut f, conf.as_bytes()).unwrap();
        Server {
            root,
            pgdata,
            port,
            child: None,
        }
    }

    fn start(&mut self) {
        let child = as_postgres(&bin_dir().join("postgres"))
            .arg("-D")
            .arg(&self.pgdata)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.root.join(format!(".s.PGSQL.{}", self.port)).exists() {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Accepting connections, not only listening.
        while !self.psql("SELECT 1").status.success() {
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGINT: fast shutdown.
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

    fn psql(&self, sql: &str) -> std::process::Output {
        Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .arg("-h")
            .arg(&self.root)
            .args(["-p", &self.port.to_string(), "-c", sql])
            .output()
            .unwrap()
    }

    fn uri(&self, user: &str, pgdata: &Path) -> PgSource {
        PgSource::parse(&format!(
            "postgresql://{user}@/postgres?host={}&port={}&pgdata={}",
            self.root.display(),
            self.port,
            pgdata.display()
        ))
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_can_be_protected_is_accepted_and_each_problem_has_its_own_error() {
    let mut s = Server::init("wal_level = replica");
    s.start();

    let info = check(&s.uri("postgres", &s.pgdata), true).await.unwrap();
    assert_ne!(info.system_identifier, 0);
    assert_eq!(info.timeline, 1);
    assert_eq!(info.wal_segment_size, 16 * 1024 * 1024);
    assert!(info.server_version_num >= 150000, "{info:?}");

    // pgdata that is not the server's data directory.
    let err = check(&s.uri("postgres", Path::new("/var/tmp")), true)
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::DataDirectory { .. }), "{err}");
    assert!(err.to_string().contains("SHOW data_directory"), "{err}");

    // A role without REPLICATION.
    let out = s.psql("CREATE ROLE plain LOGIN; GRANT pg_read_all_settings TO plain");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = check(&s.uri("plain", &s.pgdata), true).await.unwrap_err();
    assert!(matches!(err, PgError::NoReplication { .. }), "{err}");
    assert!(
        err.to_string().contains("ALTER ROLE plain REPLICATION"),
        "{err}"
    );

    // A server that is down.
    s.stop();
    let err = check(&s.uri("postgres", &s.pgdata), true)
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("cannot connect"), "{err}");

    // wal_level = minimal.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.pgdata.join("postgresql.conf"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"\nwal_level = minimal\nmax_wal_senders = 0\n").unwrap();
    s.start();
    let err = check(&s.uri("postgres", &s.pgdata), true)
        .await
        .unwrap_err();
    assert!(matches!(err, PgError::WalLevel { .. }), "{err}");
    assert!(err.to_string().contains("wal_level = replica"), "{err}");
}
