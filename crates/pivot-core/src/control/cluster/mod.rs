//! The cluster state machine: everything a cluster's monitor decides.
//!
//! Events in ([`Event`]: an observation, a recovery that ended or whose task
//! failed, what the state store says, a fence that was applied, the primary's
//! watch connection ending, a timer, "may act" granted or withdrawn);
//! commands out ([`Command`]: watch or drop an instance, probe now, switch
//! probe speed, start or resume a recovery, fence, record, alert, log). The
//! daemon's monitor only performs the commands and feeds back the results;
//! the simulator drives this same machine against modelled servers.
//!
//! What it decides: discovery within `max_instances`; probe speed while the
//! primary is suspect; the gate for automatic recovery (with the retry
//! backoff, the anti-flapping block, the freshness rule, the lease); resuming
//! a recovery left running by a stopped, killed or failed owner; keeping
//! former primaries read-only (and judging rejoin or quarantine); resolving a
//! split brain; which alerts are raised, once each.

mod alerts;
mod fencing;
mod io;
mod rejoining;
mod ring;
mod routing;
mod store_events;
mod switchover;

pub use io::*;
pub use rejoining::SAVED_TO;

use super::backoff::Backoff;
use super::discovery::{self, Discovery};
use super::gate::{decide, Decision, Gate};
use super::split_brain::{self, Resolution};
use super::verdict;
use crate::analysis::{analyze, ClusterAnalysis, Code};

use crate::instance::InstanceKey;
use crate::observation::Observation;
use crate::time::Millis;
use crate::topology::Topology;
use crate::view::{Change, ClusterView};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How old what the machine knows of the state store may be when it decides
/// to start a recovery; older, it asks for a fresh read first.
pub const STORE_FRESH_MS: u64 = 100;
/// The primary's watch connection is asked for at most this often.
pub const WATCH_RETRY_MS: u64 = 1_000;
/// Distinct alerts remembered, so each is raised once.
const ALERTS_REMEMBERED: usize = 64;
/// A resume that could not take its recovery over is asked again after this.
const RESUME_RETRY_MS: u64 = 1_000;

#[derive(Clone, Debug, PartialEq, Eq)]
enum RecoveryTask {
    Idle,
    /// Asked for; the task runs (`id` once known).
    Running {
        id: Option<i64>,
    },
}

/// The cluster state machine. See the module documentation.
#[derive(Clone, Debug)]
pub struct ClusterMachine {
    settings: ClusterSettings,
    view: ClusterView,
    discovery: Discovery,
    analysis: ClusterAnalysis,
    last_code: Option<Code>,
    pace: Pace,
    watching_primary: Option<InstanceKey>,
    watch_asked_at: Option<Millis>,
    task: RecoveryTask,
    /// A recovery to resume once every instance has been observed.
    pending_resume: Option<i64>,
    /// No resume is asked before this: the last one could not take the
    /// recovery over (another process holds it, or the store cannot be
    /// written), and asking again at once would only spin.
    resume_after: Millis,
    /// The last recovery task's end could not be written: retried each tick.
    unrecorded: Option<i64>,
    recovered_at: Millis,
    backoff: Backoff,
    store: StoreView,
    store_read_at: Option<Millis>,
    /// A decision to recover waits for a fresh read of the store.
    wants_fresh_store: bool,
    fenced: BTreeMap<InstanceKey, FenceEntry>,
    /// Fences in flight (a watcher or a fence now).
    fencing: BTreeSet<InstanceKey>,
    /// Replicas detached from a fenced former primary (asked once each).
    detached: BTreeSet<InstanceKey>,
    /// Writable replicas being made read-only (asked again once seen
    /// read-only and then writable again).
    enforcing: BTreeSet<InstanceKey>,
    /// A split brain was first seen then: it is resolved only on readings
    /// of every instance taken after.
    split_seen_at: Option<Millis>,
    problems: BTreeMap<&'static str, String>,
    /// The analysis alert last raised; cleared when the cluster is fine.
    last_alert: Option<String>,
    raised: VecDeque<String>,
    may_act: bool,
    now: Millis,
    /// The table last handed to the shell's routes.
    routes: Option<crate::routes::RouteTable>,
    /// A recovery promoted this instance; its epoch is not read yet: writes
    /// stay held meanwhile.
    /// With the number of the newest epoch known then: a newer epoch, for
    /// whatever primary, ends the wait too (the newest epoch is the truth).
    awaiting_epoch: Option<(InstanceKey, u64)>,
    /// The newest epoch number ever read (a failed read says nothing).
    epoch_seen: u64,
    /// The adoption last asked for (primary, expected epoch), asked once.
    adoption_asked: Option<(InstanceKey, Option<u64>)>,
    /// When `adoption_asked` was last asked.
    adoption_asked_at: Millis,
    /// What each primary's semi-sync looked like (for the verdict on a
    /// diverged former primary's extra transactions).
    semi_seen: BTreeMap<InstanceKey, super::acknowledged::SemiSyncSeen>,
    /// Rejoins asked of the shell, not answered yet.
    rejoining: BTreeSet<InstanceKey>,
    /// Failed rejoins in a row and when to try again.
    rejoin_failures: BTreeMap<InstanceKey, (u32, Millis)>,
    /// Quarantine files asked for, not answered yet.
    saving: BTreeSet<InstanceKey>,
    /// Replication-health alerts per instance and kind (rate limits).
    health: super::health_alerts::HealthAlerts,
    /// A dual-primary ring being closed (asked, not answered yet).
    ring_restoring: Option<crate::control::ring::RingRestore>,
    /// Failed attempts to close the ring in a row and when to try again.
    ring_failures: Option<(u32, Millis)>,
}

impl ClusterMachine {
    /// A machine for one cluster; the first commands watch the seeds and read the store.
    pub fn new(settings: ClusterSettings, now: Millis) -> (ClusterMachine, Vec<Command>) {
        let view = ClusterView::default();
        let analysis = analyze(&view, &settings.detection, now);
        let (settings_name, settings_interval, settings_lag) =
            (settings.name.clone(), settings.alert_interval_ms, settings.detection.lag_threshold_s);
        let mut m = ClusterMachine {
            discovery: Discovery::new(settings.max_instances),
            settings,
            view,
            analysis,
            last_code: None,
            pace: Pace::default(),
            watching_primary: None,
            watch_asked_at: None,
            task: RecoveryTask::Idle,
            pending_resume: None,
            resume_after: Millis(0),
            unrecorded: None,
            recovered_at: Millis(0),
            backoff: Backoff::default(),
            store: StoreView { file_ok: true, ..StoreView::default() },
            store_read_at: None,
            wants_fresh_store: false,
            fenced: BTreeMap::new(),
            fencing: BTreeSet::new(),
            detached: BTreeSet::new(),
            enforcing: BTreeSet::new(),
            split_seen_at: None,
            problems: BTreeMap::new(),
            last_alert: None,
            raised: VecDeque::new(),
            may_act: true,
            now,
            routes: None,
            awaiting_epoch: None,
            epoch_seen: 0,
            adoption_asked: None,
            adoption_asked_at: Millis(0),
            semi_seen: BTreeMap::new(),
            rejoining: BTreeSet::new(),
            rejoin_failures: BTreeMap::new(),
            saving: BTreeSet::new(),
            health: super::health_alerts::HealthAlerts::new(settings_name, settings_interval, settings_lag),
            ring_restoring: None,
            ring_failures: None,
        };
        let mut out = vec![Command::ReadStore];
        for seed in m.settings.seeds.clone() {
            m.offer(seed, false, &mut out);
        }
        (m, out)
    }

    // ---- what the shell shows --------------------------------------------------

    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    pub fn analysis(&self) -> &ClusterAnalysis {
        &self.analysis
    }

    pub fn fenced(&self) -> impl Iterator<Item = &FenceEntry> {
        self.fenced.values()
    }

    /// Problems that keep pivot from acting safely on this cluster.
    pub fn problems(&self) -> impl Iterator<Item = &String> {
        self.problems.values()
    }

    pub fn discovery_limit(&self) -> Option<String> {
        self.discovery.limit_text()
    }

    /// The recovery running or waiting to be resumed, if known.
    /// Here, waiting to be resumed, or in another process (the store says).
    pub fn running_recovery(&self) -> Option<i64> {
        let own = match self.task {
            RecoveryTask::Running { id } => id,
            RecoveryTask::Idle => None,
        };
        own.or(self.pending_resume).or(self
            .store
            .running
            .as_ref()
            .filter(|r| self.unrecorded != Some(r.id))
            .map(|r| r.id))
    }

    /// The anti-flapping block, while it lasts in this process's monotonic
    /// time (the store hands it over whatever the wall clock says; an
    /// acknowledged block is not handed over).
    pub fn blocked_until(&self) -> Option<&BlockInfo> {
        self.store.block.as_ref().filter(|b| b.until > self.now)
    }

    // ---- events -----------------------------------------------------------------

    /// Handle one event at monotonic time `now`.
    pub fn handle(&mut self, event: Event, now: Millis) -> Vec<Command> {
        self.now = self.now.max(now);
        let mut out = Vec::new();
        let tick = matches!(event, Event::Tick);
        match event {
            Event::Observed(obs) => self.on_observation(obs, &mut out),
            Event::Store(store) => self.on_store(store, &mut out),
            Event::RecoveryEnded(end) => self.on_recovery_end(end, &mut out),
            Event::Fence(f) => self.on_fence(f, &mut out),
            Event::WatchEnded(key) => {
                if self.watching_primary.as_ref() == Some(&key) {
                    self.watching_primary = None;
                    out.push(Command::ProbeNow(key));
                }
            }
            Event::Tick => {
                if !self.store.file_ok && self.task == RecoveryTask::Idle {
                    out.push(Command::ReopenStore { fenced: self.fenced.values().cloned().collect() });
                }
                out.push(Command::ReadStore);
                if self.unrecorded.is_some() {
                    out.push(Command::RetryUnrecorded);
                }
                // A primary whose watch connection could not be set up is tried again.
                self.keep_watching_primary(&mut out);
            }
            Event::MayAct(may) => self.may_act = may,
            Event::SwitchoverRequested { request, to } => self.on_switchover_request(request, to, &mut out),
            Event::Rejoined { instance, result } => self.on_rejoined(instance, result, &mut out),
            Event::ExtraSaved { instance, result } => self.on_extra_saved(instance, result, &mut out),
            Event::RingRestored { active, passive, result } => self.on_ring_restored(active, passive, result, &mut out),
        }
        self.route(&mut out);
        self.health_tick(tick, &mut out);
        out
    }

    /// The shell wrote the end of recovery `id` after all.
    pub fn unrecorded_written(&mut self, id: i64) {
        if self.unrecorded == Some(id) {
            self.unrecorded = None;
            self.problems.remove("unrecorded");
        }
    }

    fn on_observation(&mut self, obs: Observation, out: &mut Vec<Command>) {
        let observed = obs.instance.clone();
        if self.view.get(&observed).is_none() && !self.view.pending.contains(&observed) {
            return; // dropped meanwhile
        }
        let was_primary = self.analysis.primary.as_ref() == Some(&observed);
        let semi_sync = super::acknowledged::SemiSyncReading::of(&obs);
        let referenced: Vec<InstanceKey> = obs
            .state()
            .map(|s| s.replication.iter().map(|r| r.source.clone()).chain(s.registered_replicas.clone()).collect())
            .unwrap_or_default();
        for change in self.view.apply(obs, self.settings.detection.lag_threshold_s) {
            let bad = match &change {
                Change::Unreachable { .. } | Change::LagAbove { .. } => true,
                Change::IoThread { to, .. } => *to != crate::observation::IoThread::Running,
                Change::SqlThread { running, .. } => !running,
                _ => false,
            };
            out.push(Command::Log { level: if bad { Level::Warn } else { Level::Info }, text: change.to_string() });
        }
        self.health_observed(&observed, out);
        for key in referenced {
            self.offer(key, true, out);
        }
        let found = Topology::derive(&self.view).primary.is_some();
        for step in self.discovery.rotate(&self.view, found) {
            self.apply_discovery(step, out);
        }
        self.view.fenced = self.fenced.keys().cloned().collect();
        self.analysis = analyze(&self.view, &self.settings.detection, self.now);
        self.note_semi_sync(&observed, semi_sync, was_primary);
        // While a recovery runs (this process's, or another's such as
        // `pivot switchover --local`), the recovery does the fencing: the
        // cluster is between two shapes (a candidate writable, replicas not
        // yet repointed) and must not be "repaired" meanwhile.
        let recovering = self.recovering_anywhere();
        // A former primary that stops answering is watched by connection
        // attempts again, so that when it comes back (restarted writable by
        // its configuration, say) it is fenced within milliseconds, not at
        // the next probe.
        let unreachable = self.view.get(&observed).is_some_and(|r| !r.reachable());
        if unreachable && !recovering && self.fenced.contains_key(&observed) && self.fencing.insert(observed.clone()) {
            out.push(Command::WatchFormerPrimary(observed.clone()));
        }
        if !self.view.get(&observed).and_then(|r| r.current_state()).is_some_and(|s| s.writable()) {
            self.enforcing.remove(&observed);
        }
        self.repair(out);
        if !recovering {
            self.judge_fenced(out);
            self.consider_rejoins(out);
            self.consider_ring(out);
        }
        self.log_analysis(out);
        self.steer_probes(&observed, out);
        self.keep_watching_primary(out);
        self.consider(out);
    }

    // ---- discovery ---------------------------------------------------------------

    fn offer(&mut self, key: InstanceKey, referenced: bool, out: &mut Vec<Command>) {
        let protected: Vec<InstanceKey> = self.fenced.keys().cloned().collect();
        for step in self.discovery.offer(&self.view, key, referenced, &protected) {
            self.apply_discovery(step, out);
        }
    }

    fn apply_discovery(&mut self, step: discovery::Step, out: &mut Vec<Command>) {
        match step {
            discovery::Step::Watch(key) => {
                if self.view.learn(key.clone()) {
                    out.push(Command::Log { level: Level::Info, text: format!("watching instance {key}") });
                    out.push(Command::Watch(key));
                }
            }
            discovery::Step::Drop(key) => {
                out.push(Command::Log {
                    level: Level::Info,
                    text: format!("no longer watching {key}: it never answered and max_instances is reached"),
                });
                self.view.forget(&key);
                self.pace.slow.remove(&key); // its prober goes: no command needed
                out.push(Command::Unwatch(key));
            }
            discovery::Step::LimitReached(text) => out.push(Command::Log { level: Level::Warn, text }),
        }
    }

    // ---- probing -------------------------------------------------------------------

    /// While the primary does not answer, probe its replicas at once and then
    /// often, so their confirmation is never a stale reading.
    fn steer_probes(&mut self, observed: &InstanceKey, out: &mut Vec<Command>) {
        let primary = self.analysis.primary.clone();
        let down = primary.as_ref().is_some_and(|p| self.view.get(p).is_some_and(|r| !r.reachable()));
        let mut changed = false;
        match &primary {
            Some(p) if down => {
                let fast: BTreeSet<InstanceKey> =
                    std::iter::once(p.clone()).chain(self.analysis.topology.replicas(p).iter().cloned()).collect();
                for k in &fast {
                    changed |= self.pace.slow.remove(k);
                }
                if fast != self.pace.fast {
                    self.pace.fast = fast;
                    changed = true;
                }
            }
            Some(_) if !self.pace.fast.is_empty() => {
                self.pace.fast.clear();
                changed = true;
            }
            _ => {} // no verdict yet (or nothing fast): as it was
        }
        // Only the instance just observed can change its slowness (per
        // observation, no walk over hundreds of instances): given up on the
        // way discovery does, so waiting seeds still take its place at the
        // normal pace.
        let given_up = self
            .view
            .get(observed)
            .is_some_and(|r| r.last_reachable.is_none() && r.consecutive_failures >= discovery::GIVE_UP_AFTER)
            && !self.pace.fast.contains(observed);
        if given_up != self.pace.slow.contains(observed) {
            if given_up {
                self.pace.slow.insert(observed.clone());
            } else {
                self.pace.slow.remove(observed);
            }
            changed = true;
        }
        if changed {
            out.push(Command::SetPace(self.pace.clone()));
        }
        if let Some(primary) = primary.filter(|p| down && observed == p) {
            for replica in self.analysis.topology.replicas(&primary) {
                out.push(Command::ProbeNow(replica.clone()));
            }
        }
    }

    fn keep_watching_primary(&mut self, out: &mut Vec<Command>) {
        let Some(primary) = self.analysis.primary.clone() else { return };
        if self.watching_primary.as_ref() == Some(&primary) || !self.view.get(&primary).is_some_and(|r| r.reachable()) {
            return;
        }
        // At most once a second: a connection that cannot be set up is not retried in a loop.
        if self.watch_asked_at.is_some_and(|t| self.now.since(t) < WATCH_RETRY_MS) {
            return;
        }
        self.watch_asked_at = Some(self.now);
        self.watching_primary = Some(primary.clone());
        out.push(Command::WatchPrimary(primary));
    }

    // ---- the gate ------------------------------------------------------------------

    fn maybe_resume(&mut self, out: &mut Vec<Command>) {
        if self.task != RecoveryTask::Idle || !self.view.complete() || !self.may_act || self.now < self.resume_after {
            return;
        }
        if let Some(id) = self.pending_resume.take() {
            self.task = RecoveryTask::Running { id: Some(id) };
            out.push(Command::ResumeRecovery { id, view: Box::new(self.view.clone()) });
        }
    }

    fn gate(&self) -> Gate {
        let running = self.task != RecoveryTask::Idle
            || self.pending_resume.is_some()
            || self.store.running.as_ref().is_some_and(|r| self.unrecorded != Some(r.id));
        let block = self.blocked_until();
        Gate {
            automatic: self.settings.automatic,
            running,
            blocked_until: block.map(|b| b.until),
            blocked_by: block.and_then(|b| b.recovery_id),
            fresh: self.view.observed_since(self.recovered_at),
            retry_at: self.backoff.retry_at(),
            may_act: self.may_act,
        }
    }

    fn consider(&mut self, out: &mut Vec<Command>) {
        self.maybe_resume(out);
        let a = &self.analysis;
        if !a.code.alerting() {
            self.last_alert = None;
            if a.code == Code::Healthy {
                self.backoff.reset();
            }
            return;
        }
        if matches!(split_brain::resolve(&self.view, a), Some(Resolution::Fence { .. })) {
            // Being resolved (fenced, recorded, alerted) by `fence_intruders`.
            return;
        }
        let gate = self.gate();
        match decide(a, &gate, self.now) {
            Decision::Recover if !self.store.file_ok => {
                // The file that holds "one recovery at a time" and the fence
                // list is gone: recovering now could race another process.
                let text = format!(
                    "{} is dead but failover waits: {}; pivot opens the state file again within a second",
                    a.primary.as_ref().map_or("the primary".to_string(), ToString::to_string),
                    self.store.problem.clone().unwrap_or_else(|| "the state file is gone".into())
                );
                let code = a.code;
                self.alert_once("control:state_file_held", text, Some(code), out);
            }
            Decision::Recover => {
                let fresh = self.store_read_at.is_some_and(|t| self.now.since(t) <= STORE_FRESH_MS);
                if !fresh {
                    // Another process may have started a recovery or set a
                    // block a moment ago: decide on what the store says now.
                    if !self.wants_fresh_store {
                        self.wants_fresh_store = true;
                        out.push(Command::ReadStore);
                    }
                    return;
                }
                self.task = RecoveryTask::Running { id: None };
                out.push(Command::StartRecovery {
                    analysis: Box::new(self.analysis.clone()),
                    view: Box::new(self.view.clone()),
                });
            }
            Decision::Alert { reason } => {
                // The gate's state only matters to a dead primary's alert
                // (blocked, automatic off, backing off); any other reason is
                // the same alert whatever the gate says.
                let key = if a.code.failover_worthy() {
                    format!("{}|{:?}|{}|{:?}", a.code, gate.blocked_by, gate.automatic, gate.retry_at.is_some())
                } else {
                    a.code.to_string()
                };
                if self.last_alert.as_deref() != Some(key.as_str()) {
                    self.last_alert = Some(key);
                    out.push(Command::Alert { text: reason, code: Some(a.code), primary: a.primary.clone() });
                }
            }
            Decision::Nothing => {}
        }
    }
}
