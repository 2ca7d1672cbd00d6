//! Command-line interface. Exit codes: 0 success, 1 pivot failed (bad
//! configuration, unreachable state file...), 2 wrong usage, 3 the command
//! ran but found a cluster that needs attention (or refused to act on it).

mod check;
mod check_gather;
mod failover;
pub mod haproxy_config;
mod history;
pub mod keepalived_config;
mod out;
mod rebuild;
mod rebuild_progress;
mod rejoin;
mod sandbox;
mod status;
mod switchover;

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
    /// Preflight: read the live servers and the configuration and list
    /// findings with stable codes (see the README); exit 3 if any is an
    /// error, 1 if pivot could not check. `--simulate` instead dry-runs the
    /// next failover: winner, skipped replicas, steps, hooks, data-loss bound.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this cluster.
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        json: bool,
        /// Dry-run the failover of the primary failing this way (default dead).
        #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "dead")]
        simulate: Option<check::SimulateMode>,
    },
    /// Fail over a cluster's primary now (refuses unsafe choices unless --force).
    Failover {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        cluster: String,
        /// Promote this replica (host:port) and no other.
        #[arg(long)]
        to: Option<pivot_core::InstanceKey>,
        /// Override what can be overridden: a live primary (fenced first), a
        /// candidate with errant GTIDs or a reason to skip it, a relay log that
        /// does not finish applying in time, data only a broken replica has.
        #[arg(long)]
        force: bool,
    },
    /// A planned switchover: hand the primary role to a replica (or the
    /// best one) with writes paused, not lost; the old primary becomes its
    /// replica. Refuses an unhealthy or lagging candidate, errant GTIDs, a
    /// long transaction on the primary, a recovery already running.
    Switchover {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        cluster: String,
        /// Promote this replica (host:port) and no other.
        #[arg(long)]
        to: Option<pivot_core::InstanceKey>,
        /// Run it in this process even if a `pivot run` daemon takes API
        /// changes (its routes then follow within a second).
        #[arg(long)]
        local: bool,
    },
    /// Make a fenced former primary a replica of the current primary (the
    /// same checks as automatic rejoin); refuses a diverged one.
    Rejoin {
        #[command(flatten)]
        config: ConfigArg,
        /// The former primary, host:port.
        instance: pivot_core::InstanceKey,
        /// Its cluster (default: the one whose fence list names it).
        #[arg(long)]
        cluster: Option<String>,
        /// For a quarantined instance whose extra transactions were saved:
        /// explains why pivot does not discard them and what to do instead.
        #[arg(long)]
        discard_extra: bool,
    },
    /// Recoveries with their steps, timings and outcomes; recent alerts.
    History {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        cluster: Option<String>,
        #[arg(long)]
        json: bool,
        /// How many recoveries and events (at least 1).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },
    /// Acknowledge the last recovery: allow automatic recovery again before
    /// the block period ends.
    Ack {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        cluster: String,
    },
    /// Print an HAProxy configuration (write and read backends) whose health
    /// checks ask pivot who is primary.
    HaproxyConfig {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        cluster: String,
        /// Where HAProxy's write frontend listens.
        #[arg(long, default_value = "127.0.0.1:3306")]
        write_bind: std::net::SocketAddr,
        /// Where HAProxy's read frontend listens.
        #[arg(long, default_value = "127.0.0.1:3307")]
        read_bind: std::net::SocketAddr,
    },
    /// Run on a database host: holds the virtual IP while pivot's lease
    /// lasts, serves health checks of its instance; `check-primary` for
    /// keepalived.
    Agent(crate::agent::AgentArgs),
    /// Print a keepalived configuration whose only check asks the local
    /// `pivot agent`, so VRRP only follows pivot's primary.
    KeepalivedConfig {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long)]
        cluster: String,
        /// The agent's configuration on the database hosts.
        #[arg(long, default_value = "/etc/pivot/agent.toml")]
        agent_config: PathBuf,
        /// The pivot binary on the database hosts (default: this one).
        #[arg(long)]
        pivot: Option<PathBuf>,
        /// VRRP's virtual_router_id, 1 to 255 (default: from the cluster's name).
        #[arg(long)]
        router_id: Option<u8>,
    },
    /// Rebuild a replica (a quarantined former primary, a broken replica)
    /// from a physical backup of another replica, through the agents; the
    /// primary is never touched.
    Rebuild {
        #[command(flatten)]
        config: ConfigArg,
        /// The instance to rebuild (host:port).
        target: pivot_core::InstanceKey,
        /// Its cluster (default: the only one, or the one that lists it).
        #[arg(long)]
        cluster: Option<String>,
        /// The donor replica (default: the most up-to-date healthy replica
        /// that is not the only promotion candidate).
        #[arg(long)]
        from: Option<pivot_core::InstanceKey>,
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
        (Command::Agent(a), 0) if a.command.is_none() => "info",
        _ => "warn",
    };
    // hickory-server logs every DNS query at info: a query flood must not
    // become a log flood.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{default},mysql_async=warn,hickory_server=warn"))
    });
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
        Command::Check { config, cluster, json, simulate } => {
            check::run(&config.config, cluster.as_deref(), json, simulate).await
        }
        Command::Failover { config, cluster, to, force } => failover::run(&config.config, &cluster, to, force).await,
        Command::Switchover { config, cluster, to, local } => {
            switchover::run(&config.config, &cluster, to, local).await
        }
        Command::History { config, cluster, json, limit } => {
            history::history(&config.config, cluster.as_deref(), json, limit as usize)
        }
        Command::Ack { config, cluster } => history::ack(&config.config, &cluster),
        Command::Rejoin { config, instance, cluster, discard_extra } => {
            rejoin::run(&config.config, &instance, cluster.as_deref(), discard_extra).await
        }
        Command::HaproxyConfig { config, cluster, write_bind, read_bind } => {
            haproxy_config::run(&config.config, &cluster, write_bind, read_bind).await
        }
        Command::Agent(args) => crate::agent::cli(args, shutdown_signal()).await,
        Command::KeepalivedConfig { config, cluster, agent_config, pivot, router_id } => {
            keepalived_config::run(&config.config, &cluster, &agent_config, pivot, router_id)
        }
        Command::Rebuild { config, target, cluster, from } => {
            rebuild::run(&config.config, target, cluster.as_deref(), from).await
        }
        Command::Sandbox(cmd) => sandbox::run(cmd).await,
    }
}

/// Discover the cluster and analyze it, as a command run once sees it. When
/// the primary does not answer, the replicas are probed again after the
/// confirm window: one reading cannot tell a silent replica from a live one.
/// `state`, if there is one, gives the fence list: a former primary pivot
/// keeps read-only is never taken for the primary.
pub async fn observe(
    c: &crate::config::ClusterConfig,
    state: Option<&dyn pivot_state::StateStore>,
) -> (pivot_core::ClusterView, pivot_core::ClusterAnalysis) {
    use crate::clock;
    let mut view = pivot_server::discover(
        &c.seeds,
        &c.credentials,
        c.probe_timeout,
        c.max_instances,
        c.detection.lag_threshold_s,
        clock::now,
    )
    .await;
    if let Some(hb) = &c.heartbeat {
        // One more round that reads the heartbeat table (the daemon writes it).
        let hb = pivot_server::HeartbeatProbe { table: hb.table.clone(), stale_after: hb.stale_after };
        let keys: Vec<pivot_core::InstanceKey> = view.keys().cloned().collect();
        for obs in pivot_server::probe_all_with_heartbeat(&keys, &c.credentials, c.probe_timeout, clock::now, &hb).await
        {
            view.apply(obs, c.detection.lag_threshold_s);
        }
    }
    if let Some(Ok(list)) = state.map(|s| s.fenced(&c.name)) {
        view.fenced = list.iter().filter_map(|f| f.instance.parse().ok()).collect();
    }
    let analysis = pivot_core::analyze(&view, &c.detection, clock::now());
    let primary_down = analysis.primary.as_ref().and_then(|p| view.get(p)).is_some_and(|r| !r.reachable());
    if !primary_down || analysis.code.failover_worthy() {
        return (view, analysis);
    }
    tokio::time::sleep(std::time::Duration::from_millis(c.detection.confirm_window_ms + 100)).await;
    let keys: Vec<pivot_core::InstanceKey> = view.keys().cloned().collect();
    for obs in pivot_server::probe_all(&keys, &c.credentials, c.probe_timeout, clock::now).await {
        view.apply(obs, c.detection.lag_threshold_s);
    }
    let analysis = pivot_core::analyze(&view, &c.detection, clock::now());
    (view, analysis)
}

/// The cluster named `name`, or an error listing the configured ones.
pub fn cluster_of<'a>(
    config: &'a crate::config::Config,
    name: &str,
) -> anyhow::Result<&'a crate::config::ClusterConfig> {
    config.cluster(name).ok_or_else(|| {
        let known: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
        anyhow::anyhow!("no cluster `{name}` in {}; configured: {}", config.path.display(), known.join(", "))
    })
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
