//! `pivot run`: watch every configured cluster, serve HTTP, act on failures.

mod alerts;
mod crash_watch;
mod heartbeat;
mod monitor;
mod prober;
pub mod switchover;
pub mod webhook;

use crate::config::Config;
use crate::http::{self, ClusterHandle};
use crate::recovery::{owner, RecoveryEnv};
use crate::routes::RouteHub;
use monitor::Monitor;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// Probes running at once across all clusters.
const MAX_CONCURRENT_PROBES: usize = 256;

/// Descriptors kept for pivot's own work (probes, a failover's sessions,
/// the state file, HTTP, DNS) beyond what the proxies may use.
const OWN_DESCRIPTORS: u64 = 512;
/// The soft limit is raised to the hard one, but not past this (an
/// unlimited hard limit cannot be set as the soft one).
const MAX_DESCRIPTORS: u64 = 1 << 20;

/// Raise the soft limit on open descriptors to the hard one: service
/// managers start daemons with 1024 (systemd: 1024 soft, 524288 hard), and a
/// proxy's clients or HTTP clients holding that many would leave a failover
/// unable to open a connection. Says so when the proxies' limits do not fit.
fn raise_descriptor_limit(config: &Config) {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit(2) writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        tracing::warn!("cannot read the limit on open files: {}", std::io::Error::last_os_error());
        return;
    }
    let target = l.rlim_max.min(MAX_DESCRIPTORS);
    if l.rlim_cur < target {
        let raised = libc::rlimit { rlim_cur: target, rlim_max: l.rlim_max };
        // SAFETY: setrlimit(2) reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!("limit on open files raised from {} to {target}", l.rlim_cur);
            l = raised;
        } else {
            tracing::warn!(
                "cannot raise the limit on open files from {} to {target}: {}",
                l.rlim_cur,
                std::io::Error::last_os_error()
            );
        }
    }
    // Every proxied connection holds two descriptors.
    let proxied: u64 =
        config.clusters.iter().filter_map(|c| c.proxy.as_ref()).map(|p| 2 * p.max_connections as u64).sum();
    if proxied > 0 && proxied + OWN_DESCRIPTORS > l.rlim_cur {
        tracing::warn!(
            "the limit on open files ({}) is below what the proxies' max_connections may use ({proxied}) plus \
             {OWN_DESCRIPTORS} for pivot itself: raise it (LimitNOFILE= for systemd) or lower max_connections, or a \
             busy proxy can leave a failover without a connection",
            l.rlim_cur
        );
    }
}

/// Run until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    raise_descriptor_limit(&config);
    let state = pivot_state::open(&config.pivot.state)
        .map_err(|e| anyhow::anyhow!("{e} (the `state` setting in [pivot] of {})", config.path.display()))?;
    let owner = owner::this_process("pivot run");
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::new();
    // Each monitor's output carries its cluster's name, so that one that
    // stops (or panics) can be named.
    let mut tasks = tokio::task::JoinSet::new();
    let mut names = std::collections::HashMap::new();
    // Each cluster's KV routes (etcd, Consul) follow its route table.
    let mut kv_followers = Vec::new();
    // The proxies bind first: a port in use stops pivot before it watches anything.
    let mut hubs = Vec::new();
    let mut proxies = Vec::new();
    let webhook = config.pivot.webhook.clone().map(webhook::Webhook::start);
    for cluster in &config.clusters {
        let routes = RouteHub::new();
        let proxy = match &cluster.proxy {
            Some(p) => {
                Some(crate::proxy::start(&cluster.name, cluster.credentials.clone(), p.clone(), routes.clone())?)
            }
            None => None,
        };
        hubs.push((routes, proxy.as_ref().map(|p| p.stats.clone())));
        proxies.extend(proxy);
    }
    for (cluster, (routes, proxy)) in config.clusters.iter().zip(hubs) {
        let env = RecoveryEnv {
            cluster: Arc::new(cluster.clone()),
            state: state.clone(),
            owner: owner.clone(),
            routes: Some(routes.clone()),
        };
        let (asks, ask_rx) = switchover::channel();
        let (monitor, snapshots) = Monitor::new(env, limit.clone(), ask_rx, webhook.clone());
        kv_followers.extend(crate::routes::kv::reconcile::spawn_all(cluster, &routes, stop_rx.clone()));
        // The virtual IP's lease, renewed on the primary's agent.
        kv_followers.extend(crate::routes::vip::follow::spawn(cluster, &routes, stop_rx.clone()));
        let rebuild_agents = crate::http::rebuild::RebuildAgents::of(cluster);
        handles.push(ClusterHandle {
            name: cluster.name.clone(),
            snapshots,
            routes,
            proxy,
            switchover: asks,
            rebuild_agents,
        });
        let task = tasks.spawn(monitor.run(stop_rx.clone()));
        names.insert(task.id(), cluster.name.clone());
    }
    // Start-up check, off the monitors' path: a missing privilege is logged
    // now rather than met in the middle of a failover.
    let privilege_checks: Vec<_> =
        config.clusters.iter().map(|c| tokio::spawn(log_missing_privileges(Arc::new(c.clone())))).collect();
    // DNS for the routes ([pivot.dns]), answered from the hubs at query time.
    let dns = match &config.pivot.dns {
        Some(d) => {
            let hubs = handles.iter().map(|h| (h.name.clone(), h.routes.clone())).collect();
            let dns = crate::routes::dns::DnsServer::start(d, hubs).await.map_err(|e| {
                anyhow::anyhow!("cannot serve DNS on {} (the `listen` setting in [pivot.dns]): {e}", d.listen)
            })?;
            tracing::info!(addr = %dns.local_addr(), domain = %d.domain, "DNS for the routes listening (UDP and TCP)");
            Some(dns)
        }
        None => None,
    };
    let server = match config.pivot.http {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (the `http` setting in [pivot]): {e}"))?;
            tracing::info!(%addr, "HTTP API, metrics and health checks listening");
            let mut stop = stop_rx.clone();
            let app = http::router(http::AppState {
                clusters: Arc::new(handles),
                state: state.clone(),
                api_token: config.pivot.api_token.clone(),
                webhook: webhook.as_ref().map(webhook::Webhook::stats),
            });
            Some(tokio::spawn(async move {
                let graceful = async move {
                    let _ = stop.changed().await;
                };
                if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(graceful).await {
                    tracing::error!("HTTP server failed: {e}");
                }
            }))
        }
        None => None,
    };
    // Crash-only: a cluster's monitor that ends on its own (a panic in its
    // control loop) must not leave that cluster unwatched while the process
    // looks alive. pivot says so and exits non-zero for the service manager,
    // whose restart resumes any recovery from the state file.
    let mut failed_monitor = None;
    tokio::select! {
        _ = shutdown => {}
        Some(ended) = tasks.join_next_with_id() => {
            let (id, why) = match ended {
                Ok((id, exit)) => (id, format!("it ended: {:?}", exit.unfinished)),
                Err(e) => (e.id(), format!("it failed: {e}")),
            };
            let name = names.get(&id).cloned().unwrap_or_default();
            tracing::error!("ALERT: the control loop of cluster `{name}` stopped unexpectedly ({why}): pivot exits so that its service manager restarts it");
            failed_monitor = Some(format!("{name}: {why}"));
        }
    }
    tracing::info!("shutting down");
    privilege_checks.iter().for_each(tokio::task::JoinHandle::abort);
    kv_followers.iter().for_each(tokio::task::JoinHandle::abort);
    let _ = stop_tx.send(true);
    let mut unfinished = Vec::new();
    while let Some(ended) = tasks.join_next().await {
        match ended {
            Ok(exit) => unfinished.extend(exit.unfinished),
            Err(e) => unfinished.push(format!("a cluster monitor failed: {e}")),
        }
    }
    if let Some(s) = server {
        let _ = s.await;
    }
    if let Some(d) = dns {
        d.stop().await;
    }
    for p in proxies {
        tokio::task::block_in_place(|| p.stop());
    }
    if let Some(name) = failed_monitor {
        anyhow::bail!("the control loop of cluster {name} stopped unexpectedly; {}", unfinished.join("; "));
    }
    if !unfinished.is_empty() {
        anyhow::bail!("stopped with work unfinished: {}", unfinished.join("; "));
    }
    Ok(())
}

/// Discover the cluster once and log an error for each instance where
/// pivot's account lacks a privilege a failover needs.
async fn log_missing_privileges(c: Arc<crate::config::ClusterConfig>) {
    let view = pivot_server::discover(
        &c.seeds,
        &c.credentials,
        c.probe_timeout,
        c.max_instances,
        c.detection.lag_threshold_s,
        crate::clock::now,
    )
    .await;
    // Reachable, or failing a query (perhaps for want of a privilege).
    let logged_in = |r: &pivot_core::view::InstanceRecord| {
        r.reachable() || r.latest.failure().is_some_and(|f| f.kind == pivot_core::observation::FailureKind::Query)
    };
    let keys: Vec<_> = view.keys().filter(|k| view.get(k).is_some_and(logged_in)).cloned().collect();
    for key in keys {
        match pivot_server::check_privileges(&key, &c.credentials, c.probe_timeout).await {
            Ok(report) if report.is_complete() => tracing::debug!(cluster = %c.name, "{key}: privileges complete"),
            Ok(report) => tracing::error!(cluster = %c.name, "{key}: user {}: {report}", c.credentials.user),
            Err(e) => tracing::warn!(cluster = %c.name, "{key}: could not check privileges: {e}"),
        }
    }
}
