//! After the login: one command and its response at a time, and what a
//! route change does to the session (park and move, let finish, end).

use super::migrate::{self, Login};
use super::ok;
use super::packet::{frame, MAX_PAYLOAD};
use super::relay::{killed, opaque, send, Backend, Env, Outcome};
use super::session::{Expect, Reason, Tracker};
use super::wire::Wire;
use pivot_core::routes::RouteTable;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;

struct Loop<'a, 'e> {
    c: Wire,
    be: Backend,
    env: &'a Env<'e>,
    routes: watch::Receiver<Arc<RouteTable>>,
    tracker: Tracker,
    login: Login,
    /// The client did not ask for session tracking: OK packets are rewritten.
    rewrite: bool,
    /// When the route stopped naming this session's server.
    leaving_since: Option<Instant>,
    /// The server's connection ended while the session was idle.
    server_gone: bool,
    /// Then: until when the session waits for the route to move.
    orphaned_until: Option<Instant>,
    /// Counted in the parked gauge.
    parked: bool,
    /// Counted as busy on its server.
    busy: bool,
    /// The idle timeout: armed for the last activity plus `idle_timeout`,
    /// re-armed only when it fires (no timer work per command).
    idle: std::pin::Pin<Box<tokio::time::Sleep>>,
    last_activity: Instant,
    stop: watch::Receiver<bool>,
    out: Vec<u8>,
}

/// What woke an idle session.
enum Wake {
    Client(bool),
    Server(bool),
    Routes,
    Deadline,
    Idle,
    Over,
}

/// What happened while a response was awaited.
enum Waited {
    Server(bool),
    Client(bool),
    Routes,
    Deadline,
    Idle,
    Over,
}

pub(super) async fn run(
    c: Wire,
    be: Backend,
    env: &Env<'_>,
    routes: watch::Receiver<Arc<RouteTable>>,
    tracker: Tracker,
    login: Login,
    rewrite: bool,
) -> Outcome {
    let mut l = Loop {
        c,
        be,
        env,
        routes,
        tracker,
        login,
        rewrite,
        leaving_since: None,
        server_gone: false,
        orphaned_until: None,
        parked: false,
        busy: false,
        idle: Box::pin(tokio::time::sleep(env.cfg.idle_timeout)),
        last_activity: Instant::now(),
        stop: env.stop.clone(),
        out: Vec::with_capacity(64 * 1024),
    };
    let flow = l.commands().await;
    l.park(false);
    l.set_busy(false);
    match flow {
        Flow::Done => Outcome::Done,
        Flow::Opaque(reason) => opaque(l.c, l.be, reason, env).await,
    }
}

enum Flow {
    Done,
    Opaque(Reason),
}

impl Loop<'_, '_> {
    fn leaving(&mut self) -> bool {
        let leaving = !self.routes.borrow_and_update().keeps_write(&self.be.key);
        if !leaving {
            self.leaving_since = None;
        } else if self.leaving_since.is_none() {
            self.leaving_since = Some(Instant::now());
        }
        leaving
    }

    fn grace_deadline(&self) -> Option<Instant> {
        self.leaving_since.map(|t| t + self.env.cfg.transaction_grace)
    }

    /// End the session at a route change, counted.
    fn end(&self, reason: Reason) -> Flow {
        self.be.stats.cut.fetch_add(1, Relaxed);
        self.env.stats.count_ended(reason);
        tracing::info!(
            cluster = %self.env.cluster, backend = %self.be.key, reason = reason.name(),
            "proxy: a session that could not move to the new primary was ended"
        );
        Flow::Done
    }

    async fn commands(&mut self) -> Flow {
        loop {
            // Between commands.
            let leaving = self.leaving();
            let mut parked = false;
            if leaving {
                if let Some(r) = self.tracker.unmovable() {
                    let _ = self.pass_unsolicited().await;
                    return self.end(r);
                }
                if !self.tracker.in_transaction() {
                    parked = true;
                } else if self.server_gone || self.grace_deadline().is_some_and(|d| Instant::now() >= d) {
                    let _ = self.pass_unsolicited().await;
                    return self.end(Reason::Transaction);
                }
            } else if self.orphaned_until.is_some_and(|t| Instant::now() >= t) {
                // The server went away and the route never moved: not a
                // failover this session could follow.
                let _ = self.pass_unsolicited().await;
                return Flow::Done;
            }
            let deadline = if parked { None } else { self.grace_deadline().or(self.orphaned_until) };
            self.park(parked);
            let wake = tokio::select! {
                r = self.c.want_packet() => Wake::Client(r.unwrap_or(false)),
                r = self.be.wire.fill(), if !self.server_gone => Wake::Server(r.is_ok_and(|n| n > 0)),
                r = self.routes.changed() => if r.is_ok() { Wake::Routes } else { Wake::Over },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Wake::Deadline,
                _ = self.stop.wait_for(|s| *s) => Wake::Over,
                _ = &mut self.idle => Wake::Idle,
            };
            match wake {
                Wake::Idle if !self.idle_for_good() => continue,
                Wake::Idle | Wake::Over | Wake::Client(false) => return Flow::Done,
                Wake::Routes | Wake::Deadline => continue,
                Wake::Server(true) if self.movable() => {
                    // Said unasked: an error before the server closes the
                    // connection (killed by the fence, shut down). Kept until
                    // the close: a session that moves never sees it.
                }
                Wake::Server(true) => {
                    if !self.pass_unsolicited().await {
                        return Flow::Done;
                    }
                }
                Wake::Server(false) => {
                    // The server went away while the session was idle (a
                    // crash, the fence): the session waits, bounded, for the
                    // route to move (then it moves or is ended and counted).
                    if self.movable() {
                        let n = self.be.wire.buffered().len();
                        self.be.wire.consume(n);
                    }
                    self.server_gone = true;
                    self.orphaned_until = Some(Instant::now() + self.env.cfg.hold_timeout);
                }
                Wake::Client(true) => {
                    self.last_activity = Instant::now();
                    if !self.server_gone && !self.pass_unsolicited().await {
                        return Flow::Done;
                    }
                    if self.server_gone && !self.movable() {
                        let _ = self.pass_unsolicited().await;
                        let seq = self.c.packet().map_or(0, |(h, _)| h.seq).wrapping_add(1);
                        let _ =
                            send(&self.c, &killed(seq, "its server went away"), &self.be.stats.bytes_to_client).await;
                        return match (leaving, self.tracker.unmovable()) {
                            (true, Some(r)) => self.end(r),
                            (true, None) => self.end(Reason::Transaction),
                            _ => Flow::Done,
                        };
                    }
                    if !parked && !self.server_gone {
                        // Busy first, then the routes checked again: a
                        // switchover that saw no busy session after its hold
                        // never misses this command.
                        self.set_busy(true);
                        if self.leaving() && !self.tracker.in_transaction() {
                            self.set_busy(false);
                            continue;
                        }
                    }
                    if parked || self.server_gone {
                        self.set_busy(false);
                        let seq = self.c.packet().map_or(0, |(h, _)| h.seq).wrapping_add(1);
                        if let Err((reason, why)) = self.move_session().await {
                            tracing::warn!(cluster = %self.env.cluster, "proxy: {why}");
                            let _ = send(&self.c, &killed(seq, &why), &self.be.stats.bytes_to_client).await;
                            return self.end(reason);
                        }
                    }
                    self.set_busy(true);
                    match self.command().await {
                        Ok(true) => {
                            let busy = self.tracker.in_transaction();
                            self.set_busy(busy);
                        }
                        Ok(false) => return Flow::Done,
                        Err(flow) => return flow,
                    }
                }
            }
        }
    }

    /// Whether the idle timeout that fired holds: otherwise it is re-armed
    /// for the last activity.
    fn idle_for_good(&mut self) -> bool {
        let until = self.last_activity + self.env.cfg.idle_timeout;
        if Instant::now() >= until {
            return true;
        }
        self.idle.as_mut().reset(until);
        false
    }

    /// Whether the client's socket has a byte (or its end) waiting; a
    /// readiness that was stale is cleared.
    fn client_sent_more(&self) -> bool {
        use std::os::fd::AsRawFd;
        let fd = self.c.stream.as_raw_fd();
        let mut byte = [0u8; 1];
        let peeked = self.c.stream.try_io(tokio::io::Interest::READABLE, || {
            // SAFETY: one valid byte; `fd` is open while the stream is borrowed.
            let n = unsafe { libc::recv(fd, byte.as_mut_ptr().cast(), 1, libc::MSG_PEEK) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
        !matches!(peeked, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }

    /// Count the session as busy on its server (in a command or a transaction).
    fn set_busy(&mut self, busy: bool) {
        if busy != self.busy {
            self.busy = busy;
            if busy {
                self.be.stats.busy.fetch_add(1, Relaxed);
            } else {
                self.be.stats.busy.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Count the session in the parked gauge while it waits for a new primary.
    fn park(&mut self, parked: bool) {
        if parked != self.parked {
            self.parked = parked;
            if parked {
                self.env.stats.parked.fetch_add(1, Relaxed);
            } else {
                self.env.stats.parked.fetch_sub(1, Relaxed);
            }
        }
    }

    fn movable(&self) -> bool {
        self.tracker.unmovable().is_none() && !self.tracker.in_transaction()
    }

    /// Pass on what the server said while the session was idle.
    async fn pass_unsolicited(&mut self) -> bool {
        let n = self.be.wire.buffered().len();
        if n == 0 {
            return true;
        }
        let ok = send(&self.c, self.be.wire.buffered(), &self.be.stats.bytes_to_client).await;
        self.be.wire.consume(n);
        ok
    }

    /// Wait (bounded by `hold_timeout`) for a write target, and move the
    /// session there unless it is the session's own live server again.
    async fn move_session(&mut self) -> Result<(), (Reason, String)> {
        let env = self.env;
        let until = Instant::now() + env.cfg.hold_timeout;
        let target = loop {
            let t = self.routes.borrow_and_update().write_target().cloned();
            match t {
                Some(t) if !(self.server_gone && t == self.be.key) => break t,
                _ => {}
            }
            match tokio::time::timeout_at(until, self.routes.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    return Err((
                        Reason::HoldTimeout,
                        format!("no primary within hold_timeout ({:?})", env.cfg.hold_timeout),
                    ))
                }
            }
        };
        if target == self.be.key {
            self.leaving_since = None;
            return Ok(());
        }
        let started = Instant::now();
        let bound = env.cfg.hold_timeout.max(env.cfg.connect_timeout);
        let wire = migrate::migrate(&self.login, self.tracker.state(), &target, env.creds, bound)
            .await
            .map_err(|why| (Reason::MigrationFailed, format!("cannot move a session to {target}: {why}")))?;
        let old = std::mem::replace(&mut self.be, Backend::new(target, wire, env.stats));
        self.park(false);
        // COM_QUIT to the old server, if it still listens; never waited for.
        let _ = old.wire.stream.try_write(&[1, 0, 0, 0, 1]);
        self.server_gone = false;
        self.orphaned_until = None;
        self.leaving_since = None;
        env.stats.migrated.fetch_add(1, Relaxed);
        tracing::debug!(
            cluster = %env.cluster, from = %old.key, to = %self.be.key,
            ms = started.elapsed().as_millis() as u64, "proxy: session moved"
        );
        Ok(())
    }

    /// Forward the command at the front of the client's buffer and relay
    /// its response. `Ok(false)`: the session is over.
    async fn command(&mut self) -> Result<bool, Flow> {
        let Some((h, p)) = self.c.packet() else { return Ok(false) };
        let expect = self.tracker.command(p);
        if !self.pass_client_packets(h.len).await {
            return Ok(false);
        }
        match expect {
            Expect::Quit => Ok(false),
            Expect::Nothing => Ok(true),
            Expect::Opaque => Err(Flow::Opaque(Reason::Unfollowed)),
            Expect::Response => self.response().await,
        }
    }

    /// Forward the packet at the front of the client's buffer and its
    /// continuations.
    async fn pass_client_packets(&mut self, first_len: usize) -> bool {
        let mut len = first_len;
        loop {
            let n = 4 + len;
            if !send(&self.be.wire, &self.c.buffered()[..n], &self.be.stats.bytes_to_backend).await {
                return false;
            }
            self.c.consume(n);
            if len < MAX_PAYLOAD {
                return true;
            }
            if !matches!(self.c.want_packet().await, Ok(true)) {
                return false;
            }
            len = self.c.packet().map_or(0, |(h, _)| h.len);
        }
    }

    /// Relay the server's response until the tracker says it ended.
    async fn response(&mut self) -> Result<bool, Flow> {
        let idle = self.env.cfg.idle_timeout;
        loop {
            self.out.clear();
            while let Some((h, p)) = self.be.wire.packet() {
                let is_ok = self.tracker.server(p, h.len);
                let n = 4 + h.len;
                match is_ok.then_some(()).filter(|_| self.rewrite).and_then(|_| ok::without_session_state(p)) {
                    Some(rewritten) => {
                        frame(h.seq, &rewritten, &mut self.out);
                    }
                    None => self.out.extend_from_slice(&self.be.wire.buffered()[..n]),
                }
                self.be.wire.consume(n);
                if self.tracker.idle() || self.tracker.awaits_client() {
                    break;
                }
            }
            if !self.out.is_empty() && !send(&self.c, &self.out, &self.be.stats.bytes_to_client).await {
                return Ok(false);
            }
            if self.tracker.idle() {
                return Ok(true);
            }
            if self.tracker.awaits_client() {
                // LOAD DATA LOCAL: the client's file, to its empty packet.
                while self.tracker.awaits_client() {
                    if !matches!(tokio::time::timeout(idle, self.c.want_packet()).await, Ok(Ok(true))) {
                        return Ok(false);
                    }
                    let len = self.c.packet().map_or(0, |(h, _)| h.len);
                    self.tracker.client_data(len);
                    let n = 4 + len;
                    if !send(&self.be.wire, &self.c.buffered()[..n], &self.be.stats.bytes_to_backend).await {
                        return Ok(false);
                    }
                    self.c.consume(n);
                }
                continue;
            }
            if !self.c.buffered().is_empty() {
                // The client sent more before the answer ended: pipelining.
                return Err(Flow::Opaque(Reason::Unfollowed));
            }
            let deadline = self.grace_deadline();
            let waited = tokio::select! {
                r = self.be.wire.fill() => Waited::Server(r.is_ok_and(|n| n > 0)),
                r = self.c.stream.readable() => Waited::Client(r.is_ok()),
                r = self.routes.changed() => if r.is_ok() { Waited::Routes } else { Waited::Over },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Waited::Deadline,
                _ = self.stop.wait_for(|s| *s) => Waited::Over,
                _ = &mut self.idle => Waited::Idle,
            };
            match waited {
                Waited::Server(true) => self.last_activity = Instant::now(),
                Waited::Server(false) | Waited::Over => return Ok(false),
                // The client sent more before the answer ended: pipelining.
                Waited::Client(ok) if !ok || self.client_sent_more() => return Err(Flow::Opaque(Reason::Unfollowed)),
                Waited::Client(_) => {}
                Waited::Routes => {
                    self.leaving();
                }
                Waited::Deadline => return Err(self.end(Reason::Transaction)),
                Waited::Idle if self.idle_for_good() => return Ok(false),
                Waited::Idle => {}
            }
        }
    }
}
