//! Plans: order, declarations, undo, and the stored document.

use super::*;
use crate::candidate::Choice;
use crate::fixture::{key, maria};
use crate::instance::InstanceKey;

const P: &str = "10.0.0.1:3306";
const C: &str = "10.0.0.2:3306";
const R: &str = "10.0.0.3:3306";

fn choice(catch_up: bool, followers: &[&str]) -> Choice {
    Choice {
        candidate: key(C),
        catch_up_from: catch_up.then(|| key(R)),
        target: maria("0-1-105"),
        followers: followers.iter().map(|f| key(f)).collect(),
        lost: vec![],
        report: vec![],
        overridden: vec![],
    }
}

fn plan(catch_up: bool, followers: &[&str], semi_sync: bool, hooks: HookSet, live: bool) -> PlanDoc {
    let replicas: Vec<InstanceKey> = [C, R].iter().map(|k| key(k)).collect();
    let mut doc = failover_prelude(&key(P), &replicas, &replicas, live, live);
    extend_failover(&mut doc, choice(catch_up, followers), semi_sync, hooks);
    doc
}

fn names(p: &PlanDoc) -> Vec<String> {
    p.steps.iter().map(|s| s.step.name()).collect()
}

const ALL_HOOKS: HookSet = HookSet {
    pre_failover: true,
    fence: true,
    mha: true,
    post_failover: true,
    post_unsuccessful_failover: true,
    pre_switchover: false,
    post_switchover: false,
};

#[test]
fn plain_plan_freezes_observes_applies_fences_durably_then_promotes_then_repoints() {
    let p = plan(false, &[R], false, HookSet::default(), false);
    assert_eq!(
        names(&p),
        [
            "stop_replica_io",
            "observe",
            "wait_relay_applied",
            "register_fence",
            "confirm_primary_gone",
            "promote",
            "record_epoch",
            "repoint",
            "confirm_replicating",
            "fence_old_primary"
        ]
    );
    assert_eq!(p.steps[5].step, Step::Promote { instance: key(C), semi_sync: false });
    assert_eq!(p.promote_index(), Some(5));
    assert_eq!(PlanDoc::seq(5), 6, "step numbers are derived from positions");
}

#[test]
fn with_semi_sync_replicas_attach_before_writes_open() {
    let p = plan(false, &[R], true, HookSet::default(), false);
    assert_eq!(
        names(&p)[2..],
        [
            "wait_relay_applied",
            "register_fence",
            "prepare_candidate",
            "repoint",
            "confirm_primary_gone",
            "promote",
            "record_epoch",
            "confirm_replicating",
            "fence_old_primary"
        ]
    );
    let alone = plan(false, &[], true, HookSet::default(), false);
    assert_eq!(
        names(&alone)[2..],
        [
            "wait_relay_applied",
            "register_fence",
            "confirm_primary_gone",
            "promote",
            "record_epoch",
            "fence_old_primary"
        ]
    );
}

#[test]
fn catch_up_waits_for_the_source_first_and_hooks_sit_where_mha_puts_them() {
    let p = plan(true, &[], false, ALL_HOOKS, true);
    assert_eq!(
        names(&p),
        [
            "fence_live_primary",
            "stop_replica_io",
            "observe",
            "hook_pre_failover",
            "hook_mha_stop",
            "hook_fence",
            "wait_relay_applied",
            "wait_relay_applied",
            "catch_up",
            "register_fence",
            "promote",
            "record_epoch",
            "hook_mha_start",
            "fence_old_primary",
            "hook_post_failover"
        ]
    );
    assert_eq!(p.steps[6].step, Step::WaitRelayApplied { instance: key(R) }, "the source applies first");
}

/// The module documentation's abort rule, checked on every shape of plan.
#[test]
fn documented_abort_rule_holds_for_every_plan_shape() {
    for catch_up in [false, true] {
        for followers in [&[][..], &[R][..]] {
            for semi_sync in [false, true] {
                for hooks in [HookSet::default(), ALL_HOOKS] {
                    for live in [false, true] {
                        let p = plan(catch_up, followers, semi_sync, hooks, live);
                        let at = p.promote_index().unwrap();
                        for s in &p.steps[..at] {
                            let want = !matches!(s.step, Step::Repoint { .. });
                            assert_eq!(s.vetoes, want, "{} before the promotion", s.step.name());
                        }
                        assert!(!p.steps[at + 1..].iter().any(|s| s.vetoes), "nothing after the promotion vetoes");
                        let fence = p.steps.iter().position(|s| matches!(s.step, Step::RegisterFence { .. }));
                        assert!(fence.unwrap() < at, "fence registered before the promotion");
                        assert_eq!(p.check(), Ok(()));
                    }
                }
            }
        }
    }
}

#[test]
fn interrupted_hooks_are_asked_again_and_state_changes_are_checked_first() {
    let p = plan(true, &[R], false, ALL_HOOKS, true);
    for s in &p.steps {
        let want = match s.step {
            Step::CatchUp { .. } | Step::Promote { .. } | Step::Repoint { .. } => OnResume::CheckFirst,
            _ => OnResume::Rerun,
        };
        assert_eq!(s.on_resume, want, "{}", s.step.name());
    }
}

#[test]
fn undo_restores_replication_first_then_drops_the_fence_then_unfences() {
    let p = plan(true, &[R], true, HookSet::default(), true);
    let started: Vec<usize> = (0..p.promote_index().unwrap()).collect();
    let undo = undo_steps(&p, &started);
    assert_eq!(
        undo,
        vec![
            Step::RestoreReplication { replicas: vec![key(C), key(R)], source: key(P), candidate: Some(key(C)) },
            Step::UnregisterFence { instance: key(P) },
            Step::Unfence { instance: key(P) },
        ]
    );
    assert_eq!(undo_steps(&p, &[]), vec![], "nothing started, nothing to undo");
    let only_freeze = undo_steps(&p, &[1]);
    assert_eq!(
        only_freeze,
        vec![Step::RestoreReplication { replicas: vec![key(C), key(R)], source: key(P), candidate: None }]
    );
}

#[test]
fn stored_plans_round_trip_and_unreadable_ones_say_why() {
    let p = plan(true, &[R], true, ALL_HOOKS, false);
    assert_eq!(PlanDoc::from_json(&p.to_json()).unwrap(), p);
    let old = r#"{"first_seq":3,"force":false,"plan":{"steps":[]}}"#;
    assert!(PlanDoc::from_json(old).unwrap_err().contains("without a version"));
    let v2 = p.to_json().replace("\"version\":3", "\"version\":2");
    assert_eq!(PlanDoc::from_json(&v2).unwrap().version, 2, "plans of version 2 are still read");
    let newer = p.to_json().replace("\"version\":3", "\"version\":9");
    assert!(PlanDoc::from_json(&newer).unwrap_err().contains("plan version 9"));
    assert!(PlanDoc::from_json("{").unwrap_err().contains("not a plan document"));
    let mut bad = p.clone();
    let at = bad.promote_index().unwrap();
    bad.steps.swap(3, at);
    assert!(PlanDoc::from_json(&bad.to_json()).is_err(), "a plan that breaks the order rules is refused");
}

#[test]
fn check_names_each_broken_rule() {
    let good = plan(false, &[R], false, HookSet::default(), false);
    let at = good.promote_index().unwrap();
    let mut two = good.clone();
    two.steps.push(good.steps[at].clone());
    assert!(two.check().unwrap_err().contains("2 promotions"));
    let mut unfenced = good.clone();
    unfenced.steps.retain(|s| !matches!(s.step, Step::RegisterFence { .. }));
    assert!(unfenced.check().unwrap_err().contains("before the old primary is registered"));
    let mut fenced_late = good.clone();
    let f = fenced_late.steps.iter().position(|s| matches!(s.step, Step::RegisterFence { .. })).unwrap();
    let fence = fenced_late.steps.remove(f);
    fenced_late.steps.push(fence);
    assert!(fenced_late.check().unwrap_err().contains("before the old primary is registered"));
    let mut late_veto = good.clone();
    late_veto.steps.push(PlannedStep {
        step: Step::Hook { point: HookPoint::PreFailover },
        vetoes: true,
        on_resume: OnResume::Rerun,
        undo: vec![],
    });
    assert!(late_veto.check().unwrap_err().contains("after the promotion declares a veto"));
    let mut after_undo = PlanDoc::new(PlanKind::Failover, key(P), false);
    after_undo.push(Step::UnregisterFence { instance: key(P) }, vec![]);
    after_undo.push(Step::Hook { point: HookPoint::PostUnsuccessfulFailover }, vec![]);
    assert_eq!(after_undo.check(), Ok(()));
    after_undo.push(Step::WaitRelayApplied { instance: key(C) }, vec![]);
    assert!(after_undo.check().unwrap_err().contains("after the plan was abandoned"));
}

#[test]
fn routes_follow_the_stored_epoch_right_after_the_promotion() {
    use crate::routes::{RouteKind, RouteSpec};
    let mut doc = failover_prelude(&key(P), &[key(C), key(R)], &[key(C), key(R)], false, false);
    let routes =
        [RouteSpec { kind: RouteKind::Local, required: true }, RouteSpec { kind: RouteKind::Etcd, required: false }];
    extend_failover_fenced(&mut doc, choice(false, &[R]), false, HookSet::default(), &routes, false);
    let names: Vec<String> = doc.steps.iter().map(|s| s.step.name()).collect();
    let at = names.iter().position(|n| n == "promote").unwrap();
    assert_eq!(names[at..at + 5], ["promote", "record_epoch", "route_local", "route_etcd", "repoint"]);
    let required: Vec<bool> = doc
        .steps
        .iter()
        .filter_map(|s| if let Step::UpdateRoute { required, .. } = s.step { Some(required) } else { None })
        .collect();
    assert_eq!(required, vec![true, false]);
    assert!(doc.steps[at + 1..at + 4].iter().all(|s| !s.vetoes), "nothing after the promotion vetoes");
    assert_eq!(doc.check(), Ok(()));
    // A route before its epoch, or an epoch before the promotion, is refused.
    let mut early = doc.clone();
    early.steps.swap(at + 1, at + 2);
    assert!(early.check().unwrap_err().contains("before the new epoch is stored"), "{:?}", early.check());
    let mut no_epoch = doc.clone();
    no_epoch.steps.remove(at + 1);
    assert!(no_epoch.check().unwrap_err().contains("before the new epoch is stored"));
    let mut epoch_first = doc.clone();
    epoch_first.steps.swap(at, at + 1);
    assert!(epoch_first.check().unwrap_err().contains("epoch is stored before the promotion"));
}

/// Simulator finding F5: semi-sync on a new primary nobody follows would
/// make every write wait forever.
#[test]
fn no_semi_sync_on_a_new_primary_nobody_follows() {
    let alone = plan(false, &[], true, HookSet::default(), false);
    assert!(alone.steps.iter().any(|s| s.step == Step::Promote { instance: key(C), semi_sync: false }));
    let followed = plan(false, &[R], true, HookSet::default(), false);
    assert!(followed.steps.iter().any(|s| s.step == Step::Promote { instance: key(C), semi_sync: true }));
}

/// Simulator finding F3: the failed primary is checked once more right
/// before the promotion, unless it was fenced first.
#[test]
fn the_failed_primary_is_checked_right_before_the_promotion_unless_fenced_first() {
    let p = plan(true, &[R], true, ALL_HOOKS, false);
    let at = p.promote_index().unwrap();
    assert_eq!(p.steps[at - 1].step, Step::ConfirmPrimaryGone { instance: key(P) });
    assert!(p.steps[at - 1].vetoes);
    let live = plan(true, &[R], true, ALL_HOOKS, true);
    assert!(!live.steps.iter().any(|s| matches!(s.step, Step::ConfirmPrimaryGone { .. })));
}

#[test]
fn only_the_mha_start_call_gets_the_password_and_details_name_the_instances() {
    use HookPoint::*;
    for p in [PreFailover, MhaStop, Fence, PostFailover, PostUnsuccessfulFailover, Alert] {
        assert!(!p.gets_password(), "{p:?}");
    }
    assert!(MhaStart.gets_password());
    let p = plan(true, &[R], true, ALL_HOOKS, true);
    for s in &p.steps {
        let d = s.step.detail();
        let names_one = [P, C, R].iter().any(|k| d.contains(k)) || matches!(s.step, Step::Hook { .. });
        assert!(names_one, "{}: {d}", s.step.name());
    }
}

/// Hostile finding 12: a stored plan whose declarations were edited (a veto
/// turned off, another instance promoted) is refused, not followed.
#[test]
fn an_edited_plan_is_refused() {
    let p = plan(false, &[R], false, ALL_HOOKS, false);
    let mut no_veto = p.clone();
    no_veto.steps.iter_mut().find(|s| s.step == Step::Hook { point: HookPoint::PreFailover }).unwrap().vetoes = false;
    assert!(PlanDoc::from_json(&no_veto.to_json()).unwrap_err().contains("declares other rules"));
    let mut other = p.clone();
    let at = other.promote_index().unwrap();
    other.steps[at].step = Step::Promote { instance: key(R), semi_sync: false };
    assert!(PlanDoc::from_json(&other.to_json()).unwrap_err().contains("not the chosen candidate"));
}

#[test]
fn a_fenced_candidate_leaves_the_fence_list_before_it_is_promoted() {
    let replicas: Vec<InstanceKey> = [C, R].iter().map(|k| key(k)).collect();
    let mut doc = failover_prelude(&key(P), &replicas, &replicas, false, false);
    extend_failover_fenced(&mut doc, choice(false, &[R]), false, HookSet::default(), &[], true);
    let at = doc.promote_index().unwrap();
    let clear = doc.steps.iter().position(|s| s.step == Step::ClearFence { instance: key(C) }).unwrap();
    assert!(clear < at && doc.steps[clear].vetoes);
}
