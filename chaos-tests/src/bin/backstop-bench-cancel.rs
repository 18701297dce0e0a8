//! Cancel latency: how long after `ALTER SYSTEM CANCEL BACKUP BACKUPSET` returns (the
//! cancel is committed) the copy job reaches its final state (`CANCEL → CLEAN →
//! FINISH`), over many cancels of copies that are actively moving data.
//!
//! Needs a running cluster with a successful backup set and a worker:
//! `backstop-bench-cancel --meta 127.0.0.1:2882 --dest-prefix file:///tmp/cancel --count 50`
//! (`benches/copy.sh` sets this up). Prints p50/p99/max in ms.

use std::time::{Duration, Instant};

use backstop_proto::meta::meta_service_client::MetaServiceClient;
use backstop_proto::meta::{BackupManageRequest, BackupVerb, ListRequest};
use clap::Parser;
use hdrhistogram::Histogram;

/// Arguments.
#[derive(Debug, Parser)]
struct Args {
    /// A meta node.
    #[arg(long)]
    meta: String,
    /// Each copy goes to `PREFIX_i` (a fresh destination, so every copy has work).
    #[arg(long)]
    dest_prefix: String,
    /// Cancels to measure.
    #[arg(long, default_value_t = 50)]
    count: u64,
    /// How long each copy runs before it is cancelled (ms).
    #[arg(long, default_value_t = 300)]
    run_ms: u64,
}

fn manage(verb: BackupVerb, dest: String) -> BackupManageRequest {
    BackupManageRequest {
        verb: verb.into(),
        tenants: vec![],
        id: 0,
        max_backup_times: None,
        with_active: false,
        dest,
        copy_id: 0,
    }
}

fn all() -> ListRequest {
    ListRequest {
        tenant_name: String::new(),
        job_id: 0,
        all: true,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut c = MetaServiceClient::new(backstop_client::channel(&args.meta, None)?);
    let mut hist = Histogram::<u64>::new(3)?;
    let mut moved = 0u64;
    for i in 0..args.count {
        let job = c
            .backup_manage(manage(
                BackupVerb::BackupBackupset,
                format!("{}_{i}", args.dest_prefix),
            ))
            .await?
            .into_inner()
            .job_ids
            .first()
            .copied()
            .ok_or_else(|| anyhow::anyhow!("no copy job was created"))?;
        // Wait until the copy task runs, then let it move data for a while.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let tasks = c
                .list_tasks(ListRequest {
                    job_id: job,
                    ..all()
                })
                .await?
                .into_inner()
                .tasks;
            if tasks.iter().any(|t| t.status == "DOING") {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "copy task of job {job} never ran"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(args.run_ms)).await;
        c.backup_manage(manage(BackupVerb::CancelBackupBackupset, String::new()))
            .await?;
        let committed = Instant::now();
        loop {
            let jobs = c.list_jobs(all()).await?.into_inner().jobs;
            let j = jobs
                .iter()
                .find(|j| j.job_id == job)
                .ok_or_else(|| anyhow::anyhow!("job {job} vanished"))?;
            if matches!(j.status.as_str(), "CANCELED" | "FINISH" | "FAILED") {
                moved += j.bytes_done;
                break;
            }
            anyhow::ensure!(
                committed.elapsed() < Duration::from_secs(60),
                "job {job} did not end within 60 s (status {})",
                j.status
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        hist.record(committed.elapsed().as_micros() as u64)?;
    }
    let ms = |v: u64| v as f64 / 1000.0;
    println!(
        "{} cancels of running copies ({} MiB moved before the cancels): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        hist.len(),
        moved >> 20,
        ms(hist.value_at_quantile(0.5)),
        ms(hist.value_at_quantile(0.99)),
        ms(hist.max())
    );
    Ok(())
}
