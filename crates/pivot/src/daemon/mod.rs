//! `pivot run`: watch every configured cluster, serve HTTP, act on failures.

mod alerts;
mod crash_watch;
mod discovery;
mod monitor;
mod prober;

use crate::config::Config;
use crate::http::{self, ClusterHandle};
use crate::recovery::{owner, RecoveryEnv};
use monitor::Monitor;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// Probes running at once across all clusters.
const MAX_CONCURRENT_PROBES: usize = 256;

/// Run until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let state = pivot_state::open(&config.pivot.state)
        .map_err(|e| anyhow::anyhow!("{e} (the `state` setting in [pivot] of {})", config.path.display()))?;
    let owner = owner::this_process("pivot run");
    let limit = Arc::new(Semaphore::new(MAX_CONCURRENT_PROBES));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut handles = Vec::new();
    let mut tasks = Vec::new();
    for cluster in &config.clusters {
        let env = RecoveryEnv { cluster: Arc::new(cluster.clone()), state: state.clone(), owner: owner.clone() };
        let (monitor, snapshots) = Monitor::new(env, limit.clone());
        handles.push(ClusterHandle { name: cluster.name.clone(), snapshots });
        tasks.push(tokio::spawn(monitor.run(stop_rx.clone())));
    }
    let server = match config.pivot.http {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (the `http` setting in [pivot]): {e}"))?;
            tracing::info!(%addr, "HTTP API, metrics and health checks listening");
            let mut stop = stop_rx.clone();
            let app = http::router(http::AppState { clusters: Arc::new(handles) });
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
    shutdown.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let mut unfinished = Vec::new();
    for t in tasks {
        match t.await {
            Ok(exit) => unfinished.extend(exit.unfinished),
            Err(e) => unfinished.push(format!("a cluster monitor failed: {e}")),
        }
    }
    if let Some(s) = server {
        let _ = s.await;
    }
    if !unfinished.is_empty() {
        anyhow::bail!("stopped with work unfinished: {}", unfinished.join("; "));
    }
    Ok(())
}
