//! The built-in proxy: per cluster, a write port that forwards to the
//! primary of the current epoch only, and a read port that balances over
//! healthy replicas (least connections), falling back to the primary.
//!
//! It never decides who is primary: it follows the cluster's [`RouteHub`].
//! When a recovery starts, connections to the old primary are closed at
//! once; connections that arrive meanwhile are held (bounded queue, bounded
//! wait) and released to the new primary the moment its epoch is published.
//!
//! * [`listener`]: accepting, limits, choosing a backend, holding;
//! * [`forward`]: moving bytes (large buffers allocated once per
//!   connection, never per packet), idle timeout, cut-off on route change;
//! * [`stats`]: counters per backend and of the hold queue, for `/metrics`;
//! * [`mysql`]: the write port's protocol mode (`mode = "mysql"`), which
//!   moves idle sessions to the new primary instead of cutting them.
//!
//! The proxy runs on its own thread and runtime: a busy proxy never delays
//! the probes and the failover.

mod forward;
mod listener;
pub mod mysql;
pub mod stats;
#[cfg(test)]
mod tests;

use crate::config::ProxyConfig;
use crate::routes::RouteHub;
use listener::Port;
use pivot_server::Credentials;
use stats::ProxyStats;
use std::sync::Arc;

/// A running proxy; dropping it does not stop it: call [`ProxyHandle::stop`].
pub struct ProxyHandle {
    pub stats: Arc<ProxyStats>,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProxyHandle {
    /// Stop accepting, close every connection, wait for the thread.
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Bind the configured ports (an error names the setting) and serve them.
pub fn start(cluster: &str, creds: Credentials, cfg: ProxyConfig, hub: RouteHub) -> anyhow::Result<ProxyHandle> {
    let mut ports = Vec::new();
    for (addr, kind) in [(cfg.write, Port::Write), (cfg.read, Port::Read)] {
        let Some(addr) = addr else { continue };
        let listener = std::net::TcpListener::bind(addr).map_err(|e| {
            anyhow::anyhow!("cannot listen on {addr} (the proxy {} setting of cluster `{cluster}`): {e}", kind.name())
        })?;
        listener.set_nonblocking(true)?;
        ports.push((listener, kind));
    }
    let stats = Arc::new(ProxyStats::default());
    hub.attach_proxy(stats.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (name, st) = (cluster.to_string(), stats.clone());
    let thread = std::thread::Builder::new().name(format!("proxy-{cluster}")).spawn(move || {
        let rt = if cfg.threads == 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(cfg.threads)
                .thread_name(format!("proxy-{name}"))
                .enable_all()
                .build()
        }
        .expect("a proxy runtime");
        rt.block_on(listener::serve(name, creds, cfg, hub, st, ports, stopped));
    })?;
    Ok(ProxyHandle { stats, stop, thread: Some(thread) })
}
