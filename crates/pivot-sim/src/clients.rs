//! Applications writing to the cluster, and the record of every write a
//! server acknowledged: what the "no acknowledged write lost" checks read.
//!
//! A client runs one write at a time. One that follows the primary writes to
//! whichever server accepts writes (as behind a router: a hung server is
//! passed over); a stubborn one always writes to the same server and waits
//! on it while it hangs, up to its timeout.

use crate::replication::Answered;
use crate::server::{Event, Liveness, Pending, Server};
use pivot_core::gtid::MariaGtid;

/// One write a server acknowledged to its client.
#[derive(Clone, Debug)]
pub struct Ack {
    pub id: u64,
    pub gtid: MariaGtid,
    pub server: usize,
    pub at: u64,
    /// The semi-sync replica whose acknowledgement released it; `None`:
    /// acknowledged asynchronously (semi-sync off, or fallen off).
    pub acker: Option<usize>,
    pub client: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    FollowPrimary,
    Fixed(usize),
    /// Through pivot's proxy write port: to the route table's write target
    /// only; held while there is none; cut when the route moves away.
    Routed,
}

#[derive(Clone, Debug)]
enum State {
    Idle {
        next_at: u64,
    },
    /// Sent to a hung server: committed when it wakes, if the client still waits.
    Blocked {
        server: usize,
        since: u64,
    },
    /// Committed, waiting for the answer (a semi-sync acknowledgement).
    Waiting {
        server: usize,
        since: u64,
        attempt: u64,
    },
}

#[derive(Clone, Debug)]
struct Client {
    target: Target,
    current: Option<usize>,
    state: State,
}

#[derive(Clone, Debug, Default)]
pub struct Clients {
    clients: Vec<Client>,
    pub acks: Vec<Ack>,
    pub errors: u64,
    next_attempt: u64,
    every_ms: u64,
    timeout_ms: u64,
}

impl Clients {
    pub fn new(targets: &[Target], start_at: u64, every_ms: u64, timeout_ms: u64) -> Clients {
        let clients = targets
            .iter()
            .map(|&target| Client { target, current: None, state: State::Idle { next_at: start_at } })
            .collect();
        Clients { clients, acks: Vec::new(), errors: 0, next_attempt: 1, every_ms, timeout_ms }
    }

    /// No new writes from now on (writes under way finish).
    pub fn stop(&mut self) {
        for c in &mut self.clients {
            if let State::Idle { next_at } = &mut c.state {
                *next_at = u64::MAX;
            }
        }
        self.every_ms = u64::MAX / 2;
    }

    /// Answers the servers sent this tick.
    pub fn on_answered(&mut self, answered: &[Answered], now: u64) {
        for a in answered {
            let Some(ci) = self
                .clients
                .iter()
                .position(|c| matches!(c.state, State::Waiting { attempt, .. } if attempt == a.attempt))
            else {
                continue; // the client gave up on it
            };
            self.acks.push(Ack {
                id: self.acks.len() as u64 + 1,
                gtid: a.gtid,
                server: a.server,
                at: now,
                acker: a.acker,
                client: ci,
            });
            self.clients[ci].state = State::Idle { next_at: now.saturating_add(self.every_ms) };
        }
    }

    pub fn routed(&self, client: usize) -> bool {
        self.clients.get(client).is_some_and(|c| c.target == Target::Routed)
    }

    /// Each client's next move: give up, notice an error, or write.
    /// `route`: the proxy's write target now (`None`: held, or no pivot).
    pub fn tick(&mut self, servers: &mut [Server], now: u64, route: Option<usize>) {
        for ci in 0..self.clients.len() {
            let state = self.clients[ci].state.clone();
            let busy_on = match state {
                State::Blocked { server, .. } | State::Waiting { server, .. } => Some(server),
                State::Idle { .. } => None,
            };
            if self.clients[ci].target == Target::Routed && busy_on.is_some() && busy_on != route {
                // The proxy cut the connection: its backend left the route.
                self.error(ci, now);
                continue;
            }
            match state {
                State::Idle { next_at } if now >= next_at => self.write(ci, servers, now, route),
                State::Idle { .. } => {}
                State::Blocked { server, since } => match servers[server].liveness {
                    Liveness::Up => {
                        self.clients[ci].state = State::Idle { next_at: now };
                        self.commit(ci, server, servers, now);
                    }
                    Liveness::Crashed => self.error(ci, now),
                    Liveness::Hung if now.saturating_sub(since) >= self.timeout_ms => self.error(ci, now),
                    Liveness::Hung => {}
                },
                State::Waiting { server, since, attempt } => {
                    let s = &servers[server];
                    let killed = s.liveness == Liveness::Crashed
                        || (s.liveness == Liveness::Up && !s.pending.iter().any(|p| p.attempt == attempt));
                    if killed || now.saturating_sub(since) >= self.timeout_ms {
                        self.error(ci, now);
                    }
                }
            }
        }
    }

    fn error(&mut self, ci: usize, now: u64) {
        self.errors += 1;
        let c = &mut self.clients[ci];
        c.current = None;
        c.state = State::Idle { next_at: now.saturating_add(self.every_ms) };
    }

    fn write(&mut self, ci: usize, servers: &mut [Server], now: u64, route: Option<usize>) {
        let server = match self.clients[ci].target {
            Target::Fixed(s) => Some(s),
            Target::Routed => route,
            Target::FollowPrimary => {
                let usable = |s: &Server| s.up() && s.writable();
                match self.clients[ci].current.filter(|&c| usable(&servers[c])) {
                    Some(c) => Some(c),
                    None => servers.iter().position(usable),
                }
            }
        };
        let Some(server) = server else {
            self.clients[ci].state = State::Idle { next_at: now.saturating_add(self.every_ms) };
            return;
        };
        self.clients[ci].current = Some(server);
        match servers[server].liveness {
            Liveness::Crashed => self.error(ci, now),
            Liveness::Hung => self.clients[ci].state = State::Blocked { server, since: now },
            Liveness::Up => self.commit(ci, server, servers, now),
        }
    }

    fn commit(&mut self, ci: usize, server: usize, servers: &mut [Server], now: u64) {
        let s = &mut servers[server];
        if !s.writable() {
            self.error(ci, now);
            return;
        }
        let gtid = s.next_gtid(0);
        s.append(Event { gtid, at: now }, false);
        let attempt = self.next_attempt;
        self.next_attempt += 1;
        if s.semi.enabled && s.semi.active {
            s.pending.push(Pending { gtid, since: now, attempt });
            self.clients[ci].state = State::Waiting { server, since: now, attempt };
        } else {
            self.clients[ci].state = State::Waiting { server, since: now, attempt };
            let a = Answered { server, attempt, gtid, acker: None };
            self.on_answered(&[a], now);
        }
    }
}
