//! One session of a step with one server, as `pivot-server`'s actions
//! run it: wait for the connection (bounded by the step timeout), run the
//! statements one round trip later with MariaDB's effect on the simulated
//! server, and for the waiting actions (GTID wait, replication confirmed)
//! poll the condition until it holds or the wait times out. A crash ends
//! the session at once; a hang or a cut link leaves it waiting.

use super::steps::Ctx;
use crate::invariants;
use crate::network::Party;
use crate::server::{reaches, Liveness};
use crate::world::World;
use pivot_core::control::Ended;
use pivot_core::gtid::MariaGtidList;
use pivot_core::observation::IoThread;
use pivot_core::GtidSet;

#[derive(Clone)]
pub enum Action {
    StopIo,
    WaitRelay,
    CatchUp {
        from: usize,
        until: GtidSet,
    },
    Prepare,
    Promote {
        semi: bool,
    },
    Repoint {
        to: usize,
    },
    Confirm {
        source: usize,
    },
    Fence {
        old: bool,
    },
    Restore {
        source: usize,
        candidate: bool,
    },
    Unfence,
    /// `SET GLOBAL read_only = ON`, sessions kept.
    MakeReadOnly,
    /// Wait until this server applied what `source` (read-only) executed.
    WaitCaughtUp {
        source: usize,
        timeout_ms: u64,
    },
    /// The old primary replicates from `to`, from its own binlog position.
    Demote {
        to: usize,
        semi: bool,
    },
    /// Only the connection: does it answer?
    Ping,
}

enum Cond {
    Reach(MariaGtidList),
    Replicating(usize),
}

enum Phase {
    /// Waiting for the session (bounded by `deadline`).
    Connect,
    /// Connected; the statements run at `at`.
    Act {
        at: u64,
    },
    /// A bounded wait (GTID wait, replication confirmed).
    Wait {
        until: u64,
        cond: Cond,
        ok: String,
        stop_after: bool,
    },
    Done,
}

pub struct Op {
    pub server: usize,
    action: Action,
    phase: Phase,
    deadline: u64,
    pub result: Option<Result<(Ended, String), String>>,
}

impl Op {
    /// A session with `server` to perform `action`, connecting until `deadline`.
    pub fn new(server: usize, action: Action, deadline: u64) -> Op {
        Op { server, action, phase: Phase::Connect, deadline, result: None }
    }
}

impl Op {
    pub fn poll(&mut self, w: &mut World, ctx: Ctx, check_first: bool) {
        // Bounded: connect, act and a wait can each end within one poll.
        for _ in 0..3 {
            if self.result.is_some() {
                return;
            }
            let i = self.server;
            let key = w.servers[i].key.clone();
            let link = w.net.connected(Party::Pivot, Party::Server(i));
            let liveness = w.servers[i].liveness;
            let reachable = link && liveness == Liveness::Up;
            let crashed = link && liveness == Liveness::Crashed;
            let now = w.now;
            match &self.phase {
                Phase::Connect => {
                    if reachable && matches!(self.action, Action::Ping) {
                        // The greeting is the answer.
                        self.finish(Ok((Ended::Ok, format!("{key} answers"))));
                        return;
                    }
                    if reachable {
                        self.phase = Phase::Act { at: now + w.cfg.timing.tick_ms };
                        self.deadline = now + w.cfg.timing.step_timeout_ms;
                        return;
                    }
                    if crashed {
                        self.finish(Err(format!("cannot connect to {key}: Connection refused")));
                    } else if now >= self.deadline {
                        self.finish(Err(format!("cannot connect to {key}: timed out")));
                    } else {
                        return;
                    }
                }
                Phase::Act { at } => {
                    if now < *at {
                        return;
                    }
                    if crashed {
                        self.finish(Err(format!("{key}: Lost connection to server during query")));
                    } else if !reachable {
                        if now >= self.deadline {
                            self.finish(Err(format!("{key}: no answer within the step timeout")));
                        }
                        return;
                    } else {
                        self.act(w, ctx, check_first);
                    }
                }
                Phase::Wait { until, cond, ok, stop_after } => {
                    if crashed {
                        self.finish(Err(format!("{key}: Lost connection to server during query")));
                        continue;
                    }
                    let met = reachable && holds(w, i, cond);
                    if !met && now < *until {
                        return;
                    }
                    if reachable && *stop_after {
                        w.servers[i].stop_replica();
                    }
                    let r = if met { Ok((Ended::Ok, ok.clone())) } else { Err(wait_failed(w, i, cond)) };
                    self.finish(r);
                }
                Phase::Done => return,
            }
        }
    }

    fn finish(&mut self, r: Result<(Ended, String), String>) {
        self.result = Some(r);
        self.phase = Phase::Done;
    }

    fn wait(&mut self, until: u64, cond: Cond, ok: String, stop_after: bool) {
        self.phase = Phase::Wait { until, cond, ok, stop_after };
    }

    /// The statements, with MariaDB's effect on the server.
    fn act(&mut self, w: &mut World, ctx: Ctx, check_first: bool) {
        let i = self.server;
        let now = w.now;
        let t = w.cfg.timing.clone();
        let key = w.servers[i].key.clone();
        let ok = |m: String| Ok((Ended::Ok, m));
        match self.action.clone() {
            Action::StopIo => {
                w.servers[i].stop_io();
                self.finish(ok(String::new()));
            }
            Action::WaitRelay => {
                let s = &mut w.servers[i];
                let Some(c) = s.channel.as_ref() else {
                    return self.finish(Err(format!("{key} does not replicate: no relay log to apply")));
                };
                if let Some(e) = &c.sql_error {
                    return self.finish(Err(format!(
                        "SQL thread of {key} stopped with error {}: {}; its relay log cannot be applied",
                        e.number, e.message
                    )));
                }
                let target = c.received.to_position();
                if !c.sql_running {
                    s.start_sql();
                }
                let msg = format!("applied everything it received ({target})");
                self.wait(now + t.relay_apply_timeout_ms, Cond::Reach(target), msg, false);
            }
            Action::CatchUp { from, until } => {
                let s = &mut w.servers[i];
                if check_first && GtidSet::MariaDb(s.executed.clone()).reaches(&until) {
                    s.stop_replica();
                    return self.finish(Ok((Ended::AlreadyDone, format!("already has {until}"))));
                }
                s.stop_replica();
                s.repoint(from, now);
                let GtidSet::MariaDb(target) = until.clone() else { unreachable!("MariaDB clusters only") };
                let msg = format!("caught up from {} to {until}", w.servers[from].key);
                self.wait(now + t.relay_apply_timeout_ms, Cond::Reach(target), msg, true);
            }
            Action::Prepare => {
                let s = &mut w.servers[i];
                s.stop_replica();
                s.set_semi_primary(true);
                self.finish(ok("replication stopped, semi-sync primary side on, still read-only".into()));
            }
            Action::Promote { semi } => {
                let s = &mut w.servers[i];
                if check_first && s.channel.is_none() && s.writable() {
                    return self.finish(Ok((Ended::AlreadyDone, "already writable without replication".into())));
                }
                s.stop_replica();
                s.reset_replica_all();
                if semi {
                    s.set_semi_primary(true);
                }
                let was_read_only = s.read_only;
                s.read_only = false;
                if was_read_only {
                    invariants::on_promote(w, ctx.recovery, ctx.failed, i);
                }
                self.finish(ok(format!("{key} is the primary and writable")));
            }
            Action::Repoint { to } => {
                let s = &mut w.servers[i];
                if check_first && s.channel.as_ref().is_some_and(|c| c.source == to) {
                    return self.finish(ok("already replicating from it".into()));
                }
                s.repoint(to, now);
                self.finish(ok(String::new()));
            }
            Action::Confirm { source } => {
                self.wait(now + t.step_timeout_ms, Cond::Replicating(source), String::new(), false);
            }
            Action::Fence { old } => {
                let ended = w.servers[i].fence();
                w.log(format!(
                    "s{} made read-only by {}",
                    i + 1,
                    if old { "fence_old_primary" } else { "fence_live_primary" }
                ));
                self.finish(ok(format!("made read-only, {ended} client session(s) ended")));
            }
            Action::Restore { source, candidate } => {
                let s = &mut w.servers[i];
                if candidate {
                    s.read_only = true;
                    s.set_semi_primary(false);
                }
                let msg = match s.channel.as_ref() {
                    Some(c) if c.source == source && c.io != IoThread::Stopped && c.sql_running => "replicating",
                    Some(c) if c.source != source => {
                        s.repoint(source, now);
                        "restarted"
                    }
                    Some(_) => {
                        s.start_replica(now);
                        "restarted"
                    }
                    None => {
                        s.repoint(source, now);
                        "restarted"
                    }
                };
                self.finish(ok(msg.into()));
            }
            Action::Ping => self.finish(ok(format!("{key} answers"))), // (answered on connect)
            Action::MakeReadOnly => {
                w.servers[i].read_only = true;
                self.finish(ok(format!("{key} is read-only")));
            }
            Action::WaitCaughtUp { source, timeout_ms } => {
                // A second session, to the source: it must answer, read-only.
                let src = &w.servers[source];
                let link = w.net.connected(Party::Pivot, Party::Server(source));
                if !(link && src.up()) {
                    return self.finish(Err(format!("cannot connect to {}", src.key)));
                }
                if src.writable() {
                    return self
                        .finish(Err(format!("{} is writable again: its last transaction is not final", src.key)));
                }
                let target = src.executed.clone();
                let msg = format!("{key} applied {}", target.to_position());
                self.wait(now + timeout_ms, Cond::Reach(target.to_position()), msg, false);
            }
            Action::Demote { to, semi } => {
                let s = &mut w.servers[i];
                if check_first && s.channel.as_ref().is_some_and(|c| c.source == to) {
                    return self
                        .finish(Ok((Ended::AlreadyDone, format!("already replicates from {}", w.servers[to].key))));
                }
                s.read_only = true;
                s.stop_replica();
                s.set_semi_primary(false);
                if semi {
                    s.semi_replica = true;
                }
                // SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos
                s.slave_pos = s.executed.clone();
                s.repoint(to, now);
                self.finish(ok(format!("{key} replicates from {}, read-only", w.servers[to].key)));
            }
            Action::Unfence => {
                w.servers[i].read_only = false;
                invariants::on_writable_again(w, i);
                self.finish(ok(format!("{key} is writable again")));
            }
        }
    }
}

fn holds(w: &World, i: usize, cond: &Cond) -> bool {
    let s = &w.servers[i];
    match cond {
        Cond::Reach(target) => reaches(&s.slave_pos.to_position(), target),
        Cond::Replicating(source) => {
            s.channel.as_ref().is_some_and(|c| c.source == *source && c.io == IoThread::Running && c.sql_running)
        }
    }
}

fn wait_failed(w: &World, i: usize, cond: &Cond) -> String {
    let s = &w.servers[i];
    let t = &w.cfg.timing;
    match cond {
        Cond::Reach(target) => format!("{} did not apply {target} within {} ms", s.key, t.relay_apply_timeout_ms),
        Cond::Replicating(source) => {
            let last = match &s.channel {
                None => "no replication status".to_string(),
                Some(c) => format!(
                    "source {}, IO thread {:?}, SQL thread {}{}",
                    w.servers[c.source].key,
                    c.io,
                    if c.sql_running { "running" } else { "stopped" },
                    c.io_error
                        .clone()
                        .or(c.sql_error.clone())
                        .map(|e| format!(", error {}: {}", e.number, e.message))
                        .unwrap_or_default()
                ),
            };
            format!(
                "{} does not replicate from {} after {} ms: {last}",
                s.key, w.servers[*source].key, t.step_timeout_ms
            )
        }
    }
}
