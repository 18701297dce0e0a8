//! Metadata write benchmark: commands per second and commit latency (p50/p99) on a
//! 3-node cluster over real gRPC on 127.0.0.1, with 1 and 32 concurrent clients.
//!
//! `cargo run --release -p backstop-chaos --bin backstop-bench-meta -- --ops 3000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use backstop_meta::RaftTuning;
use backstop_proto::meta::CreateTenantRequest;
use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_testkit::local::LocalCluster;
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::sync::Mutex;

/// Arguments.
#[derive(Debug, Parser)]
struct Args {
    /// Commands per run.
    #[arg(long, default_value_t = 3000)]
    ops: u64,
    /// Client counts to run, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    clients: Vec<u64>,
    /// Meta nodes.
    #[arg(long, default_value_t = 3)]
    nodes: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cluster = LocalCluster::start(args.nodes, RaftTuning::default()).await?;
    let leader = cluster.leader_addr().await?;
    println!(
        "{} meta nodes on 127.0.0.1, leader {leader}, {} CreateTenant commands per run",
        args.nodes, args.ops
    );
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>10}",
        "clients", "ops/s", "p50 ms", "p99 ms", "max ms"
    );
    for (run, &clients) in args.clients.iter().enumerate() {
        let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
        let per_client = args.ops / clients.max(1);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let leader = leader.clone();
            let hist = hist.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = MetaServiceClient::new(backstop_client::channel(&leader, None)?);
                for i in 0..per_client {
                    let t0 = Instant::now();
                    client
                        .create_tenant(CreateTenantRequest {
                            tenant_name: format!("r{run}_c{c}_t{i}"),
                            source: "dir:///bench/src".into(),
                            comment: String::new(),
                            if_not_exists: false,
                            root_password: None,
                        })
                        .await?;
                    hist.lock().await.record(t0.elapsed().as_micros() as u64)?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let elapsed = started.elapsed();
        let h = hist.lock().await;
        let ms = |us: u64| Duration::from_micros(us).as_secs_f64() * 1000.0;
        println!(
            "{:>8} {:>10.0} {:>10.2} {:>10.2} {:>10.2}",
            clients,
            h.len() as f64 / elapsed.as_secs_f64(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max()),
        );
    }
    cluster.shutdown().await;
    Ok(())
}
