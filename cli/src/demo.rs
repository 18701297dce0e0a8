//! `backstop standalone --demo`: the main job on an embedded default. Under the data
//! dir it creates a tenant fed by the workload generator and two `file://`
//! destinations, then runs what a DBA would: archiving, a full backup, a copy of it to
//! the second destination and the continuous archive copy. It stays idempotent across
//! restarts (a tenant that exists is reused) and keeps the generator writing until
//! shutdown, so the views keep moving. Where PostgreSQL is installed it also protects
//! a small PostgreSQL cluster as tenant `pgdemo` (`demo_pg.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::*;
use backstop_workload::{self as workload, RunLimits, Shape};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tracing::{info, warn};

/// Name of the demo tenant.
pub const TENANT: &str = "demo";
/// Datafile bytes of the demo tenant (64 MiB); `BACKSTOP_DEMO_TENANT_BYTES` sets
/// another size (bytes, at least 1 MiB), which the start-up tests use to start the
/// demo many times quickly.
const TENANT_BYTES: u64 = 64 << 20;

fn tenant_bytes() -> u64 {
    std::env::var("BACKSTOP_DEMO_TENANT_BYTES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(TENANT_BYTES, |b| b.max(1 << 20))
}
/// Log bytes per second the generator writes (256 KB/s).
const LOG_RATE: u64 = 256 * 1024;

/// Where the demo keeps its files.
pub struct DemoPaths {
    /// Tenant root (`dir://`).
    pub tenant: PathBuf,
    /// `backup_dest`.
    pub backup: PathBuf,
    /// `backup_backup_dest`.
    pub backup_backup: PathBuf,
}

impl DemoPaths {
    /// Under `data_dir/demo/`, absolute.
    pub fn under(data_dir: &Path) -> anyhow::Result<DemoPaths> {
        let base = std::path::absolute(data_dir.join("demo"))
            .with_context(|| format!("resolve {}", data_dir.display()))?;
        Ok(DemoPaths {
            tenant: base.join("tenant"),
            backup: base.join("backup"),
            backup_backup: base.join("backup_backup"),
        })
    }
}

fn file_uri(p: &Path) -> String {
    format!("file://{}", p.display())
}

/// Starts the generator and sets the demo up; returns when the first copy is done
/// (or on error). The generator runs until `stop` fires.
pub async fn run(
    meta_addr: String,
    data_dir: PathBuf,
    sql: std::net::SocketAddr,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let paths = DemoPaths::under(&data_dir)?;
    if !paths.tenant.join("workload").exists() {
        let dir = paths.tenant.clone();
        tokio::task::spawn_blocking(move || {
            workload::init(&dir, Shape::of_size(tenant_bytes(), 8), 1)
        })
        .await?
        .context("create the demo tenant's datafiles")?;
    }
    let flag = Arc::new(AtomicBool::new(false));
    {
        let (writer_flag, dir) = (flag.clone(), paths.tenant.clone());
        tokio::task::spawn_blocking(move || {
            let limits = RunLimits {
                rate: LOG_RATE,
                duration: Duration::from_secs(365 * 86_400),
                segment_bytes: 4 << 20,
                max_writes: 0,
            };
            if let Err(e) = workload::run(&dir, 2, limits, &writer_flag) {
                warn!(error = %e, "demo workload stopped");
            }
        });
        let stop = stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            flag.store(true, Ordering::Relaxed);
        });
    }
    let channel = Channel::from_shared(format!("http://{meta_addr}"))?.connect_lazy();
    let mut c = MetaServiceClient::new(channel);
    if crate::demo_pg::tenant_exists(&mut c, TENANT).await? {
        info!("demo tenant exists; the generator keeps writing");
        ready(sql);
        postgres_half(c, data_dir, stop);
        return Ok(());
    }
    info!(tenant = %paths.tenant.display(), "setting up the demo");
    c.create_tenant(CreateTenantRequest {
        tenant_name: TENANT.to_string(),
        source: format!("dir://{}", paths.tenant.display()),
        comment: "fed by the workload generator (backstop standalone --demo)".to_string(),
        if_not_exists: true,
        root_password: None,
    })
    .await?;
    for (name, value) in [
        ("backup_dest", file_uri(&paths.backup)),
        (
            "backup_dest_option",
            "log_archive_checkpoint_interval=1s&log_archive_piece_switch_interval=1m".to_string(),
        ),
        ("backup_backup_dest", file_uri(&paths.backup_backup)),
    ] {
        c.set_parameter(SetParameterRequest {
            name: name.to_string(),
            value,
            tenant_name: String::new(),
        })
        .await?;
    }
    c.archivelog(ArchivelogRequest {
        tenant_name: TENANT.to_string(),
        enable: true,
    })
    .await?;
    wait(&stop, "archiving to start", || {
        let mut c = c.clone();
        async move {
            let r = c.list_archive(list()).await?.into_inner();
            Ok(r.rounds.iter().any(|x| x.status == "DOING"))
        }
    })
    .await?;
    c.backup_database(BackupDatabaseRequest {
        tenant_name: TENANT.to_string(),
        incremental: false,
    })
    .await?;
    wait(&stop, "the full backup", || {
        let mut c = c.clone();
        async move {
            let sets = c.list_backup_sets(list()).await?.into_inner().sets;
            if sets.iter().any(|s| s.status == "FAILED") {
                bail!("the demo backup failed: see the logs");
            }
            Ok(sets.iter().any(|s| s.copy_id == 0 && s.status == "SUCCESS"))
        }
    })
    .await?;
    let manage = |verb: BackupVerb| BackupManageRequest {
        verb: verb.into(),
        tenants: vec![],
        id: 0,
        max_backup_times: None,
        with_active: false,
        dest: String::new(),
        copy_id: 0,
    };
    c.backup_manage(manage(BackupVerb::BackupBackupset)).await?;
    wait(&stop, "the copy of the backup set", || {
        let mut c = c.clone();
        async move {
            let sets = c.list_backup_sets(list()).await?.into_inner().sets;
            Ok(sets.iter().any(|s| s.copy_id > 0 && s.status == "SUCCESS"))
        }
    })
    .await?;
    c.backup_manage(manage(BackupVerb::StartBackupArchivelog))
        .await?;
    ready(sql);
    postgres_half(c, data_dir, stop);
    Ok(())
}

/// The PostgreSQL tenant, beside the `dir://` one: a failure there is logged and
/// leaves the rest of the demo running.
fn postgres_half(mut c: MetaServiceClient<Channel>, data_dir: PathBuf, stop: CancellationToken) {
    tokio::spawn(async move {
        if let Err(e) = crate::demo_pg::run(&mut c, &data_dir, stop).await {
            warn!(error = %format!("{e:#}"), "demo: the PostgreSQL tenant is not set up");
        }
    });
}

fn list() -> ListRequest {
    ListRequest {
        tenant_name: String::new(),
        job_id: 0,
        all: true,
    }
}

fn ready(sql: std::net::SocketAddr) {
    info!(
        "demo ready: mysql -h{} -P{} -uroot@sys -e 'SELECT * FROM oceanbase.CDB_OB_BACKUP_SET_FILES'",
        sql.ip(),
        sql.port()
    );
}

async fn wait<F, Fut>(stop: &CancellationToken, what: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    info!("demo: waiting for {what}");
    for _ in 0..600 {
        match f().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            // A call that may succeed later (no leader for a moment, a restart) is
            // retried until the deadline; anything else ends the demo.
            Err(e) if retryable(&e) => warn!(error = %format!("{e:#}"), "demo: retrying"),
            Err(e) => return Err(e),
        }
        tokio::select! {
            _ = stop.cancelled() => bail!("shutting down"),
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
    bail!("demo: {what} did not happen within 5 minutes; see the logs")
}

/// Whether a demo step's error is worth another try: a gRPC status that says the
/// service is (for now) unavailable or not the leader.
fn retryable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<tonic::Status>().is_some_and(|s| {
        matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Aborted
        )
    })
}
