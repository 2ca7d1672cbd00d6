//! The one gate: whether to start an automatic recovery now, alert, or do
//! nothing. Automatic recovery, resume, fence enforcement and manual
//! failover all consult [`Gate::may_act`]: the slot for "this process may act
//! now" (always granted with one pivot node; an etcd lease with several).

use crate::analysis::{ClusterAnalysis, Code};
use crate::time::Millis;
use serde::{Deserialize, Serialize};

/// What the shell knows about recoveries of this cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gate {
    pub automatic: bool,
    /// A recovery of this cluster is running (here or in another process).
    pub running: bool,
    /// After a recovery, automatic recovery waits until then unless acknowledged.
    pub blocked_until: Option<Millis>,
    /// The id of the recovery that set the block.
    pub blocked_by: Option<i64>,
    /// Every instance was observed after the last recovery ended.
    pub fresh: bool,
    /// After an aborted automatic attempt, the next one waits until then.
    pub retry_at: Option<Millis>,
    /// This process may act now (holds the lease).
    pub may_act: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Nothing,
    Recover,
    /// Something an operator must know now.
    Alert {
        reason: String,
    },
}

pub fn decide(a: &ClusterAnalysis, gate: &Gate, now: Millis) -> Decision {
    let primary = a.primary.as_ref().map_or("the primary".to_string(), ToString::to_string);
    if a.code == Code::DeadPrimaryWithoutReplicas {
        return Decision::Alert {
            reason: format!(
                "{primary} and all of its replicas are unreachable: nothing can be promoted ({})",
                a.signal
            ),
        };
    }
    if a.code == Code::SplitBrain {
        return Decision::Alert { reason: format!("split brain: {}", a.signal) };
    }
    if !a.code.failover_worthy() {
        // Everything else an operator must know: no primary, a read-only
        // primary, a stuck semi-sync primary, replicas that do not replicate,
        // a primary pivot cannot reach while its replicas can.
        return if a.code.alerting() && gate.may_act {
            Decision::Alert { reason: format!("{}: {}", a.code, a.signal) }
        } else {
            Decision::Nothing
        };
    }
    if gate.running || !gate.fresh || !gate.may_act {
        return Decision::Nothing;
    }
    if !gate.automatic {
        return Decision::Alert {
            reason: format!("{primary} is dead and automatic failover is off: run `pivot failover` ({})", a.signal),
        };
    }
    if let Some(until) = gate.blocked_until.filter(|u| *u > now) {
        let by = gate.blocked_by.map(|id| format!(" by recovery {id}")).unwrap_or_default();
        return Decision::Alert {
            reason: format!(
                "{primary} is dead but automatic failover is blocked{by} for {} s more (anti-flapping): \
                 run `pivot failover` to fail over now, or `pivot ack` to allow automatic recovery ({})",
                until.since(now) / 1000,
                a.signal
            ),
        };
    }
    if let Some(at) = gate.retry_at.filter(|t| *t > now) {
        return Decision::Alert {
            reason: format!(
                "{primary} is dead and the last automatic failover attempt was aborted (see `pivot history`): \
                 next attempt in {} s, or run `pivot failover` ({})",
                at.since(now).div_ceil(1000),
                a.signal
            ),
        };
    }
    Decision::Recover
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::ClusterAnalysis;
    use crate::fixture::key;
    use crate::topology::Topology;

    fn analysis(code: Code) -> ClusterAnalysis {
        ClusterAnalysis {
            at: Millis(0),
            code,
            primary: Some(key("10.0.0.1:3306")),
            signal: "signal".into(),
            problems: vec![],
            opinions: vec![],
            topology: Topology::default(),
        }
    }

    fn open() -> Gate {
        Gate {
            automatic: true,
            running: false,
            blocked_until: None,
            blocked_by: None,
            fresh: true,
            retry_at: None,
            may_act: true,
        }
    }

    #[test]
    fn decision_table() {
        let now = Millis(10_000);
        let cases: Vec<(&str, Code, Gate, &str)> = vec![
            ("dead primary, nothing in the way", Code::DeadPrimary, open(), "recover"),
            ("dead primary and some replicas", Code::DeadPrimaryAndSomeReplicas, open(), "recover"),
            ("healthy", Code::Healthy, open(), "nothing"),
            ("unconfirmed", Code::PrimaryUnreachableUnconfirmed, open(), "nothing"),
            (
                "replicas still replicating",
                Code::PrimaryUnreachableReplicasReplicating,
                open(),
                "primary_unreachable_replicas_replicating: signal",
            ),
            ("no primary", Code::NoPrimary, open(), "no_primary: signal"),
            ("read-only primary", Code::NoWritablePrimary, open(), "no_writable_primary: signal"),
            ("stuck semi-sync primary", Code::SemiSyncPrimaryStuck, open(), "semi_sync_primary_stuck: signal"),
            ("replicas not replicating", Code::AllReplicasNotReplicating, open(), "all_replicas_not_replicating"),
            ("probe error", Code::PrimaryProbeError, open(), "primary_probe_error: signal"),
            ("incomplete view", Code::Incomplete, open(), "nothing"),
            ("all replicas down too", Code::DeadPrimaryWithoutReplicas, open(), "nothing can be promoted"),
            ("split brain", Code::SplitBrain, open(), "split brain"),
            ("already running", Code::DeadPrimary, Gate { running: true, ..open() }, "nothing"),
            ("stale view after a recovery", Code::DeadPrimary, Gate { fresh: false, ..open() }, "nothing"),
            ("another process may act", Code::DeadPrimary, Gate { may_act: false, ..open() }, "nothing"),
            ("automatic off", Code::DeadPrimary, Gate { automatic: false, ..open() }, "automatic failover is off"),
            (
                "blocked",
                Code::DeadPrimary,
                Gate { blocked_until: Some(Millis(70_000)), blocked_by: Some(7), ..open() },
                "blocked by recovery 7 for 60 s more",
            ),
            ("block over", Code::DeadPrimary, Gate { blocked_until: Some(Millis(10_000)), ..open() }, "recover"),
            (
                "backing off after an aborted attempt",
                Code::DeadPrimary,
                Gate { retry_at: Some(Millis(15_000)), ..open() },
                "last automatic failover attempt was aborted (see `pivot history`): next attempt in 5 s",
            ),
            ("backoff over", Code::DeadPrimary, Gate { retry_at: Some(Millis(9_000)), ..open() }, "recover"),
            ("backoff ends now", Code::DeadPrimary, Gate { retry_at: Some(Millis(10_000)), ..open() }, "recover"),
        ];
        for (name, code, gate, want) in cases {
            match (decide(&analysis(code), &gate, now), want) {
                (Decision::Nothing, "nothing") | (Decision::Recover, "recover") => {}
                (Decision::Alert { reason }, w) if w != "nothing" && w != "recover" => {
                    assert!(reason.contains(w), "{name}: got {reason:?}, want {w:?}")
                }
                (got, w) => panic!("{name}: got {got:?}, want {w:?}"),
            }
        }
    }
}
