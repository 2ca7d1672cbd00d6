//! `pivot-bench`: benchmarks on real sandboxes. Build with `--release`; the
//! `pivot` binary is taken from the same directory as this one.

mod failover;
mod probe;
mod proxy;
mod routes;
mod simulate;
mod stats;
mod support;
mod switchover;
mod watch;

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
    /// Time from a primary failure to each stage of the failover, under write load.
    Failover {
        #[arg(long, default_value_t = 10)]
        trials: usize,
        /// kill (SIGKILL), stop (SIGSTOP, resumed later), both, or isolate
        /// (the primary cut off from everyone in its network namespace,
        /// healed later; needs root).
        #[arg(long, default_value = "both")]
        fault: String,
        /// When a hung primary is resumed, after the fault.
        #[arg(long, default_value = "10s")]
        resume_after: String,
        /// Configure `pivot sandbox stonith` as the fence hook: the old
        /// primary is killed during the failover and never resumes.
        #[arg(long)]
        stonith: bool,
        /// Asynchronous replication instead of semi-sync: acknowledged
        /// writes a crash takes with it are counted as lost.
        #[arg(long)]
        r#async: bool,
    },
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
    /// sysbench directly, through pivot's write port and through HAProxy;
    /// then kill -9 of the primary under a writer that only knows the write port.
    Proxy {
        /// Seconds per sysbench run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Runs of each target per workload and thread count (mean printed).
        #[arg(long, default_value_t = 2)]
        rounds: usize,
        /// Trials of kill -9 under the proxy (0: none).
        #[arg(long, default_value_t = 20)]
        trials: usize,
        /// Only the kill trials.
        #[arg(long)]
        skip_throughput: bool,
        /// The proxy's `threads` setting for the throughput runs.
        #[arg(long, default_value_t = 1)]
        proxy_threads: usize,
    },
    /// kill -9 of the primary under a client that finds the primary only
    /// through one route: time to its first write on the new primary.
    Routes {
        /// Trials per route.
        #[arg(long, default_value_t = 10)]
        trials: usize,
        /// Comma-separated: proxy, dns, etcd, vip. vip (the address `pivot
        /// agent` moves; nodes and client in network namespaces) needs root,
        /// so it is not in the default: ask for it, e.g. `--routes vip`.
        #[arg(long, default_value = "proxy,dns,etcd")]
        routes: String,
    },
    /// Planned switchovers back and forth under writers (through pivot's
    /// proxy, and following the writable server): the write pause of each.
    Switchover {
        #[arg(long, default_value_t = 20)]
        switchovers: usize,
        /// Asynchronous replication instead of semi-sync.
        #[arg(long)]
        r#async: bool,
    },
    /// Alert latency (a replica's 1062 to the webhook, and its fix), the
    /// heartbeat lag against the time since an IO thread stopped, and the
    /// wall time of `pivot check` and `pivot check --simulate dead`.
    Watch {
        #[arg(long, default_value_t = 10)]
        trials: usize,
    },
    /// Random seeds through the deterministic simulator (no servers): seeds
    /// per second, faults injected, simulated recovery times; fails on a
    /// seed that breaks an invariant, printing it.
    Simulate {
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Also reach the triggers of known findings (see pivot-sim's tests/findings.rs).
        #[arg(long)]
        expose_known: bool,
    },
}

pub fn pivot_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name("pivot");
    anyhow::ensure!(p.exists(), "{} not found: build both with `cargo build --release --bins`", p.display());
    Ok(p)
}

fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| anyhow::anyhow!("`{s}` is not a duration like 10s or 500ms"))?;
    Ok(match unit {
        "ms" => std::time::Duration::from_millis(n),
        "s" | "" => std::time::Duration::from_secs(n),
        _ => anyhow::bail!("`{s}` is not a duration like 10s or 500ms"),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    // On Ctrl-C or SIGTERM the benchmark future is dropped, and with it the
    // sandboxes and pivot processes it started (their guards clean up).
    tokio::select! {
        r = bench(Cli::parse().command) => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted: sandboxes stopped"),
        _ = term.recv() => anyhow::bail!("terminated: sandboxes stopped"),
    }
}

async fn bench(command: Bench) -> anyhow::Result<()> {
    match command {
        Bench::Probe { probes, seconds, poll_interval } => probe::run(probes, seconds, &poll_interval).await,
        Bench::Proxy { seconds, rounds, trials, skip_throughput, proxy_threads } => {
            proxy::run(seconds, rounds, trials, skip_throughput, proxy_threads).await
        }
        Bench::Routes { trials, routes } => {
            let routes = routes.split(',').map(routes::Route::parse).collect::<anyhow::Result<Vec<_>>>()?;
            routes::run(&routes, trials).await
        }
        Bench::Switchover { switchovers, r#async } => switchover::run(switchovers, !r#async).await,
        Bench::Watch { trials } => watch::run(trials).await,
        Bench::Simulate { seeds, from, expose_known } => {
            tokio::task::spawn_blocking(move || simulate::run(seeds, from, expose_known)).await?
        }
        Bench::Failover { trials, fault, resume_after, stonith, r#async } => {
            let faults = match fault.as_str() {
                "kill" => vec![failover::Fault::Kill],
                "stop" => vec![failover::Fault::Stop],
                "isolate" => vec![failover::Fault::Isolate],
                "both" => vec![failover::Fault::Kill, failover::Fault::Stop],
                other => anyhow::bail!("--fault {other}: use kill, stop, both or isolate"),
            };
            let resume_after = parse_duration(&resume_after)?;
            let setup = failover::Setup { resume_after, stonith, semi_sync: !r#async };
            failover::run(trials, &faults, setup).await
        }
    }
}
