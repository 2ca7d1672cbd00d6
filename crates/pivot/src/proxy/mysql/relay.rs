//! The protocol mode's forwarding loop: the login relayed and noted, then
//! one command and its response at a time, each packet fed to the
//! [`Tracker`]. At a route change away from the session's server, an idle
//! session outside a transaction is parked and moved to the new primary
//! before its next command; one in a transaction or a command may go on
//! until `transaction_grace`; one with state that cannot move is ended.
//! Sessions the tracker cannot follow (TLS, compression, unknown commands)
//! fall back to moving bytes, cut at a route change as in TCP mode.

use super::handshake::{caps, is_ssl_request, parse_greeting, parse_response, restrict_greeting, NATIVE_PASSWORD};
use super::migrate::Login;
use super::ok::{self, connection_killed, Change};
use super::packet::{frame, Cursor};
use super::session::{Reason, Tracker};
use super::wire::Wire;
use crate::config::ProxyConfig;
use crate::proxy::forward::{forward, End};
use crate::proxy::stats::{BackendStats, ProxyStats};
use crate::routes::RouteHub;
use pivot_core::routes::RouteTable;
use pivot_core::InstanceKey;
use pivot_server::Credentials;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio::sync::watch;

pub struct Env<'a> {
    pub cluster: &'a str,
    pub cfg: &'a ProxyConfig,
    pub hub: &'a RouteHub,
    pub stats: &'a ProxyStats,
    /// pivot's account, to read a moving client's stored hash.
    pub creds: &'a Credentials,
    pub stop: watch::Receiver<bool>,
}

pub enum Outcome {
    /// The server left the route before it said a word: the client, which
    /// saw nothing, may be connected elsewhere.
    Retry(TcpStream),
    Done,
}

/// A connection to a backend, counted as active while it lives.
pub(super) struct Backend {
    pub(super) key: InstanceKey,
    pub(super) wire: Wire,
    pub(super) stats: Arc<BackendStats>,
    _active: Active,
}

struct Active(Arc<BackendStats>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

impl Backend {
    pub(super) fn new(key: InstanceKey, wire: Wire, stats: &ProxyStats) -> Backend {
        let s = stats.backend("write", &key);
        s.total.fetch_add(1, Relaxed);
        s.active.fetch_add(1, Relaxed);
        Backend { key, wire, stats: s.clone(), _active: Active(s) }
    }
}

pub(super) async fn send(to: &Wire, data: &[u8], counter: &std::sync::atomic::AtomicU64) -> bool {
    counter.fetch_add(data.len() as u64, Relaxed);
    to.write_all(data).await.is_ok()
}

fn framed(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    frame(seq, payload, &mut out);
    out
}

/// Resolves when `key` stops being the write target (judging the current
/// table first).
async fn left_route(routes: &mut watch::Receiver<Arc<RouteTable>>, key: &InstanceKey) {
    if !routes.borrow_and_update().keeps_write(key) {
        return;
    }
    loop {
        if routes.changed().await.is_err() {
            return std::future::pending().await;
        }
        if !routes.borrow_and_update().keeps_write(key) {
            return;
        }
    }
}

/// Move bytes from here on; a route change cuts (and counts `reason`).
pub(super) async fn opaque(c: Wire, be: Backend, reason: Reason, env: &Env<'_>) -> Outcome {
    let (mut client, c_rest) = c.into_parts();
    let Backend { key, wire, stats, _active } = be;
    let (mut server, s_rest) = wire.into_parts();
    let flushed = async {
        use tokio::io::AsyncWriteExt;
        server.write_all(&c_rest).await?;
        client.write_all(&s_rest).await
    };
    if flushed.await.is_err() {
        return Outcome::Done;
    }
    let routes = env.hub.subscribe();
    let keeps = |t: &RouteTable| t.keeps_write(&key);
    let (end, _) =
        forward(&mut client, &mut server, &stats, routes, keeps, env.cfg.idle_timeout, env.stop.clone()).await;
    match end {
        End::Cut => {
            stats.cut.fetch_add(1, Relaxed);
            env.stats.count_ended(reason);
        }
        End::Closed { error: true } => {
            stats.errors.fetch_add(1, Relaxed);
        }
        _ => {}
    }
    Outcome::Done
}

pub async fn serve(client: TcpStream, key: InstanceKey, backend: TcpStream, env: &Env<'_>) -> Outcome {
    let mut routes = env.hub.subscribe();
    let mut stop = env.stop.clone();
    let mut s = Wire::new(backend);
    let greeting = tokio::select! {
        r = s.read_packet() => r,
        _ = left_route(&mut routes, &key) => return Outcome::Retry(client),
        _ = stop.wait_for(|s| *s) => return Outcome::Done,
        _ = tokio::time::sleep(env.cfg.idle_timeout) => return Outcome::Done,
    };
    let be = Backend::new(key, s, env.stats);
    let c = Wire::new(client);
    let Ok(Some((gh, mut g))) = greeting else { return Outcome::Done };
    let greeting = match parse_greeting(&g) {
        Ok(greeting) => greeting,
        Err(_) => {
            // An error instead of a greeting (too many connections...).
            let _ = send(&c, &framed(gh.seq, &g), &be.stats.bytes_to_client).await;
            return Outcome::Done;
        }
    };
    restrict_greeting(&mut g, &greeting);
    if !send(&c, &framed(gh.seq, &g), &be.stats.bytes_to_client).await {
        return Outcome::Done;
    }
    let login = Session { c, be, env, routes };
    login.log_in(greeting).await
}

struct Session<'a, 'e> {
    c: Wire,
    be: Backend,
    env: &'a Env<'e>,
    routes: watch::Receiver<Arc<RouteTable>>,
}

/// A packet from `w` within the idle timeout.
async fn packet_within(w: &mut Wire, env: &Env<'_>) -> Option<(u8, Vec<u8>)> {
    match tokio::time::timeout(env.cfg.idle_timeout, w.read_packet()).await {
        Ok(Ok(Some((h, p)))) => Some((h.seq, p)),
        _ => None,
    }
}

impl Session<'_, '_> {
    async fn to_client(&self, data: &[u8]) -> bool {
        send(&self.c, data, &self.be.stats.bytes_to_client).await
    }

    async fn to_server(&self, data: &[u8]) -> bool {
        send(&self.be.wire, data, &self.be.stats.bytes_to_backend).await
    }

    async fn log_in(mut self, greeting: super::handshake::Greeting) -> Outcome {
        let env = self.env;
        let Some((seq, p)) = packet_within(&mut self.c, env).await else { return Outcome::Done };
        let raw = framed(seq, &p);
        let parsed = parse_response(&p);
        let unreadable =
            is_ssl_request(&p) || parsed.as_ref().is_ok_and(|r| r.capabilities & (caps::COMPRESS | caps::ZSTD) != 0);
        let Ok(mut response) = parsed.map_err(|_| ()).and_then(|r| if unreadable { Err(()) } else { Ok(r) }) else {
            if !self.to_server(&raw).await {
                return Outcome::Done;
            }
            let reason = if unreadable { Reason::Unreadable } else { Reason::Unfollowed };
            return opaque(self.c, self.be, reason, env).await;
        };
        let server_tracks = greeting.capabilities & caps::SESSION_TRACK != 0;
        let client_tracks = response.capabilities & caps::SESSION_TRACK != 0;
        let sent = if server_tracks && !client_tracks {
            response.capabilities |= caps::SESSION_TRACK;
            framed(seq, &response.encode())
        } else {
            raw
        };
        if !self.to_server(&sent).await {
            return Outcome::Done;
        }
        // The authentication exchange, until OK or ERR (bounded rounds).
        let mut native = response.answers_native_password() && greeting.plugin == NATIVE_PASSWORD;
        let mut scramble = greeting.scramble.clone();
        let mut auth_ok = None;
        for _ in 0..8 {
            let Some((seq, p)) = packet_within(&mut self.be.wire, env).await else { return Outcome::Done };
            match p.first() {
                Some(0x00) => {
                    auth_ok = Some((seq, p));
                    break;
                }
                Some(0xFF) => {
                    let _ = self.to_client(&framed(seq, &p)).await;
                    return Outcome::Done;
                }
                first => {
                    // An auth switch: to mysql_native_password with a new
                    // scramble, the answer is noted; anything else cannot move.
                    let mut switched = None;
                    if first == Some(&0xFE) {
                        let mut c = Cursor::new(&p[1..]);
                        if c.nul_terminated() == Some(NATIVE_PASSWORD.as_bytes()) {
                            let data = c.rest();
                            switched = Some(data[..data.len().min(20)].to_vec());
                        }
                    }
                    native &= switched.is_some();
                    if !self.to_client(&framed(seq, &p)).await {
                        return Outcome::Done;
                    }
                    let Some((cseq, cp)) = packet_within(&mut self.c, env).await else { return Outcome::Done };
                    if let Some(s) = switched {
                        scramble = s;
                        response.auth = cp.clone();
                    }
                    if !self.to_server(&framed(cseq, &cp)).await {
                        return Outcome::Done;
                    }
                }
            }
        }
        let Some((ok_seq, ok_packet)) = auth_ok else { return Outcome::Done };
        // Session tracking on the server's side of the session.
        let mut tracked = server_tracks;
        if tracked {
            tracked = match pivot_core::version::ServerVersion::parse(&greeting.server_version, "") {
                Ok(v) => {
                    let mut q = vec![0x03];
                    q.extend_from_slice(pivot_dialect::Dialect::for_version(&v).session_tracking().text().as_bytes());
                    self.to_server(&framed(0, &q)).await
                        && packet_within(&mut self.be.wire, env).await.is_some_and(|(_, p)| p.first() == Some(&0))
                }
                Err(_) => false,
            };
        }
        let rewrite = server_tracks && !client_tracks;
        let to_client = if rewrite {
            ok::without_session_state(&ok_packet).unwrap_or(ok_packet.clone())
        } else {
            ok_packet.clone()
        };
        if !self.to_client(&framed(ok_seq, &to_client)).await {
            return Outcome::Done;
        }
        let parsed_ok = ok::parse_ok(&ok_packet);
        let deprecate_eof = response.capabilities & greeting.capabilities & caps::DEPRECATE_EOF != 0;
        let schema =
            response.database.as_deref().filter(|d| !d.is_empty()).map(|d| String::from_utf8_lossy(d).into_owned());
        let mut tracker = Tracker::new(deprecate_eof, parsed_ok.as_ref().map_or(0x0002, |o| o.status), schema);
        if let Some(o) = &parsed_ok {
            let schemas: Vec<Change> = o.changes.iter().filter(|c| matches!(c, Change::Schema(_))).cloned().collect();
            tracker.apply(&schemas);
        }
        if !native {
            tracker.mark_unmovable(Reason::AuthPlugin);
        }
        if !tracked {
            tracker.mark_unmovable(Reason::Untracked);
        }
        let login = Login { response, scramble };
        super::commands::run(self.c, self.be, self.env, self.routes, tracker, login, rewrite).await
    }
}

/// An ERR packet answering a command (seq `seq`): the session is ended.
pub(super) fn killed(seq: u8, why: &str) -> Vec<u8> {
    framed(seq, &connection_killed(&format!("pivot proxy: session ended: {why}")))
}
