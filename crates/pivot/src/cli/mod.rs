//! Command-line interface. Exit codes: 0 success, 1 pivot failed (bad
//! configuration, unreachable state file...), 2 wrong usage, 3 the command
//! ran but found a cluster that needs attention (or refused to act on it).

mod sandbox;
mod status;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_ATTENTION: u8 = 3;

#[derive(Parser, Debug)]
#[command(name = "pivot", version, about = "Failover manager for MySQL/MariaDB replication clusters")]
pub struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArg {
    /// The configuration file.
    #[arg(long, short, env = "PIVOT_CONFIG", default_value = "pivot.toml")]
    pub config: PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon: watch the clusters, serve HTTP, recover failures.
    Run {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Show each cluster as a tree: roles, lag, threads, GTIDs, problems.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// Print JSON (the same model as GET /api/clusters).
        #[arg(long)]
        json: bool,
    },
    /// A throwaway local MariaDB cluster, for trying pivot and for tests.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
}

pub fn init_logging(cli: &Cli) {
    let default = match (&cli.command, cli.verbose) {
        (_, 2..) => "trace",
        (_, 1) => "debug",
        (Command::Run { .. }, 0) => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},mysql_async=warn")));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}

pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run { config } => {
            let config = crate::config::Config::load(&config.config)?;
            crate::daemon::run(config, shutdown_signal()).await?;
            Ok(ExitCode::from(EXIT_OK))
        }
        Command::Status { config, cluster, json } => status::run(&config.config, cluster.as_deref(), json).await,
        Command::Sandbox(cmd) => sandbox::run(cmd).await,
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
