//! The PostgreSQL half of `backstop standalone --demo`, where PostgreSQL is installed
//! (`/usr/lib/postgresql/*/bin`) and `BACKSTOP_DEMO_POSTGRES` is not `off`: a small
//! cluster under the data dir (`demo/postgres/data`, `pgbench -i -s 1`, reachable only
//! by its Unix socket in `demo/postgres/sock`), protected as tenant `pgdemo`: archived
//! over the replication protocol and backed up once, with `pgbench` writing a few
//! transactions a second so the views keep moving.
//!
//! Run as root, the cluster runs as the `postgres` user. The server and pgbench get
//! `SIGKILL` when this process dies (the parent-death signal), so a killed
//! `standalone` leaves no server behind; on shutdown they are stopped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::*;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::{info, warn};

/// Name of the PostgreSQL demo tenant.
pub const TENANT: &str = "pgdemo";

/// PostgreSQL's server binaries, newest version first; `None` when not installed or
/// turned off with `BACKSTOP_DEMO_POSTGRES=off`.
fn bin_dir() -> Option<PathBuf> {
    if std::env::var("BACKSTOP_DEMO_POSTGRES").is_ok_and(|v| v == "off" || v == "0") {
        return None;
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists() && d.join("postgres").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// The cluster's owner: `postgres` when this process is root (initdb refuses root),
/// this user otherwise.
fn owner() -> anyhow::Result<Option<nix::unistd::User>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    nix::unistd::User::from_name("postgres")?
        .map(Some)
        .context("PostgreSQL is installed but there is no postgres user to run it as")
}

/// `bin` as the cluster's owner, killed when this process dies: `setpriv` (util-linux)
/// changes the user and sets the parent-death signal after that change (which would
/// clear it), then execs `bin`, so the pid is the program's.
fn command(bin: &Path, owner: &Option<nix::unistd::User>) -> Command {
    let mut c = Command::new("setpriv");
    c.arg("--pdeathsig=KILL");
    if let Some(u) = owner {
        c.arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .arg("--init-groups");
    }
    c.arg(bin);
    c
}

/// Starts `c` from a thread that lives as long as the child, so the parent-death
/// signal fires when this process dies and not when a runtime thread retires.
fn spawn_held(mut c: Command, what: &'static str) -> anyhow::Result<u32> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("demo-{what}"))
        .spawn(move || match c.spawn() {
            Ok(mut child) => {
                let _ = tx.send(Ok(child.id()));
                let _ = Child::wait(&mut child);
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })?;
    rx.recv()?.with_context(|| format!("start {what}"))
}

fn run_to_end(mut c: Command, what: &str) -> anyhow::Result<()> {
    let out = c
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn give(p: &Path, owner: &Option<nix::unistd::User>) -> anyhow::Result<()> {
    if let Some(u) = owner {
        std::os::unix::fs::chown(p, Some(u.uid.as_raw()), Some(u.gid.as_raw()))
            .with_context(|| format!("chown {}", p.display()))?;
    }
    Ok(())
}

/// Sets up (or, after a restart, starts again) the PostgreSQL demo. Errors end only
/// this half of the demo: the caller logs them.
pub async fn run(
    c: &mut MetaServiceClient<Channel>,
    data_dir: &Path,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let Some(bin) = bin_dir() else {
        info!(
            "PostgreSQL is not installed (or BACKSTOP_DEMO_POSTGRES=off): the demo protects the dir:// tenant only"
        );
        return Ok(());
    };
    let owner = owner()?;
    let base = std::path::absolute(data_dir.join("demo/postgres"))?;
    let (pgdata, sock) = (base.join("data"), base.join("sock"));
    if sock.join(".s.PGSQL.5432").as_os_str().len() > 100 {
        bail!(
            "the data dir's path is too long for a Unix socket under it ({})",
            sock.display()
        );
    }
    std::fs::create_dir_all(&sock)?;
    for p in [&base, &sock] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
        give(p, &owner)?;
    }
    if !pgdata.join("PG_VERSION").exists() {
        info!(pgdata = %pgdata.display(), "demo: initdb");
        let mut initdb = command(&bin.join("initdb"), &owner);
        initdb
            .args(["-U", "postgres", "--auth=trust", "-D"])
            .arg(&pgdata);
        run_to_end(initdb, "initdb")?;
    }
    let mut postgres = command(&bin.join("postgres"), &owner);
    postgres
        .arg("-D")
        .arg(&pgdata)
        .arg("-k")
        .arg(&sock)
        .args(["-c", "listen_addresses=", "-c", "max_wal_size=256MB"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(base.join("postgres.log"))?);
    let pid = spawn_held(postgres, "postgres")?;
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            // Fast shutdown: the server ends its sessions and stops cleanly.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGINT,
            );
        });
    }
    let pgbench = |args: &[&str]| {
        let mut p = command(&bin.join("pgbench"), &owner);
        p.args(["-h"])
            .arg(&sock)
            .args(["-U", "postgres"])
            .args(args);
        p.arg("postgres");
        p
    };
    let socket = sock.join(".s.PGSQL.5432");
    for _ in 0..300 {
        if socket.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !tenant_exists(c, TENANT).await? {
        // The server accepts connections a moment after its socket appears.
        let mut last = None;
        for _ in 0..50 {
            match run_to_end(pgbench(&["-i", "-q", "-s", "1"]), "pgbench -i") {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if let Some(e) = last {
            return Err(e);
        }
        let source = format!(
            "postgresql://postgres@/postgres?host={}&port=5432&pgdata={}",
            sock.display(),
            pgdata.display()
        );
        c.create_tenant(CreateTenantRequest {
            tenant_name: TENANT.to_string(),
            source,
            comment: "a PostgreSQL cluster under pgbench (backstop standalone --demo)".to_string(),
            if_not_exists: true,
            root_password: None,
        })
        .await?;
        c.archivelog(ArchivelogRequest {
            tenant_name: TENANT.to_string(),
            enable: true,
        })
        .await?;
        wait_doing(c, &stop).await?;
        c.backup_database(BackupDatabaseRequest {
            tenant_name: TENANT.to_string(),
            incremental: false,
        })
        .await?;
    }
    let mut load = pgbench(&["-n", "-q", "-c", "1", "-R", "5", "-T", "31536000"]);
    load.stdout(Stdio::null()).stderr(Stdio::null());
    spawn_held(load, "pgbench")?;
    info!(tenant = TENANT, pgdata = %pgdata.display(), "demo: PostgreSQL tenant protected");
    Ok(())
}

/// Whether the catalog has a tenant of that name (the demo reuses what exists).
pub(crate) async fn tenant_exists(
    c: &mut MetaServiceClient<Channel>,
    name: &str,
) -> anyhow::Result<bool> {
    Ok(c.list_tenants(ListTenantsRequest {})
        .await?
        .into_inner()
        .tenants
        .iter()
        .any(|t| t.tenant_name == name))
}

async fn wait_doing(
    c: &mut MetaServiceClient<Channel>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    for _ in 0..240 {
        let r = c
            .list_archive(ListRequest {
                tenant_name: TENANT.to_string(),
                job_id: 0,
                all: true,
            })
            .await?
            .into_inner();
        if r.rounds.iter().any(|x| x.status == "DOING") {
            return Ok(());
        }
        tokio::select! {
            _ = stop.cancelled() => bail!("shutting down"),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    warn!("demo: the PostgreSQL tenant's archive did not start within 2 minutes");
    bail!("the PostgreSQL tenant's archive did not start")
}
