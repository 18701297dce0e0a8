//! The `backstop` binary as a library: argument parsing, configuration, logging,
//! the long-running services and the `ctl` client.

pub mod args;
pub mod cert;
pub mod config;
pub mod ctl;
pub mod demo;
mod demo_pg;
mod failpoints;
pub mod offline;
pub mod shared;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use backstop_meta::{MetaConfig, MetaNode};
use backstop_worker::runtime::WorkerConfig;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::args::{Args, Cmd, LogFormat};
use crate::config::FileConfig;

/// Runs the parsed command line and returns the process exit code: 0 on success,
/// 1 on an error (printed to stderr), 2 for a bad config.
pub fn main_with(args: Args) -> ExitCode {
    let file = match FileConfig::load(args.config.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let is_ctl = matches!(
        args.command,
        Cmd::Ctl(_) | Cmd::Restore(_) | Cmd::Validate(_) | Cmd::WalPush(_) | Cmd::Cert(_)
    );
    init_logging(&args, &file, is_ctl);
    failpoints::arm();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match args.command {
            Cmd::Standalone(a) => {
                let config = config::standalone_config(&a, &file)?;
                let sql = SqlPort {
                    listen: a.sql_listen,
                    limits: a.sql_limits.limits(),
                    tls: a.sql_tls.load(None)?,
                    require_secure_transport: a.sql_tls.require_secure_transport,
                };
                serve(config, Some(sql), a.demo, a.policy.clone()).await
            }
            Cmd::Meta(a) => {
                let config = config::meta_config(&a, &file)?;
                serve(config, None, false, args::WorkerPolicyArgs::default()).await
            }
            Cmd::Gateway(a) => run_gateway(a, &file).await,
            Cmd::Ctl(a) => ctl::run(a).await,
            Cmd::Worker(a) => run_worker(a, &file).await,
            Cmd::Restore(a) => offline::restore(a).await,
            Cmd::Validate(a) => offline::validate(a).await,
            Cmd::WalPush(a) => offline::wal_push(a).await,
            Cmd::Cert(a) => cert::run(a),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(args: &Args, file: &FileConfig, is_ctl: bool) {
    let default_filter = if is_ctl { "warn" } else { "info,openraft=warn" };
    let filter = args
        .log
        .clone()
        .or_else(|| file.log.filter.clone())
        .unwrap_or_else(|| default_filter.to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let format = args
        .log_format
        .or(file.log.format)
        .unwrap_or(LogFormat::Text);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if let Err(e) = result {
        eprintln!("warning: logging not initialized: {e}");
    }
}

/// The MySQL port of a standalone process.
struct SqlPort {
    listen: std::net::SocketAddr,
    limits: backstop_sql_gateway::Limits,
    tls: Option<backstop_sql_gateway::SqlTls>,
    require_secure_transport: bool,
}

/// Starts a meta node and runs until SIGINT or SIGTERM, then shuts down cleanly:
/// stop accepting, let in-flight requests finish, stop Raft, flush RocksDB.
async fn serve(
    config: MetaConfig,
    sql: Option<SqlPort>,
    demo: bool,
    embedded: args::WorkerPolicyArgs,
) -> anyhow::Result<()> {
    if let Some(p) = &sql {
        backstop_sql_gateway::server::check_transport(
            p.listen,
            p.tls.is_some(),
            p.require_secure_transport,
        )?;
    }
    let sql_listen = sql.as_ref().map(|p| p.listen);
    let standalone = sql_listen.is_some();
    let data_dir = config.data_dir.clone();
    let node: Arc<MetaNode> = MetaNode::start(config)
        .await
        .with_context(|| format!("start meta node (data dir {})", data_dir.display()))?;
    let stop_worker = CancellationToken::new();
    if standalone {
        // The gateway accepts logins, and the demo and the worker start, only once the
        // catalog can check a password and name a destination: a leader, and the
        // cluster identity (with root@sys) applied.
        if let Err(e) = node.wait_ready(READY_TIMEOUT).await {
            node.shutdown().await;
            return Err(anyhow::anyhow!("{e}").context("start standalone"));
        }
        if let Some(listen) = sql_listen
            && !listen.ip().is_loopback()
        {
            let empty = node.read_local(empty_password_users).await;
            if !empty.is_empty() {
                node.shutdown().await;
                anyhow::bail!(refusal(
                    listen,
                    &empty,
                    "set BACKSTOP_ROOT_PASSWORD for a new cluster"
                ));
            }
        }
    }
    let gateway = match sql {
        Some(SqlPort {
            listen,
            limits,
            tls,
            require_secure_transport,
        }) => {
            let gw = backstop_sql_gateway::Gateway::bind(&backstop_sql_gateway::GatewayConfig {
                listen,
                meta: node.addr().to_string(),
                limits,
                tls: None,
                sql_tls: tls,
                require_secure_transport,
            })
            .await?;
            let empty = node.read_local(empty_password_users).await;
            if !empty.is_empty() {
                warn!(%listen, users = %empty.join(", "), "users with an empty password (loopback only); set them with SET PASSWORD, or BACKSTOP_ROOT_PASSWORD for a new cluster");
            }
            Some(tokio::spawn(gw.serve(stop_worker.clone())))
        }
        None => None,
    };
    let worker = if standalone {
        let home = data_dir.parent().unwrap_or(&data_dir).to_path_buf();
        let config = WorkerConfig {
            meta: vec![node.addr().to_string()],
            data_dir: home.join("worker"),
            slots: 4,
            tenants: Vec::new(),
            addr: format!("standalone@{}", node.addr()),
            copy_rate: 0,
            tls: None,
            allow_hooks: embedded.allow_hooks,
            allow_paths: std::iter::once(home).chain(embedded.allow_paths).collect(),
        };
        let token = stop_worker.clone();
        info!(
            meta = %node.addr(),
            data_dir = %data_dir.display(),
            "backstop standalone is up (meta + one worker); try: backstop ctl --meta {} status",
            node.addr()
        );
        Some(tokio::spawn(async move {
            run_worker_until(config, token).await
        }))
    } else {
        None
    };
    let demo_task = match (demo, sql_listen) {
        (true, Some(sql)) => {
            let (addr, dir, token) = (
                node.addr().to_string(),
                data_dir.parent().unwrap_or(&data_dir).to_path_buf(),
                stop_worker.clone(),
            );
            Some(tokio::spawn(demo::run(addr, dir, sql, token)))
        }
        _ => None,
    };
    // A demo that cannot be set up ends the process with its reason (exit status 1)
    // instead of leaving a half-made demo running.
    let demo_failed = async move {
        match demo_task {
            Some(handle) => match handle.await {
                Ok(Ok(())) => std::future::pending().await,
                Ok(Err(e)) => e,
                Err(e) => anyhow::anyhow!("demo task: {e}"),
            },
            None => std::future::pending().await,
        }
    };
    let failure = tokio::select! {
        _ = wait_for_signal() => None,
        e = demo_failed => Some(e),
    };
    match &failure {
        Some(e) => tracing::error!(error = %format!("{e:#}"), "demo setup failed; shutting down"),
        None => info!("shutting down"),
    }
    stop_worker.cancel();
    if let Some(w) = worker {
        let _ = w.await;
    }
    if let Some(g) = gateway {
        let _ = g.await;
    }
    node.shutdown().await;
    match failure {
        Some(e) => Err(e.context("demo setup failed")),
        None => Ok(()),
    }
}

/// How long `standalone` waits for its one-node group to elect itself and apply the
/// cluster identity before it gives up (it takes well under a second).
const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

async fn run_worker_until(config: WorkerConfig, token: CancellationToken) {
    if let Err(e) = run_worker_loop(config, token).await {
        tracing::error!(error = %e, "worker stopped with an error");
    }
}

async fn run_worker_loop(config: WorkerConfig, token: CancellationToken) -> anyhow::Result<()> {
    backstop_worker::runtime::run_worker(config, token).await?;
    Ok(())
}

/// The catalog's users that log in with an empty password, as `user@tenant`.
fn empty_password_users(s: &backstop_meta::state::MetaState) -> Vec<String> {
    s.users
        .values()
        .filter(|u| u.password.mysql_native.is_empty())
        .map(|u| {
            let tenant = s
                .tenants
                .get(&u.tenant_id)
                .map_or("sys", |t| t.name.as_str());
            format!("{}@{tenant}", u.user)
        })
        .collect()
}

/// Why a gateway on a non-loopback address does not start.
fn refusal(listen: std::net::SocketAddr, empty: &[String], hint: &str) -> String {
    let mut named: Vec<&str> = empty.iter().take(8).map(String::as_str).collect();
    if empty.len() > 8 {
        named.push("…");
    }
    format!(
        "refusing to serve SQL on {listen} (not loopback) while users have an empty password: {}; {hint}, or set them with `backstop ctl user alter USER@TENANT --password …`",
        named.join(", ")
    )
}

/// `backstop gateway`: runs until SIGINT/SIGTERM.
async fn run_gateway(a: args::GatewayArgs, file: &FileConfig) -> anyhow::Result<()> {
    let tls = a.tls.load(file.tls.as_ref())?;
    let sql_tls = a.sql_tls.load(a.tls.files(file.tls.as_ref()).as_ref())?;
    backstop_sql_gateway::server::check_transport(
        a.listen,
        sql_tls.is_some(),
        a.sql_tls.require_secure_transport,
    )?;
    if !a.listen.ip().is_loopback() {
        let empty = empty_password_users_of(&a.meta, tls.as_ref()).await?;
        if !empty.is_empty() {
            anyhow::bail!(refusal(
                a.listen,
                &empty,
                "set them first through a loopback gateway (SET PASSWORD)"
            ));
        }
    }
    let gw = backstop_sql_gateway::Gateway::bind(&backstop_sql_gateway::GatewayConfig {
        listen: a.listen,
        meta: a.meta,
        limits: a.limits.limits(),
        tls,
        sql_tls,
        require_secure_transport: a.sql_tls.require_secure_transport,
    })
    .await?;
    let token = CancellationToken::new();
    let handle = tokio::spawn(gw.serve(token.clone()));
    wait_for_signal().await;
    token.cancel();
    handle.await?;
    Ok(())
}

/// Asks the metadata service which users log in with an empty password.
async fn empty_password_users_of(
    meta: &str,
    tls: Option<&backstop_client::Tls>,
) -> anyhow::Result<Vec<String>> {
    let first = meta
        .split(',')
        .map(str::trim)
        .find(|a| !a.is_empty())
        .unwrap_or(meta);
    let mut client = backstop_proto::meta::meta_service_client::MetaServiceClient::new(
        backstop_meta::network::channel(first, tls)?,
    );
    let users = client
        .list_users(backstop_proto::meta::ListUsersRequest::default())
        .await
        .map_err(|s| {
            anyhow::anyhow!(
                "ask the metadata service at {meta} for its users: {}",
                s.message()
            )
        })?
        .into_inner()
        .users;
    Ok(users
        .into_iter()
        .filter(|u| u.empty_password)
        .map(|u| format!("{}@{}", u.user_name, u.tenant_name))
        .collect())
}

/// `backstop worker`: runs until SIGINT/SIGTERM.
async fn run_worker(a: args::WorkerArgs, file: &FileConfig) -> anyhow::Result<()> {
    let config = WorkerConfig {
        meta: a
            .meta
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        data_dir: a
            .data_dir
            .unwrap_or_else(|| std::path::PathBuf::from("backstop-worker")),
        slots: a.slots.max(1),
        tenants: a.tenants,
        addr: format!("pid {}", std::process::id()),
        copy_rate: a.copy_rate,
        tls: a.tls.load(file.tls.as_ref())?,
        allow_hooks: a.policy.allow_hooks,
        allow_paths: a.policy.allow_paths,
    };
    let token = CancellationToken::new();
    let t = token.clone();
    let handle = tokio::spawn(async move { backstop_worker::runtime::run_worker(config, t).await });
    wait_for_signal().await;
    info!("shutting down worker");
    token.cancel();
    handle.await??;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM; waiting for SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
