//! The steps of a planned switchover: the primary is alive and hands over.
//!
//! Order (each step recorded, like a failover's):
//!
//! 1. refuse if a transaction on the primary has run too long; the
//!    `pre_switchover` hook may veto;
//! 2. the old primary is registered on the fence list (a pivot that dies
//!    from here on leaves it read-only, never a second writer), made
//!    read-only, its open transactions get a grace period, then its client
//!    sessions end; (the daemon's routes hold new connections from the
//!    recovery's start);
//! 3. the candidate applies everything the old primary executed, then is
//!    promoted; the new epoch is stored and every route follows it;
//! 4. the other replicas are repointed, the old primary replicates from the
//!    new one, all confirmed; the old primary leaves the fence list; the
//!    `post_switchover` hook.
//!
//! A failure before the promotion abandons the plan: replication is
//! restored to the old primary, the fence entry dropped, the old primary
//! writable again: exactly one writer, the one there was. After the
//! promotion the new primary stands (it may have taken writes); what failed
//! is reported.

use super::doc::{PlanDoc, PlanKind};
use super::failover::HookSet;
use super::step::{HookPoint, Step};
use crate::candidate::Choice;
use crate::instance::InstanceKey;
use crate::routes::RouteSpec;
use serde::{Deserialize, Serialize};

/// The bounds of a switchover.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverLimits {
    /// A transaction on the primary older than this refuses the switchover.
    pub max_transaction_s: u64,
    /// Open transactions get this long after the primary is read-only.
    pub grace_ms: u64,
    /// The candidate must have applied the old primary's last GTID within this.
    pub catch_up_ms: u64,
}

impl Default for SwitchoverLimits {
    fn default() -> Self {
        SwitchoverLimits { max_transaction_s: 10, grace_ms: 1_000, catch_up_ms: 5_000 }
    }
}

pub fn switchover_plan(
    old: &InstanceKey,
    choice: Choice,
    semi_sync: bool,
    hooks: HookSet,
    routes: &[RouteSpec],
    limits: SwitchoverLimits,
) -> PlanDoc {
    // The old primary always follows the new one: semi-sync keeps an
    // acknowledger even when no other replica does.
    let mut doc = PlanDoc::new(PlanKind::Switchover, old.clone(), false);
    let candidate = choice.candidate.clone();
    let restore = |replicas: Vec<InstanceKey>, prepared: bool| Step::RestoreReplication {
        replicas,
        source: old.clone(),
        candidate: prepared.then(|| candidate.clone()),
    };
    doc.push(Step::CheckTransactions { instance: old.clone(), limit_s: limits.max_transaction_s }, vec![]);
    if hooks.pre_switchover {
        doc.push(Step::Hook { point: HookPoint::PreSwitchover }, vec![]);
    }
    doc.push(
        Step::RegisterFence { instance: old.clone(), live: true },
        vec![Step::UnregisterFence { instance: old.clone() }],
    );
    doc.push(Step::MakeReadOnly { instance: old.clone() }, vec![Step::Unfence { instance: old.clone() }]);
    doc.push(Step::EndTransactions { instance: old.clone(), grace_ms: limits.grace_ms }, vec![]);
    doc.push(
        Step::WaitCaughtUp { instance: candidate.clone(), source: old.clone(), timeout_ms: limits.catch_up_ms },
        vec![],
    );
    let followers = choice.followers.clone();
    let repoint = Step::Repoint { instances: followers.clone(), to: candidate.clone() };
    // As in a failover: with semi-sync, replicas attach before writes open.
    let attach_first = semi_sync && !followers.is_empty();
    if attach_first {
        doc.push(Step::PrepareCandidate { instance: candidate.clone() }, vec![restore(vec![candidate.clone()], true)]);
        doc.push(repoint.clone(), vec![restore(followers.clone(), false)]);
    }
    doc.push(Step::ConfirmFrozen { instance: old.clone(), candidate: candidate.clone() }, vec![]);
    doc.push(Step::Promote { instance: candidate.clone(), semi_sync }, vec![restore(vec![candidate.clone()], true)]);
    doc.push(Step::RecordEpoch { primary: candidate.clone() }, vec![]);
    for r in routes {
        doc.push(Step::UpdateRoute { route: r.kind, primary: candidate.clone(), required: r.required }, vec![]);
    }
    if !attach_first && !followers.is_empty() {
        doc.push(repoint, vec![]);
    }
    doc.push(Step::Demote { instance: old.clone(), to: candidate.clone(), semi_sync }, vec![]);
    let mut confirm = followers;
    confirm.push(old.clone());
    doc.push(Step::ConfirmReplicating { instances: confirm, source: candidate.clone() }, vec![]);
    doc.push(Step::ReleaseFence { instance: old.clone(), primary: candidate.clone() }, vec![]);
    if hooks.post_switchover {
        doc.push(Step::Hook { point: HookPoint::PostSwitchover }, vec![]);
    }
    doc.choice = Some(choice);
    debug_assert_eq!(doc.check(), Ok(()));
    doc
}
