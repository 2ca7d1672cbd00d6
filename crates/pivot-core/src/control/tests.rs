//! The recovery machine driven by a scripted shell: which steps run, in which
//! order, and how the recovery ends, for each way a step can go.

use super::*;
use crate::candidate::PromotionRules;
use crate::fixture::*;
use crate::instance::InstanceKey;
use crate::observation::{FailureKind, IoThread};
use crate::plan::{HookPoint, HookSet, PlanDoc, Step};
use crate::view::ClusterView;

const P: &str = "10.0.0.1:3306";
const C: &str = "10.0.0.2:3306";
const R: &str = "10.0.0.3:3306";

fn settings(hooks: HookSet) -> FailoverSettings {
    FailoverSettings {
        rules: PromotionRules { max_lag_s: 60, ..PromotionRules::default() },
        semi_sync: SemiSyncPolicy::Off,
        hooks,
        lag_threshold_s: 10,
        routes: vec![],
        switchover: Default::default(),
        replication_credentials: true,
    }
}

fn replica(id: u32, received: &str) -> StateBuilder {
    state(id, received).replica_of(P, received).io(IoThread::Connecting)
}

/// A dead primary P with replicas C (most advanced) and R.
fn dead_primary_view() -> ClusterView {
    let mut v = ClusterView::default();
    v.apply(down(P, 1_000, FailureKind::Refused), 10);
    v.apply(up(C, 1_000, replica(2, "0-1-100")), 10);
    v.apply(up(R, 1_000, replica(3, "0-1-99")), 10);
    v
}

/// A healthy cluster: P answers, writable.
fn live_primary_view() -> ClusterView {
    let mut v = ClusterView::default();
    v.apply(up(P, 1_000, state(1, "0-1-100")), 10);
    v.apply(up(C, 1_000, replica(2, "0-1-100").io(IoThread::Running)), 10);
    v.apply(up(R, 1_000, replica(3, "0-1-100").io(IoThread::Running)), 10);
    v
}

/// What the scripted shell does for one step.
type Script = dyn Fn(&Step) -> StepEnd;

fn ok(_: &Step) -> StepEnd {
    StepEnd::new(Ended::Ok, "")
}

/// Fresh readings for an observe step: the same dead-primary picture.
fn observe_dead(step: &Step) -> StepEnd {
    match step {
        Step::Observe { .. } => StepEnd {
            observations: vec![
                down(P, 2_000, FailureKind::Refused),
                up(C, 2_000, replica(2, "0-1-100").io(IoThread::Stopped)),
                up(R, 2_000, replica(3, "0-1-99").io(IoThread::Stopped)),
            ],
            ..StepEnd::new(Ended::Ok, "")
        },
        _ => ok(step),
    }
}

struct Run {
    /// Step names in the order they ran; `record` for each plan record.
    trace: Vec<String>,
    finish: Option<Finish>,
    parked: bool,
}

fn drive(mut m: RecoveryMachine, mut cmd: Command, script: &Script, record_fails: bool) -> (RecoveryMachine, Run) {
    let mut run = Run { trace: vec![], finish: None, parked: false };
    for _ in 0..200 {
        cmd = match cmd {
            Command::RecordPlan(doc) => {
                assert_eq!(doc.check(), Ok(()), "every recorded plan keeps the rules");
                run.trace.push("record".into());
                m.plan_recorded(if record_fails { Err("disk full".into()) } else { Ok(()) })
            }
            Command::RunStep { seq, step, .. } => {
                run.trace.push(step.name());
                let end = script(&step);
                m.step_ended(seq, end)
            }
            Command::Finish(f) => {
                run.finish = Some(f);
                return (m, run);
            }
            Command::Park { .. } => {
                run.parked = true;
                return (m, run);
            }
        };
    }
    panic!("the machine did not finish in 200 commands: {:?}", run.trace);
}

fn start(view: ClusterView, hooks: HookSet, request: FailoverRequest) -> (RecoveryMachine, Command) {
    RecoveryMachine::start(key(P), view, settings(hooks), request)
}

fn automatic() -> FailoverRequest {
    FailoverRequest { automatic: true, target: None, force: false }
}

fn steps_of(run: &Run) -> Vec<&str> {
    run.trace.iter().filter(|s| *s != "record").map(String::as_str).collect()
}

#[test]
fn a_dead_primary_is_failed_over_in_plan_order() {
    let (m, cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    let (m, run) = drive(m, cmd, &observe_dead, false);
    assert_eq!(
        run.trace,
        [
            "record",
            "stop_replica_io",
            "observe",
            "record",
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
    let f = run.finish.unwrap();
    assert_eq!(f.status, Status::Succeeded);
    assert_eq!(f.new_primary, Some(key(C)));
    assert!(f.block, "a promotion starts the anti-flapping block");
    assert!(!f.alert);
    assert!(f.summary.contains(&format!("promoted {C} (was {P}); replicas following it: {R}")), "{}", f.summary);
    assert!(m.promoted() && m.finished());
}

/// Each step before the promotion that declares a veto, failing, abandons
/// the plan and undoes exactly what started.
#[test]
fn a_veto_before_the_promotion_undoes_what_started_and_runs_nothing_after() {
    let hooks = HookSet {
        pre_failover: true,
        fence: true,
        mha: false,
        post_failover: true,
        post_unsuccessful_failover: true,
        ..HookSet::default()
    };
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("hook_pre_failover", vec!["restore_replication", "hook_post_unsuccessful_failover"]),
        ("hook_fence", vec!["restore_replication", "hook_post_unsuccessful_failover"]),
        ("wait_relay_applied", vec!["restore_replication", "hook_post_unsuccessful_failover"]),
        ("register_fence", vec!["restore_replication", "unregister_fence", "hook_post_unsuccessful_failover"]),
        ("promote", vec!["restore_replication", "unregister_fence", "hook_post_unsuccessful_failover"]),
    ];
    for (failing, undo) in cases {
        let script =
            move |s: &Step| if s.name() == failing { StepEnd::new(Ended::Failed, "boom") } else { observe_dead(s) };
        let (m, cmd) = start(dead_primary_view(), hooks, automatic());
        let (m, run) = drive(m, cmd, &script, false);
        let steps = steps_of(&run);
        let at = steps.iter().position(|s| *s == failing).unwrap();
        assert_eq!(steps[at + 1..], undo[..], "{failing}: {steps:?}");
        let f = run.finish.unwrap();
        assert_eq!(f.status, Status::Aborted, "{failing}");
        assert!(f.summary.starts_with(&format!("{failing}: boom")), "{failing}: {}", f.summary);
        assert!(f.alert && !f.block && f.new_primary.is_none(), "{failing}");
        assert!(!m.promoted());
        if failing == "promote" {
            let restore = m.doc().steps.iter().find(|s| s.step.name() == "restore_replication").unwrap();
            assert_eq!(
                restore.step,
                Step::RestoreReplication { replicas: vec![key(C), key(R)], source: key(P), candidate: Some(key(C)) },
                "a failed promotion leaves the candidate read-only, replicating from the old primary"
            );
        }
    }
}

#[test]
fn failures_after_the_promotion_are_reported_not_undone() {
    let script = |s: &Step| match s {
        Step::Repoint { .. } => StepEnd {
            lost: vec![(key(R), "cannot connect".into())],
            ..StepEnd::new(Ended::Failed, "10.0.0.3:3306: cannot connect")
        },
        _ => observe_dead(s),
    };
    let (m, cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    let (_, run) = drive(m, cmd, &script, false);
    assert!(!run.trace.contains(&"restore_replication".to_string()));
    let f = run.finish.unwrap();
    assert_eq!(f.status, Status::SucceededWithErrors);
    assert_eq!(f.lost, vec![key(R)]);
    assert!(f.alert, "an operator must know a replica was lost");
    assert!(f.summary.contains("replicas following it: none; lost 10.0.0.3:3306"), "{}", f.summary);
}

#[test]
fn a_live_primary_is_refused_without_force_before_anything_changes() {
    let (_, cmd) = start(live_primary_view(), HookSet::default(), FailoverRequest::default());
    let Command::Finish(f) = cmd else { panic!("refused at once: {cmd:?}") };
    assert_eq!(f.status, Status::Aborted);
    assert!(f.summary.contains("answers") && f.summary.ends_with("nothing was changed"), "{}", f.summary);
}

/// The typo of issue 6: `--to` an instance that is not a replica, forced, on
/// a healthy cluster: refused before the live primary is fenced.
#[test]
fn a_bad_target_is_refused_before_the_live_primary_is_fenced() {
    let req = FailoverRequest { automatic: false, target: Some(key("127.0.0.1:9999")), force: true };
    let (_, cmd) = start(live_primary_view(), HookSet::default(), req);
    let Command::Finish(f) = cmd else { panic!("refused at once, nothing run: {cmd:?}") };
    assert_eq!(f.status, Status::Aborted);
    assert!(f.summary.contains("127.0.0.1:9999 is not a replica"), "{}", f.summary);
}

#[test]
fn a_forced_failover_of_a_live_primary_fences_it_first_and_unfences_it_on_abort() {
    let req = FailoverRequest { automatic: false, target: None, force: true };
    let live_then_fail = |s: &Step| match s {
        Step::Observe { .. } => StepEnd {
            observations: vec![
                up(P, 2_000, state(1, "0-1-100").read_only(true)),
                up(C, 2_000, replica(2, "0-1-100").io(IoThread::Stopped)),
                up(R, 2_000, replica(3, "0-1-100").io(IoThread::Stopped)),
            ],
            ..StepEnd::new(Ended::Ok, "")
        },
        Step::RegisterFence { .. } => StepEnd::new(Ended::Failed, "disk full"),
        _ => ok(s),
    };
    let (m, cmd) = start(live_primary_view(), HookSet::default(), req);
    let (_, run) = drive(m, cmd, &live_then_fail, false);
    assert_eq!(
        steps_of(&run),
        [
            "fence_live_primary",
            "stop_replica_io",
            "observe",
            "wait_relay_applied",
            "register_fence",
            "restore_replication",
            "unregister_fence",
            "unfence"
        ]
    );
    assert_eq!(run.finish.unwrap().status, Status::Aborted);
}

#[test]
fn a_primary_that_answers_again_ends_an_unforced_failover() {
    let answers = |s: &Step| match s {
        Step::Observe { .. } => {
            StepEnd { observations: vec![up(P, 2_000, state(1, "0-1-100"))], ..StepEnd::new(Ended::Ok, "") }
        }
        _ => ok(s),
    };
    let (m, cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    let (_, run) = drive(m, cmd, &answers, false);
    assert_eq!(steps_of(&run), ["stop_replica_io", "observe", "restore_replication"]);
    assert!(run.finish.unwrap().summary.contains("answers again"));
}

#[test]
fn an_unrecordable_plan_changes_nothing() {
    let (m, cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    let (_, run) = drive(m, cmd, &observe_dead, true);
    assert_eq!(run.trace, ["record"]);
    let f = run.finish.unwrap();
    assert_eq!(f.status, Status::Aborted);
    assert!(f.summary.contains("cannot record the plan") && f.alert, "{}", f.summary);
}

#[test]
fn a_process_that_may_no_longer_act_parks_between_steps() {
    let (mut m, cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    let Command::RecordPlan(_) = cmd else { panic!() };
    let Command::RunStep { seq, .. } = m.plan_recorded(Ok(())) else { panic!() };
    m.set_may_act(false);
    match m.step_ended(seq, StepEnd::new(Ended::Ok, "")) {
        Command::Park { next_seq, .. } => assert_eq!(next_seq, 2),
        other => panic!("parked, got {other:?}"),
    }
}

#[path = "resume_tests.rs"]
mod resume_tests;

#[test]
fn a_required_route_that_fails_makes_the_failover_failed_an_optional_one_does_not() {
    use crate::routes::{RouteKind, RouteSpec};
    let fail = |kind: RouteKind| {
        move |step: &Step| match step {
            Step::UpdateRoute { route, .. } if *route == kind => StepEnd::new(Ended::Failed, "etcd unreachable"),
            _ => observe_dead(step),
        }
    };
    let with_routes = |required: bool| {
        let mut s = settings(HookSet::default());
        s.routes =
            vec![RouteSpec { kind: RouteKind::Local, required: true }, RouteSpec { kind: RouteKind::Etcd, required }];
        s
    };
    for (required, status) in [(true, Status::Failed), (false, Status::SucceededWithErrors)] {
        let (m, cmd) = RecoveryMachine::start(key(P), dead_primary_view(), with_routes(required), automatic());
        let (_, run) = drive(m, cmd, &fail(RouteKind::Etcd), false);
        let f = run.finish.clone().expect("finished");
        assert_eq!(f.status, status, "required: {required}: {}", f.summary);
        assert!(f.status.promoted() && f.new_primary == Some(key(C)), "the promotion stands");
        assert!(f.alert, "operators are told");
        assert_eq!(
            f.summary.contains("clients may not reach the new primary"),
            required,
            "only a required route says so: {}",
            f.summary
        );
        let ran = steps_of(&run);
        let at = ran.iter().position(|s| *s == "promote").unwrap();
        assert_eq!(ran[at..at + 4], ["promote", "record_epoch", "route_local", "route_etcd"]);
        assert!(ran.contains(&"fence_old_primary"), "the plan goes on after a failed route: {ran:?}");
    }
    let (m, cmd) = RecoveryMachine::start(key(P), dead_primary_view(), with_routes(true), automatic());
    let (_, run) = drive(m, cmd, &observe_dead, false);
    assert_eq!(run.finish.unwrap().status, Status::Succeeded);
}

/// Active/passive dual primaries, the active dead: the passive is the
/// candidate. Its IO thread from the dead active stops first (no late event
/// of the old active arrives after), everything it received is applied, the
/// old active is registered fenced, and only then is it promoted (which
/// removes its replication from the old active for good).
#[test]
fn a_dead_active_of_a_ring_is_failed_over_to_the_passive_after_it_applied_everything() {
    let passive = || state(2, "0-1-100").replica_of(P, "0-1-100");
    let mut v = ClusterView::default();
    v.apply(up(P, 500, state(1, "0-1-100").replica_of(C, "0-1-100").read_only(false)), 10);
    v.apply(up(C, 500, passive()), 10);
    assert!(crate::topology::Topology::derive(&v).ring.is_some(), "a ring");
    v.apply(down(P, 1_000, FailureKind::Refused), 10);
    v.apply(up(C, 1_000, passive().io(IoThread::Connecting)), 10);
    let observe = move |step: &Step| match step {
        Step::Observe { .. } => StepEnd {
            observations: vec![down(P, 2_000, FailureKind::Refused), up(C, 2_000, passive().io(IoThread::Stopped))],
            ..StepEnd::new(Ended::Ok, "")
        },
        _ => ok(step),
    };
    let (m, cmd) = start(v, HookSet::default(), automatic());
    let (m, run) = drive(m, cmd, &observe, false);
    let f = run.finish.clone().expect("finished");
    assert_eq!(f.status, Status::Succeeded, "{}", f.summary);
    assert_eq!(f.new_primary, Some(key(C)));
    let s = steps_of(&run);
    let at = |n: &str| s.iter().position(|x| *x == n).unwrap_or_else(|| panic!("no {n} in {s:?}"));
    assert!(at("stop_replica_io") < at("wait_relay_applied"), "{s:?}");
    assert!(at("wait_relay_applied") < at("register_fence") && at("register_fence") < at("promote"), "{s:?}");
    let waited = m.doc().steps.iter().find(|x| x.step.name() == "wait_relay_applied").unwrap();
    assert_eq!(waited.step, Step::WaitRelayApplied { instance: key(C) }, "the passive applies its relay log");
}
