//! The invariants, checked against the simulated world (never against
//! pivot's own view of it) after every event: at the moments they concern
//! (a recovery starts, a step runs, a candidate is promoted) and at the end
//! of every tick. The first one broken stops the run with its seed and the
//! last events.
//!
//! What is checked, and how precisely:
//!
//! * **acknowledged write lost** (at each promotion): every write a server
//!   acknowledged with a semi-sync acknowledgement is applied on the
//!   promoted server, if any replica that pivot reached in the recovery's
//!   `observe` step held it (received or applied) then or at the promotion.
//!   Writes only unreachable replicas held are beyond any single pivot's
//!   knowledge; writes acknowledged asynchronously (semi-sync off or fallen
//!   off after its timeout) are not promised.
//! * **one writer** (every tick): at most one server can acknowledge a
//!   client write: up, writable, and either not waiting for semi-sync or
//!   with a semi-sync replica connected. A hung server, or an old primary
//!   cut off from every replica, may stay writable: it cannot acknowledge.
//!   Checked where this can hold: semi-sync on, no timeout (the sandbox's
//!   setting), `wait_no_slave` on. Elsewhere an old primary cut off from
//!   pivot but reachable by clients acknowledges writes no matter what pivot
//!   does (short of a STONITH hook), and only the next check applies. A
//!   former primary (in the fence list) that restarts writable, as its
//!   configuration says, while no pivot process runs is not counted: nobody
//!   can fence it then (`read_only=ON` in every server's configuration
//!   closes that gap).
//! * **fence enforced** (every tick, both modes): a server in the fence
//!   list (other than the current primary) that is writable while pivot
//!   reaches it is made read-only within `fence_bound_ms` of pivot running.
//! * **second opinion** (when an automatic recovery starts): no replica that
//!   pivot reached continuously was connected to the failed primary (up, link
//!   up, IO thread reading) for the last two confirm windows.
//! * **dead primary recovered or alerted** (every tick): once the current
//!   primary is crashed, hung, or cut off from pivot and every server, within
//!   `recovery_bound_ms` of pivot running a new primary is promoted or an
//!   alert is raised (an alert raised since the primary last served writes
//!   to pivot's knowledge counts: a primary that came back read-only or out
//!   of pivot's sight and died again is the same outage to pivot).
//! * **step run twice** (when a step is performed): a step whose end is in
//!   the store never runs again (except `observe`, re-run when the stored
//!   plan has no choice yet: it only reads); one process never runs a step
//!   twice; an interrupted `check_first` step is re-run with the check.
//!   A step whose end could not be written counts as interrupted: that is
//!   all a restarted pivot can know.
//! * **veto bypassed** (at each promotion): no promotion in a recovery in
//!   which a vetoing hook (pre_failover, mha_stop, fence) failed.
//! * **one promotion per recovery**, **fence before promotion** (the
//!   failed primary is in the fence list when its successor opens for
//!   writes), **plan rules** (every recorded plan passes `PlanDoc::check`).
//! * **anti-flapping** (when an automatic recovery starts): none within the
//!   block period, in monotonic time, after a recovery that promoted and
//!   recorded its block.
//! * **routes follow the newest epoch** (whenever a pivot process's route
//!   table changes): its write target is the primary of the newest stored
//!   epoch, never a server in the fence list; a table never replaces one of
//!   a newer epoch (the hub refuses it).
//! * **routed writes reach the epoch's primary** (every tick): a write
//!   acknowledged to the client that connects through pivot's proxy was
//!   acknowledged by the primary of the newest stored epoch.
//! * at the end, after every fault healed and a quiet period: at most one
//!   writable server.

use crate::network::Party;
use crate::pivot::probe;
use crate::replication::{connected_to, semi_clients};
use crate::server::{covers, Liveness};
use crate::world::World;
use pivot_core::control::{Ended, Finish, StepEnd};
use pivot_core::gtid::MariaGtidList;
use pivot_core::plan::{OnResume, Step};
use std::collections::BTreeMap;

/// The facts the checks need, kept by the simulator (it survives pivot).
#[derive(Clone, Debug, Default)]
pub struct Book {
    /// Acknowledgements already checked by the routed-writes invariant.
    pub routed_checked: usize,
    /// The server clients should write to: the first primary, then each one promoted.
    pub primary: usize,
    /// The current primary failed then (crash, hang, cut off), not yet replaced.
    pub outage_since: Option<u64>,
    pub recovery_times: Vec<u64>,
    pub promotions: BTreeMap<i64, u32>,
    pub recoveries: usize,
    /// What each recovery's observe step found: reachable replicas and what they held.
    observed: BTreeMap<i64, Vec<(usize, MariaGtidList)>>,
    /// Performances of each (recovery, step): the process that ran it.
    performs: BTreeMap<(i64, i64), Vec<u32>>,
    /// Recoveries in which a vetoing hook failed, with the hook.
    vetoed: BTreeMap<i64, String>,
    /// The last recovery that promoted and recorded its block: (end, id).
    blocked_by: Option<(u64, i64)>,
    dead_since: Option<u64>,
    /// The last tick the current primary served: up, writable, answering pivot.
    served_at: u64,
    dead_for_ms: u64,
    dead_alerts: usize,
    dead_promotions: u32,
    /// Per server: (source, since when) it is connected and reading.
    hearing: Vec<Option<(usize, u64)>>,
    /// Per server: since when pivot's probes get answers.
    answering: Vec<Option<u64>>,
    /// Per server: how long (pivot running) it was fenced yet writable and reachable.
    exposed_ms: BTreeMap<usize, u64>,
    /// Planned switchovers: recovery id -> the old primary.
    pub switchovers: BTreeMap<i64, usize>,
}

fn total_promotions(b: &Book) -> u32 {
    b.promotions.values().sum()
}

/// Semi-sync with no timeout and `wait_no_slave`: an old primary cut off
/// from its replicas cannot acknowledge anything.
fn strict(w: &World) -> bool {
    w.cfg.semi_sync && w.cfg.semi_sync_timeout_ms.is_none() && w.cfg.wait_no_replica
}

/// Whether server `i` would acknowledge a client write now.
pub fn can_acknowledge(w: &World, i: usize) -> bool {
    let s = &w.servers[i];
    if !s.up() || !s.writable() {
        return false;
    }
    let waits = s.semi.enabled && s.semi.active && s.semi.wait_no_replica && s.semi.timeout_ms.is_none();
    !waits || !semi_clients(&w.servers, &w.net, i).is_empty()
}

pub fn on_recovery_start(w: &mut World, id: i64, failed: usize) {
    w.book.recoveries += 1;
    let now = w.now;
    let window = 2 * w.cfg.detection.confirm_window_ms;
    let hearing: Vec<usize> = (0..w.servers.len())
        .filter(|&r| r != failed)
        .filter(|&r| w.book.hearing.get(r).copied().flatten().is_some_and(|(s, t)| s == failed && now - t >= window))
        .filter(|&r| w.book.answering.get(r).copied().flatten().is_some_and(|t| now - t >= window))
        .collect();
    if let Some(r) = hearing.first() {
        w.fail(
            "second opinion",
            format!(
                "recovery {id} of s{} started while s{} (answering pivot) has been reading from it for {} ms",
                failed + 1,
                r + 1,
                window
            ),
        );
    }
    if let Some((end, by)) = w.book.blocked_by {
        let block = w.cfg.timing.block_period_ms;
        if now < end + block {
            w.fail(
                "anti-flapping",
                format!(
                    "automatic recovery {id} started {} ms after recovery {by} promoted, inside its {block} ms block",
                    now - end
                ),
            );
        }
    }
}

/// A planned switchover started: the old primary answers, so neither the
/// second opinion nor the anti-flapping block apply; every write it
/// acknowledged must reach the new primary (checked at the promotion).
pub fn on_switchover_start(w: &mut World, id: i64, old: usize) {
    w.book.recoveries += 1;
    w.book.switchovers.insert(id, old);
}

pub fn on_observe(w: &mut World, id: i64, reachable: &[usize]) {
    let held = reachable
        .iter()
        .map(|&r| {
            let s = &w.servers[r];
            let mut list = s.executed.clone();
            if let Some(c) = &s.channel {
                list = list.union(&c.received);
            }
            (r, list)
        })
        .collect();
    w.book.observed.insert(id, held);
}

pub fn on_perform(
    w: &mut World,
    id: i64,
    seq: i64,
    step: &Step,
    check_first: bool,
    incarnation: u32,
    has_choice: bool,
) {
    let name = step.name();
    let stored = w.store.recovery(id).and_then(|r| r.step(seq)).cloned();
    let earlier = w.book.performs.get(&(id, seq)).cloned().unwrap_or_default();
    if let Some(s) = &stored {
        if s.name != name {
            w.fail("step run twice", format!("recovery {id} step {seq} is {name} but its record says {}", s.name));
        }
        if let Some(outcome) = s.outcome {
            let observe_again = matches!(step, Step::Observe { .. }) && !has_choice;
            if !observe_again {
                w.fail(
                    "step run twice",
                    format!("recovery {id} step {seq} {name} ended ({}) and runs again", outcome.as_str()),
                );
            }
        } else if step.on_resume() == OnResume::CheckFirst && !check_first {
            w.fail(
                "step run twice",
                format!("recovery {id} step {seq} {name} was interrupted and is re-run without checking first"),
            );
        }
    }
    if earlier.contains(&incarnation) {
        w.fail("step run twice", format!("recovery {id} step {seq} {name} run twice by pivot #{incarnation}"));
    }
    w.book.performs.entry((id, seq)).or_default().push(incarnation);
}

pub fn on_step_end(w: &mut World, id: i64, step: &Step, end: &StepEnd, vetoes: bool) {
    let vetoing_hook = matches!(step, Step::Hook { point } if point.vetoes());
    if vetoes && vetoing_hook && end.how == Ended::Failed && !w.book.promotions.contains_key(&id) {
        w.book.vetoed.entry(id).or_insert_with(|| format!("{} ({})", step.name(), end.message));
    }
}

pub fn on_routes(w: &mut World, table: &pivot_core::routes::RouteTable) {
    let Some(target) = table.write_target() else { return };
    let newest = w.store.current_epoch().map(|e| (e.number, e.primary.clone()));
    if newest.as_ref().map(|(_, p)| p) != Some(target) {
        w.fail(
            "routes follow the newest epoch",
            format!("writes routed to {target} (table epoch {}), newest stored epoch: {newest:?}", table.epoch),
        );
    } else if w.store.fences.iter().any(|f| &f.instance == target) {
        w.fail("routes follow the newest epoch", format!("writes routed to {target}, which is in the fence list"));
    }
}

pub fn on_promote(w: &mut World, id: i64, failed: usize, c: usize) {
    let now = w.now;
    let n = {
        let e = w.book.promotions.entry(id).or_insert(0);
        *e += 1;
        *e
    };
    if n > 1 {
        w.fail("one promotion per recovery", format!("recovery {id} promoted {n} times (s{} now)", c + 1));
    }
    if let Some(hook) = w.book.vetoed.get(&id).cloned() {
        w.fail("veto bypassed", format!("recovery {id} promoted s{} after {hook} failed", c + 1));
    }
    let key = w.servers[failed].key.clone();
    if !w.store.fences.iter().any(|f| f.instance == key) {
        w.fail(
            "fence before promotion",
            format!("recovery {id} made s{} writable before {key} was in the fence list", c + 1),
        );
    }
    lossless(w, id, failed, c);
    if w.book.switchovers.contains_key(&id) {
        handed_over(w, id, failed, c);
    }
    w.log(format!("s{} promoted by recovery {id}", c + 1));
    w.book.primary = c;
    if let Some(since) = w.book.outage_since.take() {
        w.book.recovery_times.push(now - since);
    }
}

fn lossless(w: &mut World, id: i64, failed: usize, c: usize) {
    let observed = w.book.observed.get(&id).cloned().unwrap_or_default();
    let missing = w.clients.acks.iter().filter(|a| a.acker.is_some()).find(|a| {
        !w.servers[c].has(&a.gtid)
            && observed.iter().any(|(r, held)| covers(held, &a.gtid) || (*r != failed && w.servers[*r].holds(&a.gtid)))
    });
    if let Some(a) = missing {
        let holders: Vec<String> = observed
            .iter()
            .filter(|(r, held)| covers(held, &a.gtid) || w.servers[*r].holds(&a.gtid))
            .map(|(r, _)| format!("s{}", r + 1))
            .collect();
        let detail = format!(
            "write {} acknowledged by s{} at {} ms (semi-sync ack from s{}) is not on s{} promoted by recovery {id}; \
             held by {} when pivot observed them",
            a.gtid,
            a.server + 1,
            a.at,
            a.acker.map_or(0, |r| r + 1),
            c + 1,
            holders.join(", ")
        );
        w.fail("acknowledged write lost", detail);
    }
}

/// A switchover loses nothing: every write the old primary acknowledged,
/// with or without semi-sync, is on the new primary when it opens, and the
/// old primary no longer takes writes.
fn handed_over(w: &mut World, id: i64, old: usize, c: usize) {
    if w.servers[old].writable() {
        w.fail("switchover: one writer", format!("recovery {id} promoted s{} while s{} is writable", c + 1, old + 1));
    }
    let missing = w.clients.acks.iter().find(|a| a.server == old && !w.servers[c].has(&a.gtid));
    if let Some(a) = missing {
        let detail = format!(
            "write {} acknowledged by s{} at {} ms is not on s{} promoted by switchover {id}",
            a.gtid,
            old + 1,
            a.at,
            c + 1
        );
        w.fail("switchover: acknowledged write lost", detail);
    }
}

/// An old primary made writable again by an undo (`unfence`): it is the primary.
pub fn on_writable_again(w: &mut World, i: usize) {
    w.book.primary = i;
}

pub fn on_finish(w: &mut World, id: i64, f: &Finish, block_recorded: bool) {
    if f.status.promoted() && block_recorded {
        w.book.blocked_by = Some((w.now, id));
    }
}

pub fn on_fenced(w: &mut World, i: usize) {
    w.book.exposed_ms.remove(&i);
}

/// A fault took the current primary out of service.
pub fn on_primary_fault(w: &mut World) {
    let now = w.now;
    w.book.outage_since.get_or_insert(now);
}

/// The checks of every tick; `pivot_running`: a pivot process is up.
pub fn tick(w: &mut World, pivot_running: bool) {
    let now = w.now;
    let newest = w.store.current_epoch().and_then(|e| w.index_of(&e.primary));
    let from = w.book.routed_checked;
    let stray = w.clients.acks[from..]
        .iter()
        .find(|a| w.clients.routed(a.client) && Some(a.server) != newest)
        .map(|a| (a.id, a.server));
    w.book.routed_checked = w.clients.acks.len();
    if let Some((id, server)) = stray {
        let newest = newest.map_or("none".to_string(), |i| format!("s{}", i + 1));
        w.fail(
            "routed writes reach the epoch's primary",
            format!(
                "write {id} through the proxy acknowledged by s{}; the newest epoch's primary is {newest}",
                server + 1
            ),
        );
    }
    let n = w.servers.len();
    let tick = w.cfg.timing.tick_ms;
    w.book.hearing.resize(n, None);
    w.book.answering.resize(n, None);
    for r in 0..n {
        let src = w.servers[r].channel.as_ref().map(|c| c.source);
        let hearing = src.filter(|&s| connected_to(&w.servers, &w.net, r, s));
        w.book.hearing[r] = match (hearing, w.book.hearing[r]) {
            (Some(s), Some((was, since))) if s == was => Some((s, since)),
            (Some(s), _) => Some((s, now)),
            (None, _) => None,
        };
        let answers = probe::answers(w, r, w.cfg.timing.probe_timeout_ms);
        w.book.answering[r] = if answers { w.book.answering[r].or(Some(now)) } else { None };
    }

    // Before "one writer": the sharper name for a passive written too early.
    if w.cfg.dual_primary {
        applied_before_writable(w);
    }

    // One writer. A former primary restarted writable (its configuration)
    // while no pivot runs cannot be fenced by anyone: not counted then. A
    // server whose configuration makes it writable (the first primary),
    // restarted writable after a switchover made it a replica, is not
    // counted either: no runtime setting survives a restart, so pivot can
    // only fence it, within the fence bound (checked below).
    let fenced_keys: Vec<usize> = w.store.fences.iter().filter_map(|f| w.index_of(&f.instance)).collect();
    let restarted_writable: Vec<usize> = (0..n)
        .filter(|&i| i != w.book.primary && !w.servers[i].config_read_only && w.servers[i].channel.is_some())
        .collect();
    let ackers: Vec<usize> = (0..n)
        .filter(|&i| can_acknowledge(w, i))
        .filter(|i| pivot_running || !fenced_keys.contains(i))
        .filter(|i| !restarted_writable.contains(i))
        .collect();
    if strict(w) && ackers.len() > 1 {
        let names: Vec<String> = ackers.iter().map(|i| format!("s{}", i + 1)).collect();
        w.fail("one writer", format!("{} can all acknowledge client writes", names.join(" and ")));
    }

    // Fence enforced (and a replica restarted writable by its configuration).
    let mut exposable = fenced_keys;
    exposable.extend(restarted_writable.iter().filter(|i| can_acknowledge(w, **i)));
    exposable.sort_unstable();
    exposable.dedup();
    for f in exposable {
        let s = &w.servers[f];
        let exposed =
            f != w.book.primary && s.up() && s.writable() && probe::answers(w, f, w.cfg.timing.probe_timeout_ms);
        if !exposed {
            w.book.exposed_ms.remove(&f);
            continue;
        }
        if pivot_running {
            let e = w.book.exposed_ms.entry(f).or_insert(0);
            *e += tick;
            if *e > w.cfg.fence_bound_ms {
                let bound = w.cfg.fence_bound_ms;
                w.fail(
                    "fence enforced",
                    format!("s{} is in the fence list, writable and reachable for {bound} ms", f + 1),
                );
            }
        }
    }

    // Dead primary recovered or alerted.
    let p = w.book.primary;
    if w.servers[p].up() && w.servers[p].writable() && w.book.answering[p].is_some() {
        w.book.served_at = now;
    }
    let dead = match w.servers[p].liveness {
        Liveness::Crashed | Liveness::Hung => true,
        Liveness::Up => {
            (0..n).all(|o| o == p || !w.net.connected(Party::Server(p), Party::Server(o)))
                && !w.net.connected(Party::Server(p), Party::Pivot)
        }
    };
    if !dead {
        w.book.dead_since = None;
        if w.servers[p].writable() {
            // Back by itself (a hang ended, a cut healed): no recovery to time.
            w.book.outage_since = None;
        }
    } else if w.book.dead_since.is_none() {
        w.book.dead_since = Some(now);
        w.book.dead_for_ms = 0;
        // An alert raised since the primary last served covers this death
        // too: pivot never saw it serve again (it came back read-only, or
        // only where pivot could not see it), so nothing new happened for pivot.
        let served_at = w.book.served_at;
        w.book.dead_alerts = w.alerts.iter().filter(|(t, _)| *t <= served_at).count();
        w.book.dead_promotions = total_promotions(&w.book);
    } else if pivot_running {
        w.book.dead_for_ms += tick;
        let acted = w.alerts.len() > w.book.dead_alerts || total_promotions(&w.book) > w.book.dead_promotions;
        if !acted && w.book.dead_for_ms > w.cfg.recovery_bound_ms {
            let since = w.book.dead_since.unwrap_or(now);
            w.fail(
                "dead primary recovered or alerted",
                format!(
                    "primary s{} dead since {since} ms: no promotion and no alert in {} ms of pivot running",
                    p + 1,
                    w.cfg.recovery_bound_ms
                ),
            );
        }
    }
}

/// Dual primaries: no server is writable while it holds events received
/// from the other that it has not applied (the field report's duplicate-key
/// stop: the passive written before it applied the active's last writes).
/// The active's own writes coming back round the ring are applied already.
fn applied_before_writable(w: &mut World) {
    for (i, s) in w.servers.iter().enumerate() {
        if !s.up() || !s.writable() {
            continue;
        }
        let Some(c) = s.channel.as_ref() else { continue };
        if let Some(e) = c.relay.iter().find(|e| !s.has(&e.gtid)) {
            let detail =
                format!("s{} is writable with {} received from s{} and not applied", i + 1, e.gtid, c.source + 1);
            w.fail("dual primary: applied before writable", detail);
            return;
        }
    }
}

/// After every fault healed and a quiet period.
pub fn at_end(w: &mut World) {
    let writable: Vec<usize> = (0..w.servers.len()).filter(|&i| w.servers[i].up() && w.servers[i].writable()).collect();
    if writable.len() > 1 {
        let names: Vec<String> = writable.iter().map(|i| format!("s{}", i + 1)).collect();
        w.fail("one writer at the end", format!("{} are all writable after every fault healed", names.join(" and ")));
    }
}
