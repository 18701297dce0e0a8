//! `backstop-workload`: create a `dir://` tenant, write to it at a given rate, and
//! verify a restore of it exactly (see `backstop_workload`).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use backstop_workload::{self as workload, RunLimits, Shape};
use clap::{Parser, Subcommand};

/// Arguments.
#[derive(Debug, Parser)]
#[command(
    name = "backstop-workload",
    about = "Tenants whose restored state can be checked exactly"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a tenant directory with datafiles and an empty log.
    Init {
        /// Tenant root (becomes dir://DIR).
        #[arg(long)]
        dir: PathBuf,
        /// Total datafile bytes (e.g. 2147483648 for 2 GiB).
        #[arg(long, default_value_t = 64 * 1024 * 1024)]
        size: u64,
        /// Number of datafiles.
        #[arg(long, default_value_t = 8)]
        files: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Write pages (redo first) at a rate.
    Run {
        /// Tenant root.
        #[arg(long)]
        dir: PathBuf,
        /// Log bytes per second (0 = as fast as possible).
        #[arg(long, default_value_t = 1_000_000)]
        rate: u64,
        /// Seconds to run.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Roll log segments at this size.
        #[arg(long, default_value_t = 16 * 1024 * 1024)]
        segment_bytes: u64,
        /// Stop after this many page writes (0 = no limit).
        #[arg(long, default_value_t = 0)]
        writes: u64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Replay a restored tenant and compare with the recorded digest.
    Verify {
        /// Directory written by `backstop restore`.
        #[arg(long)]
        dir: PathBuf,
        /// The original tenant root (holds workload/digests.bin).
        #[arg(long)]
        source: PathBuf,
        /// Check at this SCN (default: the restore's until_scn).
        #[arg(long)]
        until_scn: Option<u64>,
    },
}

fn main() -> anyhow::Result<()> {
    match Args::parse().cmd {
        Cmd::Init {
            dir,
            size,
            files,
            seed,
        } => {
            workload::init(&dir, Shape::of_size(size, files), seed)?;
            println!("initialized dir://{}", dir.canonicalize()?.display());
        }
        Cmd::Run {
            dir,
            rate,
            seconds,
            segment_bytes,
            writes,
            seed,
        } => {
            let stop = AtomicBool::new(false);
            let limits = RunLimits {
                rate,
                duration: Duration::from_secs(seconds),
                segment_bytes,
                max_writes: writes,
            };
            let s = workload::run(&dir, seed, limits, &stop)?;
            println!("{} page writes, log end {}", s.writes, s.log_end);
        }
        Cmd::Verify {
            dir,
            source,
            until_scn,
        } => {
            let v = workload::verify(&dir, &source, until_scn)?;
            println!(
                "verified: state at SCN {} matches ({} records replayed, {} pages checked)",
                v.scn, v.records, v.pages
            );
        }
    }
    Ok(())
}
