//! The switchover driven by a scripted shell: refusals before anything
//! changes, the plan's order, a failure at each step (rolled back to the old
//! primary before the promotion, reported after it), and a restart mid-way.

use super::*;
use crate::candidate::PromotionRules;
use crate::fixture::*;
use crate::observation::{FailureKind, IoThread};
use crate::plan::{HookSet, PlanKind, Step};
use crate::view::ClusterView;

const P: &str = "10.0.0.1:3306";
const C: &str = "10.0.0.2:3306";
const R: &str = "10.0.0.3:3306";

fn settings() -> FailoverSettings {
    FailoverSettings {
        rules: PromotionRules { max_lag_s: 5, preferred: vec![key(C)], ..PromotionRules::default() },
        semi_sync: SemiSyncPolicy::Off,
        hooks: HookSet { pre_switchover: true, post_switchover: true, ..HookSet::default() },
        lag_threshold_s: 10,
        routes: vec![],
        switchover: Default::default(),
        replication_credentials: true,
    }
}

fn replica(id: u32, received: &str) -> StateBuilder {
    state(id, received).replica_of(P, received).io(IoThread::Running)
}

fn view_with(c: StateBuilder) -> ClusterView {
    let mut v = ClusterView::default();
    v.apply(up(P, 1_000, state(1, "0-1-100")), 10);
    v.apply(up(C, 1_000, c), 10);
    v.apply(up(R, 1_000, replica(3, "0-1-100")), 10);
    v
}

fn healthy() -> ClusterView {
    view_with(replica(2, "0-1-100"))
}

fn to(target: Option<&str>) -> FailoverRequest {
    FailoverRequest { automatic: false, target: target.map(key), force: false }
}

struct Run {
    steps: Vec<String>,
    finish: Finish,
}

fn drive(mut m: RecoveryMachine, mut cmd: Command, fail: &dyn Fn(&Step) -> bool) -> (RecoveryMachine, Run) {
    let mut steps = Vec::new();
    for _ in 0..100 {
        cmd = match cmd {
            Command::RecordPlan(doc) => {
                assert_eq!(doc.check(), Ok(()));
                m.plan_recorded(Ok(()))
            }
            Command::RunStep { seq, step, .. } => {
                steps.push(step.name());
                let how = if fail(&step) { Ended::Failed } else { Ended::Ok };
                m.step_ended(seq, StepEnd::new(how, "boom"))
            }
            Command::Finish(finish) => return (m, Run { steps, finish }),
            Command::Park { .. } => panic!("parked"),
        };
    }
    panic!("no end: {steps:?}");
}

const PLAN: [&str; 13] = [
    "check_transactions",
    "hook_pre_switchover",
    "register_fence",
    "make_read_only",
    "end_transactions",
    "wait_caught_up",
    "confirm_frozen",
    "promote",
    "record_epoch",
    "repoint",
    "demote",
    "confirm_replicating",
    "release_fence",
];

#[test]
fn a_switchover_runs_in_plan_order_and_sets_no_block() {
    let (m, cmd) = RecoveryMachine::switchover(key(P), healthy(), settings(), to(None));
    assert_eq!(m.doc().kind, PlanKind::Switchover);
    let (m, run) = drive(m, cmd, &|_| false);
    let mut plan = PLAN.to_vec();
    plan.push("hook_post_switchover");
    assert_eq!(run.steps, plan);
    assert_eq!(run.finish.status, Status::Succeeded);
    assert_eq!(run.finish.new_primary, Some(key(C)), "the preferred replica");
    assert!(!run.finish.block, "a planned switchover must not block the next failover");
    assert!(run.finish.summary.starts_with(&format!("switched over to {C} (was {P}")), "{}", run.finish.summary);
    let confirm = m.doc().steps.iter().find(|s| s.step.name() == "confirm_replicating").unwrap();
    assert_eq!(
        confirm.step,
        Step::ConfirmReplicating { instances: vec![key(R), key(P)], source: key(C) },
        "the old primary is confirmed replicating from the new one too"
    );
}

#[test]
fn refusals_change_nothing() {
    let unhealthy = |b: StateBuilder| view_with(b);
    let mut dead = healthy();
    dead.apply(down(P, 2_000, FailureKind::Refused), 10);
    let mut read_only = healthy();
    read_only.apply(up(P, 2_000, state(1, "0-1-100").read_only(true)), 10);
    let cases: Vec<(&str, ClusterView, Option<&str>, &str)> = vec![
        ("primary down", dead, None, "does not answer"),
        ("primary read-only", read_only, None, "is read-only"),
        ("io stopped", unhealthy(replica(2, "0-1-100").io(IoThread::Stopped)), Some(C), "IO thread Stopped"),
        ("sql stopped", unhealthy(replica(2, "0-1-100").sql_stopped()), Some(C), "SQL thread stopped"),
        ("lagging", unhealthy(replica(2, "0-1-100").lag(30)), Some(C), "lagging 30s"),
        ("errant", unhealthy(replica(2, "0-1-100,0-2-7").applied("0-1-100,0-2-7")), Some(C), "errant GTIDs"),
        ("sql error", unhealthy(replica(2, "0-1-100").sql_error(1062, "dup")), Some(C), "error 1062"),
        ("to the primary", healthy(), Some(P), "already the primary"),
        ("to a stranger", healthy(), Some("10.0.0.9:3306"), "not a replica"),
    ];
    let mut fenced = healthy();
    fenced.fenced = [key(C)].into_iter().collect();
    let (_, cmd) = RecoveryMachine::switchover(key(P), fenced.clone(), settings(), to(Some(C)));
    assert!(matches!(&cmd, Command::Finish(f) if f.summary.contains("fence list")), "{cmd:?}");
    let (m, _) = RecoveryMachine::switchover(key(P), fenced, settings(), to(None));
    assert_eq!(m.candidate(), Some(&key(R)), "a fenced former primary is not chosen, even preferred");
    let mut no_creds = settings();
    no_creds.replication_credentials = false;
    let (_, cmd) = RecoveryMachine::switchover(key(P), healthy(), no_creds, to(None));
    assert!(matches!(&cmd, Command::Finish(f) if f.summary.contains("[cluster.replication]")), "{cmd:?}");
    for (name, view, target, words) in cases {
        let (m, cmd) = RecoveryMachine::switchover(key(P), view, settings(), to(target));
        let Command::Finish(f) = cmd else { panic!("{name}: not refused: {cmd:?}") };
        assert_eq!(f.status, Status::Aborted, "{name}");
        assert!(f.summary.contains(words), "{name}: {}", f.summary);
        assert!(f.summary.ends_with("nothing was changed"), "{name}: {}", f.summary);
        assert!(f.new_primary.is_none() && !f.block, "{name}");
        assert!(m.finished(), "{name}");
    }
}

/// A failure at each step: before the promotion everything that started is
/// undone (the old primary the one writer again); at and after it, the new
/// primary stands and the failure is reported.
#[test]
fn a_failure_at_each_step_rolls_back_or_is_reported() {
    for failing in PLAN.iter().copied().chain(["hook_post_switchover"]) {
        let fail = move |s: &Step| s.name() == failing;
        let (m, cmd) = RecoveryMachine::switchover(key(P), healthy(), settings(), to(Some(C)));
        let (m, run) = drive(m, cmd, &fail);
        let at = run.steps.iter().position(|s| s == failing).unwrap();
        let after: Vec<&str> = run.steps[at + 1..].iter().map(String::as_str).collect();
        let promote = PLAN.iter().position(|s| *s == "promote").unwrap();
        if PLAN.iter().position(|s| *s == failing).is_some_and(|i| i <= promote) {
            let mut undo = vec![];
            if failing == "promote" {
                undo.push("restore_replication");
            }
            let started = |name: &str| PLAN.iter().position(|s| *s == name).unwrap() <= at;
            if started("register_fence") {
                undo.push("unregister_fence");
            }
            if started("make_read_only") {
                undo.push("unfence");
            }
            assert_eq!(after, undo, "{failing}");
            assert_eq!(run.finish.status, Status::Aborted, "{failing}");
            assert!(run.finish.new_primary.is_none() && !m.promoted(), "{failing}");
            if failing == "promote" {
                let restore = m.doc().steps.iter().find(|s| s.step.name() == "restore_replication").unwrap();
                assert_eq!(
                    restore.step,
                    Step::RestoreReplication { replicas: vec![key(C)], source: key(P), candidate: Some(key(C)) },
                    "the candidate is read-only and replicates from the old primary again"
                );
            }
        } else {
            assert!(!after.contains(&"unfence") && !after.contains(&"restore_replication"), "{failing}: {after:?}");
            assert_eq!(run.finish.status, Status::SucceededWithErrors, "{failing}");
            assert_eq!(run.finish.new_primary, Some(key(C)), "{failing}");
            assert!(run.finish.alert, "{failing}");
        }
    }
}

/// pivot restarted before the promotion: rolled back, whatever step it was in.
#[test]
fn a_restart_before_the_promotion_rolls_back_and_after_it_goes_forward() {
    let (m, _) = RecoveryMachine::switchover(key(P), healthy(), settings(), to(Some(C)));
    let plan = m.doc().to_json();
    let steps = |n: i64| -> Vec<RecordedStep> {
        (1..=n).map(|seq| RecordedStep { seq, ended: (seq < n).then_some(Ended::Ok) }).collect()
    };
    // Interrupted in make_read_only (step 4): undo what started.
    let (m2, cmd) =
        RecoveryMachine::resume(key(P), Some(&plan), &steps(4), healthy(), settings(), FailoverRequest::default());
    assert!(matches!(cmd, Command::RecordPlan(_)), "{cmd:?}");
    let m2 = m2.unwrap();
    assert!(m2.abandoned().unwrap().contains("rolled back"));
    let (_, run) = drive(m2, cmd, &|_| false);
    assert_eq!(run.steps, ["unregister_fence", "unfence"]);
    assert_eq!(run.finish.status, Status::Aborted);
    // Interrupted in demote (step 11): the promotion stands; demote is checked first.
    let (m3, cmd) =
        RecoveryMachine::resume(key(P), Some(&plan), &steps(11), healthy(), settings(), FailoverRequest::default());
    assert!(matches!(&cmd, Command::RunStep { step: Step::Demote { .. }, check_first: true, .. }), "{cmd:?}");
    let (_, run) = drive(m3.unwrap(), cmd, &|_| false);
    assert_eq!(run.steps, ["demote", "confirm_replicating", "release_fence", "hook_post_switchover"]);
    assert_eq!(run.finish.status, Status::Succeeded);
}

#[test]
fn a_plan_that_promotes_before_read_only_is_refused() {
    let (m, _) = RecoveryMachine::switchover(key(P), healthy(), settings(), to(Some(C)));
    let mut doc = m.doc().clone();
    let ro = doc.steps.iter().position(|s| s.step.name() == "make_read_only").unwrap();
    doc.steps.remove(ro);
    assert!(doc.check().unwrap_err().contains("before the old primary is read-only"));
    let mut doc = m.doc().clone();
    let w = doc.steps.iter().position(|s| s.step.name() == "wait_caught_up").unwrap();
    doc.steps.remove(w);
    assert!(doc.check().unwrap_err().contains("before the candidate caught up"));
}

/// Stopping pivot (Ctrl-C, SIGTERM) before the promotion rolls the
/// switchover back instead of parking with the old primary read-only and
/// nobody writable; after the promotion it parks like a failover.
#[test]
fn a_stop_before_the_promotion_rolls_back_and_after_it_parks() {
    let (mut m, mut cmd) = RecoveryMachine::switchover(key(P), healthy(), settings(), to(Some(C)));
    let mut ran = Vec::new();
    let stop_after = "make_read_only";
    loop {
        cmd = match cmd {
            Command::RecordPlan(_) => m.plan_recorded(Ok(())),
            Command::RunStep { seq, step, .. } => {
                ran.push(step.name());
                if step.name() == stop_after {
                    m.set_stopping(true);
                }
                m.step_ended(seq, StepEnd::new(Ended::Ok, ""))
            }
            Command::Finish(f) => {
                assert_eq!(f.status, Status::Aborted, "{f:?}");
                assert!(f.summary.contains("stopping before the promotion"), "{}", f.summary);
                break;
            }
            Command::Park { .. } => panic!("parked with the old primary read-only: {ran:?}"),
        };
    }
    assert_eq!(ran[ran.len() - 2..], ["unregister_fence", "unfence"], "{ran:?}");
    // After the promotion: park.
    let (mut m, mut cmd) = RecoveryMachine::switchover(key(P), healthy(), settings(), to(Some(C)));
    loop {
        cmd = match cmd {
            Command::RecordPlan(_) => m.plan_recorded(Ok(())),
            Command::RunStep { seq, step, .. } => {
                if step.name() == "promote" {
                    m.set_stopping(true);
                }
                m.step_ended(seq, StepEnd::new(Ended::Ok, ""))
            }
            Command::Finish(f) => panic!("finished instead of parking: {f:?}"),
            Command::Park { .. } => break,
        };
    }
    assert!(m.promoted());
}

/// With semi-sync the other replicas attach to the candidate before it
/// opens for writes (so its first write is acknowledged at once); a
/// candidate with no other replica is promoted without that, its old
/// primary its acknowledger.
#[test]
fn semi_sync_attaches_the_replicas_first() {
    let mut s = settings();
    s.semi_sync = SemiSyncPolicy::On;
    let names = |v: ClusterView, s: FailoverSettings| {
        let (m, _) = RecoveryMachine::switchover(key(P), v, s, to(Some(C)));
        m.doc().steps.iter().map(|p| p.step.name()).collect::<Vec<_>>()
    };
    let steps = names(healthy(), s.clone());
    let at = |n: &str| steps.iter().position(|x| x == n).unwrap_or_else(|| panic!("{n} in {steps:?}"));
    assert!(at("prepare_candidate") < at("repoint") && at("repoint") < at("promote"), "{steps:?}");
    assert_eq!(steps.iter().filter(|n| *n == "repoint").count(), 1, "{steps:?}");
    assert!(steps.iter().any(|n| n == "demote"));
    let mut two = ClusterView::default();
    two.apply(up(P, 1_000, state(1, "0-1-100")), 10);
    two.apply(up(C, 1_000, replica(2, "0-1-100")), 10);
    let steps = names(two, s);
    assert!(!steps.iter().any(|n| n == "prepare_candidate" || n == "repoint"), "{steps:?}");
}

#[test]
fn the_candidates_lag_is_bounded_by_the_catch_up_timeout() {
    let mut s = settings();
    s.rules.max_lag_s = 60;
    s.switchover.catch_up_ms = 5_000;
    let lagging = |lag: u64| view_with(replica(2, "0-1-100").lag(lag));
    let started = |lag: u64, force: bool| {
        let req = FailoverRequest { automatic: true, target: Some(key(C)), force };
        matches!(RecoveryMachine::switchover(key(P), lagging(lag), s.clone(), req).1, Command::RecordPlan(_))
    };
    assert!(started(5, false), "at the limit");
    assert!(!started(6, false), "past catch_up_timeout, within max_candidate_lag");
    assert!(!started(6, true), "a switchover takes no --force");
    let (_, cmd) = RecoveryMachine::switchover(key(P), lagging(6), s.clone(), to(Some(C)));
    assert!(matches!(&cmd, Command::Finish(f) if f.summary.contains("at most 5 s")), "{cmd:?}");
}

#[test]
fn a_primary_that_replicates_is_not_the_top_primary() {
    let mut v = healthy();
    v.apply(up(P, 2_000, state(1, "0-1-100").replica_of(R, "0-1-100").read_only(false)), 10);
    let (_, cmd) = RecoveryMachine::switchover(key(P), v, settings(), to(Some(C)));
    assert!(matches!(&cmd, Command::Finish(f) if f.summary.contains("not the top primary")), "{cmd:?}");
    // Its replication stopped: it is the primary.
    let mut v = healthy();
    let stopped = state(1, "0-1-100").replica_of(R, "0-1-100").read_only(false).io(IoThread::Stopped);
    v.apply(up(P, 2_000, stopped), 10);
    let (_, cmd) = RecoveryMachine::switchover(key(P), v, settings(), to(Some(C)));
    assert!(matches!(cmd, Command::RecordPlan(_)), "{cmd:?}");
}

/// A switchover takes no `--force`: a request that carries it still refuses
/// what a failover's `--force` would override (errant GTIDs).
#[test]
fn a_forced_request_overrides_nothing() {
    let errant = view_with(replica(2, "0-1-100,0-2-7").applied("0-1-100,0-2-7"));
    let req = FailoverRequest { automatic: true, target: Some(key(C)), force: true };
    let (_, cmd) = RecoveryMachine::switchover(key(P), errant, settings(), req);
    assert!(matches!(&cmd, Command::Finish(f) if f.summary.contains("errant")), "{cmd:?}");
}

/// Active/passive dual primaries: the active replicates back from the
/// passive. That is expected, not "a primary that is a replica": the
/// switchover runs, the passive applies everything of the active before it
/// is promoted, and the old active is demoted to a replica of it. A primary
/// replicating from anything else is still refused.
#[test]
fn a_switchover_runs_in_a_dual_primary_ring_and_the_old_active_follows() {
    let ring = || {
        let mut v = ClusterView::default();
        v.apply(up(P, 1_000, state(1, "0-1-100").replica_of(C, "0-1-100").read_only(false)), 10);
        v.apply(up(C, 1_000, replica(2, "0-1-100")), 10);
        v
    };
    let (m, cmd) = RecoveryMachine::switchover(key(P), ring(), settings(), to(Some(C)));
    let (m, run) = drive(m, cmd, &|_| false);
    assert_eq!(run.finish.status, Status::Succeeded, "{}", run.finish.summary);
    assert_eq!(run.finish.new_primary, Some(key(C)));
    let names: Vec<String> = m.doc().steps.iter().map(|s| s.step.name()).collect();
    let at = |n: &str| names.iter().position(|s| s == n).unwrap_or_else(|| panic!("no {n} in {names:?}"));
    assert!(at("make_read_only") < at("wait_caught_up") && at("wait_caught_up") < at("promote"), "{names:?}");
    let confirm = m.doc().steps.iter().find(|s| s.step.name() == "confirm_replicating").unwrap();
    assert_eq!(confirm.step, Step::ConfirmReplicating { instances: vec![key(P)], source: key(C) });
    // Three instances in a cycle are no active/passive pair: refused.
    let mut three = ring();
    three.apply(up(R, 1_000, replica(3, "0-1-100")), 10);
    let (_, cmd) = RecoveryMachine::switchover(key(P), three, settings(), to(Some(C)));
    let Command::Finish(f) = cmd else { panic!("not refused: {cmd:?}") };
    assert_eq!(f.status, Status::Aborted);
    assert!(f.summary.contains("it is not the top primary"), "{}", f.summary);
}
