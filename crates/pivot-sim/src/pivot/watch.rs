//! The connections pivot keeps on servers besides its probes:
//!
//! * [`PrimaryWatch`]: the connection kept waiting on the primary
//!   (`pivot::daemon::crash_watch`): `SELECT SLEEP(30)` again and again, each
//!   bounded by 35 s. It ends at once when the server closes it (a crash, or a
//!   fence that ends every client session) and the link carries that; a hung
//!   or cut-off primary sends nothing, and the wait ends at its bound. A
//!   connection that cannot be set up ends silently (the probes see why).
//! * [`FenceTask`]: a former primary watched until it answers, then made
//!   read-only (`pivot::recovery::fence_watch::spawn`), or fenced now with a
//!   connection bounded by the probe timeout (`fence_watch::fence_now`).

use crate::invariants;
use crate::network::Party;
use crate::server::Liveness;
use crate::world::World;
use pivot_core::control::cluster::{FenceResult, Fenced};
use pivot_core::{GtidSet, InstanceKey};

/// Seconds each server-side wait lasts (`crash_watch::WAIT_S`).
const WAIT_MS: u64 = 30_000;
/// Bound on one wait (`WAIT_S + 5`).
const WAIT_BOUND_MS: u64 = 35_000;

pub struct PrimaryWatch {
    pub key: InstanceKey,
    server: usize,
    phase: Phase,
}

enum Phase {
    /// `Session::connect`, bounded by the probe timeout.
    Connecting { until: u64 },
    /// Connected: a wait started then, on the server's sessions of then.
    Waiting { started: u64, sessions: u64 },
}

pub enum WatchPoll {
    Going,
    /// The connection ended: the monitor is told (`Event::WatchEnded`).
    Ended(String),
    /// It could not connect: the task ends without a word.
    GaveUp,
}

impl PrimaryWatch {
    pub fn start(w: &World, key: InstanceKey, server: usize) -> PrimaryWatch {
        PrimaryWatch { key, server, phase: Phase::Connecting { until: w.now + w.cfg.timing.probe_timeout_ms } }
    }

    pub fn poll(&mut self, w: &World) -> WatchPoll {
        let now = w.now;
        let s = &w.servers[self.server];
        let link = w.net.connected(Party::Pivot, Party::Server(self.server));
        match self.phase {
            Phase::Connecting { until } => {
                if link && s.up() {
                    self.phase = Phase::Waiting { started: now, sessions: s.sessions };
                    WatchPoll::Going
                } else if (link && s.liveness == Liveness::Crashed) || now >= until {
                    WatchPoll::GaveUp
                } else {
                    WatchPoll::Going
                }
            }
            Phase::Waiting { started, sessions } => {
                if s.sessions != sessions && link {
                    return WatchPoll::Ended("Lost connection to server during query".into());
                }
                if s.sessions == sessions && link && s.up() && now >= started + WAIT_MS {
                    // The wait returned: the next one, on the same connection.
                    self.phase = Phase::Waiting { started: now, sessions };
                    return WatchPoll::Going;
                }
                if now >= started + WAIT_BOUND_MS {
                    return WatchPoll::Ended(format!("no answer within {WAIT_BOUND_MS} ms"));
                }
                WatchPoll::Going
            }
        }
    }
}

pub struct FenceTask {
    pub key: InstanceKey,
    server: usize,
    /// `None`: watched until it answers; a bound: fence now or fail.
    deadline: Option<u64>,
}

impl FenceTask {
    /// `fence_watch::spawn`: connection attempts until one goes through (a
    /// hung server's kernel accepts them; they go through when it wakes).
    pub fn watch(key: InstanceKey, server: usize) -> FenceTask {
        FenceTask { key, server, deadline: None }
    }

    /// `fence_watch::fence_now`: one connection, bounded by the probe timeout.
    pub fn now(w: &World, key: InstanceKey, server: usize) -> FenceTask {
        FenceTask { key, server, deadline: Some(w.now + w.cfg.timing.probe_timeout_ms) }
    }

    /// The result once the task is over.
    pub fn poll(&mut self, w: &mut World, incarnation: u32) -> Option<FenceResult> {
        let i = self.server;
        let link = w.net.connected(Party::Pivot, Party::Server(i));
        let liveness = w.servers[i].liveness;
        let result = if link && liveness == Liveness::Up {
            let sessions_ended = w.servers[i].fence();
            w.log(format!("pivot #{incarnation}: s{} made read-only by a fence watch", i + 1));
            invariants::on_fenced(w, i);
            let executed = GtidSet::MariaDb(w.servers[i].executed.clone());
            Ok(Fenced { sessions_ended, executed, took_ms: w.cfg.timing.tick_ms })
        } else {
            let deadline = self.deadline?;
            if link && liveness == Liveness::Crashed {
                Err(format!("cannot connect: Can't connect to server on '{}' (111)", self.key))
            } else if w.now >= deadline {
                Err(format!("cannot connect: no answer within {} ms", w.cfg.timing.probe_timeout_ms))
            } else {
                return None;
            }
        };
        Some(FenceResult { instance: self.key.clone(), result })
    }
}
