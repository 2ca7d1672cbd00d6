//! Faults drawn from the seed, and their end: the primary (or another
//! server) crashes and maybe restarts, hangs and resumes; links between any
//! two parties are cut and heal; a server is cut off from everybody; probes
//! slow down; a replica stops applying; pivot is killed (at any tick, and
//! at command boundaries of a recovery) and restarted; state writes fail;
//! the wall clock jumps; hooks fail or hang (drawn where hooks run).
//!
//! Faults come in a window; when it closes everything heals (crashed
//! servers restart, links heal, hung servers resume), and the rest of the
//! run is quiet, so the invariants judge where pivot leaves the cluster.

use crate::config::FaultConfig;
use crate::invariants;
use crate::network::Party;
use crate::server::Liveness;
use crate::world::World;
use rand::Rng;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Heal {
    Restart(usize),
    Resume(usize),
}

#[derive(Clone, Debug, Default)]
pub struct FaultState {
    cfg: Option<FaultConfig>,
    next_at: u64,
    pivot_kills: u32,
    scheduled: Vec<(u64, Heal)>,
    healed: bool,
    pub counts: BTreeMap<&'static str, u64>,
}

const KINDS: [(&str, u32); 11] = [
    ("primary_crash", 4),
    ("primary_hang", 3),
    ("partition", 4),
    ("isolate", 2),
    ("slow_probes", 2),
    ("pivot_kill", 2),
    ("state_write_failure", 3),
    ("wall_clock_jump", 2),
    ("apply_stall", 2),
    ("replica_crash", 1),
    ("replica_hang", 1),
];

impl FaultState {
    pub fn new(cfg: &FaultConfig) -> FaultState {
        FaultState { cfg: cfg.enabled.then(|| cfg.clone()), next_at: cfg.from_ms, ..FaultState::default() }
    }

    /// Faults are being injected now.
    pub fn active(&self, now: u64) -> bool {
        self.cfg.as_ref().is_some_and(|c| now >= c.from_ms && now < c.until_ms)
    }

    pub fn count(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_insert(0) += 1;
    }

    fn may_kill_pivot(&self) -> bool {
        self.cfg.as_ref().is_some_and(|c| self.pivot_kills < c.max_pivot_kills)
    }
}

/// Pivot is killed right after a command of a recovery ended.
pub fn boundary_kill(w: &mut World) -> bool {
    let Some(p) = w.faults.cfg.as_ref().map(|c| c.kill_at_boundary_p) else { return false };
    if !w.faults.active(w.now) || !w.faults.may_kill_pivot() || !w.rng.random_bool(p) {
        return false;
    }
    w.faults.pivot_kills += 1;
    w.faults.count("pivot_kill");
    w.log("FAULT pivot killed at a command boundary");
    true
}

/// What the simulator must do to pivot this tick.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PivotFault {
    pub kill: bool,
    /// Everything heals: a dead pivot restarts now.
    pub restart: bool,
}

pub fn tick(w: &mut World, recovery_running: bool) -> PivotFault {
    let now = w.now;
    let mut out = PivotFault::default();
    heal_due(w);
    let Some(cfg) = w.faults.cfg.clone() else { return out };
    if now >= cfg.until_ms {
        if !w.faults.healed {
            w.faults.healed = true;
            heal_all(w);
            out.restart = true;
        }
        return out;
    }
    if now < cfg.from_ms {
        return out;
    }
    if recovery_running && w.faults.may_kill_pivot() && w.rng.random_bool(cfg.kill_in_recovery_p) {
        w.faults.pivot_kills += 1;
        w.faults.count("pivot_kill");
        w.log("FAULT pivot killed during a recovery");
        out.kill = true;
    }
    if now >= w.faults.next_at {
        w.faults.next_at = now + w.rng.random_range(cfg.gap_ms.0..=cfg.gap_ms.1);
        out.kill |= inject(w, &cfg);
    }
    out
}

fn heal_due(w: &mut World) {
    let now = w.now;
    for (a, b) in w.net.heal_due(now) {
        w.log(format!("link {a}-{b} healed"));
    }
    let due: Vec<Heal> = w.faults.scheduled.iter().filter(|(t, _)| *t <= now).map(|(_, h)| *h).collect();
    w.faults.scheduled.retain(|(t, _)| *t > now);
    for h in due {
        match h {
            Heal::Restart(i) if w.servers[i].liveness == Liveness::Crashed => {
                w.servers[i].restart(now);
                w.log(format!("s{} restarted (read_only={})", i + 1, w.servers[i].read_only));
            }
            Heal::Resume(i) if w.servers[i].liveness == Liveness::Hung => {
                w.servers[i].liveness = Liveness::Up;
                w.log(format!("s{} resumed", i + 1));
            }
            _ => {}
        }
    }
}

fn heal_all(w: &mut World) {
    let now = w.now;
    w.net.heal_all();
    w.store.fail_until = 0;
    w.store.fail_next = 0;
    w.faults.scheduled.clear();
    for i in 0..w.servers.len() {
        let s = &mut w.servers[i];
        s.apply_stalled_until = 0;
        match s.liveness {
            Liveness::Hung => s.liveness = Liveness::Up,
            Liveness::Crashed => s.restart(now),
            Liveness::Up => {}
        }
    }
    w.log("faults over: every link healed, every server up, the state store writable");
}

fn pick_kind(w: &mut World) -> &'static str {
    let total: u32 = KINDS.iter().map(|(_, n)| n).sum();
    let mut x = w.rng.random_range(0..total);
    for (k, n) in KINDS {
        if x < n {
            return k;
        }
        x -= n;
    }
    unreachable!("weights add up")
}

/// Inject one fault; returns whether pivot is killed.
fn inject(w: &mut World, cfg: &FaultConfig) -> bool {
    let now = w.now;
    let n = w.servers.len();
    let primary = w.book.primary;
    let kind = pick_kind(w);
    let other = |w: &mut World| -> usize {
        let o = w.rng.random_range(0..n - 1);
        if o >= primary {
            o + 1
        } else {
            o
        }
    };
    let serving = |w: &World| w.servers[primary].up() && w.servers[primary].writable();
    match kind {
        "primary_crash" | "replica_crash" => {
            let i = if kind == "primary_crash" { primary } else { other(w) };
            if w.servers[i].liveness == Liveness::Crashed {
                return false;
            }
            if i == primary && serving(w) {
                invariants::on_primary_fault(w);
            }
            w.servers[i].crash();
            let restart = w.rng.random_bool(if i == primary { 0.5 } else { 0.8 });
            let at = now + w.rng.random_range(1_000..30_000);
            if restart {
                w.faults.scheduled.push((at, Heal::Restart(i)));
            }
            w.log(format!(
                "FAULT s{} crashed{}",
                i + 1,
                if restart { format!(", restarts at {at} ms") } else { String::new() }
            ));
        }
        "primary_hang" | "replica_hang" => {
            let i = if kind == "primary_hang" { primary } else { other(w) };
            if w.servers[i].liveness != Liveness::Up {
                return false;
            }
            if i == primary && serving(w) {
                invariants::on_primary_fault(w);
            }
            w.servers[i].liveness = Liveness::Hung;
            let at = now + w.rng.random_range(300..20_000);
            w.faults.scheduled.push((at, Heal::Resume(i)));
            w.log(format!("FAULT s{} hung until {at} ms", i + 1));
        }
        "partition" => {
            if w.net.cut_count() >= cfg.max_cuts {
                return false;
            }
            let parties: Vec<Party> = std::iter::once(Party::Pivot).chain((0..n).map(Party::Server)).collect();
            let a = parties[w.rng.random_range(0..parties.len())];
            let b = parties[w.rng.random_range(0..parties.len())];
            if a == b || !w.net.connected(a, b) {
                return false;
            }
            let heal = now + w.rng.random_range(200..15_000);
            w.net.cut(a, b, heal);
            w.log(format!("FAULT link {a}-{b} cut until {heal} ms"));
        }
        "isolate" => {
            let i = if w.rng.random_bool(0.6) { primary } else { other(w) };
            if i == primary && serving(w) {
                invariants::on_primary_fault(w);
            }
            let heal = now + w.rng.random_range(1_000..20_000);
            let others: Vec<Party> =
                std::iter::once(Party::Pivot).chain((0..n).filter(|&o| o != i).map(Party::Server)).collect();
            w.net.isolate(Party::Server(i), &others, heal);
            w.log(format!("FAULT s{} cut off from everybody until {heal} ms", i + 1));
        }
        "slow_probes" => {
            let i = w.rng.random_range(0..n);
            let extra = w.rng.random_range(100..2_500);
            let until = now + w.rng.random_range(1_000..10_000);
            w.net.slow_probes(i, extra, until);
            w.log(format!("FAULT probes of s{} take {extra} ms more until {until} ms", i + 1));
        }
        "pivot_kill" => {
            if !w.faults.may_kill_pivot() {
                return false;
            }
            w.faults.pivot_kills += 1;
            w.faults.count(kind);
            w.log("FAULT pivot killed");
            return true;
        }
        "state_write_failure" => {
            if w.rng.random_bool(0.5) {
                w.store.fail_until = now + w.rng.random_range(1..3_000);
                w.log(format!("FAULT state writes fail until {} ms", w.store.fail_until));
            } else {
                w.store.fail_next = w.rng.random_range(1..=3);
                w.log(format!("FAULT the next {} state writes fail", w.store.fail_next));
            }
        }
        "wall_clock_jump" => {
            let max = cfg.max_wall_drift_ms;
            let top = if cfg.wall_jump_forward { max } else { 0 };
            let jump = w.rng.random_range(-max..=top);
            let to = (w.wall_offset + jump).clamp(-max, max);
            w.log(format!("FAULT wall clock jumps {} ms", to - w.wall_offset));
            w.wall_offset = to;
        }
        "apply_stall" => {
            let i = other(w);
            let until = now + w.rng.random_range(500..40_000);
            w.servers[i].apply_stalled_until = until;
            w.log(format!("FAULT s{} applies nothing until {until} ms", i + 1));
        }
        _ => unreachable!("a known fault"),
    }
    w.faults.count(kind);
    false
}
