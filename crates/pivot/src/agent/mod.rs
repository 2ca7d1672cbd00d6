//! `pivot agent`: a small daemon on each database host. It takes commands
//! only from pivot (every request carries the token of a file only root
//! reads), puts the cluster's virtual IP up on its interface while it
//! holds a lease pivot renews, takes it down when the lease ends or pivot
//! releases it, and answers health checks for its local instance in
//! Patroni's paths from the last route table pivot sent.
//!
//! `pivot agent check-primary` asks the local agent whether its instance is
//! the primary of the current epoch right now (exit 0) or not (exit 1 and
//! the reason): keepalived's `vrrp_script` (`pivot keepalived-config`).
//!
//! * [`core`]: what the agent decides (pure, table-tested);
//! * [`net`]: the address through `ip`, gratuitous ARP;
//! * [`server`]: the HTTP port, the lease's end;
//! * [`rebuild`]: rebuilding the instance from a replica's backup, serving one.

pub mod core;
pub mod net;
pub mod rebuild;
pub mod server;

use crate::config::AgentConfig;
use crate::routes::vip::client;
use clap::Subcommand;
use pivot_core::InstanceKey;
use server::{Agent, Inner};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// `pivot agent [check-primary] --config agent.toml`.
#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    /// The agent's configuration file.
    #[arg(long, short, global = true, env = "PIVOT_AGENT_CONFIG", default_value = "/etc/pivot/agent.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Option<AgentCommand>,
}

#[derive(Subcommand, Debug)]
pub enum AgentCommand {
    /// Exit 0 only if the local instance is pivot's current primary (its
    /// agent holds the lease, pivot's table is fresh); else exit 1 with the
    /// reason. For keepalived's vrrp_script.
    CheckPrimary,
}

/// How long check-primary waits for the agent (keepalived's script
/// timeout is a second).
const CHECK_TIMEOUT: Duration = Duration::from_millis(800);

pub async fn cli(
    args: AgentArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    let cfg = AgentConfig::load(&args.config)?;
    match args.command {
        None => {
            run(cfg, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
        Some(AgentCommand::CheckPrimary) => match check_primary(&cfg).await {
            Ok(why) => {
                println!("primary: {why}");
                Ok(ExitCode::SUCCESS)
            }
            Err(why) => {
                eprintln!("not primary: {why}");
                Ok(ExitCode::from(1))
            }
        },
    }
}

/// Serve until `shutdown`; the address this agent put up goes with it.
pub async fn run(
    cfg: AgentConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (`listen` in {}): {e}", cfg.listen, cfg.path.display()))?;
    let boot = format!("{}-{}", std::process::id(), server::clock_ms());
    tracing::info!(listen = %cfg.listen, instance = %cfg.instance, %boot, "pivot agent listening (commands need the token)");
    let agent = Arc::new(Agent {
        inner: tokio::sync::Mutex::new(Inner { core: core::AgentCore::new(boot, cfg.instance.clone()), placed: None }),
        cfg,
    });
    let expiry = tokio::spawn(server::expire(agent.clone()));
    let rebuild = Arc::new(rebuild::RebuildAgent::new(agent.cfg.clone()));
    let app = server::router(agent.clone()).merge(rebuild::router(rebuild));
    let served = axum::serve(listener, app).with_graceful_shutdown(shutdown).await;
    expiry.abort();
    // An agent that is not running holds nothing.
    let mut inner = agent.inner.lock().await;
    inner.core.lease = None;
    match agent.take_down(&mut inner, None).await {
        Ok(done) if !done.is_empty() => tracing::info!("stopping: {}", done.join(", ")),
        Ok(_) => {}
        Err(e) => tracing::error!("stopping, but the address could not be taken down (its lifetime ends it): {e}"),
    }
    served.map_err(|e| anyhow::anyhow!("the agent's HTTP server failed: {e}"))
}

/// Where to reach the agent on this host: its listen address, the
/// loopback address when it listens on all.
fn local(listen: SocketAddr) -> InstanceKey {
    let ip = match listen.ip() {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    InstanceKey::new(ip.to_string(), listen.port())
}

/// `GET /primary` on the local agent: `Ok` with its answer when 200.
pub async fn check_primary(cfg: &AgentConfig) -> Result<String, String> {
    let at = local(cfg.listen);
    let ask = client::request(&at, &cfg.token, hyper::Method::GET, "/primary", None);
    let (status, body) = match tokio::time::timeout(CHECK_TIMEOUT, ask).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(format!("the agent at {at} does not answer: {e}")),
        Err(_) => return Err(format!("the agent at {at} did not answer within {CHECK_TIMEOUT:?}")),
    };
    let text = String::from_utf8_lossy(&body).trim().to_string();
    if status == 200 {
        Ok(text)
    } else {
        Err(format!("{text} (HTTP {status})"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_primary_asks_the_loopback_when_the_agent_listens_everywhere() {
        assert_eq!(super::local("0.0.0.0:9190".parse().unwrap()).to_string(), "127.0.0.1:9190");
        assert_eq!(super::local("[::]:9190".parse().unwrap()).to_string(), "[::1]:9190");
        assert_eq!(super::local("10.0.0.1:9190".parse().unwrap()).to_string(), "10.0.0.1:9190");
    }
}
