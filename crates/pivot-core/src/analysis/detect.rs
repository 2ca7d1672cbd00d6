//! The cluster-level verdict: is there one healthy writable primary, and if the
//! primary does not answer, do its replicas confirm that it is dead?

use super::{problems, ClusterAnalysis, Code, DetectionSettings, ReplicaOpinion};
use crate::instance::InstanceKey;
use crate::observation::IoThread;
use crate::time::Millis;
use crate::topology::Topology;
use crate::view::{ClusterView, InstanceRecord};

/// Analyze a cluster at time `now`.
pub fn analyze(view: &ClusterView, settings: &DetectionSettings, now: Millis) -> ClusterAnalysis {
    let topology = Topology::derive(view);
    let problems = problems::collect(view, &topology, settings);
    let mut out = ClusterAnalysis {
        at: now,
        code: Code::Healthy,
        primary: topology.primary.clone(),
        signal: String::new(),
        problems,
        opinions: Vec::new(),
        topology,
    };
    let (code, signal) = verdict(view, settings, &mut out);
    out.code = code;
    out.signal = signal;
    out
}

fn verdict(view: &ClusterView, settings: &DetectionSettings, out: &mut ClusterAnalysis) -> (Code, String) {
    if !view.complete() {
        let waiting: Vec<String> = view.pending.iter().map(ToString::to_string).collect();
        return (Code::Incomplete, format!("waiting for the first probe of {}", waiting.join(", ")));
    }
    let writers: Vec<&InstanceKey> =
        view.records.iter().filter(|(_, r)| r.current_state().is_some_and(|s| s.writable())).map(|(k, _)| k).collect();
    let Some(primary) = out.topology.primary.clone() else {
        if writers.len() > 1 {
            return (Code::SplitBrain, format!("several instances are writable: {}", join(&writers)));
        }
        return (Code::NoPrimary, out.topology.reasoning.clone());
    };
    let Some(rec) = view.get(&primary) else {
        return (Code::Incomplete, format!("primary {primary} is known from its replicas but not probed yet"));
    };
    match rec.current_state() {
        Some(state) => {
            if writers.len() > 1 {
                return (Code::SplitBrain, format!("several instances are writable: {}", join(&writers)));
            }
            if !state.writable() {
                return (Code::NoWritablePrimary, format!("primary {primary} is read-only"));
            }
            let ss = &state.semi_sync;
            if ss.primary_enabled && ss.primary_waiting_sessions > 0 && ss.primary_clients == 0 {
                return (
                    Code::SemiSyncPrimaryStuck,
                    format!(
                        "{} session(s) on {primary} wait for a semi-sync acknowledgement and no semi-sync replica is connected",
                        ss.primary_waiting_sessions
                    ),
                );
            }
            let replicas = out.topology.replicas(&primary);
            let replicating = |k: &InstanceKey| {
                view.get(k)
                    .and_then(InstanceRecord::current_state)
                    .and_then(|s| s.replication.as_ref())
                    .is_some_and(|r| r.replicating())
            };
            if !replicas.is_empty() && !replicas.iter().any(replicating) {
                return (
                    Code::AllReplicasNotReplicating,
                    format!("none of the {} replicas of {primary} replicates", replicas.len()),
                );
            }
            match &out.topology.ring {
                Some(ring) => (
                    Code::Healthy,
                    format!(
                        "{primary} is writable and answers; active of a dual-primary pair, passive {} read-only",
                        ring.passive
                    ),
                ),
                None => (Code::Healthy, format!("{primary} is writable and answers")),
            }
        }
        None => unreachable_primary(view, settings, &primary, rec, out),
    }
}

fn unreachable_primary(
    view: &ClusterView,
    settings: &DetectionSettings,
    primary: &InstanceKey,
    rec: &InstanceRecord,
    out: &mut ClusterAnalysis,
) -> (Code, String) {
    let failure = rec.latest.failure().expect("an unreachable record holds a failure");
    if !failure.kind.is_health_signal() {
        return (
            Code::PrimaryProbeError,
            format!("primary {primary} answers but pivot's probe fails: {}", failure.message),
        );
    }
    if rec.consecutive_failures < settings.unreachable_after {
        return (
            Code::PrimaryUnreachableUnconfirmed,
            format!("{} of {} probes of {primary} failed", rec.consecutive_failures, settings.unreachable_after),
        );
    }
    let since = rec.failing_since.expect("a failing record knows since when");
    let replicas = out.topology.replicas(primary).to_vec();
    out.opinions = replicas.iter().map(|r| (r.clone(), opinion(view, settings, primary, r, since))).collect();
    let unreachable = out.opinions.iter().filter(|(_, o)| *o == ReplicaOpinion::Unreachable).count();
    if replicas.is_empty() || unreachable == replicas.len() {
        return (
            Code::DeadPrimaryWithoutReplicas,
            format!("pivot cannot reach {primary} ({}) nor any replica of it", failure.message),
        );
    }
    if let Some((r, ReplicaOpinion::StillReceiving { silent_ms, .. })) =
        out.opinions.iter().find(|(_, o)| matches!(o, ReplicaOpinion::StillReceiving { .. }))
    {
        return (
            Code::PrimaryUnreachableReplicasReplicating,
            format!(
                "pivot cannot reach {primary}, but replica {r} received from it {silent_ms} ms before its last probe"
            ),
        );
    }
    let undecided: Vec<String> = out
        .opinions
        .iter()
        .filter(|(_, o)| !o.confirms() && *o != ReplicaOpinion::Unreachable)
        .map(|(k, o)| format!("{k} ({})", describe(o)))
        .collect();
    if !undecided.is_empty() {
        return (
            Code::PrimaryUnreachableUnconfirmed,
            format!("pivot cannot reach {primary}; waiting for {}", undecided.join(", ")),
        );
    }
    let reasons: Vec<String> =
        out.opinions.iter().filter(|(_, o)| o.confirms()).map(|(k, o)| format!("{k} {}", describe(o))).collect();
    let code = if unreachable > 0 { Code::DeadPrimaryAndSomeReplicas } else { Code::DeadPrimary };
    let mut signal = format!("pivot cannot reach {primary} ({}); confirmed by {}", failure.message, reasons.join(", "));
    if unreachable > 0 {
        signal.push_str(&format!("; {unreachable} replica(s) unreachable too"));
    }
    (code, signal)
}

fn opinion(
    view: &ClusterView,
    settings: &DetectionSettings,
    primary: &InstanceKey,
    replica: &InstanceKey,
    since: Millis,
) -> ReplicaOpinion {
    let Some(rec) = view.get(replica) else {
        return ReplicaOpinion::Stale;
    };
    let Some(state) = rec.current_state() else {
        return ReplicaOpinion::Unreachable;
    };
    // Only a reading taken after the primary started failing can confirm.
    if rec.latest.at < since {
        return ReplicaOpinion::Stale;
    }
    let Some(repl) = state.replication.as_ref().filter(|r| &r.source == primary) else {
        // The topology put it under the primary from this very state; unreachable in practice.
        return ReplicaOpinion::Stale;
    };
    match (repl.io_thread, &repl.io_error) {
        (IoThread::Running, _) => {}
        // Stopped on purpose, not because the source went away: says nothing.
        (IoThread::Stopped, None) => return ReplicaOpinion::IoStopped,
        (io, _) => return ReplicaOpinion::IoNotConnected { io_thread: format!("{io:?}").to_lowercase() },
    }
    let Some(period) = repl.heartbeat_period_ms.filter(|p| *p > 0) else {
        return ReplicaOpinion::NoHeartbeat;
    };
    let needed_ms = settings.confirm_window_ms.max(period.saturating_mul(2));
    let changed_at = rec.progress.as_ref().map_or(rec.latest.at, |p| p.changed_at);
    let silent_ms = rec.latest.at.since(changed_at);
    if silent_ms >= needed_ms {
        ReplicaOpinion::Silent { silent_ms }
    } else {
        ReplicaOpinion::StillReceiving { silent_ms, needed_ms }
    }
}

fn describe(o: &ReplicaOpinion) -> String {
    match o {
        ReplicaOpinion::IoNotConnected { io_thread } => format!("IO thread {io_thread}"),
        ReplicaOpinion::Silent { silent_ms } => format!("received nothing for {silent_ms} ms"),
        ReplicaOpinion::StillReceiving { silent_ms, needed_ms } => {
            format!("received something {silent_ms} ms ago, needs {needed_ms} ms of silence")
        }
        ReplicaOpinion::IoStopped => "IO thread stopped without error, no opinion".to_string(),
        ReplicaOpinion::Stale => "not probed since the primary started failing".to_string(),
        ReplicaOpinion::NoHeartbeat => "IO thread connected and heartbeats off, cannot judge silence".to_string(),
        ReplicaOpinion::Unreachable => "unreachable".to_string(),
    }
}

fn join(keys: &[&InstanceKey]) -> String {
    keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}
