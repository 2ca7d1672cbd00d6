//! One task per cluster: folds observations into the view, analyzes, logs
//! state changes, publishes snapshots, asks the gate, runs recoveries, keeps
//! former primaries read-only.
//!
//! Crash-only: a recovery task that panics, or whose end cannot be written,
//! never leaves automatic failover silently off. A panicked recovery is
//! resumed from the state file (its step records say where it was); an end
//! that could not be written is retried every second while the running
//! record is known to be stale; both raise an alert and show in status.

use super::alerts::Alerts;
use super::discovery::Discovery;
use super::prober::{self, ProberHandle, Schedule};
use crate::clock;
use crate::config::ClusterConfig;
use crate::recovery::driver::StopFlag;
use crate::recovery::fence_watch::{self, Fenced};
use crate::recovery::{self, owner, Outcome, RecoveryEnv, RecoveryError, Trigger};
use crate::render::{snapshot, ClusterSnapshot, FormerPrimary, RecoveryState};
use pivot_core::control::backoff::Backoff;
use pivot_core::control::gate::{decide, Decision, Gate};
use pivot_core::control::split_brain::{self, Resolution};
use pivot_core::control::verdict;
use pivot_core::view::Change;
use pivot_core::{analyze, ClusterAnalysis, ClusterView, Code, InstanceKey, Millis, Observation};
use pivot_server::referenced_instances;
use pivot_state::{Block, FencedInstance, RecoveryRecord, StateStore};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

/// Observations waiting to be folded in; probers wait when it is full.
const OBSERVATION_QUEUE: usize = 1024;
/// How often state another process may change (block, fence list) is re-read.
const REFRESH: Duration = Duration::from_secs(1);
/// On shutdown, a running recovery may finish within this bound; past it,
/// it parks at the next step boundary, within [`PARK_GRACE`].
pub const FINISH_GRACE: Duration = Duration::from_secs(20);
pub const PARK_GRACE: Duration = Duration::from_secs(10);

type RecoveryTask = JoinHandle<Result<Option<Outcome>, RecoveryError>>;

/// How a monitor stopped.
#[derive(Debug, Default)]
pub struct MonitorExit {
    /// A recovery was left unfinished (parked or cut off).
    pub unfinished: Option<String>,
}

pub struct Monitor {
    cfg: Arc<ClusterConfig>,
    env: RecoveryEnv,
    view: ClusterView,
    probers: BTreeMap<InstanceKey, ProberHandle>,
    discovery: Discovery,
    tx: mpsc::Sender<Observation>,
    rx: mpsc::Receiver<Observation>,
    limit: Arc<Semaphore>,
    published: watch::Sender<Arc<ClusterSnapshot>>,
    last_code: Option<Code>,
    fast: bool,
    recovery: Option<RecoveryTask>,
    /// The id of the recovery the task runs, once known.
    recovery_id: Option<i64>,
    stop: StopFlag,
    /// A recovery left running (by a stopped pivot, or this one's failed
    /// task), resumed once the view is complete.
    pending_resume: Option<RecoveryRecord>,
    /// A recovery that ended but whose end could not be written yet.
    unrecorded: Option<Outcome>,
    recovered_at: Millis,
    block: Option<Block>,
    block_read: Option<Instant>,
    alerts: Alerts,
    backoff: Backoff,
    /// Problems that keep pivot from acting safely, shown in status.
    control_problems: BTreeMap<&'static str, String>,
    fenced: BTreeMap<InstanceKey, FencedInstance>,
    fenced_read: Option<Instant>,
    fence_tasks: BTreeMap<InstanceKey, JoinHandle<()>>,
    fence_tx: mpsc::Sender<Fenced>,
    fence_rx: mpsc::Receiver<Fenced>,
    /// The connection kept waiting on the primary (see `crash_watch`).
    watch: Option<(InstanceKey, JoinHandle<()>, Instant)>,
    watch_tx: mpsc::Sender<InstanceKey>,
    watch_rx: mpsc::Receiver<InstanceKey>,
}

impl Monitor {
    pub fn new(env: RecoveryEnv, limit: Arc<Semaphore>) -> (Monitor, watch::Receiver<Arc<ClusterSnapshot>>) {
        let cfg = env.cluster.clone();
        let (tx, rx) = mpsc::channel(OBSERVATION_QUEUE);
        let (fence_tx, fence_rx) = mpsc::channel(64);
        let (watch_tx, watch_rx) = mpsc::channel(8);
        let view = ClusterView::default();
        let first = snapshot(&cfg.name, &view, &analyze(&view, &cfg.detection, clock::now()));
        let (published, subscriber) = watch::channel(Arc::new(first));
        let alerts = Alerts::new(cfg.clone(), env.state.clone());
        let monitor = Monitor {
            discovery: Discovery::new(cfg.max_instances),
            cfg,
            env,
            view,
            probers: BTreeMap::new(),
            tx,
            rx,
            limit,
            published,
            last_code: None,
            fast: false,
            recovery: None,
            recovery_id: None,
            stop: StopFlag::default(),
            pending_resume: None,
            unrecorded: None,
            recovered_at: Millis(0),
            block: None,
            block_read: None,
            alerts,
            backoff: Backoff::default(),
            control_problems: BTreeMap::new(),
            fenced: BTreeMap::new(),
            fenced_read: None,
            fence_tasks: BTreeMap::new(),
            fence_tx,
            fence_rx,
            watch: None,
            watch_tx,
            watch_rx,
        };
        (monitor, subscriber)
    }

    /// A state-store call from the monitor's (synchronous) handlers, moved
    /// off the runtime's worker so other tasks keep running.
    fn store<T>(&self, f: impl FnOnce(&dyn StateStore) -> T) -> T {
        let state = self.env.state.clone();
        tokio::task::block_in_place(move || f(state.as_ref()))
    }

    fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.cfg.poll_interval,
            fast_interval: self.cfg.poll_interval.min(Duration::from_millis(50)),
            timeout: self.cfg.probe_timeout,
        }
    }

    fn start_prober(&mut self, key: InstanceKey) {
        let handle = prober::spawn(
            key.clone(),
            self.cfg.credentials.clone(),
            self.schedule(),
            self.limit.clone(),
            self.tx.clone(),
        );
        handle.set_fast(self.fast);
        self.probers.insert(key, handle);
    }

    /// Watch `key` if there is room; instances that answer win over ones
    /// that never did (see [`Discovery`]).
    fn learn(&mut self, key: InstanceKey, referenced: bool) {
        let protected: Vec<InstanceKey> = self.fenced.keys().cloned().collect();
        for step in self.discovery.offer(&self.view, key, referenced, &protected) {
            self.apply_discovery(step);
        }
    }

    fn apply_discovery(&mut self, step: super::discovery::Step) {
        use super::discovery::Step;
        match step {
            Step::Watch(key) => {
                if self.view.learn(key.clone()) {
                    tracing::info!(cluster = %self.cfg.name, instance = %key, "watching instance");
                    self.start_prober(key);
                }
            }
            Step::Drop(key) => {
                tracing::info!(cluster = %self.cfg.name, instance = %key, "no longer watching {key}: it never answered and max_instances is reached");
                self.view.forget(&key);
                self.probers.remove(&key);
            }
            Step::LimitReached(text) => {
                tracing::warn!(cluster = %self.cfg.name, max = self.cfg.max_instances, "{text}");
            }
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> MonitorExit {
        tracing::info!(cluster = %self.cfg.name, seeds = ?self.cfg.seeds.iter().map(ToString::to_string).collect::<Vec<_>>(), "watching cluster");
        self.reload_fenced();
        for seed in self.cfg.seeds.clone() {
            self.learn(seed, false);
        }
        match self.store(|s| s.running_recovery(&self.cfg.name)) {
            Ok(Some(rec)) => {
                tracing::warn!(cluster = %self.cfg.name, recovery = rec.id, "found recovery {} left running by {}: resuming once every instance is probed", rec.id, rec.owner);
                self.pending_resume = Some(rec);
            }
            Ok(None) => {}
            Err(e) => self.control_problem("state", format!("cannot read the state file: {e}")),
        }
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                Some(obs) = self.rx.recv() => self.on_observation(obs),
                Some(f) = self.fence_rx.recv() => self.on_fenced(f),
                Some(k) = self.watch_rx.recv() => self.on_watch_ended(k),
                done = wait(&mut self.recovery) => self.on_recovery_done(done),
                _ = tick.tick() => self.on_tick(),
                _ = shutdown.changed() => break,
            }
        }
        self.shut_down().await
    }

    /// Let a running recovery finish (bounded), else park it (bounded).
    async fn shut_down(mut self) -> MonitorExit {
        let cluster = self.cfg.name.clone();
        if let Some((_, task, _)) = self.watch.take() {
            task.abort();
        }
        let Some(mut task) = self.recovery.take() else {
            tracing::info!(%cluster, "stopped watching cluster");
            return MonitorExit::default();
        };
        tracing::warn!(%cluster, "stopping: a recovery is running; letting it finish (up to {} s)", FINISH_GRACE.as_secs());
        let first = tokio::time::timeout(FINISH_GRACE, &mut task).await;
        let done = match first {
            Ok(done) => Some(done),
            Err(_) => {
                tracing::error!(%cluster, "the recovery did not finish in time: parking it at the next step");
                self.stop.stop();
                tokio::time::timeout(PARK_GRACE, &mut task).await.ok()
            }
        };
        let unfinished = match done {
            Some(Ok(Ok(Some(o)))) if !o.parked => {
                tracing::info!(%cluster, recovery = o.id, "recovery {} finished before stopping: {}", o.id, o.summary);
                None
            }
            Some(Ok(Ok(Some(o)))) => Some(format!("recovery {} parked: {}", o.id, o.summary)),
            Some(Ok(Ok(None))) => None,
            Some(Ok(Err(e))) => Some(format!("recovery not started: {e}")),
            Some(Err(e)) => Some(format!("recovery task failed: {e}")),
            None => {
                task.abort();
                Some("the running step did not end in time; a restarted pivot resumes the recovery".into())
            }
        };
        MonitorExit { unfinished }
    }

    fn on_tick(&mut self) {
        self.retry_unrecorded();
        match self.env.state.check_file() {
            Ok(()) => {
                self.control_problems.remove("state_file");
            }
            Err(e) => self.control_problem(
                "state_file",
                format!("{e}: pivot keeps its fence list in memory; restore the file or restart pivot"),
            ),
        }
    }

    /// Record a problem that keeps pivot from acting safely; alert once.
    fn control_problem(&mut self, key: &'static str, text: String) {
        if self.control_problems.get(key) != Some(&text) {
            tracing::error!(cluster = %self.cfg.name, "ALERT: {text}");
            self.alerts.raise_text(&format!("control:{key}:{text}"), &text);
            self.control_problems.insert(key, text);
        }
    }

    fn on_observation(&mut self, obs: Observation) {
        let referenced = obs.state().map(referenced_instances).unwrap_or_default();
        let observed = obs.instance.clone();
        let writable = obs.state().is_some_and(|s| s.writable());
        if !self.probers.contains_key(&observed) {
            return; // dropped meanwhile
        }
        for change in self.view.apply(obs, self.cfg.detection.lag_threshold_s) {
            log_change(&self.cfg.name, &change);
        }
        for key in referenced {
            self.learn(key, true);
        }
        let found = pivot_core::Topology::derive(&self.view).primary.is_some();
        for step in self.discovery.rotate(&self.view, found) {
            self.apply_discovery(step);
        }
        let analysis = analyze(&self.view, &self.cfg.detection, clock::now());
        // Another process (`pivot failover`) may have registered a former primary.
        if analysis.code == Code::SplitBrain || self.fenced_read.is_none_or(|t| t.elapsed() >= REFRESH) {
            self.reload_fenced();
        }
        if writable {
            self.enforce_fence(&observed);
        }
        if let Some(Resolution::Fence { intruders, reason, .. }) = split_brain::resolve(&self.view, &analysis) {
            self.fence_intruders(intruders, &reason);
        }
        self.log_analysis(&analysis);
        self.steer_probes(&analysis, &observed);
        self.keep_watching(&analysis);
        if self.pending_resume.is_some() && self.recovery.is_none() && self.view.complete() {
            self.start_resume();
        } else {
            self.consider(&analysis);
        }
        self.publish(&analysis);
    }

    fn publish(&mut self, analysis: &ClusterAnalysis) {
        let snap = snapshot(&self.cfg.name, &self.view, analysis);
        let block = self.block();
        let wall = clock::wall_ms();
        let snap = snap.with_recovery(RecoveryState {
            blocked_until: block.as_ref().filter(|b| b.active(wall)).map(|b| b.blocked_until),
            running_recovery: self
                .pending_resume
                .as_ref()
                .map(|r| r.id)
                .or(self.recovery_id.filter(|_| self.recovery.is_some())),
            automatic: self.cfg.failover.automatic,
            fenced: self
                .fenced
                .iter()
                .map(|(k, f)| FormerPrimary { instance: k.clone(), status: f.status.clone(), detail: f.detail.clone() })
                .collect(),
            discovery_limit: self.discovery.limit_text(),
            control_problems: self.control_problems.values().cloned().collect(),
        });
        self.published.send_replace(Arc::new(snap));
    }

    /// The anti-flapping block, re-read at most every [`REFRESH`].
    fn block(&mut self) -> Option<Block> {
        if self.block_read.is_none_or(|t| t.elapsed() >= REFRESH) {
            match self.store(|s| s.block_of(&self.cfg.name)) {
                Ok(b) => self.block = b,
                Err(e) => tracing::error!(cluster = %self.cfg.name, "cannot read the state file: {e}"),
            }
            self.block_read = Some(Instant::now());
        }
        self.block.clone()
    }

    /// Whether a recovery runs (here, or in another process that holds its
    /// lease). A recovery whose owner is gone is taken over; one of ours
    /// that no task runs (it failed) is resumed.
    fn running(&mut self) -> bool {
        if self.recovery.is_some() || self.pending_resume.is_some() {
            return true;
        }
        let rec = match self.store(|s| s.running_recovery(&self.cfg.name)) {
            Ok(Some(rec)) => rec,
            Ok(None) => return false,
            Err(e) => {
                self.control_problem("state", format!("cannot read the state file: {e}"));
                return false;
            }
        };
        if self.unrecorded.as_ref().is_some_and(|o| o.id == rec.id) {
            // Ended here; its end is not written yet (retried every second).
            return false;
        }
        let ours = rec.owner == self.env.owner;
        let expired = rec.lease_until.is_none_or(|l| l <= clock::wall_ms());
        if ours || expired || owner::certainly_gone(&rec.owner, &self.env.owner) {
            tracing::warn!(cluster = %self.cfg.name, recovery = rec.id, "recovery {} was left running by {}, which no longer runs it: resuming it", rec.id, rec.owner);
            self.pending_resume = Some(rec);
        }
        true
    }

    fn gate(&mut self, now: Millis) -> Gate {
        let running = self.running();
        self.block_read = None;
        let wall = clock::wall_ms();
        let block = self.block().filter(|b| b.active(wall));
        Gate {
            automatic: self.cfg.failover.automatic,
            running,
            // The block is wall time (shared with other processes); the core
            // works in this process's monotonic time.
            blocked_until: block.as_ref().map(|b| now.plus((b.blocked_until - wall).max(0) as u64)),
            blocked_by: block.and_then(|b| b.recovery_id),
            fresh: self.view.observed_since(self.recovered_at),
            retry_at: self.backoff.retry_at(),
            may_act: true,
        }
    }

    fn consider(&mut self, analysis: &ClusterAnalysis) {
        if !analysis.code.alerting() {
            self.alerts.clear();
            if analysis.code == Code::Healthy {
                self.backoff.reset();
            }
            return;
        }
        let now = clock::now();
        // Only a failover-worthy verdict consults the gate (and the state file).
        let gate = if analysis.code.failover_worthy() { self.gate(now) } else { Gate::default() };
        if self.pending_resume.is_some() && self.recovery.is_none() && self.view.complete() {
            self.start_resume();
            return;
        }
        match decide(analysis, &gate, now) {
            Decision::Recover => self.start_recovery(analysis),
            Decision::Alert { reason } => {
                let key =
                    format!("{}|{:?}|{}|{:?}", analysis.code, gate.blocked_by, gate.automatic, gate.retry_at.is_some());
                self.alerts.raise(&key, analysis, &reason);
            }
            Decision::Nothing => {}
        }
    }

    fn start_recovery(&mut self, analysis: &ClusterAnalysis) {
        let (env, view, analysis) = (self.env.clone(), self.view.clone(), analysis.clone());
        let trigger = Trigger { automatic: true, target: None, force: false };
        let stop = self.stop.clone();
        self.recovery_id = None;
        self.recovery = Some(tokio::spawn(async move {
            recovery::failover::run(&env, &view, &analysis, &trigger, stop).await.map(Some)
        }));
    }

    fn start_resume(&mut self) {
        let Some(record) = self.pending_resume.take() else { return };
        let (env, view, stop) = (self.env.clone(), self.view.clone(), self.stop.clone());
        self.recovery_id = Some(record.id);
        self.recovery =
            Some(tokio::spawn(async move { Ok(recovery::resume::resume(&env, record, &view, stop).await) }));
    }

    fn on_recovery_done(&mut self, done: Result<Result<Option<Outcome>, RecoveryError>, tokio::task::JoinError>) {
        self.recovery = None;
        self.recovered_at = clock::now();
        let cluster = self.cfg.name.clone();
        match done {
            Ok(Ok(Some(o))) => {
                if o.status.promoted() {
                    self.backoff.reset();
                } else {
                    self.backoff.aborted(self.recovered_at);
                }
                tracing::info!(%cluster, recovery = o.id, status = o.status.as_str(), "recovery {} ended: {}", o.id, o.summary);
                if o.alert {
                    self.alerts.raise_text(
                        &format!("recovery:{}", o.id),
                        &format!("recovery {} {}: {}", o.id, o.status.as_str(), o.summary),
                    );
                }
                if let Some(e) = &o.unrecorded {
                    self.control_problem(
                        "unrecorded",
                        format!(
                            "the end of recovery {} cannot be written to the state file ({e}); retrying every second",
                            o.id
                        ),
                    );
                    self.unrecorded = Some(o);
                }
            }
            Ok(Ok(None)) => tracing::info!(%cluster, "another pivot process holds the running recovery"),
            Ok(Err(e)) => {
                self.backoff.aborted(self.recovered_at);
                self.control_problem("start", format!("recovery not started: {e}"));
            }
            Err(e) => {
                // Crash-only: the control loop picks the recovery up again
                // from the state file, where its steps say how far it got.
                self.backoff.aborted(self.recovered_at);
                self.control_problem(
                    "task",
                    format!("the recovery task failed ({e}); resuming the recovery from the state file"),
                );
                if let Ok(Some(rec)) = self.store(|s| s.running_recovery(&self.cfg.name)) {
                    self.pending_resume = Some(rec);
                }
            }
        }
        self.block_read = None;
        self.reload_fenced();
        // Judge the new topology on fresh readings only.
        for p in self.probers.values() {
            p.wake();
        }
    }

    fn retry_unrecorded(&mut self) {
        let Some(o) = self.unrecorded.clone() else { return };
        let env = self.env.clone();
        let written = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(recovery::driver::record_end(
                &env,
                o.id,
                o.status,
                &o.summary,
                &o.lost,
                o.block_until,
            ))
        });
        match written {
            Ok(()) => {
                tracing::info!(cluster = %self.cfg.name, recovery = o.id, "the end of recovery {} is recorded now", o.id);
                self.unrecorded = None;
                self.control_problems.remove("unrecorded");
            }
            Err(e) => tracing::debug!(cluster = %self.cfg.name, "still cannot record the end of the recovery: {e}"),
        }
    }

    // ---- former primaries --------------------------------------------------------

    /// Re-read the fence list. If the state file was deleted or replaced,
    /// the list held in memory is kept (entries are only added) and an alert
    /// says so.
    fn reload_fenced(&mut self) {
        self.fenced_read = Some(Instant::now());
        let list = match self.store(|s| s.fenced(&self.cfg.name)) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(cluster = %self.cfg.name, "cannot read the fence list: {e}");
                return;
            }
        };
        let stored: BTreeMap<InstanceKey, FencedInstance> =
            list.into_iter().filter_map(|f| Some((f.instance.parse().ok()?, f))).collect();
        if self.env.state.check_file().is_ok() {
            self.fenced = stored;
        } else {
            // The file is gone or replaced: what it said is kept in memory
            // (never dropped) until an operator restores it; alerted on tick.
            self.fenced.extend(stored);
        }
        let pending: Vec<InstanceKey> =
            self.fenced.iter().filter(|(_, f)| f.status == "pending").map(|(k, _)| k.clone()).collect();
        for key in pending {
            if self.fence_tasks.get(&key).is_none_or(|t| t.is_finished()) {
                tracing::info!(cluster = %self.cfg.name, instance = %key, "watching former primary: it is made read-only the moment it answers");
                let task = fence_watch::spawn(key.clone(), self.cfg.credentials.clone(), self.fence_tx.clone());
                self.fence_tasks.insert(key.clone(), task);
            }
            self.learn(key, true);
        }
    }

    /// Writable instances nobody follows while the replicas follow another:
    /// recorded in the fence list (kept in memory if the file cannot be
    /// written), made read-only at once, alerted.
    fn fence_intruders(&mut self, intruders: Vec<InstanceKey>, reason: &str) {
        for key in intruders {
            if self.fence_tasks.get(&key).is_some_and(|t| !t.is_finished()) {
                continue;
            }
            let entry = FencedInstance {
                cluster: self.cfg.name.clone(),
                instance: key.to_string(),
                recovery_id: None,
                since: clock::wall_ms(),
                status: "pending".into(),
                detail: reason.to_string(),
            };
            if let Err(e) = self.store(|s| s.fence_register(&entry)) {
                self.control_problem("fence_list", format!("cannot record {key} in the fence list: {e}"));
            }
            self.fenced.insert(key.clone(), entry);
            self.alerts.raise_text(&format!("split_brain:{key}"), reason);
            let task = fence_watch::fence_now(
                key.clone(),
                self.cfg.credentials.clone(),
                self.cfg.probe_timeout,
                self.fence_tx.clone(),
            );
            self.fence_tasks.insert(key, task);
        }
    }

    /// A former primary observed writable is fenced again at once.
    fn enforce_fence(&mut self, key: &InstanceKey) {
        if !self.fenced.contains_key(key) || self.fence_tasks.get(key).is_some_and(|t| !t.is_finished()) {
            return;
        }
        tracing::error!(cluster = %self.cfg.name, instance = %key, "former primary {key} is writable: making it read-only");
        let task = fence_watch::fence_now(
            key.clone(),
            self.cfg.credentials.clone(),
            self.cfg.probe_timeout,
            self.fence_tx.clone(),
        );
        self.fence_tasks.insert(key.clone(), task);
    }

    fn on_fenced(&mut self, f: Fenced) {
        self.fence_tasks.remove(&f.instance);
        let report = match f.result {
            Err(e) => {
                tracing::error!(cluster = %self.cfg.name, instance = %f.instance, "fencing failed: {e}");
                // Try again on the next observation that finds it writable.
                return;
            }
            Ok(report) => report,
        };
        let primary = analyze(&self.view, &self.cfg.detection, clock::now()).primary;
        let primary_exec = primary
            .as_ref()
            .and_then(|p| self.view.get(p))
            .and_then(|r| r.last_state())
            .map(|s| s.gtid.executed.clone());
        let v = verdict::judge(&report.executed, primary.as_ref().zip(primary_exec.as_ref()));
        let (status, detail) = (
            v.status(),
            format!(
                "made read-only in {} ms, {} client session(s) ended; {}",
                report.took.as_millis(),
                report.sessions_ended,
                v.describe()
            ),
        );
        tracing::warn!(cluster = %self.cfg.name, instance = %f.instance, "former primary {}: {status}: {detail}", f.instance);
        let (cluster, instance) = (self.cfg.name.clone(), f.instance.to_string());
        if let Err(e) = self.store(|s| s.fence_update(&cluster, &instance, status, &detail)) {
            tracing::error!(cluster = %self.cfg.name, "cannot record the fence: {e}");
        }
        let message = format!("former primary {}: {status}: {detail}", f.instance);
        let _ = self.store(|s| s.event(&cluster, clock::wall_ms(), "warn", &message));
        if let Some(entry) = self.fenced.get_mut(&f.instance) {
            entry.status = status.into();
            entry.detail = detail;
        }
    }

    // ---- logging and probing -----------------------------------------------------

    fn log_analysis(&mut self, a: &ClusterAnalysis) {
        if self.last_code == Some(a.code) {
            return;
        }
        // Problems present when pivot first sees the whole cluster; later ones
        // are logged as the changes that caused them.
        if matches!(self.last_code, None | Some(Code::Incomplete)) && a.code != Code::Incomplete {
            for p in &a.problems {
                tracing::warn!(cluster = %self.cfg.name, instance = %p.instance, "{}", p.text);
            }
        }
        self.last_code = Some(a.code);
        if a.code.alerting() {
            tracing::warn!(cluster = %self.cfg.name, analysis = %a.code, "{}", a.signal);
        } else {
            tracing::info!(cluster = %self.cfg.name, analysis = %a.code, "{}", a.signal);
        }
    }

    /// Keep a connection waiting on the answering primary, restarted at most
    /// once a second.
    fn keep_watching(&mut self, a: &ClusterAnalysis) {
        let Some(primary) = a.primary.as_ref().filter(|p| self.view.get(p).is_some_and(|r| r.reachable())) else {
            return;
        };
        let current = self.watch.as_ref().is_some_and(|(k, t, _)| k == primary && !t.is_finished());
        let recent = self.watch.as_ref().is_some_and(|(_, _, at)| at.elapsed() < REFRESH);
        if current || recent {
            return;
        }
        if let Some((_, old, _)) = self.watch.take() {
            old.abort();
        }
        let task = super::crash_watch::spawn(
            primary.clone(),
            self.cfg.credentials.clone(),
            self.cfg.probe_timeout,
            self.watch_tx.clone(),
        );
        self.watch = Some((primary.clone(), task, Instant::now()));
    }

    /// The primary's watch connection ended: probe it now.
    fn on_watch_ended(&mut self, key: InstanceKey) {
        if let Some(p) = self.probers.get(&key) {
            tracing::debug!(cluster = %self.cfg.name, instance = %key, "watch connection ended: probing now");
            p.wake();
        }
    }

    /// While the primary does not answer, probe its replicas at once and then
    /// often, so their confirmation is never a stale reading.
    fn steer_probes(&mut self, a: &ClusterAnalysis, observed: &InstanceKey) {
        let Some(primary) = &a.primary else { return };
        let primary_down = self.view.get(primary).is_some_and(|r| !r.reachable());
        if primary_down != self.fast {
            self.fast = primary_down;
            self.probers.values().for_each(|p| p.set_fast(primary_down));
        }
        if primary_down && observed == primary {
            for replica in a.topology.replicas(primary) {
                if let Some(p) = self.probers.get(replica) {
                    p.wake();
                }
            }
        }
    }
}

/// Wait for the recovery task if there is one; never resolves otherwise.
async fn wait(
    task: &mut Option<RecoveryTask>,
) -> Result<Result<Option<Outcome>, RecoveryError>, tokio::task::JoinError> {
    match task {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}

fn log_change(cluster: &str, change: &Change) {
    use pivot_core::observation::IoThread;
    let bad = match change {
        Change::Unreachable { .. } | Change::LagAbove { .. } => true,
        Change::IoThread { to, .. } => *to != IoThread::Running,
        Change::SqlThread { running, .. } => !running,
        Change::Reachable { .. } | Change::LagBelow { .. } | Change::ReadOnly { .. } | Change::Source { .. } => false,
    };
    if bad {
        tracing::warn!(cluster, "{change}");
    } else {
        tracing::info!(cluster, "{change}");
    }
}
