//! SQL gateway benchmark: view query latency (p50/p99) with 1,000 tenants and 100,000
//! piece rows, and connections per second, through a real MySQL client (mysql_async)
//! against an in-process gateway and a one-node meta group on 127.0.0.1.
//!
//! `cargo run --release -p backstop-chaos --bin backstop-bench-gateway`
//!
//! The catalog is filled through the metadata service's own commands (tenants, an
//! archive round per tenant, piece switches committed as archive checkpoints).

use backstop_common::{PieceId, RoundId, WorkerId};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop_common::Scn;
use backstop_common::task::{ArchiveProgress, PieceSpec};
use backstop_meta::RaftTuning;
use backstop_meta::command::{Command, Reply, WorkCommand};
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::{CreateTenantRequest, SetParameterRequest};
use backstop_testkit::local::LocalCluster;
use clap::Parser;
use hdrhistogram::Histogram;
use mysql_async::prelude::Queryable;

/// Arguments.
#[derive(Debug, Parser)]
struct Args {
    /// Tenants.
    #[arg(long, default_value_t = 1000)]
    tenants: u64,
    /// Pieces per tenant.
    #[arg(long, default_value_t = 100)]
    pieces: u64,
    /// Runs of each query.
    #[arg(long, default_value_t = 30)]
    runs: u64,
    /// Seconds of the connections/s run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

async fn fill(
    node: &Arc<backstop_meta::MetaNode>,
    tenant: String,
    pieces: u64,
) -> anyhow::Result<()> {
    node.write(Command::Work(WorkCommand::StartArchive {
        tenant: tenant.clone(),
    }))
    .await?;
    let task = node
        .read_local(|s| {
            s.work
                .tasks
                .values()
                .filter(|t| {
                    s.tenants
                        .get(&t.tenant_id)
                        .is_some_and(|x| x.name == tenant)
                })
                .map(|t| t.task_id)
                .max()
        })
        .await
        .ok_or_else(|| anyhow::anyhow!("no archive task for {tenant}"))?;
    let attempt = match node
        .write(Command::Work(WorkCommand::AssignTask {
            task_id: task,
            worker_id: WorkerId(1),
        }))
        .await?
    {
        Reply::Assigned(a) => a.attempt,
        other => anyhow::bail!("unexpected {other:?}"),
    };
    for p in 1..=pieces {
        let scn = p * 1_000_000;
        let progress = ArchiveProgress {
            round_id: RoundId(1),
            piece_id: PieceId(p),
            checkpoint_scn: Scn(scn),
            input_bytes: 1_000_000,
            output_bytes: 400_000,
            lag_ms: 5,
            switch_to: (p < pieces).then_some(PieceSpec {
                piece_id: PieceId(p + 1),
                start_scn: Scn(scn),
                create_time_ms: 0,
            }),
            frozen_piece: (p > 1).then_some(PieceId(p - 1)),
        };
        node.write(Command::Work(WorkCommand::ArchiveCheckpoint {
            task_id: task,
            attempt,
            worker_id: WorkerId(1),
            progress,
        }))
        .await?;
    }
    Ok(())
}

fn ms(v: u64) -> f64 {
    v as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = LocalCluster::start(1, RaftTuning::default()).await?;
    let node = cluster.nodes[0].clone();
    let addr = node.addr().to_string();
    let mut client = MetaServiceClient::new(backstop_client::channel(&addr, None)?);
    for (name, value) in [
        ("backup_dest", "file:///tmp/backstop-bench-gateway"),
        ("backup_dest_option", "log_archive_piece_switch_interval=1d"),
    ] {
        client
            .set_parameter(SetParameterRequest {
                name: name.into(),
                value: value.into(),
                tenant_name: String::new(),
            })
            .await?;
    }
    node.write(Command::Work(WorkCommand::RegisterWorker {
        worker_id: WorkerId(1),
        addr: "bench".into(),
        slots: 1,
        tenants: vec![],
    }))
    .await?;
    let started = Instant::now();
    let mut handles = Vec::new();
    for c in 0..16u64 {
        let (node, mut client) = (node.clone(), client.clone());
        let (n, pieces) = (args.tenants, args.pieces);
        handles.push(tokio::spawn(async move {
            let mut t = c;
            while t < n {
                let name = format!("t{t}");
                client
                    .create_tenant(CreateTenantRequest {
                        tenant_name: name.clone(),
                        source: format!("dir:///bench/{name}"),
                        comment: String::new(),
                        if_not_exists: false,
                        root_password: None,
                    })
                    .await?;
                fill(&node, name, pieces).await?;
                t += 16;
            }
            anyhow::Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let rows = node.read_local(|s| s.work.pieces.len()).await;
    eprintln!(
        "catalog: {} tenants, {rows} piece rows, filled in {:.0} s",
        args.tenants,
        started.elapsed().as_secs_f64()
    );

    let gw = backstop_sql_gateway::Gateway::bind(&backstop_sql_gateway::GatewayConfig {
        listen: "127.0.0.1:0".parse()?,
        meta: addr.clone(),
        limits: Default::default(),
        tls: None,
        sql_tls: None,
        require_secure_transport: false,
    })
    .await?;
    let sql_port = gw.local_addr()?.port();
    let stop = tokio_util_stop();
    tokio::spawn(gw.serve(stop.clone()));
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(sql_port)
        .user(Some("root@sys"))
        .db_name(Some("oceanbase"));
    let mut conn = mysql_async::Conn::new(opts.clone()).await?;
    let queries = [
        (
            "SELECT * FROM CDB_OB_BACKUP_PIECE_FILES",
            "SELECT * FROM oceanbase.CDB_OB_BACKUP_PIECE_FILES",
        ),
        (
            "filtered + aggregated",
            "SELECT TENANT_ID, COUNT(*) AS PIECES, MAX(CHECKPOINT_SCN) FROM oceanbase.CDB_OB_BACKUP_PIECE_FILES WHERE STATUS = 'FROZEN' AND TENANT_ID BETWEEN 1001 AND 1500 GROUP BY TENANT_ID ORDER BY PIECES DESC LIMIT 10",
        ),
        (
            "one tenant's pieces",
            "SELECT * FROM oceanbase.CDB_OB_BACKUP_PIECE_FILES WHERE TENANT_ID = 1500",
        ),
    ];
    println!(
        "| query ({} tenants, {rows} piece rows) | rows | p50 ms | p99 ms |",
        args.tenants
    );
    println!("|---|---|---|---|");
    for (label, sql) in queries {
        let mut hist = Histogram::<u64>::new(3)?;
        let mut n = 0;
        for _ in 0..args.runs {
            let t0 = Instant::now();
            let result: Vec<mysql_async::Row> = conn.query(sql).await?;
            hist.record(t0.elapsed().as_micros() as u64)?;
            n = result.len();
        }
        println!(
            "| {label} | {n} | {:.1} | {:.1} |",
            ms(hist.value_at_quantile(0.5)),
            ms(hist.value_at_quantile(0.99))
        );
    }
    drop(conn);

    // Connections per second: connect (mysql_native_password through the metadata
    // service), SELECT 1, disconnect, from 8 clients.
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3)?;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let mut c = mysql_async::Conn::new(opts.clone()).await?;
                let _: Vec<u64> = c.query("SELECT 1").await?;
                c.disconnect().await?;
                hist.record(t0.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok(hist)
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    for t in tasks {
        all.add(t.await??)?;
    }
    println!(
        "\nconnections: {:.0}/s over {} s from 8 clients (connect + SELECT 1 + quit: p50 {:.1} ms, p99 {:.1} ms)",
        all.len() as f64 / args.seconds as f64,
        args.seconds,
        ms(all.value_at_quantile(0.5)),
        ms(all.value_at_quantile(0.99))
    );
    stop.cancel();
    cluster.shutdown().await;
    Ok(())
}

fn tokio_util_stop() -> tokio_util::sync::CancellationToken {
    tokio_util::sync::CancellationToken::new()
}
