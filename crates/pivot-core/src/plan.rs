//! The ordered steps of a failover, decided here and executed by the shell.
//!
//! A failover runs in two parts. First the replicas of the failed primary are
//! frozen ([`freeze_step`]: IO threads stopped, so what they received stops
//! moving) and observed again. Then [`failover_plan`] turns the candidate
//! choice into steps:
//!
//! 1. hooks that may veto: pre-failover, MHA `--command=stop`, fence (STONITH);
//! 2. the candidate applies its relay log (and catches up from the most
//!    advanced replica if it received less), so every write a surviving replica
//!    acknowledged is on it before it opens for writes;
//! 3. the old primary is registered for fencing (durably, before anything
//!    becomes writable), the candidate is promoted;
//! 4. MHA `--command=start`, replicas repointed and confirmed, the old primary
//!    fenced if reachable, the post-failover hook.
//!
//! Every step before the promotion aborts the failover on failure and the
//! cluster is left as it was; after it, failures are recorded and reported.

use crate::candidate::Choice;
use crate::gtid::GtidSet;
use crate::instance::InstanceKey;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPoint {
    PreFailover,
    /// MHA `master_ip_failover_script --command=stop`.
    MhaStop,
    /// STONITH: exit 0 means the old primary is fenced.
    Fence,
    /// MHA `master_ip_failover_script --command=start`.
    MhaStart,
    PostFailover,
    PostUnsuccessfulFailover,
    /// Not part of a plan: called with every alert.
    Alert,
}

impl HookPoint {
    pub fn as_str(self) -> &'static str {
        match self {
            HookPoint::PreFailover => "pre_failover",
            HookPoint::MhaStop => "mha_stop",
            HookPoint::Fence => "fence",
            HookPoint::MhaStart => "mha_start",
            HookPoint::PostFailover => "post_failover",
            HookPoint::PostUnsuccessfulFailover => "post_unsuccessful_failover",
            HookPoint::Alert => "alert",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    StopReplicaIo {
        instances: Vec<InstanceKey>,
    },
    Hook {
        point: HookPoint,
    },
    WaitRelayApplied {
        instance: InstanceKey,
    },
    CatchUp {
        instance: InstanceKey,
        from: InstanceKey,
        until: GtidSet,
    },
    RegisterFence {
        instance: InstanceKey,
    },
    /// Stop the candidate's replication and switch its semi-sync primary side
    /// on while it is still read-only, so replicas can attach before writes open.
    PrepareCandidate {
        instance: InstanceKey,
    },
    Promote {
        instance: InstanceKey,
        semi_sync: bool,
    },
    Repoint {
        instances: Vec<InstanceKey>,
        to: InstanceKey,
    },
    ConfirmReplicating {
        instances: Vec<InstanceKey>,
        source: InstanceKey,
    },
    FenceOldPrimary {
        instance: InstanceKey,
    },
}

impl Step {
    pub fn name(&self) -> String {
        match self {
            Step::StopReplicaIo { .. } => "stop_replica_io".into(),
            Step::Hook { point } => format!("hook_{}", point.as_str()),
            Step::WaitRelayApplied { .. } => "wait_relay_applied".into(),
            Step::CatchUp { .. } => "catch_up".into(),
            Step::RegisterFence { .. } => "register_fence".into(),
            Step::PrepareCandidate { .. } => "prepare_candidate".into(),
            Step::Promote { .. } => "promote".into(),
            Step::Repoint { .. } => "repoint".into(),
            Step::ConfirmReplicating { .. } => "confirm_replicating".into(),
            Step::FenceOldPrimary { .. } => "fence_old_primary".into(),
        }
    }

    /// The step in words, for the audit log.
    pub fn detail(&self) -> String {
        let list = |v: &[InstanceKey]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match self {
            Step::StopReplicaIo { instances } => format!("stop the IO thread of {}", list(instances)),
            Step::Hook { point } => format!("run the {} hook", point.as_str()),
            Step::WaitRelayApplied { instance } => format!("wait until {instance} applied its relay log"),
            Step::CatchUp { instance, from, until } => {
                format!("{instance} replicates from {from} until it has {until}")
            }
            Step::RegisterFence { instance } => format!("record {instance} as a former primary to keep read-only"),
            Step::PrepareCandidate { instance } => {
                format!("stop replication on {instance} and switch its semi-sync primary side on, still read-only")
            }
            Step::Promote { instance, semi_sync } => format!(
                "promote {instance}: stop and reset replication{}, make it writable",
                if *semi_sync { ", semi-sync primary side on" } else { "" }
            ),
            Step::Repoint { instances, to } => format!("repoint {} to {to}", list(instances)),
            Step::ConfirmReplicating { instances, source } => {
                format!("confirm {} replicate from {source}", list(instances))
            }
            Step::FenceOldPrimary { instance } => {
                format!("make {instance} read-only and end its sessions if reachable")
            }
        }
    }

    /// Whether a failure of this step, coming before the promotion, aborts.
    pub fn vetoes(&self) -> bool {
        !matches!(
            self,
            Step::Hook {
                point: HookPoint::MhaStart
                    | HookPoint::PostFailover
                    | HookPoint::PostUnsuccessfulFailover
                    | HookPoint::Alert
            } | Step::Repoint { .. }
                | Step::ConfirmReplicating { .. }
                | Step::FenceOldPrimary { .. }
        )
    }
}

/// Which hooks are configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookSet {
    pub pre_failover: bool,
    pub fence: bool,
    pub mha: bool,
    pub post_failover: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverPlan {
    pub failed_primary: InstanceKey,
    pub candidate: InstanceKey,
    pub choice: Choice,
    pub steps: Vec<Step>,
}

impl FailoverPlan {
    /// Index of the promotion step.
    pub fn promote_index(&self) -> usize {
        self.steps.iter().position(|s| matches!(s, Step::Promote { .. })).expect("every plan promotes")
    }
}

/// Freeze what the replicas received before choosing among them.
pub fn freeze_step(replicas: Vec<InstanceKey>) -> Step {
    Step::StopReplicaIo { instances: replicas }
}

pub fn failover_plan(failed_primary: &InstanceKey, choice: Choice, semi_sync: bool, hooks: HookSet) -> FailoverPlan {
    let candidate = choice.candidate.clone();
    let mut steps = Vec::new();
    if hooks.pre_failover {
        steps.push(Step::Hook { point: HookPoint::PreFailover });
    }
    if hooks.mha {
        steps.push(Step::Hook { point: HookPoint::MhaStop });
    }
    if hooks.fence {
        steps.push(Step::Hook { point: HookPoint::Fence });
    }
    if let Some(from) = &choice.catch_up_from {
        steps.push(Step::WaitRelayApplied { instance: from.clone() });
    }
    steps.push(Step::WaitRelayApplied { instance: candidate.clone() });
    if let Some(from) = &choice.catch_up_from {
        steps.push(Step::CatchUp { instance: candidate.clone(), from: from.clone(), until: choice.target.clone() });
    }
    steps.push(Step::RegisterFence { instance: failed_primary.clone() });
    let followers = !choice.followers.is_empty();
    let repoint = Step::Repoint { instances: choice.followers.clone(), to: candidate.clone() };
    // With semi-sync a write on the new primary waits for a replica: attach
    // the replicas first, so the first write is acknowledged at once. Without
    // it, open for writes first.
    if semi_sync && followers {
        steps.push(Step::PrepareCandidate { instance: candidate.clone() });
        steps.push(repoint.clone());
    }
    steps.push(Step::Promote { instance: candidate.clone(), semi_sync });
    if hooks.mha {
        steps.push(Step::Hook { point: HookPoint::MhaStart });
    }
    if followers {
        if !semi_sync {
            steps.push(repoint);
        }
        steps.push(Step::ConfirmReplicating { instances: choice.followers.clone(), source: candidate.clone() });
    }
    steps.push(Step::FenceOldPrimary { instance: failed_primary.clone() });
    if hooks.post_failover {
        steps.push(Step::Hook { point: HookPoint::PostFailover });
    }
    FailoverPlan { failed_primary: failed_primary.clone(), candidate, choice, steps }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{key, maria};

    fn choice(catch_up: bool, followers: &[&str]) -> Choice {
        Choice {
            candidate: key("10.0.0.2:3306"),
            catch_up_from: catch_up.then(|| key("10.0.0.3:3306")),
            target: maria("0-1-105"),
            followers: followers.iter().map(|f| key(f)).collect(),
            lost: vec![],
            report: vec![],
            overridden: vec![],
        }
    }

    fn names(p: &FailoverPlan) -> Vec<String> {
        p.steps.iter().map(Step::name).collect()
    }

    #[test]
    fn plain_plan_applies_relay_log_fences_durably_then_promotes_then_repoints() {
        let p = failover_plan(&key("10.0.0.1:3306"), choice(false, &["10.0.0.3:3306"]), false, HookSet::default());
        assert_eq!(
            names(&p),
            ["wait_relay_applied", "register_fence", "promote", "repoint", "confirm_replicating", "fence_old_primary"]
        );
        assert_eq!(p.steps[2], Step::Promote { instance: key("10.0.0.2:3306"), semi_sync: false });
        assert_eq!(p.promote_index(), 2);
    }

    #[test]
    fn with_semi_sync_replicas_attach_before_writes_open() {
        let p = failover_plan(&key("10.0.0.1:3306"), choice(false, &["10.0.0.3:3306"]), true, HookSet::default());
        assert_eq!(
            names(&p),
            [
                "wait_relay_applied",
                "register_fence",
                "prepare_candidate",
                "repoint",
                "promote",
                "confirm_replicating",
                "fence_old_primary"
            ]
        );
        assert!(!p.steps[3].vetoes(), "a replica that cannot be repointed is lost, not a reason to abort");
        let alone = failover_plan(&key("10.0.0.1:3306"), choice(false, &[]), true, HookSet::default());
        assert_eq!(names(&alone), ["wait_relay_applied", "register_fence", "promote", "fence_old_primary"]);
    }

    #[test]
    fn catch_up_waits_for_the_source_first_and_hooks_sit_where_mha_puts_them() {
        let hooks = HookSet { pre_failover: true, fence: true, mha: true, post_failover: true };
        let p = failover_plan(&key("10.0.0.1:3306"), choice(true, &[]), false, hooks);
        assert_eq!(
            names(&p),
            [
                "hook_pre_failover",
                "hook_mha_stop",
                "hook_fence",
                "wait_relay_applied",
                "wait_relay_applied",
                "catch_up",
                "register_fence",
                "promote",
                "hook_mha_start",
                "fence_old_primary",
                "hook_post_failover"
            ]
        );
        assert_eq!(p.steps[3], Step::WaitRelayApplied { instance: key("10.0.0.3:3306") }, "the source applies first");
        assert!(p.steps[..p.promote_index()].iter().all(Step::vetoes), "everything before promotion can abort");
        assert!(!p.steps[p.promote_index() + 1..].iter().any(Step::vetoes), "nothing after it does");
    }

    #[test]
    fn plans_round_trip_through_json_for_the_audit_log() {
        let p = failover_plan(&key("10.0.0.1:3306"), choice(true, &["10.0.0.4:3306"]), true, HookSet::default());
        let back: FailoverPlan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
    }
}
