//! One pivot process: the shell around `pivot_core::control::cluster::
//! ClusterMachine`, as `pivot::daemon::monitor::Monitor` is. It turns what
//! happens (observations, a recovery that ended, a fence applied, the
//! primary's watch connection ending, the store's contents, a timer about
//! once a second) into events, and performs the commands the machine
//! answers with against the simulated world. It decides nothing itself:
//! discovery, probe speed, the gate (backoff, block, freshness), resumes,
//! fence enforcement, split brain and alerts are the machine's.
//!
//! How each command is performed:
//! * `Watch`, `Unwatch`, `ProbeNow`, `SetPace`: the probers (one per
//!   watched server, on its own schedule, fast while the primary is suspect);
//! * `WatchPrimary`: a connection kept waiting on the primary
//!   ([`watch::PrimaryWatch`]), whose end is `Event::WatchEnded`;
//! * `ReadStore`: the simulated store read as `Monitor::read_store` reads
//!   the real one, answered at once with `Event::Store`;
//! * `StartRecovery`, `ResumeRecovery`: the recovery driver ([`driver`]),
//!   whose end is `Event::RecoveryEnded` (when the task is next polled, as
//!   a spawned task's end reaches the monitor later);
//! * `RetryUnrecorded`: the end of the last recovery written again;
//!   `ReopenStore`: never asked for (the simulated file is never lost);
//! * `WatchFormerPrimary`, `FenceNow`: fence tasks ([`watch::FenceTask`]),
//!   whose result is `Event::Fence`; `RecordFence`: the store's fence list;
//! * `Alert`: the world's alerts (the invariants count them); `Log`: the trace.
//!
//! Everything here is lost when pivot is killed; what survives is in the
//! [`Store`](crate::store::Store).

pub mod driver;
mod ops;
pub mod probe;
pub mod steps;
pub mod watch;

use crate::network::Party;
use crate::world::World;
use driver::{Outcome, Poll, Recovery, Resumed};
use pivot_core::control::cluster::{
    BlockInfo, ClusterMachine, ClusterSettings, Command, Event, FenceEntry, Level, Pace, RecoveryEnd, RunningRecovery,
    Speed, StoreView,
};
use pivot_core::{ClusterAnalysis, InstanceKey, Millis, Observation};
use std::collections::{BTreeMap, VecDeque};
use watch::{FenceTask, PrimaryWatch, WatchPoll};

/// Events one handler call may cause in turn (`monitor::MAX_CHAINED_EVENTS`).
const MAX_CHAINED_EVENTS: usize = 64;
/// `max_instances`: pivot's default.
const MAX_INSTANCES: usize = 256;

/// One probe task (`daemon::prober`).
struct Prober {
    server: usize,
    /// A probe under way: its observation and when it is in.
    in_flight: Option<(u64, Observation)>,
    started_at: u64,
    next_at: u64,
    /// Woken while a probe was under way: the next one starts at once.
    woken: bool,
}

/// The recovery task.
enum Task {
    Running(Box<Recovery>),
    /// Over; its end reaches the machine when the task is next polled.
    Ended(RecoveryEnd),
}

pub struct Pivot {
    pub incarnation: u32,
    machine: ClusterMachine,
    probers: BTreeMap<InstanceKey, Prober>,
    pace: Pace,
    recovery: Option<Task>,
    /// The last recovery's outcome, kept while its end is not written.
    unrecorded: Option<Outcome>,
    next_tick: u64,
    watch: Option<PrimaryWatch>,
    fences: Vec<FenceTask>,
    /// Commands yet to perform.
    queue: VecDeque<Command>,
    /// Set when a fault kills this process at a command boundary.
    pub killed: bool,
}

impl Pivot {
    /// A fresh process: the machine's first commands (read the store, watch
    /// every server) performed at once; the timer's first tick is now.
    pub fn start(w: &mut World, incarnation: u32) -> Pivot {
        let settings = ClusterSettings {
            name: "sim".into(),
            seeds: w.servers.iter().map(|s| s.key.clone()).collect(),
            detection: w.cfg.detection.clone(),
            automatic: true,
            max_instances: MAX_INSTANCES,
            route_max_lag_s: w.cfg.detection.lag_threshold_s,
            // Rejoin is not modelled: former primaries stay fenced.
            auto_rejoin: false,
            alert_interval_ms: 60_000,
            // Closing a dual-primary ring needs rejoin: not modelled.
            dual_primary: false,
        };
        let (machine, first) = ClusterMachine::new(settings, Millis(w.now));
        let mut p = Pivot {
            incarnation,
            machine,
            probers: BTreeMap::new(),
            pace: Pace::default(),
            recovery: None,
            unrecorded: None,
            next_tick: w.now,
            watch: None,
            fences: Vec::new(),
            queue: first.into(),
            killed: false,
        };
        p.perform_queued(w);
        p
    }

    /// What this process's analysis says now.
    pub fn analysis(&self) -> ClusterAnalysis {
        self.machine.analysis().clone()
    }

    /// An operator asks this process for a switchover (`pivot switchover`).
    pub fn request_switchover(&mut self, w: &mut World, request: u64) {
        self.handle(w, Event::SwitchoverRequested { request, to: None });
    }

    pub fn recovery_running(&self) -> bool {
        matches!(self.recovery, Some(Task::Running(_)))
    }

    /// One tick: the timer, observations in, probes out, fence tasks, the
    /// primary's watch, the recovery task.
    pub fn tick(&mut self, w: &mut World) {
        if w.now >= self.next_tick {
            self.next_tick = w.now + w.cfg.timing.refresh_ms;
            self.handle(w, Event::Tick);
        }
        self.deliver(w);
        self.start_probes(w);
        self.poll_fences(w);
        self.poll_watch(w);
        self.poll_recovery(w);
    }

    // ---- the machine -------------------------------------------------------------

    fn handle(&mut self, w: &mut World, event: Event) {
        let commands = self.machine.handle(event, Millis(w.now));
        self.queue.extend(commands);
        self.perform_queued(w);
    }

    fn perform_queued(&mut self, w: &mut World) {
        let mut chained = 0;
        while let Some(cmd) = self.queue.pop_front() {
            if let Some(event) = self.perform(w, cmd) {
                chained += 1;
                assert!(chained <= MAX_CHAINED_EVENTS, "the cluster machine keeps answering itself");
                let more = self.machine.handle(event, Millis(w.now));
                self.queue.extend(more);
            }
        }
    }

    /// Perform one command; some answer with an event at once.
    fn perform(&mut self, w: &mut World, cmd: Command) -> Option<Event> {
        let me = self.incarnation;
        match cmd {
            Command::Watch(key) => match w.index_of(&key) {
                Some(server) => {
                    let p = Prober { server, in_flight: None, started_at: w.now, next_at: w.now, woken: false };
                    self.probers.insert(key, p);
                }
                None => w.log(format!("pivot #{me}: {key} is not a server of the simulation")),
            },
            Command::Unwatch(key) => {
                self.probers.remove(&key);
            }
            Command::ProbeNow(key) => self.wake(&key, w.now),
            Command::SetPace(pace) => self.pace = pace,
            Command::WatchPrimary(key) => {
                self.watch = w.index_of(&key).map(|i| PrimaryWatch::start(w, key, i));
            }
            Command::ReadStore => return Some(Event::Store(self.read_store(w))),
            Command::StartRecovery { analysis, view } => {
                self.recovery = Some(match driver::start(w, me, &view, &analysis) {
                    Ok(rec) => Task::Running(Box::new(rec)),
                    Err(reason) => Task::Ended(RecoveryEnd::NotStarted { reason }),
                });
            }
            Command::StartSwitchover { primary, to, view, .. } => {
                self.recovery = Some(match driver::start_switchover(w, me, &view, primary, to) {
                    Ok(rec) => Task::Running(Box::new(rec)),
                    Err(reason) => Task::Ended(RecoveryEnd::NotStarted { reason }),
                });
            }
            Command::RefuseSwitchover { reason, .. } => w.log(format!("pivot #{me}: switchover refused: {reason}")),
            Command::ResumeRecovery { id, view } => {
                if w.store.recovery(id).is_none() {
                    let reason = format!("no recovery {id} in the state file");
                    return Some(Event::RecoveryEnded(RecoveryEnd::NotStarted { reason }));
                }
                self.recovery = Some(match driver::resume(w, me, id, &view) {
                    Resumed::Running(rec) => Task::Running(rec),
                    Resumed::Ended(o) => Task::Ended(self.ended(w, o)),
                    // `recovery::resume` answers `None`: the monitor hears "held elsewhere".
                    Resumed::NotAdopted => Task::Ended(RecoveryEnd::HeldElsewhere),
                });
            }
            Command::RetryUnrecorded => self.retry_unrecorded(w),
            Command::ReopenStore { fenced } => {
                // The simulated file is never deleted or replaced (`file_ok`
                // is always true): only the fence entries are written back.
                for entry in &fenced {
                    let now = w.now;
                    if let Err(e) = w.store.fence_record(now, &entry.instance, &entry.status, &entry.detail) {
                        w.log(format!("pivot #{me}: cannot write back {} to the fence list: {e}", entry.instance));
                    }
                }
            }
            Command::WatchFormerPrimary(key) => {
                if let Some(i) = w.index_of(&key) {
                    self.fences.push(FenceTask::watch(key, i));
                }
            }
            Command::FenceNow(key) => {
                if let Some(i) = w.index_of(&key) {
                    self.fences.push(FenceTask::now(w, key, i));
                }
            }
            Command::EnforceReadOnly(key) => {
                if let Some(i) = w.index_of(&key) {
                    if w.servers[i].up() && w.net.connected(Party::Pivot, Party::Server(i)) {
                        w.servers[i].read_only = true;
                        w.log(format!("pivot #{me}: made the writable replica {key} read-only"));
                    }
                }
            }
            Command::DetachReplica(key) => {
                if let Some(i) = w.index_of(&key) {
                    if w.servers[i].up() && w.net.connected(Party::Pivot, Party::Server(i)) {
                        w.servers[i].stop_io();
                        w.log(format!(
                            "pivot #{me}: stopped the IO thread of {key} (it followed a fenced former primary)"
                        ));
                    }
                }
            }
            Command::UpdateFence(entry) => {
                let now = w.now;
                if let Err(e) = w.store.fence_update(now, &entry.instance, &entry.status, &entry.detail) {
                    let more = self.machine.shell_problem(
                        "fence_list",
                        format!("cannot record {} in the fence list: {e}", entry.instance),
                    );
                    self.queue.extend(more);
                }
            }
            Command::RecordFence(entry) => {
                let now = w.now;
                if let Err(e) = w.store.fence_record(now, &entry.instance, &entry.status, &entry.detail) {
                    let more = self.machine.shell_problem(
                        "fence_list",
                        format!("cannot record {} in the fence list: {e}", entry.instance),
                    );
                    self.queue.extend(more);
                }
            }
            Command::PublishRoutes(table) => {
                w.publish_routes(*table);
            }
            Command::AdoptPrimary { primary, expected } => {
                let (now, wall) = (w.now, w.wall());
                match w.store.epoch_adopt(now, &primary, expected, wall) {
                    Ok(Some(n)) => w.log(format!("pivot #{me}: epoch {n}: {primary} adopted")),
                    Ok(None) => w.log(format!("pivot #{me}: epoch moved: {primary} not adopted")),
                    Err(e) => w.log(format!("pivot #{me}: cannot store the epoch of {primary}: {e}")),
                }
                return Some(Event::Store(self.read_store(w)));
            }
            Command::Alert { text, .. } => w.alert(text),
            // Replication-health alerts are logged only: the simulator's
            // alert list is the control plane's.
            Command::HealthAlert(a) => w.log(format!("pivot #{me}: {}", a.line())),
            Command::Log { level, text } => {
                let level = match level {
                    Level::Info => "",
                    Level::Warn => "WARN ",
                    Level::Error => "ERROR ",
                };
                w.log(format!("pivot #{me}: {level}{text}"));
            }
            // Rejoin and the quarantine file are not modelled (auto_rejoin off).
            Command::Rejoin { .. }
            | Command::SaveExtra { .. }
            | Command::ClearFence(_)
            | Command::Record { .. }
            | Command::RestoreRing { .. } => {}
        }
        None
    }

    /// What the store says, as `Monitor::read_store` builds it. One process
    /// runs at a time and every earlier one is dead: a recovery owned by
    /// another incarnation has its owner certainly gone. The block is in
    /// wall time, handed over (unless acknowledged) whatever the wall clock
    /// says; the machine keeps its first conversion to monotonic time.
    fn read_store(&self, w: &World) -> StoreView {
        let (now, wall) = (Millis(w.now), w.wall());
        let running = w.store.running_recovery().map(|r| RunningRecovery {
            id: r.id,
            owner: format!("pivot #{}", r.owner),
            ours: r.owner == self.incarnation,
            owner_gone: r.owner != self.incarnation,
        });
        let block = w.store.block.as_ref().map(|b| BlockInfo {
            until: now.plus((b.until_wall - wall).max(0) as u64),
            until_wall: b.until_wall,
            recovery_id: Some(b.recovery_id),
        });
        let fenced = w
            .store
            .fences
            .iter()
            .map(|f| FenceEntry { instance: f.instance.clone(), status: f.status.clone(), detail: f.detail.clone() })
            .collect();
        StoreView { running, block, fenced, problem: None, file_ok: true, epoch: w.store.current_epoch().cloned() }
    }

    // ---- recoveries ----------------------------------------------------------------

    fn poll_recovery(&mut self, w: &mut World) {
        if self.killed {
            return;
        }
        let end = match self.recovery.take() {
            None => return,
            Some(Task::Ended(end)) => end,
            Some(Task::Running(mut rec)) => match driver::poll(&mut rec, w) {
                Poll::Running => {
                    self.recovery = Some(Task::Running(rec));
                    return;
                }
                Poll::Done(o) => self.ended(w, o),
                Poll::Kill => {
                    self.killed = true;
                    return;
                }
            },
        };
        self.handle(w, Event::RecoveryEnded(end));
    }

    /// `Monitor::recovery_end` for a task that returned an outcome.
    fn ended(&mut self, w: &mut World, o: Outcome) -> RecoveryEnd {
        let status = o.status.map_or("running", |s| s.as_str());
        w.log(format!("pivot #{}: recovery {} ended: {}", self.incarnation, o.id, o.summary));
        let end = RecoveryEnd::Ended {
            id: o.id,
            new_primary: o.new_primary.clone().filter(|_| o.status.is_some_and(|s| s.promoted())),
            parked: o.status.is_none(),
            alert: o.alert.then(|| format!("recovery {} {status}: {}", o.id, o.summary)),
            unrecorded: o.unrecorded.clone(),
        };
        if o.unrecorded.is_some() {
            self.unrecorded = Some(o);
        }
        end
    }

    /// `Monitor::retry_unrecorded`.
    fn retry_unrecorded(&mut self, w: &mut World) {
        let Some(o) = self.unrecorded.clone() else { return };
        let status = o.status.expect("only ended recoveries are unrecorded");
        let mut block_recorded = false;
        match driver::record_end(w, o.id, status, &o.summary, o.block_until, &mut block_recorded) {
            Ok(()) => {
                w.log(format!("pivot #{}: the end of recovery {} is recorded now", self.incarnation, o.id));
                self.unrecorded = None;
                self.machine.unrecorded_written(o.id);
                self.queue.push_back(Command::ReadStore);
            }
            Err(e) => w.log(format!("pivot #{}: still cannot record the end of the recovery: {e}", self.incarnation)),
        }
    }

    // ---- probing -------------------------------------------------------------------

    fn deliver(&mut self, w: &mut World) {
        let mut due: Vec<(u64, InstanceKey)> = self
            .probers
            .iter()
            .filter_map(|(k, p)| p.in_flight.as_ref().filter(|(t, _)| *t <= w.now).map(|(t, _)| (*t, k.clone())))
            .collect();
        due.sort_unstable();
        for (_, key) in due {
            // Dropped (or started again) by an earlier observation's commands.
            let Some(p) = self.probers.get_mut(&key) else { continue };
            let Some((_, obs)) = p.in_flight.take() else { continue };
            let interval = match self.pace.speed(&key) {
                Speed::Fast => w.cfg.timing.fast_poll_ms,
                Speed::Normal => w.cfg.timing.poll_ms,
                Speed::Slow => w.cfg.timing.poll_ms * 10,
            };
            p.next_at = if std::mem::take(&mut p.woken) { w.now } else { p.started_at + interval };
            w.trace.count(1);
            self.handle(w, Event::Observed(obs));
        }
    }

    fn start_probes(&mut self, w: &mut World) {
        let timeout = w.cfg.timing.probe_timeout_ms;
        for p in self.probers.values_mut() {
            if p.in_flight.is_some() || w.now < p.next_at {
                continue;
            }
            let (latency, obs) = probe::probe(w, p.server, timeout);
            p.started_at = w.now;
            p.in_flight = Some((w.now + latency, obs));
        }
    }

    fn wake(&mut self, key: &InstanceKey, now: u64) {
        let Some(p) = self.probers.get_mut(key) else { return };
        if p.in_flight.is_some() {
            p.woken = true;
        } else {
            p.next_at = now;
        }
    }

    // ---- connections besides the probes ----------------------------------------------

    fn poll_fences(&mut self, w: &mut World) {
        let mut i = 0;
        while i < self.fences.len() {
            match self.fences[i].poll(w, self.incarnation) {
                Some(result) => {
                    self.fences.remove(i);
                    self.handle(w, Event::Fence(result));
                }
                None => i += 1,
            }
        }
    }

    fn poll_watch(&mut self, w: &mut World) {
        let Some(watch) = self.watch.as_mut() else { return };
        match watch.poll(w) {
            WatchPoll::Going => {}
            WatchPoll::GaveUp => {
                // `crash_watch::spawn` ends without a word: the machine is not told.
                let key = watch.key.clone();
                self.watch = None;
                w.log(format!("pivot #{}: watch connection to {key} could not be set up", self.incarnation));
            }
            WatchPoll::Ended(why) => {
                let key = watch.key.clone();
                self.watch = None;
                w.log(format!("pivot #{}: watch connection to {key} ended: {why}", self.incarnation));
                self.handle(w, Event::WatchEnded(key));
            }
        }
    }
}
