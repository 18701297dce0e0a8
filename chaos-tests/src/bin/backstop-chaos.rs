//! `backstop-chaos`: runs chaos scenarios against real `backstop` processes.
//!
//! - `backstop-chaos list`: the scenario × nemesis matrix.
//! - `backstop-chaos run --scenario NAME --seed S --duration 30m [--dir D]`: one run;
//!   writes `D/report.json`, prints a table, exits 1 if an invariant failed.
//!
//! The `backstop` binary comes from `BACKSTOP_BIN` or sits next to this one.

use std::path::PathBuf;
use std::time::Duration;

use backstop_chaos::scenario::{Nemesis, run, scenarios};
use clap::{Parser, Subcommand};

/// Arguments.
#[derive(Debug, Parser)]
#[command(
    name = "backstop-chaos",
    about = "Chaos runs against real backstop processes"
)]
struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print the scenario × nemesis matrix.
    List,
    /// Run one scenario.
    Run {
        /// Scenario name (see `list`).
        #[arg(long)]
        scenario: String,
        /// Seed of the fault schedule and the operations.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How long faults are injected (e.g. 45s, 30m).
        #[arg(long, value_parser = humantime::parse_duration, default_value = "45s")]
        duration: Duration,
        /// Working directory (default: a new temp dir, kept after the run).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Cmd::List => {
            // Nemeses down, scenarios across: 17 rows fit a terminal, 17 columns don't.
            let all = scenarios();
            print!("{:<24}", "nemesis \\ scenario");
            for s in &all {
                print!(" {:>15}", s.name);
            }
            println!();
            for n in Nemesis::ALL {
                print!("{:<24}", n.name());
                for s in &all {
                    print!(" {:>15}", if s.nemeses.contains(&n) { "x" } else { "" });
                }
                println!();
            }
            println!();
            for s in &all {
                println!("{:<16} {}", s.name, s.about);
            }
            Ok(())
        }
        Cmd::Run {
            scenario,
            seed,
            duration,
            dir,
        } => {
            let s = scenarios()
                .into_iter()
                .find(|s| s.name == scenario)
                .ok_or_else(|| {
                    anyhow::anyhow!("no scenario '{scenario}' (see backstop-chaos list)")
                })?;
            let dir = match dir {
                Some(d) => d,
                None => tempfile::Builder::new()
                    .prefix("backstop-chaos.")
                    .tempdir()?
                    .keep(),
            };
            let report = run(&s, seed, duration, &dir).await?;
            print!("{}", report.table());
            println!("report: {}", dir.join("report.json").display());
            if !report.passed() {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
