//! One task per cluster: folds observations into the view, analyzes, logs
//! state changes, publishes snapshots, decides on recoveries and runs them,
//! and keeps former primaries read-only.

use super::alerts::Alerts;
use super::prober::{self, ProberHandle, Schedule};
use crate::clock;
use crate::config::ClusterConfig;
use crate::recovery::fence_watch::{self, Fenced};
use crate::recovery::{self, Outcome, RecoveryEnv, RecoveryError, Trigger};
use crate::render::{snapshot, ClusterSnapshot, FormerPrimary, RecoveryState};
use pivot_core::decide::{decide, Decision, Gate};
use pivot_core::view::Change;
use pivot_core::{analyze, ClusterAnalysis, ClusterView, Code, InstanceKey, Millis, Observation};
use pivot_server::referenced_instances;
use pivot_state::{Block, FencedInstance, RecoveryRecord};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

/// Observations waiting to be folded in; probers wait when it is full.
const OBSERVATION_QUEUE: usize = 1024;
/// How often the block state is re-read from the state file (another
/// process may have acknowledged it).
const BLOCK_REFRESH: Duration = Duration::from_secs(1);

const FIRST_RETRY_BACKOFF: Duration = Duration::from_secs(5);
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(160);

type RecoveryTask = JoinHandle<Result<Outcome, RecoveryError>>;

pub struct Monitor {
    cfg: Arc<ClusterConfig>,
    env: RecoveryEnv,
    view: ClusterView,
    probers: BTreeMap<InstanceKey, ProberHandle>,
    tx: mpsc::Sender<Observation>,
    rx: mpsc::Receiver<Observation>,
    limit: Arc<Semaphore>,
    published: watch::Sender<Arc<ClusterSnapshot>>,
    last_code: Option<Code>,
    fast: bool,
    recovery: Option<RecoveryTask>,
    /// A recovery a stopped pivot left running, resumed once the view is complete.
    pending_resume: Option<RecoveryRecord>,
    recovered_at: Millis,
    block: Option<Block>,
    block_read: Option<Instant>,
    alerts: Alerts,
    /// Backoff after aborted automatic attempts: next attempt not before
    /// `retry_at`; the wait doubles up to [`MAX_RETRY_BACKOFF`].
    retry_at: Option<Millis>,
    retry_backoff: Duration,
    fenced: BTreeMap<InstanceKey, FencedInstance>,
    /// When the fence list was last read (another process, `pivot failover`,
    /// may have added to it).
    fenced_read: Option<Instant>,
    fence_tasks: BTreeMap<InstanceKey, JoinHandle<()>>,
    fence_tx: mpsc::Sender<Fenced>,
    fence_rx: mpsc::Receiver<Fenced>,
}

impl Monitor {
    pub fn new(env: RecoveryEnv, limit: Arc<Semaphore>) -> (Monitor, watch::Receiver<Arc<ClusterSnapshot>>) {
        let cfg = env.cluster.clone();
        let (tx, rx) = mpsc::channel(OBSERVATION_QUEUE);
        let (fence_tx, fence_rx) = mpsc::channel(64);
        let view = ClusterView::new(cfg.seeds.iter().cloned());
        let first = snapshot(&cfg.name, &view, &analyze(&view, &cfg.detection, clock::now()));
        let (published, subscriber) = watch::channel(Arc::new(first));
        let alerts = Alerts::new(cfg.clone(), env.state.clone());
        let monitor = Monitor {
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
            pending_resume: None,
            recovered_at: Millis(0),
            block: None,
            block_read: None,
            alerts,
            retry_at: None,
            retry_backoff: FIRST_RETRY_BACKOFF,
            fenced: BTreeMap::new(),
            fenced_read: None,
            fence_tasks: BTreeMap::new(),
            fence_tx,
            fence_rx,
        };
        (monitor, subscriber)
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

    fn learn(&mut self, key: InstanceKey) {
        if self.view.records.len() + self.view.pending.len() >= self.cfg.max_instances {
            tracing::warn!(cluster = %self.cfg.name, instance = %key, max = self.cfg.max_instances, "not watching: max_instances reached");
            return;
        }
        if self.view.learn(key.clone()) {
            tracing::info!(cluster = %self.cfg.name, instance = %key, "discovered instance");
            self.start_prober(key);
        }
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(cluster = %self.cfg.name, seeds = ?self.cfg.seeds.iter().map(ToString::to_string).collect::<Vec<_>>(), "watching cluster");
        for seed in self.cfg.seeds.clone() {
            self.start_prober(seed);
        }
        match self.env.state.running_recovery(&self.cfg.name) {
            Ok(Some(rec)) if !recovery::owner::alive(&rec.owner) => {
                tracing::warn!(cluster = %self.cfg.name, recovery = rec.id, "found recovery {} left running by {}: resuming once every instance is probed", rec.id, rec.owner);
                self.pending_resume = Some(rec);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(cluster = %self.cfg.name, "cannot read the state file: {e}"),
        }
        self.reload_fenced();
        loop {
            tokio::select! {
                Some(obs) = self.rx.recv() => self.on_observation(obs),
                Some(f) = self.fence_rx.recv() => self.on_fenced(f),
                done = wait(&mut self.recovery) => self.on_recovery_done(done),
                _ = shutdown.changed() => break,
            }
        }
        tracing::info!(cluster = %self.cfg.name, "stopped watching cluster");
    }

    fn on_observation(&mut self, obs: Observation) {
        let referenced = obs.state().map(referenced_instances).unwrap_or_default();
        let observed = obs.instance.clone();
        let writable = obs.state().is_some_and(|s| s.writable());
        for change in self.view.apply(obs, self.cfg.detection.lag_threshold_s) {
            log_change(&self.cfg.name, &change);
        }
        for key in referenced {
            self.learn(key);
        }
        let analysis = analyze(&self.view, &self.cfg.detection, clock::now());
        // Another process (`pivot failover`) may have registered a former primary.
        if analysis.code == Code::SplitBrain || self.fenced_read.is_none_or(|t| t.elapsed() >= BLOCK_REFRESH) {
            self.reload_fenced();
        }
        if writable {
            self.enforce_fence(&observed);
        }
        self.log_analysis(&analysis);
        self.steer_probes(&analysis, &observed);
        if self.pending_resume.is_some() && self.recovery.is_none() && self.view.complete() {
            self.start_resume();
        } else {
            self.consider(&analysis);
        }
        self.publish(&analysis);
    }

    fn publish(&mut self, analysis: &ClusterAnalysis) {
        let snap = snapshot(&self.cfg.name, &self.view, analysis);
        let now = clock::now();
        let block = self.block();
        let snap = snap.with_recovery(RecoveryState {
            blocked_until: block.as_ref().filter(|b| b.active(now.0 as i64)).map(|b| b.blocked_until),
            running_recovery: match (&self.recovery, &self.pending_resume) {
                (_, Some(r)) => Some(r.id),
                (Some(_), None) => self.env.state.running_recovery(&self.cfg.name).ok().flatten().map(|r| r.id),
                (None, None) => None,
            },
            automatic: self.cfg.failover.automatic,
            fenced: self
                .fenced
                .iter()
                .map(|(k, f)| FormerPrimary { instance: k.clone(), status: f.status.clone(), detail: f.detail.clone() })
                .collect(),
        });
        self.published.send_replace(Arc::new(snap));
    }

    /// The anti-flapping block, re-read at most every [`BLOCK_REFRESH`].
    fn block(&mut self) -> Option<Block> {
        if self.block_read.is_none_or(|t| t.elapsed() >= BLOCK_REFRESH) {
            match self.env.state.block_of(&self.cfg.name) {
                Ok(b) => self.block = b,
                Err(e) => tracing::error!(cluster = %self.cfg.name, "cannot read the state file: {e}"),
            }
            self.block_read = Some(Instant::now());
        }
        self.block.clone()
    }

    fn gate(&mut self, now: Millis) -> Gate {
        let mut running = self.recovery.is_some() || self.pending_resume.is_some();
        if !running {
            // Another process (`pivot failover`) may be recovering this cluster.
            if let Ok(Some(rec)) = self.env.state.running_recovery(&self.cfg.name) {
                if recovery::owner::alive(&rec.owner) {
                    running = true;
                } else {
                    tracing::warn!(cluster = %self.cfg.name, recovery = rec.id, "recovery {} was left running by {}, which is gone: resuming it", rec.id, rec.owner);
                    self.pending_resume = Some(rec);
                    running = true;
                }
            }
        }
        self.block_read = None;
        let block = self.block().filter(|b| b.active(now.0 as i64));
        Gate {
            automatic: self.cfg.failover.automatic,
            running,
            blocked_until: block.as_ref().map(|b| Millis(b.blocked_until as u64)),
            blocked_by: block.and_then(|b| b.recovery_id),
            fresh: self.view.observed_since(self.recovered_at),
            retry_at: self.retry_at,
        }
    }

    fn consider(&mut self, analysis: &ClusterAnalysis) {
        if !analysis.code.alerting() {
            self.alerts.clear();
            if analysis.code == Code::Healthy {
                self.retry_at = None;
                self.retry_backoff = FIRST_RETRY_BACKOFF;
            }
            return;
        }
        let now = clock::now();
        // Only a failover-worthy verdict consults the gate (and the state file).
        let gate = if analysis.code.failover_worthy() { self.gate(now) } else { Gate::default() };
        match decide(analysis, &gate, now) {
            Decision::Recover => self.start_recovery(analysis),
            Decision::Alert { reason } => {
                let key = format!("{}|{:?}|{}|{:?}", analysis.code, gate.blocked_by, gate.automatic, gate.retry_at);
                self.alerts.raise(&key, analysis, &reason);
            }
            Decision::Nothing => {}
        }
    }

    fn start_recovery(&mut self, analysis: &ClusterAnalysis) {
        let (env, view, analysis) = (self.env.clone(), self.view.clone(), analysis.clone());
        let trigger = Trigger { automatic: true, target: None, force: false };
        self.recovery = Some(tokio::spawn(async move { recovery::failover(&env, &view, &analysis, &trigger).await }));
    }

    fn start_resume(&mut self) {
        let Some(record) = self.pending_resume.take() else { return };
        let (env, view) = (self.env.clone(), self.view.clone());
        self.recovery = Some(tokio::spawn(async move { Ok(recovery::resume::resume(&env, record, &view).await) }));
    }

    fn on_recovery_done(&mut self, done: Result<Result<Outcome, RecoveryError>, tokio::task::JoinError>) {
        self.recovery = None;
        self.recovered_at = clock::now();
        let promoted = matches!(&done, Ok(Ok(o)) if o.status.promoted());
        if promoted {
            self.retry_at = None;
            self.retry_backoff = FIRST_RETRY_BACKOFF;
        } else {
            self.retry_at = Some(self.recovered_at.plus(self.retry_backoff.as_millis() as u64));
            self.retry_backoff = (self.retry_backoff * 2).min(MAX_RETRY_BACKOFF);
        }
        match done {
            Ok(Ok(o)) => {
                tracing::info!(cluster = %self.cfg.name, recovery = o.id, status = o.status.as_str(), "recovery {} ended: {}", o.id, o.summary)
            }
            Ok(Err(e)) => tracing::error!(cluster = %self.cfg.name, "recovery not started: {e}"),
            Err(e) => tracing::error!(cluster = %self.cfg.name, "recovery task failed: {e}"),
        }
        self.alerts.clear();
        self.block_read = None;
        self.reload_fenced();
        // Judge the new topology on fresh readings only.
        for p in self.probers.values() {
            p.wake();
        }
    }

    // ---- former primaries --------------------------------------------------------

    fn reload_fenced(&mut self) {
        self.fenced_read = Some(Instant::now());
        let list = match self.env.state.fenced(&self.cfg.name) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(cluster = %self.cfg.name, "cannot read the fence list: {e}");
                return;
            }
        };
        self.fenced = list.into_iter().filter_map(|f| Some((f.instance.parse().ok()?, f))).collect();
        let pending: Vec<InstanceKey> =
            self.fenced.iter().filter(|(_, f)| f.status == "pending").map(|(k, _)| k.clone()).collect();
        for key in pending {
            if self.fence_tasks.get(&key).is_none_or(|t| t.is_finished()) {
                tracing::info!(cluster = %self.cfg.name, instance = %key, "watching former primary: it is made read-only the moment it answers");
                let task = fence_watch::spawn(key.clone(), self.cfg.credentials.clone(), self.fence_tx.clone());
                self.fence_tasks.insert(key.clone(), task);
            }
            self.learn(key);
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
        let (status, detail) = match f.result {
            Err(e) => {
                tracing::error!(cluster = %self.cfg.name, instance = %f.instance, "fencing failed: {e}");
                // Try again on the next observation that finds it writable.
                return;
            }
            Ok(report) => {
                let primary = analyze(&self.view, &self.cfg.detection, clock::now()).primary;
                let primary_exec = primary
                    .as_ref()
                    .and_then(|p| self.view.get(p))
                    .and_then(|r| r.last_state())
                    .map(|s| s.gtid.executed.clone());
                let how = format!(
                    "made read-only in {} ms, {} client session(s) ended",
                    report.took.as_millis(),
                    report.sessions_ended
                );
                match (primary, primary_exec) {
                    (Some(p), Some(exec)) => {
                        let diverged = report.executed.subtract(&exec);
                        if diverged.is_empty() {
                            ("read_only", format!("{how}; all its GTIDs are on {p}: it can rejoin as a replica"))
                        } else {
                            ("quarantined", format!("{how}; diverged: {diverged} are not on {p}: rebuild it or reconcile by hand before it rejoins"))
                        }
                    }
                    _ => ("read_only", format!("{how}; no current primary known to compare with")),
                }
            }
        };
        tracing::warn!(cluster = %self.cfg.name, instance = %f.instance, "former primary {}: {status}: {detail}", f.instance);
        if let Err(e) = self.env.state.fence_update(&self.cfg.name, &f.instance.to_string(), status, &detail) {
            tracing::error!(cluster = %self.cfg.name, "cannot record the fence: {e}");
        }
        let _ = self.env.state.event(
            &self.cfg.name,
            clock::now().0 as i64,
            "warn",
            &format!("former primary {}: {status}: {detail}", f.instance),
        );
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
async fn wait(task: &mut Option<RecoveryTask>) -> Result<Result<Outcome, RecoveryError>, tokio::task::JoinError> {
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
