//! One task per cluster: folds observations into the view, analyzes, logs
//! state changes, publishes snapshots, and (when the analysis calls for it)
//! starts a recovery.

use super::prober::{self, ProberHandle, Schedule};
use crate::clock;
use crate::config::ClusterConfig;
use crate::render::{snapshot, ClusterSnapshot};
use pivot_core::view::Change;
use pivot_core::{analyze, ClusterAnalysis, ClusterView, Code, InstanceKey, Observation};
use pivot_server::referenced_instances;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// Observations waiting to be folded in; probers wait when it is full.
const OBSERVATION_QUEUE: usize = 1024;

pub struct Monitor {
    cfg: Arc<ClusterConfig>,
    view: ClusterView,
    probers: BTreeMap<InstanceKey, ProberHandle>,
    tx: mpsc::Sender<Observation>,
    rx: mpsc::Receiver<Observation>,
    limit: Arc<Semaphore>,
    published: watch::Sender<Arc<ClusterSnapshot>>,
    last_code: Option<Code>,
    fast: bool,
}

impl Monitor {
    pub fn new(cfg: Arc<ClusterConfig>, limit: Arc<Semaphore>) -> (Monitor, watch::Receiver<Arc<ClusterSnapshot>>) {
        let (tx, rx) = mpsc::channel(OBSERVATION_QUEUE);
        let view = ClusterView::new(cfg.seeds.iter().cloned());
        let first = snapshot(&cfg.name, &view, &analyze(&view, &cfg.detection, clock::now()));
        let (published, subscriber) = watch::channel(Arc::new(first));
        let monitor =
            Monitor { cfg, view, probers: BTreeMap::new(), tx, rx, limit, published, last_code: None, fast: false };
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

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(cluster = %self.cfg.name, seeds = ?self.cfg.seeds.iter().map(ToString::to_string).collect::<Vec<_>>(), "watching cluster");
        for seed in self.cfg.seeds.clone() {
            self.start_prober(seed);
        }
        loop {
            tokio::select! {
                Some(obs) = self.rx.recv() => self.on_observation(obs),
                _ = shutdown.changed() => break,
            }
        }
        tracing::info!(cluster = %self.cfg.name, "stopped watching cluster");
    }

    fn on_observation(&mut self, obs: Observation) {
        let referenced = obs.state().map(referenced_instances).unwrap_or_default();
        let observed = obs.instance.clone();
        for change in self.view.apply(obs, self.cfg.detection.lag_threshold_s) {
            log_change(&self.cfg.name, &change);
        }
        for key in referenced {
            if self.view.records.len() + self.view.pending.len() >= self.cfg.max_instances {
                tracing::warn!(cluster = %self.cfg.name, instance = %key, max = self.cfg.max_instances, "not watching: max_instances reached");
                continue;
            }
            if self.view.learn(key.clone()) {
                tracing::info!(cluster = %self.cfg.name, instance = %key, "discovered instance");
                self.start_prober(key);
            }
        }
        let analysis = analyze(&self.view, &self.cfg.detection, clock::now());
        self.log_analysis(&analysis);
        self.steer_probes(&analysis, &observed);
        self.published.send_replace(Arc::new(snapshot(&self.cfg.name, &self.view, &analysis)));
    }

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
