//! Accepting client connections, choosing their backend, holding them
//! while there is none.

use super::forward::{forward, End};
use super::mysql::relay;
use super::stats::ProxyStats;
use crate::config::{ProxyConfig, ProxyMode};
use crate::routes::RouteHub;
use pivot_core::routes::RouteTable;
use pivot_core::InstanceKey;
use pivot_server::Credentials;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Write,
    Read,
}

impl Port {
    pub fn name(self) -> &'static str {
        match self {
            Port::Write => "write",
            Port::Read => "read",
        }
    }

    fn keeps(self, table: &RouteTable, backend: &InstanceKey) -> bool {
        match self {
            Port::Write => table.keeps_write(backend),
            Port::Read => table.keeps_read(backend),
        }
    }
}

/// TCP keepalive on both sides: a peer that vanished is noticed.
const KEEPALIVE_TIME: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

struct Ctx {
    cluster: String,
    /// pivot's account (protocol mode reads a moving client's stored hash).
    creds: Credentials,
    cfg: ProxyConfig,
    hub: RouteHub,
    stats: Arc<ProxyStats>,
    limit: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

pub async fn serve(
    cluster: String,
    creds: Credentials,
    cfg: ProxyConfig,
    hub: RouteHub,
    stats: Arc<ProxyStats>,
    ports: Vec<(std::net::TcpListener, Port)>,
    stop: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(cfg.max_connections));
    let ctx = Arc::new(Ctx { cluster, creds, cfg, hub, stats, limit, stop: stop.clone() });
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, port) in ports {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(cluster = %ctx.cluster, "proxy {} port: {e}", port.name());
                continue;
            }
        };
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(cluster = %ctx.cluster, %addr, "proxy {} port listening", port.name());
        }
        tasks.spawn(accept_loop(listener, port, ctx.clone()));
    }
    let mut stop = stop;
    let _ = stop.wait_for(|s| *s).await;
    tasks.shutdown().await;
}

async fn accept_loop(listener: TcpListener, port: Port, ctx: Arc<Ctx>) {
    let mut sessions = tokio::task::JoinSet::new();
    let mut stop = ctx.stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
            Some(_) = sessions.join_next() => continue,
        };
        let (client, _) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, say: back off a little, never spin.
                tracing::warn!(cluster = %ctx.cluster, "proxy {} port: accept failed: {e}", port.name());
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = ctx.limit.clone().try_acquire_owned() else {
            ctx.stats.refused.fetch_add(1, Relaxed);
            continue; // dropped: closed at once
        };
        let ctx = ctx.clone();
        sessions.spawn(async move {
            ctx.stats.clients.fetch_add(1, Relaxed);
            session(client, port, &ctx).await;
            ctx.stats.clients.fetch_sub(1, Relaxed);
            drop(permit);
        });
    }
    sessions.shutdown().await;
}

fn tune(s: &TcpStream) {
    let _ = s.set_nodelay(true);
    let ka = socket2::TcpKeepalive::new().with_time(KEEPALIVE_TIME).with_interval(KEEPALIVE_INTERVAL);
    let _ = socket2::SockRef::from(s).set_tcp_keepalive(&ka);
}

/// One client connection, from accept to close.
async fn session(mut client: TcpStream, port: Port, ctx: &Ctx) {
    tune(&client);
    let deadline = Instant::now() + ctx.cfg.hold_timeout;
    loop {
        let Some((key, mut backend)) = choose(port, ctx, deadline, &client).await else { return };
        if port == Port::Write && ctx.cfg.mode == ProxyMode::Mysql {
            let env = relay::Env {
                cluster: &ctx.cluster,
                cfg: &ctx.cfg,
                hub: &ctx.hub,
                stats: &ctx.stats,
                creds: &ctx.creds,
                stop: ctx.stop.clone(),
            };
            match relay::serve(client, key, backend, &env).await {
                relay::Outcome::Retry(c) if Instant::now() < deadline => {
                    client = c;
                    continue;
                }
                _ => return,
            }
        }
        let stats = ctx.stats.backend(port.name(), &key);
        stats.total.fetch_add(1, Relaxed);
        stats.active.fetch_add(1, Relaxed);
        let routes = ctx.hub.subscribe();
        let keeps = |t: &RouteTable| port.keeps(t, &key);
        let (end, moved) =
            forward(&mut client, &mut backend, &stats, routes, keeps, ctx.cfg.idle_timeout, ctx.stop.clone()).await;
        stats.active.fetch_sub(1, Relaxed);
        match end {
            End::Closed { error } => {
                if error {
                    stats.errors.fetch_add(1, Relaxed);
                }
            }
            // Nothing passed yet (a hung primary that accepted the
            // connection but never greeted): the client has seen nothing,
            // so it goes to the new backend as if it had just connected.
            End::Cut if moved.to_client == 0 && moved.to_backend == 0 && Instant::now() < deadline => {
                stats.cut.fetch_add(1, Relaxed);
                continue;
            }
            End::Cut => {
                stats.cut.fetch_add(1, Relaxed);
            }
            End::Idle | End::Stopped => {}
        }
        return;
    }
}

/// Counts a connection in the hold queue while it waits.
struct Held<'a>(&'a ProxyStats);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Relaxed);
    }
}

/// A held connection whose targets refused tries them again after this,
/// doubling up to [`RETRY_MAX`], even if the table does not change: a
/// refusal can be passing (a restart, a full accept queue) without pivot's
/// probes ever noticing.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);

/// The backend for a new connection, connected. With none (a recovery
/// runs, no epoch yet, no replica to read from, every target refuses), the
/// connection waits in the hold queue for the routes to change or for a
/// target to accept, until `deadline`.
async fn choose(port: Port, ctx: &Ctx, deadline: Instant, client: &TcpStream) -> Option<(InstanceKey, TcpStream)> {
    let mut routes = ctx.hub.subscribe();
    let mut held: Option<Held> = None;
    let mut retry = RETRY_MIN;
    // Whether a held client's going away is watched (it is until it sends
    // a byte before any server spoke: then only the routes decide).
    let mut watch_client = true;
    'choose: loop {
        let targets = {
            let table = routes.borrow_and_update();
            targets(port, &table, ctx)
        };
        for key in &targets {
            match connect_while_routed(port, key, &mut routes, ctx.cfg.connect_timeout).await {
                Some(Ok(s)) => return Some((key.clone(), s)),
                Some(Err(e)) => {
                    ctx.stats.backend(port.name(), key).errors.fetch_add(1, Relaxed);
                    tracing::debug!(cluster = %ctx.cluster, "proxy {} port: cannot connect to {key}: {e}", port.name());
                }
                // It left the route while connecting: choose again, at once.
                None => continue 'choose,
            }
        }
        if held.is_none() {
            if ctx.stats.held.load(Relaxed) >= ctx.cfg.hold_queue as u64 {
                ctx.stats.refused.fetch_add(1, Relaxed);
                return None;
            }
            ctx.stats.held.fetch_add(1, Relaxed);
            ctx.stats.held_total.fetch_add(1, Relaxed);
            held = Some(Held(&ctx.stats));
        }
        // With targets that refused, try them again soon; with none, only
        // a new table can help.
        let until = if targets.is_empty() { deadline } else { deadline.min(Instant::now() + retry) };
        retry = (retry * 2).min(RETRY_MAX);
        let changed = tokio::select! {
            changed = tokio::time::timeout_at(until, routes.changed()) => changed,
            gone = client_gone(client), if watch_client => {
                if gone {
                    // Nobody waits any more: its place in the queue is freed.
                    return None;
                }
                watch_client = false;
                continue;
            }
        };
        match changed {
            Ok(Ok(())) => continue,
            Ok(Err(_)) => return None,
            Err(_) if Instant::now() < deadline => continue,
            Err(_) => {
                ctx.stats.hold_timeouts.fetch_add(1, Relaxed);
                return None;
            }
        }
    }
}

/// Resolves when the client closed or reset its connection (`true`), or
/// sent a byte (`false`, left unread).
async fn client_gone(client: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    !matches!(client.peek(&mut byte).await, Ok(n) if n > 0)
}

/// Where a new connection of `port` may go under `table`, in the order to
/// try: the write target; the read targets, least connections first.
fn targets(port: Port, table: &RouteTable, ctx: &Ctx) -> Vec<InstanceKey> {
    match port {
        Port::Write => table.write_target().cloned().into_iter().collect(),
        Port::Read => {
            let mut keys: Vec<(u64, InstanceKey)> =
                table.read_targets().into_iter().map(|k| (ctx.stats.active(Port::Read.name(), &k), k)).collect();
            keys.sort_by_key(|(active, _)| *active);
            keys.into_iter().map(|(_, k)| k).collect()
        }
    }
}

/// Connect to `key` unless it stops being a target of `port` meanwhile
/// (`None`): a connection is never handed over to a backend that left the
/// route while it was being made.
async fn connect_while_routed(
    port: Port,
    key: &InstanceKey,
    routes: &mut watch::Receiver<Arc<RouteTable>>,
    timeout: Duration,
) -> Option<std::io::Result<TcpStream>> {
    let attempt = connect(key, timeout);
    tokio::pin!(attempt);
    loop {
        tokio::select! {
            r = &mut attempt => return Some(r),
            changed = routes.changed() => {
                if changed.is_err() {
                    return Some(attempt.await);
                }
                // Marked seen here; the caller reads the current table anew.
                let still = {
                    let table = routes.borrow_and_update();
                    match port {
                        Port::Write => table.write_target() == Some(key),
                        Port::Read => table.read_targets().contains(key),
                    }
                };
                if !still {
                    return None;
                }
            }
        }
    }
}

async fn connect(key: &InstanceKey, timeout: Duration) -> std::io::Result<TcpStream> {
    let addr = (key.host.as_str(), key.port);
    let s = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    tune(&s);
    Ok(s)
}
