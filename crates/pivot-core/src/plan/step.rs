//! One step of a plan and what it declares about itself: whether its failure
//! vetoes the plan, what a restarted pivot does when it finds the step
//! interrupted, and how its effect is undone.

use crate::gtid::GtidSet;
use crate::instance::InstanceKey;
use crate::routes::RouteKind;
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
    /// Before a planned switchover changes anything: non-zero refuses it.
    PreSwitchover,
    PostSwitchover,
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
            HookPoint::PreSwitchover => "pre_switchover",
            HookPoint::PostSwitchover => "post_switchover",
            HookPoint::Alert => "alert",
        }
    }

    /// Hooks whose exit status is a verdict: a failure stops the plan.
    pub fn vetoes(self) -> bool {
        matches!(self, HookPoint::PreFailover | HookPoint::MhaStop | HookPoint::Fence | HookPoint::PreSwitchover)
    }

    /// Only the MHA script is handed the account's password (MHA's
    /// convention); no other hook ever sees it.
    pub fn gets_password(self) -> bool {
        matches!(self, HookPoint::MhaStart)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// A primary that still answers (forced failover) is made read-only and
    /// its sessions ended before anything else.
    FenceLivePrimary {
        instance: InstanceKey,
    },
    StopReplicaIo {
        instances: Vec<InstanceKey>,
    },
    /// Probe the replicas (and the failed primary) again: the candidate is
    /// chosen on readings taken after they were frozen.
    Observe {
        instances: Vec<InstanceKey>,
        primary: InstanceKey,
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
        /// A switchover's live old primary, made read-only by the plan
        /// itself next: registered as kept read-only, not as one to fence
        /// the moment it answers (it answers all along).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        live: bool,
    },
    /// Stop the candidate's replication and switch its semi-sync primary side
    /// on while it is still read-only, so replicas can attach before writes open.
    PrepareCandidate {
        instance: InstanceKey,
    },
    /// The candidate is a former primary pivot kept read-only (it rejoined
    /// since): it leaves the fence list before it is made writable.
    ClearFence {
        instance: InstanceKey,
    },
    /// Right before the promotion: the failed primary must still not
    /// answer (it could have come back, and a restarted replica reconnected
    /// to it, since the replicas were observed).
    ConfirmPrimaryGone {
        instance: InstanceKey,
    },
    Promote {
        instance: InstanceKey,
        semi_sync: bool,
    },
    /// Store the promotion as the cluster's new epoch (idempotent per
    /// recovery): every route is set from it, and none goes back to an
    /// older one.
    RecordEpoch {
        primary: InstanceKey,
    },
    /// Send clients to the new primary through one route, retried within a
    /// bound. A `required` route that could not be updated makes the
    /// failover "failed": the primary is new but clients may not reach it.
    UpdateRoute {
        route: RouteKind,
        primary: InstanceKey,
        required: bool,
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
    // ---- a planned switchover ---------------------------------------------------
    /// Refuse the switchover if a transaction on the primary has run longer
    /// than `limit_s` (it would be cut off, or hold the switchover).
    CheckTransactions {
        instance: InstanceKey,
        limit_s: u64,
    },
    /// Make the live primary read-only (its sessions stay): no new write
    /// commits from here on, so its last GTID is final.
    MakeReadOnly {
        instance: InstanceKey,
    },
    /// Give open transactions on the (read-only) primary `grace_ms` to end,
    /// then end every client session that remains.
    EndTransactions {
        instance: InstanceKey,
        grace_ms: u64,
    },
    /// The candidate applies everything `source` (read-only now) executed,
    /// within `timeout_ms`.
    WaitCaughtUp {
        instance: InstanceKey,
        source: InstanceKey,
        timeout_ms: u64,
    },
    /// Right before the promotion: the old primary took no write since it
    /// was made read-only (an account with `READ_ONLY ADMIN` or `SUPER`
    /// writes through `read_only` on MariaDB): `candidate` has everything
    /// it executed.
    ConfirmFrozen {
        instance: InstanceKey,
        candidate: InstanceKey,
    },
    /// The old primary, read-only, replicates from the new one with GTID
    /// positioning (from its own binary log position); its semi-sync
    /// primary side off.
    Demote {
        instance: InstanceKey,
        to: InstanceKey,
        /// The new primary waits for semi-sync acknowledgements: this
        /// replica's semi-sync side is switched on.
        semi_sync: bool,
    },
    /// Take the old primary off the fence list once it replicates from the
    /// new primary (it stays on it otherwise).
    ReleaseFence {
        instance: InstanceKey,
        primary: InstanceKey,
    },
    // ---- undo steps: run, in reverse order, when a plan is abandoned ----------
    /// Every replica replicates from `source` again; `candidate`, if it was
    /// prepared, gets its semi-sync primary side off and stays read-only.
    RestoreReplication {
        replicas: Vec<InstanceKey>,
        source: InstanceKey,
        candidate: Option<InstanceKey>,
    },
    UnregisterFence {
        instance: InstanceKey,
    },
    /// Make a primary fenced by [`Step::FenceLivePrimary`] writable again.
    Unfence {
        instance: InstanceKey,
    },
}

/// What a restarted pivot does with a step it finds started but not ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnResume {
    /// Run it again: it is idempotent (hooks must be, see the README). An
    /// interrupted hook gave no verdict, so it is asked again, never skipped.
    Rerun,
    /// Check whether its effect is already in place; run it only if not.
    CheckFirst,
}

impl Step {
    pub fn name(&self) -> String {
        match self {
            Step::FenceLivePrimary { .. } => "fence_live_primary".into(),
            Step::StopReplicaIo { .. } => "stop_replica_io".into(),
            Step::Observe { .. } => "observe".into(),
            Step::Hook { point } => format!("hook_{}", point.as_str()),
            Step::WaitRelayApplied { .. } => "wait_relay_applied".into(),
            Step::CatchUp { .. } => "catch_up".into(),
            Step::RegisterFence { .. } => "register_fence".into(),
            Step::PrepareCandidate { .. } => "prepare_candidate".into(),
            Step::ClearFence { .. } => "clear_fence".into(),
            Step::ConfirmPrimaryGone { .. } => "confirm_primary_gone".into(),
            Step::Promote { .. } => "promote".into(),
            Step::RecordEpoch { .. } => "record_epoch".into(),
            Step::UpdateRoute { route, .. } => format!("route_{}", route.as_str()),
            Step::Repoint { .. } => "repoint".into(),
            Step::ConfirmReplicating { .. } => "confirm_replicating".into(),
            Step::FenceOldPrimary { .. } => "fence_old_primary".into(),
            Step::CheckTransactions { .. } => "check_transactions".into(),
            Step::MakeReadOnly { .. } => "make_read_only".into(),
            Step::EndTransactions { .. } => "end_transactions".into(),
            Step::WaitCaughtUp { .. } => "wait_caught_up".into(),
            Step::ConfirmFrozen { .. } => "confirm_frozen".into(),
            Step::Demote { .. } => "demote".into(),
            Step::ReleaseFence { .. } => "release_fence".into(),
            Step::RestoreReplication { .. } => "restore_replication".into(),
            Step::UnregisterFence { .. } => "unregister_fence".into(),
            Step::Unfence { .. } => "unfence".into(),
        }
    }

    /// The step in words, for the audit log.
    pub fn detail(&self) -> String {
        let list = |v: &[InstanceKey]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match self {
            Step::FenceLivePrimary { instance } => {
                format!("make the answering primary {instance} read-only and end its sessions")
            }
            Step::StopReplicaIo { instances } => format!("stop the IO thread of {}", list(instances)),
            Step::Observe { instances, primary } => {
                format!("probe {} again (and {primary}), to choose on fresh readings", list(instances))
            }
            Step::Hook { point } => format!("run the {} hook", point.as_str()),
            Step::WaitRelayApplied { instance } => format!("wait until {instance} applied its relay log"),
            Step::CatchUp { instance, from, until } => {
                format!("{instance} replicates from {from} until it has {until}")
            }
            Step::RegisterFence { instance, .. } => format!("record {instance} as a former primary to keep read-only"),
            Step::PrepareCandidate { instance } => {
                format!("stop replication on {instance} and switch its semi-sync primary side on, still read-only")
            }
            Step::ClearFence { instance } => {
                format!("take {instance} off the fence list: it is about to be the primary")
            }
            Step::ConfirmPrimaryGone { instance } => {
                format!("make sure {instance} still does not answer before writes open elsewhere")
            }
            Step::Promote { instance, semi_sync } => format!(
                "promote {instance}: stop and reset replication{}, make it writable",
                if *semi_sync { ", semi-sync primary side on" } else { "" }
            ),
            Step::RecordEpoch { primary } => format!("store a new epoch with {primary} as the primary"),
            Step::UpdateRoute { route, primary, required } => format!(
                "send {} clients to {primary} ({})",
                route.as_str(),
                if *required { "required" } else { "optional" }
            ),
            Step::Repoint { instances, to } => format!("repoint {} to {to}", list(instances)),
            Step::ConfirmReplicating { instances, source } => {
                format!("confirm {} replicate from {source}", list(instances))
            }
            Step::FenceOldPrimary { instance } => {
                format!("make {instance} read-only and end its sessions if reachable")
            }
            Step::CheckTransactions { instance, limit_s } => {
                format!("refuse if a transaction on {instance} has run longer than {limit_s} s")
            }
            Step::MakeReadOnly { instance } => format!("make {instance} read-only (its sessions stay for now)"),
            Step::EndTransactions { instance, grace_ms } => {
                format!("give open transactions on {instance} {grace_ms} ms, then end its client sessions")
            }
            Step::WaitCaughtUp { instance, source, timeout_ms } => {
                format!("wait until {instance} applied everything {source} executed (at most {timeout_ms} ms)")
            }
            Step::ConfirmFrozen { instance, candidate } => {
                format!(
                    "make sure {instance} took no write since it was made read-only: {candidate} has all it executed"
                )
            }
            Step::Demote { instance, to, semi_sync } => format!(
                "{instance} replicates from {to} with GTID positioning, read-only{}",
                if *semi_sync { ", semi-sync replica side on" } else { "" }
            ),
            Step::ReleaseFence { instance, primary } => {
                format!("take {instance} off the fence list once it replicates from {primary}")
            }
            Step::RestoreReplication { replicas, source, candidate } => format!(
                "{} replicate from {source} again{}",
                list(replicas),
                candidate.as_ref().map(|c| format!("; {c} stays read-only")).unwrap_or_default()
            ),
            Step::UnregisterFence { instance } => format!("drop {instance} from the fence list"),
            Step::Unfence { instance } => format!("make {instance} writable again: it stays the primary"),
        }
    }

    /// Whether a failure of this step stops the plan (before the promotion:
    /// abandon and undo). Replicas that cannot be repointed are lost, not a
    /// reason to abandon; nothing after the promotion can stop it.
    pub fn vetoes(&self) -> bool {
        match self {
            Step::Hook { point } => point.vetoes(),
            Step::FenceLivePrimary { .. }
            | Step::StopReplicaIo { .. }
            | Step::Observe { .. }
            | Step::WaitRelayApplied { .. }
            | Step::CatchUp { .. }
            | Step::RegisterFence { .. }
            | Step::PrepareCandidate { .. }
            | Step::ClearFence { .. }
            | Step::ConfirmPrimaryGone { .. }
            | Step::CheckTransactions { .. }
            | Step::MakeReadOnly { .. }
            | Step::EndTransactions { .. }
            | Step::WaitCaughtUp { .. }
            | Step::ConfirmFrozen { .. }
            | Step::Promote { .. } => true,
            Step::RecordEpoch { .. }
            | Step::UpdateRoute { .. }
            | Step::Repoint { .. }
            | Step::ConfirmReplicating { .. }
            | Step::FenceOldPrimary { .. }
            | Step::Demote { .. }
            | Step::ReleaseFence { .. }
            | Step::RestoreReplication { .. }
            | Step::UnregisterFence { .. }
            | Step::Unfence { .. } => false,
        }
    }

    pub fn on_resume(&self) -> OnResume {
        match self {
            Step::CatchUp { .. } | Step::Promote { .. } | Step::Repoint { .. } | Step::Demote { .. } => {
                OnResume::CheckFirst
            }
            _ => OnResume::Rerun,
        }
    }

    /// Whether this step undoes another (runs only when a plan is abandoned).
    pub fn is_undo(&self) -> bool {
        matches!(self, Step::RestoreReplication { .. } | Step::UnregisterFence { .. } | Step::Unfence { .. })
    }
}
