//! Performing one plan step against the simulated servers, hooks and store,
//! the way `pivot::recovery::exec` does it against real ones: same
//! statements, same timeouts, same way of turning results into a
//! [`StepEnd`]. A step is a small state machine polled every tick, so it
//! takes simulated time and a pivot killed in its middle leaves whatever
//! it had done so far.

use super::ops::{Action, Op};
use super::probe;
use crate::config::HookBehaviour;
use crate::hooks::{self, HookCall};
use crate::invariants;
use crate::server::Liveness;
use crate::world::World;
use pivot_core::control::{Ended, StepEnd};
use pivot_core::plan::{HookPoint, Step};
use pivot_core::InstanceKey;

/// Who performs the step.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub recovery: i64,
    pub incarnation: u32,
    pub failed: usize,
}

pub struct StepRun {
    kind: Kind,
    ctx: Ctx,
    /// Interrupted by a restart: see whether the effect is in place first.
    check_first: bool,
}

enum Kind {
    /// Ended when it started (store calls, skipped hooks).
    Now(StepEnd),
    /// Ends at a time (probes, hooks).
    At { done_at: u64, end: StepEnd, stonith: Option<usize> },
    /// One session per instance, in parallel.
    Ops { ops: Vec<Op>, agg: Agg },
}

/// How the results of the sessions make the step's end.
enum Agg {
    StopIo,
    Single {
        prefix: &'static str,
    },
    Lost(String),
    FenceOld,
    Restore(InstanceKey),
    /// The session must fail: the instance must not answer.
    Gone,
}

fn end(how: Ended, message: impl Into<String>) -> StepEnd {
    StepEnd::new(how, message)
}

impl StepRun {
    pub fn start(w: &mut World, ctx: Ctx, step: &Step, check_first: bool) -> StepRun {
        let t = w.cfg.timing.clone();
        let idx = |w: &World, k: &InstanceKey| w.index_of(k).expect("plans name known servers");
        let ops = |w: &World, keys: &[InstanceKey], action: &dyn Fn(usize) -> Action, deadline: u64| -> Vec<Op> {
            keys.iter()
                .map(|k| {
                    let server = idx(w, k);
                    Op::new(server, action(server), deadline)
                })
                .collect()
        };
        let dl = w.now + t.step_timeout_ms;
        let kind = match step {
            Step::FenceLivePrimary { instance } => Kind::Ops {
                ops: ops(w, std::slice::from_ref(instance), &|_| Action::Fence { old: false }, dl),
                agg: Agg::Single { prefix: "could not be fenced: " },
            },
            Step::StopReplicaIo { instances } => {
                Kind::Ops { ops: ops(w, instances, &|_| Action::StopIo, dl), agg: Agg::StopIo }
            }
            Step::Observe { instances, primary } => observe(w, ctx, instances, primary),
            Step::Hook { point } => hook(w, ctx, *point),
            Step::WaitRelayApplied { instance } => Kind::Ops {
                ops: ops(w, std::slice::from_ref(instance), &|_| Action::WaitRelay, dl),
                agg: Agg::Single { prefix: "" },
            },
            Step::CatchUp { instance, from, until } => {
                let from = idx(w, from);
                let until = until.clone();
                Kind::Ops {
                    ops: ops(
                        w,
                        std::slice::from_ref(instance),
                        &|_| Action::CatchUp { from, until: until.clone() },
                        dl,
                    ),
                    agg: Agg::Single { prefix: "" },
                }
            }
            Step::RegisterFence { instance, live } => {
                let r = match w.store.fence_register(w.now, instance, ctx.recovery) {
                    Ok(()) if *live => w.store.fence_update(
                        w.now,
                        instance,
                        "read_only",
                        "the old primary of a switchover: made read-only by it",
                    ),
                    other => other,
                };
                Kind::Now(match r {
                    Ok(()) => end(Ended::Ok, ""),
                    Err(e) => end(Ended::Failed, e),
                })
            }
            Step::PrepareCandidate { instance } => Kind::Ops {
                ops: ops(w, std::slice::from_ref(instance), &|_| Action::Prepare, dl),
                agg: Agg::Single { prefix: "" },
            },
            Step::ConfirmPrimaryGone { instance } => {
                // `exec::confirm_primary_gone`: 50 ms for its greeting (a
                // hung server's kernel accepts the connection, sends nothing).
                let quick = w.now + t.probe_timeout_ms.min(50);
                Kind::Ops { ops: ops(w, std::slice::from_ref(instance), &|_| Action::Ping, quick), agg: Agg::Gone }
            }
            Step::Promote { instance, semi_sync } => {
                let semi = *semi_sync;
                Kind::Ops {
                    ops: ops(w, std::slice::from_ref(instance), &|_| Action::Promote { semi }, dl),
                    agg: Agg::Single { prefix: "" },
                }
            }
            Step::RecordEpoch { primary } => {
                let wall = w.now as i64;
                Kind::Now(match w.store.epoch_advance(w.now, primary, Some(ctx.recovery), wall) {
                    Ok(n) => end(Ended::Ok, format!("epoch {n}")),
                    Err(e) => end(Ended::Failed, e),
                })
            }
            // `recovery::route_step`: the epoch this recovery stored, into
            // this process's route table (its proxy). Other routes are not modelled.
            Step::UpdateRoute { route, primary, .. } => {
                Kind::Now(update_route(w, ctx.recovery, ctx.failed, *route, primary))
            }
            Step::Repoint { instances, to } => {
                let to_i = idx(w, to);
                Kind::Ops {
                    ops: ops(w, instances, &|_| Action::Repoint { to: to_i }, dl),
                    agg: Agg::Lost(format!("could not be repointed to {to}")),
                }
            }
            Step::ConfirmReplicating { instances, source } => {
                let s = idx(w, source);
                Kind::Ops {
                    ops: ops(w, instances, &|_| Action::Confirm { source: s }, dl),
                    agg: Agg::Lost(format!("does not replicate from {source}")),
                }
            }
            Step::FenceOldPrimary { instance } => {
                let quick = w.now + t.probe_timeout_ms.min(250);
                Kind::Ops {
                    ops: ops(w, std::slice::from_ref(instance), &|_| Action::Fence { old: true }, quick),
                    agg: Agg::FenceOld,
                }
            }
            Step::RestoreReplication { replicas, source, candidate } => {
                let s = idx(w, source);
                let c = candidate.as_ref().map(|c| idx(w, c));
                Kind::Ops {
                    ops: ops(w, replicas, &|i| Action::Restore { source: s, candidate: c == Some(i) }, dl),
                    agg: Agg::Restore(source.clone()),
                }
            }
            Step::ClearFence { instance } => Kind::Now(match w.store.fence_remove(w.now, instance) {
                Ok(()) => end(Ended::Ok, ""),
                Err(e) => end(Ended::Failed, e),
            }),
            Step::UnregisterFence { instance } => Kind::Now(match w.store.fence_remove(w.now, instance) {
                Ok(()) => end(Ended::Ok, ""),
                Err(e) => end(Ended::Failed, e),
            }),
            // ---- a planned switchover (`pivot::recovery::exec_handover`) ----
            // No long transactions are modelled: the check passes.
            Step::CheckTransactions { .. } => Kind::Now(end(Ended::Ok, "no open transaction")),
            Step::MakeReadOnly { instance } => Kind::Ops {
                ops: ops(w, std::slice::from_ref(instance), &|_| Action::MakeReadOnly, dl),
                agg: Agg::Single { prefix: "" },
            },
            Step::EndTransactions { instance, .. } => Kind::Ops {
                ops: ops(w, std::slice::from_ref(instance), &|_| Action::Fence { old: false }, dl),
                agg: Agg::Single { prefix: "" },
            },
            Step::WaitCaughtUp { instance, source, timeout_ms } => {
                let (source, timeout_ms) = (idx(w, source), *timeout_ms);
                Kind::Ops {
                    ops: ops(w, std::slice::from_ref(instance), &|_| Action::WaitCaughtUp { source, timeout_ms }, dl),
                    agg: Agg::Single { prefix: "" },
                }
            }
            Step::ConfirmFrozen { instance, candidate } => {
                let (o, c) = (idx(w, instance), idx(w, candidate));
                let link = w.net.connected(crate::network::Party::Pivot, crate::network::Party::Server(o));
                let (old, cand) = (&w.servers[o], &w.servers[c]);
                Kind::Now(if !(link && old.up()) {
                    end(Ended::Failed, format!("cannot connect to {instance}"))
                } else if old.writable() {
                    end(Ended::Failed, format!("{instance} is writable again"))
                } else if !old.executed.iter().all(|g| cand.has(&g)) {
                    end(Ended::Failed, format!("{instance} took writes after it was made read-only"))
                } else {
                    end(Ended::Ok, format!("{instance}: all on {candidate}"))
                })
            }
            Step::Demote { instance, to, semi_sync } => {
                let (to, semi) = (idx(w, to), *semi_sync);
                Kind::Ops {
                    ops: ops(w, std::slice::from_ref(instance), &|_| Action::Demote { to, semi }, dl),
                    agg: Agg::Single { prefix: "" },
                }
            }
            Step::ReleaseFence { instance, primary } => {
                let (i, p) = (idx(w, instance), idx(w, primary));
                let link = w.net.connected(crate::network::Party::Pivot, crate::network::Party::Server(i));
                let s = &w.servers[i];
                let replicating = link
                    && s.up()
                    && s.channel.as_ref().is_some_and(|c| {
                        c.source == p && c.io == pivot_core::observation::IoThread::Running && c.sql_running
                    });
                Kind::Now(if !replicating {
                    end(
                        Ended::Failed,
                        format!("kept on the fence list (read-only): {instance} does not replicate from {primary}"),
                    )
                } else {
                    match w.store.fence_remove(w.now, instance) {
                        Ok(()) => end(Ended::Ok, format!("{instance} replicates from {primary}: off the fence list")),
                        Err(e) => end(Ended::Failed, e),
                    }
                })
            }
            Step::Unfence { instance } => Kind::Ops {
                ops: ops(w, std::slice::from_ref(instance), &|_| Action::Unfence, dl),
                agg: Agg::Single { prefix: "" },
            },
        };
        StepRun { kind, ctx, check_first }
    }

    /// `None` while it runs; its end once it ended.
    pub fn poll(&mut self, w: &mut World) -> Option<StepEnd> {
        match &mut self.kind {
            Kind::Now(e) => Some(e.clone()),
            Kind::At { done_at, end, stonith } => {
                if w.now < *done_at {
                    return None;
                }
                if let Some(victim) = stonith.take() {
                    if w.servers[victim].liveness != Liveness::Crashed {
                        w.servers[victim].crash();
                        w.log(format!("STONITH: the fence hook killed s{}", victim + 1));
                    }
                }
                Some(end.clone())
            }
            Kind::Ops { ops, agg } => {
                for op in ops.iter_mut() {
                    op.poll(w, self.ctx, self.check_first);
                }
                if ops.iter().any(|o| o.result.is_none()) {
                    return None;
                }
                Some(aggregate(w, ops, agg))
            }
        }
    }
}

fn aggregate(w: &mut World, ops: &[Op], agg: &Agg) -> StepEnd {
    let key = |op: &Op| w.servers[op.server].key.clone();
    let failed: Vec<(InstanceKey, String)> = ops
        .iter()
        .filter_map(|o| match o.result.as_ref().expect("ended") {
            Err(e) => Some((key(o), e.clone())),
            Ok(_) => None,
        })
        .collect();
    let list =
        |items: &[(InstanceKey, String)]| items.iter().map(|(k, e)| format!("{k}: {e}")).collect::<Vec<_>>().join("; ");
    match agg {
        Agg::StopIo => {
            if failed.is_empty() {
                let each: Vec<String> = ops.iter().map(|o| format!("{} in 1 ms", key(o))).collect();
                end(Ended::Ok, format!("stopped: {}", each.join(", ")))
            } else {
                end(Ended::Ok, format!("not stopped (treated as unreachable): {}", list(&failed)))
            }
        }
        Agg::Single { prefix } => match ops[0].result.clone().expect("ended") {
            Ok((how, msg)) => end(how, msg),
            Err(e) => end(Ended::Failed, format!("{prefix}{e}")),
        },
        Agg::Lost(what) => {
            if failed.is_empty() {
                return end(Ended::Ok, format!("{} replica(s)", ops.len()));
            }
            let lost = failed.iter().map(|(k, e)| (k.clone(), format!("{what}: {e}"))).collect();
            StepEnd { lost, ..end(Ended::Failed, list(&failed)) }
        }
        Agg::FenceOld => match ops[0].result.clone().expect("ended") {
            Ok((how, msg)) => {
                let k = key(&ops[0]);
                let now = w.now;
                if let Err(e) = w.store.fence_update(now, &k, "read_only", &msg) {
                    w.log(format!("cannot record the fence of {k}: {e}"));
                }
                end(how, msg)
            }
            Err(e) => end(
                Ended::Skipped,
                format!("unreachable ({e}); kept in the fence list: made read-only the moment it answers"),
            ),
        },
        Agg::Gone => match ops[0].result.clone().expect("ended") {
            Ok(_) => end(Ended::Failed, format!("{} answers again: failover abandoned", key(&ops[0]))),
            Err(e) => end(Ended::Ok, format!("does not answer ({e})")),
        },
        Agg::Restore(source) => {
            if failed.is_empty() {
                end(Ended::Ok, format!("{} replica(s) replicate from {source} again", ops.len()))
            } else {
                end(Ended::Failed, list(&failed))
            }
        }
    }
}

/// Probe the replicas again, in parallel; the failed primary's answer counts
/// only if it came in by the time the replicas answered.
fn observe(w: &mut World, ctx: Ctx, instances: &[InstanceKey], primary: &InstanceKey) -> Kind {
    let timeout = w.cfg.timing.probe_timeout_ms;
    let mut observations = Vec::new();
    let mut slowest = 0;
    let mut reachable = Vec::new();
    for k in instances {
        let i = w.index_of(k).expect("a known replica");
        let (latency, obs) = probe::probe(w, i, timeout);
        slowest = slowest.max(latency);
        if obs.state().is_some() {
            reachable.push(i);
        }
        observations.push(obs);
    }
    let answered = reachable.len();
    let mut message = format!("{answered} of {} replica(s) answered", instances.len());
    let p = w.index_of(primary).expect("a known primary");
    let (latency, obs) = probe::probe(w, p, timeout);
    if latency <= slowest + 10 {
        if obs.state().is_some() {
            message.push_str(&format!("; {primary} answers"));
        }
        observations.push(obs);
    }
    invariants::on_observe(w, ctx.recovery, &reachable);
    let done_at = w.now + slowest.max(1);
    Kind::At { done_at, end: StepEnd { observations, ..end(Ended::Ok, message) }, stonith: None }
}

fn hook(w: &mut World, ctx: Ctx, point: HookPoint) -> Kind {
    if !hooks::configured(&w.cfg.hooks, point) {
        return Kind::Now(end(Ended::Skipped, "not configured"));
    }
    let random = w.faults.active(w.now);
    let behaviour = hooks::draw(&mut w.cfg.hooks, point, random, &mut w.rng);
    match behaviour {
        HookBehaviour::Ok => {}
        HookBehaviour::Fail => w.faults.count("hook_failure"),
        HookBehaviour::Hang => w.faults.count("hook_hang"),
    }
    w.hook_calls.push(HookCall { point, recovery: ctx.recovery, incarnation: ctx.incarnation, at: w.now, behaviour });
    w.log(format!("hook {} called: will {behaviour:?}", point.as_str()));
    let latency = w.cfg.hooks.latency_ms.max(1);
    let timeout = w.cfg.timing.hook_timeout_ms;
    let (done_at, e) = match behaviour {
        HookBehaviour::Ok => (w.now + latency, end(Ended::Ok, "exit status 0")),
        HookBehaviour::Fail => (w.now + latency, end(Ended::Failed, "exit status 1")),
        HookBehaviour::Hang => {
            (w.now + timeout, end(Ended::Failed, format!("timed out after {timeout} ms: killed its process group")))
        }
    };
    let stonith =
        (point == HookPoint::Fence && behaviour == HookBehaviour::Ok && w.cfg.hooks.stonith).then_some(ctx.failed);
    Kind::At { done_at, end: e, stonith }
}

fn update_route(
    w: &mut World,
    recovery: i64,
    failed: usize,
    route: pivot_core::routes::RouteKind,
    primary: &InstanceKey,
) -> StepEnd {
    if route != pivot_core::routes::RouteKind::Local {
        return end(Ended::Skipped, "not modelled");
    }
    let Some(epoch) = w.store.epochs.iter().find(|e| e.recovery_id == Some(recovery)).cloned() else {
        return end(Ended::Failed, "this recovery stored no epoch");
    };
    if epoch.primary != *primary {
        return end(Ended::Failed, "the epoch names another primary");
    }
    let Some(current) = w.local_routes.clone() else {
        return end(Ended::Failed, "no route table in this process");
    };
    let old = w.servers[failed].key.clone();
    let table = current.after_promotion(&epoch, Some(&old));
    if w.publish_routes(table) || w.local_routes.as_ref().is_some_and(|t| t.epoch >= epoch.number) {
        end(Ended::Ok, format!("epoch {}", epoch.number))
    } else {
        end(Ended::Failed, "the route table refused the epoch")
    }
}
