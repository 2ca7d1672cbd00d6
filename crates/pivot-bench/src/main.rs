//! `pivot-bench`: benchmarks on real sandboxes. Build with `--release`; the
//! `pivot` binary is taken from the same directory as this one.

mod probe;
mod stats;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(about = "pivot benchmarks on real MariaDB sandboxes; they print figures")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Probe round trip, and CPU/memory of `pivot run` watching a 3-node sandbox.
    Probe {
        /// Probes per node for the round-trip figures.
        #[arg(long, default_value_t = 2000)]
        probes: usize,
        /// How long to watch `pivot run` for CPU and memory.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long, default_value = "250ms")]
        poll_interval: String,
    },
}

pub fn pivot_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name("pivot");
    anyhow::ensure!(p.exists(), "{} not found: build both with `cargo build --release --bins`", p.display());
    Ok(p)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Bench::Probe { probes, seconds, poll_interval } => probe::run(probes, seconds, &poll_interval).await,
    }
}
