//! One pivot process, as `pivot::daemon::monitor` runs it: a probe per
//! server on its own schedule (fast while the primary does not answer),
//! every observation folded into the `ClusterView`, `analyze`, the gate
//! assembled from the running recovery, the block, freshness and the
//! backoff, `decide`, and a recovery driven alongside while observing goes
//! on. Former primaries in the fence list are made read-only the moment
//! pivot reaches them.
//!
//! Everything here is lost when pivot is killed; what survives is in the
//! [`Store`](crate::store::Store). A new process starts with an empty view,
//! resumes a recovery left running once every server has been probed, and
//! re-reads the fence list.

pub mod driver;
mod ops;
pub mod probe;
pub mod steps;

use crate::invariants;
use crate::network::Party;
use crate::world::World;
use driver::{Outcome, Poll, Recovery, Resumed};
use pivot_core::control::backoff::Backoff;
use pivot_core::control::gate::{decide, Decision, Gate};
use pivot_core::control::verdict;
use pivot_core::{analyze, ClusterAnalysis, ClusterView, Code, Millis, Observation};
use std::collections::{BTreeMap, BTreeSet};

struct Slot {
    /// A probe under way: its observation and when it is in.
    in_flight: Option<(u64, Observation)>,
    started_at: u64,
    next_at: u64,
    woken: bool,
}

pub struct Pivot {
    pub incarnation: u32,
    view: ClusterView,
    slots: Vec<Slot>,
    fast: bool,
    recovery: Option<Recovery>,
    pending_resume: Option<i64>,
    /// A recovery that ended but whose end is not written yet (retried).
    unrecorded: Option<Outcome>,
    next_refresh: u64,
    recovered_at: Millis,
    backoff: Backoff,
    alert_keys: BTreeSet<String>,
    /// The fence list as last read: server -> status.
    fenced: BTreeMap<usize, String>,
    fenced_read: u64,
    last_code: Option<Code>,
    /// Set when a fault kills this process at a command boundary.
    pub killed: bool,
}

impl Pivot {
    /// A fresh process: empty view, every server probed at once; a recovery
    /// left running is resumed once the view is complete.
    pub fn start(w: &mut World, incarnation: u32) -> Pivot {
        let n = w.servers.len();
        let view = ClusterView::new(w.servers.iter().map(|s| s.key.clone()));
        let slots = (0..n).map(|_| Slot { in_flight: None, started_at: 0, next_at: w.now, woken: false }).collect();
        let mut p = Pivot {
            incarnation,
            view,
            slots,
            fast: false,
            recovery: None,
            pending_resume: None,
            unrecorded: None,
            next_refresh: w.now + w.cfg.timing.refresh_ms,
            recovered_at: Millis(0),
            backoff: Backoff::default(),
            alert_keys: BTreeSet::new(),
            fenced: BTreeMap::new(),
            fenced_read: w.now,
            last_code: None,
            killed: false,
        };
        p.reload_fenced(w);
        if let Some(r) = w.store.running_recovery() {
            let id = r.id;
            w.log(format!(
                "pivot #{incarnation}: found recovery {id} left running: resuming once every server is probed"
            ));
            p.pending_resume = Some(id);
        }
        p
    }

    /// The analysis of this process's view now.
    pub fn analysis(&self, w: &World) -> ClusterAnalysis {
        analyze(&self.view, &w.cfg.detection, Millis(w.now))
    }

    pub fn recovery_running(&self) -> bool {
        self.recovery.is_some()
    }

    pub fn tick(&mut self, w: &mut World) {
        if w.now >= self.next_refresh {
            self.next_refresh = w.now + w.cfg.timing.refresh_ms;
            self.retry_unrecorded(w);
        }
        self.deliver(w);
        self.start_probes(w);
        self.watch_fences(w);
        if let Some(rec) = self.recovery.as_mut() {
            match driver::poll(rec, w) {
                Poll::Running => {}
                Poll::Done(o) => self.on_recovery_done(w, Ok(Some(o))),
                Poll::Kill => self.killed = true,
            }
        }
    }

    // ---- probing -----------------------------------------------------------------

    fn deliver(&mut self, w: &mut World) {
        let mut due: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.in_flight.as_ref().filter(|(t, _)| *t <= w.now).map(|(t, _)| (*t, i)))
            .collect();
        due.sort_unstable();
        for (_, i) in due {
            let (_, obs) = self.slots[i].in_flight.take().expect("due");
            let interval = if self.fast { w.cfg.timing.fast_poll_ms } else { w.cfg.timing.poll_ms };
            let slot = &mut self.slots[i];
            slot.next_at = if std::mem::take(&mut slot.woken) { w.now } else { slot.started_at + interval };
            self.on_observation(w, obs);
            if self.killed {
                return;
            }
        }
    }

    fn start_probes(&mut self, w: &mut World) {
        let timeout = w.cfg.timing.probe_timeout_ms;
        for i in 0..self.slots.len() {
            let slot = &self.slots[i];
            if slot.in_flight.is_some() || w.now < slot.next_at {
                continue;
            }
            let (latency, obs) = probe::probe(w, i, timeout);
            let slot = &mut self.slots[i];
            slot.started_at = w.now;
            slot.in_flight = Some((w.now + latency, obs));
        }
    }

    fn wake(&mut self, i: usize, now: u64) {
        let slot = &mut self.slots[i];
        if slot.in_flight.is_some() {
            slot.woken = true;
        } else {
            slot.next_at = now;
        }
    }

    fn on_observation(&mut self, w: &mut World, obs: Observation) {
        w.trace.count(1);
        let observed = w.index_of(&obs.instance).expect("a known server");
        let writable = obs.state().is_some_and(|s| s.writable());
        for change in self.view.apply(obs, w.cfg.detection.lag_threshold_s) {
            w.log(format!("pivot #{}: {change}", self.incarnation));
        }
        let now = Millis(w.now);
        let analysis = analyze(&self.view, &w.cfg.detection, now);
        if analysis.code == Code::SplitBrain || w.now >= self.fenced_read + w.cfg.timing.refresh_ms {
            self.reload_fenced(w);
        }
        if writable {
            self.enforce_fence(w, observed);
        }
        if self.last_code != Some(analysis.code) {
            self.last_code = Some(analysis.code);
            w.log(format!("pivot #{}: analysis {}: {}", self.incarnation, analysis.code, analysis.signal));
        }
        self.steer_probes(w, &analysis, observed);
        if self.pending_resume.is_some() && self.recovery.is_none() && self.view.complete() {
            self.start_resume(w);
        } else {
            self.consider(w, &analysis);
        }
    }

    /// While the primary does not answer, probe its replicas at once and often.
    fn steer_probes(&mut self, w: &World, a: &ClusterAnalysis, observed: usize) {
        let Some(primary) = &a.primary else { return };
        let primary_down = self.view.get(primary).is_some_and(|r| !r.reachable());
        self.fast = primary_down;
        if primary_down && w.servers[observed].key == *primary {
            for r in a.topology.replicas(primary) {
                if let Some(i) = w.index_of(r) {
                    self.wake(i, w.now);
                }
            }
        }
    }

    // ---- deciding ----------------------------------------------------------------

    fn consider(&mut self, w: &mut World, a: &ClusterAnalysis) {
        if !a.code.alerting() {
            self.alert_keys.clear();
            if a.code == Code::Healthy {
                self.backoff.reset();
            }
            return;
        }
        let now = Millis(w.now);
        let gate = if a.code.failover_worthy() { self.gate(w, now) } else { Gate::default() };
        if self.pending_resume.is_some() && self.recovery.is_none() && self.view.complete() {
            self.start_resume(w);
            return;
        }
        match decide(a, &gate, now) {
            Decision::Recover => self.start_recovery(w, a),
            Decision::Alert { reason } => {
                let key = format!("{}|{:?}|{}|{:?}", a.code, gate.blocked_by, gate.automatic, gate.retry_at.is_some());
                self.raise(w, key, reason);
            }
            Decision::Nothing => {}
        }
    }

    fn raise(&mut self, w: &mut World, key: String, text: String) {
        if self.alert_keys.insert(key) {
            w.alert(text);
        }
    }

    /// As `Monitor::gate`: the block is wall time (shared with other
    /// processes), turned into this process's monotonic time.
    fn gate(&mut self, w: &mut World, now: Millis) -> Gate {
        let running = self.running(w);
        let wall = w.wall();
        let block = w.store.block.clone().filter(|b| b.until_wall > wall);
        Gate {
            automatic: true,
            running,
            blocked_until: block.as_ref().map(|b| now.plus((b.until_wall - wall).max(0) as u64)),
            blocked_by: block.map(|b| b.recovery_id),
            fresh: self.view.observed_since(self.recovered_at),
            retry_at: self.backoff.retry_at(),
            may_act: true,
        }
    }

    /// A recovery runs here, or the store holds one nobody runs (its pivot
    /// is gone): that one is resumed.
    fn running(&mut self, w: &mut World) -> bool {
        if self.recovery.is_some() || self.pending_resume.is_some() {
            return true;
        }
        let Some(rec) = w.store.running_recovery() else { return false };
        if self.unrecorded.as_ref().is_some_and(|o| o.id == rec.id) {
            return false;
        }
        let id = rec.id;
        w.log(format!("pivot #{}: recovery {id} was left running: resuming it", self.incarnation));
        self.pending_resume = Some(id);
        true
    }

    fn start_recovery(&mut self, w: &mut World, a: &ClusterAnalysis) {
        match driver::start(w, self.incarnation, &self.view, a) {
            Ok(rec) => self.recovery = Some(rec),
            Err(e) => self.on_recovery_done(w, Err(e)),
        }
    }

    fn start_resume(&mut self, w: &mut World) {
        let Some(id) = self.pending_resume.take() else { return };
        match driver::resume(w, self.incarnation, id, &self.view) {
            Resumed::Running(rec) => self.recovery = Some(*rec),
            Resumed::Ended(o) => self.on_recovery_done(w, Ok(Some(o))),
            Resumed::NotAdopted => self.on_recovery_done(w, Ok(None)),
        }
    }

    fn on_recovery_done(&mut self, w: &mut World, done: Result<Option<Outcome>, String>) {
        self.recovery = None;
        self.recovered_at = Millis(w.now);
        match done {
            Ok(Some(o)) => {
                if o.status.is_some_and(|s| s.promoted()) {
                    self.backoff.reset();
                } else {
                    self.backoff.aborted(self.recovered_at);
                }
                if o.alert {
                    let status = o.status.map_or("parked", |s| s.as_str());
                    self.raise(w, format!("recovery:{}", o.id), format!("recovery {} {status}: {}", o.id, o.summary));
                }
                if let Some(e) = &o.unrecorded {
                    let text = format!("the end of recovery {} cannot be written ({e}); retrying every second", o.id);
                    self.raise(w, format!("control:unrecorded:{}", o.id), text);
                    self.unrecorded = Some(o);
                }
            }
            Ok(None) => {}
            Err(e) => {
                self.backoff.aborted(self.recovered_at);
                self.raise(w, format!("control:start:{e}"), format!("recovery not started: {e}"));
            }
        }
        self.reload_fenced(w);
        for i in 0..self.slots.len() {
            self.wake(i, w.now);
        }
    }

    fn retry_unrecorded(&mut self, w: &mut World) {
        let Some(o) = self.unrecorded.clone() else { return };
        let (now, wall) = (w.now, w.wall());
        let status = o.status.expect("only ended recoveries are unrecorded");
        if w.store.finish_recovery(now, o.id, status, &o.summary, wall).is_ok() {
            w.log(format!("the end of recovery {} is recorded now", o.id));
            self.unrecorded = None;
        }
    }

    // ---- former primaries --------------------------------------------------------

    fn reload_fenced(&mut self, w: &mut World) {
        self.fenced_read = w.now;
        self.fenced =
            w.store.fences.iter().filter_map(|f| Some((w.index_of(&f.instance)?, f.status.clone()))).collect();
    }

    /// Watchers of pending entries: a connection attempt goes through the
    /// moment the server answers (a hung one's kernel still accepts it).
    fn watch_fences(&mut self, w: &mut World) {
        let pending: Vec<usize> = self.fenced.iter().filter(|(_, s)| *s == "pending").map(|(i, _)| *i).collect();
        for i in pending {
            if w.net.connected(Party::Pivot, Party::Server(i)) && w.servers[i].up() {
                self.fence(w, i);
            }
        }
    }

    /// A former primary found writable is fenced again at once.
    fn enforce_fence(&mut self, w: &mut World, i: usize) {
        if self.fenced.contains_key(&i) && w.net.connected(Party::Pivot, Party::Server(i)) && w.servers[i].up() {
            w.log(format!("pivot #{}: former primary s{} is writable: making it read-only", self.incarnation, i + 1));
            self.fence(w, i);
        }
    }

    fn fence(&mut self, w: &mut World, i: usize) {
        let ended = w.servers[i].fence();
        let analysis = analyze(&self.view, &w.cfg.detection, Millis(w.now));
        let primary = analysis.primary;
        let theirs = primary
            .as_ref()
            .and_then(|p| self.view.get(p))
            .and_then(|r| r.last_state())
            .map(|s| s.gtid.executed.clone());
        let mine = pivot_core::GtidSet::MariaDb(w.servers[i].executed.clone());
        let v = verdict::judge(&mine, primary.as_ref().zip(theirs.as_ref()));
        let (status, detail) =
            (v.status(), format!("made read-only, {ended} client session(s) ended; {}", v.describe()));
        w.log(format!("pivot #{}: former primary s{}: {status}: {detail}", self.incarnation, i + 1));
        let (now, key) = (w.now, w.servers[i].key.clone());
        if let Err(e) = w.store.fence_update(now, &key, status, &detail) {
            w.log(format!("cannot record the fence: {e}"));
        }
        self.fenced.insert(i, status.to_string());
        invariants::on_fenced(w, i);
    }
}
