//! A cluster as shown to people and programs: `pivot status --json` and
//! `GET /api/clusters` serve exactly this.

use pivot_core::analysis::{Problem, ReplicaOpinion};
use pivot_core::heartbeat::{Lag, NoHeartbeatLag};
use pivot_core::observation::{InstanceState, ProbeFailure};
use pivot_core::{ClusterAnalysis, ClusterView, Code, InstanceKey, Millis};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct ClusterSnapshot {
    pub cluster: String,
    /// When the analysis was made (unix ms).
    pub at: Millis,
    pub code: Code,
    /// Whether operators must look now.
    pub alerting: bool,
    pub primary: Option<InstanceKey>,
    /// What decided `code`, in words.
    pub signal: String,
    pub instances: Vec<InstanceSnapshot>,
    pub problems: Vec<Problem>,
    /// Replicas' answers while the primary does not answer.
    pub opinions: Vec<Opinion>,
    /// Recovery state (anti-flapping block, running recovery), filled by the daemon.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryState>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Opinion {
    pub replica: InstanceKey,
    #[serde(flatten)]
    pub opinion: ReplicaOpinion,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RecoveryState {
    /// Automatic recovery is blocked until then (unix ms), unless acknowledged.
    pub blocked_until: Option<i64>,
    pub running_recovery: Option<i64>,
    pub automatic: bool,
    /// Former primaries pivot keeps read-only.
    pub fenced: Vec<FormerPrimary>,
    /// `max_instances` was reached: some instances are not watched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovery_limit: Option<String>,
    /// Something keeps pivot from acting safely on this cluster (state file
    /// unwritable or replaced, a recovery task that failed): operators must look.
    pub control_problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FormerPrimary {
    pub instance: InstanceKey,
    /// `pending` (not reached since the failover), `read_only`, `quarantined`.
    pub status: String,
    pub detail: String,
}

impl ClusterSnapshot {
    /// Attach the recovery state, marking former primaries' rows as such.
    pub fn with_recovery(mut self, recovery: RecoveryState) -> ClusterSnapshot {
        for inst in &mut self.instances {
            if inst.role != Role::Primary
                && inst.role != Role::Replica
                && recovery.fenced.iter().any(|f| f.instance == inst.instance)
            {
                inst.role = Role::FormerPrimary;
            }
        }
        self.recovery = Some(recovery);
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Primary,
    Replica,
    /// Replicates from nobody and has no replicas.
    Detached,
    /// A primary pivot failed over, kept read-only.
    FormerPrimary,
    /// Known but never answered.
    Unknown,
}

#[derive(Clone, Debug, Serialize)]
pub struct InstanceSnapshot {
    pub instance: InstanceKey,
    pub role: Role,
    /// Depth in the replication tree (0 for the primary).
    pub depth: usize,
    pub source: Option<InstanceKey>,
    pub reachable: bool,
    pub failure: Option<ProbeFailure>,
    pub observed_at: Option<Millis>,
    pub probe_latency_ms: Option<f64>,
    pub consecutive_failures: u32,
    /// The current state if reachable, else the last state seen (`state_is_last_known`).
    pub state: Option<InstanceState>,
    pub state_is_last_known: bool,
    /// A replica's lag both ways (absent for the primary and the unreachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<LagSnapshot>,
    pub problems: Vec<String>,
}

/// A replica's lag as the server reports it and as the heartbeat measures it.
#[derive(Clone, Debug, Serialize)]
pub struct LagSnapshot {
    /// `Seconds_Behind_Master` (`Seconds_Behind_Source`); NULL while a thread is stopped.
    pub seconds_behind_master: Option<u64>,
    /// The heartbeat's lag in seconds (millisecond resolution), against the
    /// primary's clock (`[cluster.heartbeat]`).
    pub heartbeat_lag: Option<f64>,
    /// Why there is no heartbeat lag (when the replica was read with the heartbeat).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_absent: Option<NoHeartbeatLag>,
    /// The one pivot acts on (lagging problem, read routes): the heartbeat's when measured.
    pub effective_s: Option<u64>,
}

impl LagSnapshot {
    fn of(lag: Lag) -> LagSnapshot {
        LagSnapshot {
            seconds_behind_master: lag.server_s,
            heartbeat_lag: lag.heartbeat_ms.as_ref().ok().map(|ms| *ms as f64 / 1000.0),
            effective_s: lag.seconds(),
            // Not said where the heartbeat is off (the replica was not read with it).
            heartbeat_absent: lag.heartbeat_ms.err().filter(|w| *w != NoHeartbeatLag::NoReplicaReading),
        }
    }
}

pub fn snapshot(cluster: &str, view: &ClusterView, analysis: &ClusterAnalysis) -> ClusterSnapshot {
    let topo = &analysis.topology;
    let mut order: Vec<(usize, InstanceKey)> = topo.tree();
    let mut rest: Vec<InstanceKey> = view.keys().filter(|k| !order.iter().any(|(_, o)| o == *k)).cloned().collect();
    rest.sort();
    order.extend(rest.into_iter().map(|k| (0, k)));
    let instances = order
        .into_iter()
        .map(|(depth, key)| {
            let rec = view.get(&key);
            let state = rec.and_then(|r| r.last_state()).cloned();
            let role = if topo.primary.as_ref() == Some(&key) {
                Role::Primary
            } else if topo.source_of.contains_key(&key) {
                Role::Replica
            } else if state.is_some() {
                Role::Detached
            } else {
                Role::Unknown
            };
            InstanceSnapshot {
                source: topo.source_of.get(&key).cloned(),
                reachable: rec.is_some_and(|r| r.reachable()),
                failure: rec.and_then(|r| r.latest.failure().cloned()),
                observed_at: rec.map(|r| Millis(crate::clock::wall_of(r.latest.at).max(0) as u64)),
                probe_latency_ms: rec.map(|r| r.latest.latency_us as f64 / 1000.0),
                consecutive_failures: rec.map_or(0, |r| r.consecutive_failures),
                state_is_last_known: rec.is_some_and(|r| !r.reachable()) && state.is_some(),
                lag: pivot_core::heartbeat::lag_of(view, topo.primary.as_ref(), &key).map(LagSnapshot::of),
                state,
                problems: analysis.problems_of(&key).map(|p| p.text.clone()).collect(),
                instance: key,
                role,
                depth,
            }
        })
        .collect();
    ClusterSnapshot {
        cluster: cluster.to_string(),
        at: Millis(crate::clock::wall_of(analysis.at).max(0) as u64),
        code: analysis.code,
        alerting: analysis.code.alerting(),
        primary: analysis.primary.clone(),
        signal: analysis.signal.clone(),
        instances,
        problems: analysis.problems.clone(),
        opinions: analysis.opinions.iter().map(|(k, o)| Opinion { replica: k.clone(), opinion: o.clone() }).collect(),
        recovery: None,
    }
}
