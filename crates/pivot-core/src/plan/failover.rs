//! The steps of a failover.

use super::doc::{PlanDoc, PlanKind};
use super::step::{HookPoint, Step};
use crate::candidate::Choice;
use crate::instance::InstanceKey;
use crate::routes::RouteSpec;
use serde::{Deserialize, Serialize};

/// Which hooks are configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookSet {
    pub pre_failover: bool,
    pub fence: bool,
    pub mha: bool,
    pub post_failover: bool,
    pub post_unsuccessful_failover: bool,
    pub pre_switchover: bool,
    pub post_switchover: bool,
}

/// The first steps of a failover of `failed`: fence it first if it still
/// answers (only a forced failover gets there), freeze its reachable
/// replicas, observe them again.
pub fn failover_prelude(
    failed: &InstanceKey,
    replicas: &[InstanceKey],
    reachable: &[InstanceKey],
    fence_live: bool,
    force: bool,
) -> PlanDoc {
    let mut doc = PlanDoc::new(PlanKind::Failover, failed.clone(), force);
    if fence_live {
        doc.push(Step::FenceLivePrimary { instance: failed.clone() }, vec![Step::Unfence { instance: failed.clone() }]);
    }
    doc.push(Step::StopReplicaIo { instances: reachable.to_vec() }, vec![restore(failed, reachable.to_vec(), None)]);
    doc.push(Step::Observe { instances: replicas.to_vec(), primary: failed.clone() }, vec![]);
    doc
}

fn restore(failed: &InstanceKey, replicas: Vec<InstanceKey>, candidate: Option<InstanceKey>) -> Step {
    Step::RestoreReplication { replicas, source: failed.clone(), candidate }
}

/// Append the steps that follow the choice:
///
/// 1. hooks that may veto: pre-failover, MHA `--command=stop`, fence (STONITH);
/// 2. the candidate applies its relay log (and catches up from the most
///    advanced replica if it received less), so every write a surviving
///    replica acknowledged is on it before it opens for writes;
/// 3. the old primary is registered for fencing, then (unless it was fenced
///    first) made sure to still not answer, and the candidate is promoted
///    (with semi-sync, replicas attach first so the first write is
///    acknowledged at once);
/// 4. the new epoch stored and every route updated from it;
/// 5. MHA `--command=start`, replicas repointed and confirmed, the old
///    primary fenced if reachable, the post-failover hook.
pub fn extend_failover(doc: &mut PlanDoc, choice: Choice, semi_sync: bool, hooks: HookSet) {
    extend_failover_fenced(doc, choice, semi_sync, hooks, &[], false)
}

/// As [`extend_failover`], with `routes` to update right after the promotion
/// (its epoch stored first); `candidate_fenced`: the candidate is on the
/// fence list (a former primary that rejoined) and leaves it before it is
/// promoted.
pub fn extend_failover_fenced(
    doc: &mut PlanDoc,
    choice: Choice,
    semi_sync: bool,
    hooks: HookSet,
    routes: &[RouteSpec],
    candidate_fenced: bool,
) {
    // Semi-sync with nobody to acknowledge would make every write wait.
    let semi_sync = semi_sync && !choice.followers.is_empty();
    let failed = doc.failed_primary.clone();
    let candidate = choice.candidate.clone();
    if hooks.pre_failover {
        doc.push(Step::Hook { point: HookPoint::PreFailover }, vec![]);
    }
    if hooks.mha {
        doc.push(Step::Hook { point: HookPoint::MhaStop }, vec![]);
    }
    if hooks.fence {
        doc.push(Step::Hook { point: HookPoint::Fence }, vec![]);
    }
    if let Some(from) = &choice.catch_up_from {
        doc.push(Step::WaitRelayApplied { instance: from.clone() }, vec![]);
    }
    doc.push(Step::WaitRelayApplied { instance: candidate.clone() }, vec![]);
    if let Some(from) = &choice.catch_up_from {
        doc.push(
            Step::CatchUp { instance: candidate.clone(), from: from.clone(), until: choice.target.clone() },
            vec![restore(&failed, vec![candidate.clone()], None)],
        );
    }
    doc.push(
        Step::RegisterFence { instance: failed.clone(), live: false },
        vec![Step::UnregisterFence { instance: failed.clone() }],
    );
    let followers = choice.followers.clone();
    let repoint = Step::Repoint { instances: followers.clone(), to: candidate.clone() };
    let repoint_undo = vec![restore(&failed, followers.clone(), None)];
    // With semi-sync a write on the new primary waits for a replica: attach
    // the replicas first, so the first write is acknowledged at once.
    // Without it, open for writes first.
    let attach_first = semi_sync && !followers.is_empty();
    if attach_first {
        doc.push(
            Step::PrepareCandidate { instance: candidate.clone() },
            vec![restore(&failed, vec![candidate.clone()], Some(candidate.clone()))],
        );
        doc.push(repoint.clone(), repoint_undo);
    }
    if candidate_fenced {
        doc.push(Step::ClearFence { instance: candidate.clone() }, vec![]);
    }
    if !doc.steps.iter().any(|s| matches!(s.step, Step::FenceLivePrimary { .. })) {
        doc.push(Step::ConfirmPrimaryGone { instance: failed.clone() }, vec![]);
    }
    doc.push(
        Step::Promote { instance: candidate.clone(), semi_sync },
        vec![restore(&failed, vec![candidate.clone()], Some(candidate.clone()))],
    );
    // Clients move as soon as the new primary is writable and its epoch stored.
    doc.push(Step::RecordEpoch { primary: candidate.clone() }, vec![]);
    for r in routes {
        doc.push(Step::UpdateRoute { route: r.kind, primary: candidate.clone(), required: r.required }, vec![]);
    }
    if hooks.mha {
        doc.push(Step::Hook { point: HookPoint::MhaStart }, vec![]);
    }
    if !followers.is_empty() {
        if !attach_first {
            doc.push(repoint, vec![]);
        }
        doc.push(Step::ConfirmReplicating { instances: followers, source: candidate.clone() }, vec![]);
    }
    doc.push(Step::FenceOldPrimary { instance: failed }, vec![]);
    if hooks.post_failover {
        doc.push(Step::Hook { point: HookPoint::PostFailover }, vec![]);
    }
    doc.choice = Some(choice);
    debug_assert_eq!(doc.check(), Ok(()));
}

/// The steps that undo the steps at `started` (indices into the plan, in the
/// order they ran): replication restored first (the candidate read-only), then
/// the fence registration dropped, then a fenced live primary made writable
/// again, so there is never a moment with two writers.
pub fn undo_steps(doc: &PlanDoc, started: &[usize]) -> Vec<Step> {
    let mut replicas: Vec<InstanceKey> = Vec::new();
    let mut source = None;
    let mut candidate = None;
    let mut unregister = None;
    let mut unfence = None;
    for &i in started.iter().rev() {
        for u in &doc.steps[i].undo {
            match u {
                Step::RestoreReplication { replicas: r, source: s, candidate: c } => {
                    for k in r {
                        if !replicas.contains(k) {
                            replicas.push(k.clone());
                        }
                    }
                    source = Some(s.clone());
                    if c.is_some() {
                        candidate = c.clone();
                    }
                }
                Step::UnregisterFence { .. } => unregister = Some(u.clone()),
                Step::Unfence { .. } => unfence = Some(u.clone()),
                other => unreachable!("{} is not an undo step", other.name()),
            }
        }
    }
    let mut steps = Vec::new();
    if let Some(source) = source {
        replicas.sort();
        steps.push(Step::RestoreReplication { replicas, source, candidate });
    }
    steps.extend(unregister);
    steps.extend(unfence);
    steps
}
