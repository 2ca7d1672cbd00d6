//! The recovery machine taking over a recovery: what a restarted pivot
//! runs, re-checks or leaves for an operator; and the remaining table tests.

use super::*;

/// The stored plan and step records of a run interrupted at `step`.
fn interrupted_at(hooks: HookSet, step: &str) -> (String, Vec<RecordedStep>) {
    let (mut m, mut cmd) = start(dead_primary_view(), hooks, automatic());
    let mut records = Vec::new();
    let mut stored = String::new();
    loop {
        cmd = match cmd {
            Command::RecordPlan(doc) => {
                stored = doc.to_json();
                m.plan_recorded(Ok(()))
            }
            Command::RunStep { seq, step: s, .. } => {
                if s.name() == step {
                    records.push(RecordedStep { seq, ended: None });
                    return (stored, records);
                }
                records.push(RecordedStep { seq, ended: Some(Ended::Ok) });
                m.step_ended(seq, observe_dead(&s))
            }
            other => panic!("never reached {step}: {other:?}"),
        }
    }
}

fn resume(plan: &str, steps: &[RecordedStep], view: ClusterView, hooks: HookSet) -> (Option<RecoveryMachine>, Command) {
    RecoveryMachine::resume(key(P), Some(plan), steps, view, settings(hooks), automatic())
}

#[test]
fn an_interrupted_veto_hook_is_asked_again_and_its_failure_still_vetoes() {
    for hook in ["hook_pre_failover", "hook_fence"] {
        let hooks = HookSet { pre_failover: true, fence: true, ..HookSet::default() };
        let (plan, steps) = interrupted_at(hooks, hook);
        let (m, cmd) = resume(&plan, &steps, dead_primary_view(), hooks);
        let Command::RunStep { step, .. } = &cmd else { panic!("{hook}: {cmd:?}") };
        assert_eq!(step.name(), hook, "the interrupted hook runs again, it is not skipped");
        let fails = move |s: &Step| if s.name() == hook { StepEnd::new(Ended::Failed, "exit 1") } else { ok(s) };
        let (m, run) = drive(m.unwrap(), cmd, &fails, false);
        assert!(!m.promoted(), "{hook}: never promote on a veto");
        assert!(!run.trace.contains(&"promote".to_string()), "{hook}: {:?}", run.trace);
        let f = run.finish.unwrap();
        assert_eq!(f.status, Status::Aborted, "{hook}");
        assert!(f.summary.starts_with("resumed after a pivot restart"), "{}", f.summary);
    }
}

#[test]
fn an_interrupted_promotion_is_checked_first_and_ended_steps_never_run_again() {
    let (plan, steps) = interrupted_at(HookSet::default(), "promote");
    let (m, cmd) = resume(&plan, &steps, dead_primary_view(), HookSet::default());
    let Command::RunStep { step, check_first, seq, .. } = &cmd else { panic!("{cmd:?}") };
    assert_eq!((step.name().as_str(), *check_first), ("promote", true));
    assert_eq!(*seq, steps.last().unwrap().seq);
    let (_, run) = drive(m.unwrap(), cmd, &ok, false);
    assert_eq!(steps_of(&run), ["promote", "record_epoch", "repoint", "confirm_replicating", "fence_old_primary"]);
    assert_eq!(run.finish.unwrap().status, Status::Succeeded);
}

#[test]
fn resume_before_the_promotion_with_the_primary_back_undoes() {
    let (plan, steps) = interrupted_at(HookSet::default(), "register_fence");
    let (m, cmd) = resume(&plan, &steps, live_primary_view(), HookSet::default());
    let (_, run) = drive(m.unwrap(), cmd, &ok, false);
    assert_eq!(steps_of(&run), ["restore_replication", "unregister_fence"]);
    let f = run.finish.unwrap();
    assert!(f.summary.contains("answers again"), "{}", f.summary);
}

#[test]
fn resume_after_the_promotion_goes_on_even_if_the_old_primary_answers() {
    let (plan, mut steps) = interrupted_at(HookSet::default(), "repoint");
    steps.pop();
    let (_, cmd) = resume(&plan, &steps, live_primary_view(), HookSet::default());
    let Command::RunStep { step, check_first, .. } = cmd else { panic!("{cmd:?}") };
    assert_eq!(step.name(), "repoint");
    assert!(!check_first, "it never started");
}

#[test]
fn a_stored_plan_that_cannot_be_read_is_left_for_an_operator() {
    let (_, steps) = interrupted_at(HookSet::default(), "repoint");
    for plan in [Some("{\"version\":1}"), Some("garbage"), None] {
        let (m, cmd) = RecoveryMachine::resume(
            key(P),
            plan,
            &steps,
            dead_primary_view(),
            settings(HookSet::default()),
            automatic(),
        );
        assert!(m.is_none());
        let Command::Finish(f) = cmd else { panic!("{cmd:?}") };
        assert_eq!(f.status, Status::Interrupted);
        assert!(f.summary.contains("pivot changed nothing and left the cluster"), "{}", f.summary);
        assert!(!f.summary.contains("as it was"), "never claim the cluster is as it was");
        assert!(f.block && f.alert);
    }
    let (_, cmd) =
        RecoveryMachine::resume(key(P), None, &[], dead_primary_view(), settings(HookSet::default()), automatic());
    let Command::Finish(f) = cmd else { panic!() };
    assert!(f.summary.contains("before the first step") && !f.block);
}

#[test]
fn a_failure_recorded_just_before_the_restart_still_abandons() {
    let (plan, mut steps) = interrupted_at(HookSet::default(), "register_fence");
    steps.last_mut().unwrap().ended = Some(Ended::Failed);
    let (m, cmd) = resume(&plan, &steps, dead_primary_view(), HookSet::default());
    let (_, run) = drive(m.unwrap(), cmd, &ok, false);
    assert_eq!(run.trace, ["record", "restore_replication", "unregister_fence"]);
}

#[test]
fn observations_are_taken_again_when_the_choice_was_not_stored() {
    let (plan, mut steps) = interrupted_at(HookSet::default(), "wait_relay_applied");
    // The plan as stored before the choice: only the prelude.
    let prelude = {
        let mut d = PlanDoc::from_json(&plan).unwrap();
        d.steps.truncate(2);
        d.choice = None;
        d.to_json()
    };
    steps.truncate(2);
    let (m, cmd) = resume(&prelude, &steps, dead_primary_view(), HookSet::default());
    let Command::RunStep { step, .. } = &cmd else { panic!("{cmd:?}") };
    assert_eq!(step.name(), "observe");
    let (_, run) = drive(m.unwrap(), cmd, &observe_dead, false);
    assert_eq!(run.finish.unwrap().status, Status::Succeeded);
}

#[test]
fn hooks_are_recorded_in_the_plan_only_when_configured() {
    let all = HookSet {
        pre_failover: true,
        fence: true,
        mha: true,
        post_failover: true,
        post_unsuccessful_failover: true,
        ..HookSet::default()
    };
    let (m, cmd) = start(dead_primary_view(), all, automatic());
    let (m, _) = drive(m, cmd, &observe_dead, false);
    let hooks: Vec<HookPoint> = m
        .doc()
        .steps
        .iter()
        .filter_map(|s| if let Step::Hook { point } = s.step { Some(point) } else { None })
        .collect();
    assert_eq!(
        hooks,
        [HookPoint::PreFailover, HookPoint::MhaStop, HookPoint::Fence, HookPoint::MhaStart, HookPoint::PostFailover]
    );
    let _: Vec<InstanceKey> = m.lost().cloned().collect();
}

#[test]
fn outcomes_and_statuses_read_back_as_written() {
    for e in [Ended::Ok, Ended::AlreadyDone, Ended::Skipped, Ended::Failed] {
        assert_eq!(Ended::parse(e.as_str()), e);
    }
    assert_eq!(Ended::parse("garbage"), Ended::Failed, "an unknown outcome counts as a failure");
    let all = [Status::Succeeded, Status::SucceededWithErrors, Status::Failed, Status::Aborted, Status::Interrupted];
    let names: std::collections::BTreeSet<&str> = all.iter().map(|s| s.as_str()).collect();
    assert_eq!(names.len(), 5);
    assert_eq!(Status::Succeeded.as_str(), "succeeded");
    let promoted: Vec<Status> = all.into_iter().filter(|s| s.promoted()).collect();
    assert_eq!(promoted, vec![Status::Succeeded, Status::SucceededWithErrors, Status::Failed]);
}

#[test]
fn accessors_tell_the_shell_what_hooks_need() {
    let (mut m, mut cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    assert!(!m.finished() && m.candidate().is_none() && m.abandoned().is_none());
    // Run until the promotion, then fail it.
    loop {
        cmd = match cmd {
            Command::RecordPlan(_) => m.plan_recorded(Ok(())),
            Command::RunStep { seq, step: Step::Promote { .. }, .. } => {
                assert_eq!(m.candidate(), Some(&key(C)), "the chosen candidate is known before the promotion");
                m.step_ended(seq, StepEnd::new(Ended::Failed, "read_only stuck"))
            }
            Command::RunStep { seq, step, .. } => m.step_ended(seq, observe_dead(&step)),
            Command::Finish(_) => break,
            Command::Park { .. } => panic!("parked"),
        };
        if m.abandoned().is_some() {
            assert!(m.abandoned().unwrap().contains("read_only stuck"));
        }
    }
    assert!(m.finished() && !m.promoted());
    assert!(m.abandoned().unwrap().starts_with("promote: read_only stuck"));
}

#[test]
fn the_failed_step_keeps_its_number_and_the_undo_follows_it() {
    let script = |s: &Step| match s {
        Step::RegisterFence { .. } => StepEnd::new(Ended::Failed, "disk full"),
        _ => observe_dead(s),
    };
    let (m, cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    let (m, run) = drive(m, cmd, &script, false);
    let names: Vec<String> = m.doc().steps.iter().map(|s| s.step.name()).collect();
    assert_eq!(
        names,
        [
            "stop_replica_io",
            "observe",
            "wait_relay_applied",
            "register_fence",
            "restore_replication",
            "unregister_fence"
        ]
    );
    let f = run.finish.unwrap();
    assert!(!f.summary.contains("undoing"), "the undo went well: {}", f.summary);
}

#[test]
fn an_unrecordable_extension_undoes_the_freeze_and_an_unrecordable_undo_still_runs() {
    // The prelude is recorded; the plan after the choice is not: the frozen
    // replicas must be given back, even though that cannot be recorded either.
    let (mut m, mut cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    let mut records = 0;
    let mut ran = Vec::new();
    let finish = loop {
        cmd = match cmd {
            Command::RecordPlan(_) => {
                records += 1;
                m.plan_recorded(if records == 1 { Ok(()) } else { Err("disk full".into()) })
            }
            Command::RunStep { seq, step, .. } => {
                ran.push(step.name());
                m.step_ended(seq, observe_dead(&step))
            }
            Command::Finish(f) => break f,
            Command::Park { .. } => panic!("parked"),
        };
    };
    assert_eq!(ran, ["stop_replica_io", "observe", "restore_replication"]);
    assert_eq!(finish.status, Status::Aborted);
    assert!(finish.summary.contains("cannot record the plan") && finish.summary.contains("cannot record the undo"));
}

#[test]
fn a_replica_lost_twice_is_reported_once() {
    let script = |s: &Step| match s {
        Step::Repoint { .. } | Step::ConfirmReplicating { .. } => {
            StepEnd { lost: vec![(key(R), "cannot connect".into())], ..StepEnd::new(Ended::Failed, "cannot connect") }
        }
        _ => observe_dead(s),
    };
    let (m, cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    let (_, run) = drive(m, cmd, &script, false);
    let f = run.finish.unwrap();
    assert_eq!(f.lost, vec![key(R)]);
    assert_eq!(f.summary.matches("lost 10.0.0.3:3306").count(), 1, "{}", f.summary);
}

#[test]
fn resume_refuses_records_outside_the_plan_and_finishes_a_plan_that_had_ended() {
    let (plan, mut steps) = interrupted_at(HookSet::default(), "repoint");
    let doc = PlanDoc::from_json(&plan).unwrap();
    // Every step ended: nothing runs, it just finishes.
    let all: Vec<RecordedStep> =
        (0..doc.steps.len()).map(|i| RecordedStep { seq: PlanDoc::seq(i), ended: Some(Ended::Ok) }).collect();
    let (_, cmd) = resume(&plan, &all, dead_primary_view(), HookSet::default());
    let Command::Finish(f) = cmd else { panic!("{cmd:?}") };
    assert_eq!(f.status, Status::Succeeded);
    // A record of a step the plan does not have: left for an operator.
    steps.push(RecordedStep { seq: PlanDoc::seq(doc.steps.len()), ended: None });
    let (m, cmd) = resume(&plan, &steps, dead_primary_view(), HookSet::default());
    assert!(m.is_none());
    let Command::Finish(f) = cmd else { panic!("{cmd:?}") };
    assert_eq!(f.status, Status::Interrupted);
    assert!(f.summary.contains("is not in the plan"), "{}", f.summary);
}

#[test]
fn an_ended_observation_is_not_taken_again_once_the_choice_is_stored() {
    let (plan, steps) = interrupted_at(HookSet::default(), "wait_relay_applied");
    let (_, cmd) = resume(&plan, &steps, dead_primary_view(), HookSet::default());
    let Command::RunStep { step, check_first, .. } = cmd else { panic!("{cmd:?}") };
    assert_eq!((step.name().as_str(), check_first), ("wait_relay_applied", false));
}

/// Simulator finding F1 (a): the end of `observe` was never written, but the
/// plan extended after it was, and a later step started. A restart must not
/// observe again (that would extend the plan a second time: two promotions).
#[test]
fn a_lost_end_record_does_not_make_a_step_run_again() {
    let (plan, mut steps) = interrupted_at(HookSet::default(), "register_fence");
    let observe = steps.iter().position(|s| s.seq == 2).unwrap();
    steps[observe].ended = None;
    let (m, cmd) = resume(&plan, &steps, dead_primary_view(), HookSet::default());
    let Command::RunStep { step, .. } = &cmd else { panic!("{cmd:?}") };
    assert_eq!(step.name(), "register_fence");
    let (m, run) = drive(m.unwrap(), cmd, &ok, false);
    assert!(!run.trace.contains(&"observe".to_string()), "{:?}", run.trace);
    assert_eq!(m.doc().steps.iter().filter(|s| matches!(s.step, Step::Promote { .. })).count(), 1);
}

/// Simulator finding F1 (b): after an abandon that ran its undo, a second
/// restart runs nothing again (not the step that was interrupted before the
/// abandon, not the undo).
#[test]
fn a_second_restart_after_an_abandon_runs_nothing_again() {
    let (plan, steps) = interrupted_at(HookSet::default(), "register_fence");
    // First restart: the old primary answers again: abandoned, undone.
    let (m, cmd) = resume(&plan, &steps, live_primary_view(), HookSet::default());
    let mut m = m.unwrap();
    let mut cmd = cmd;
    let mut stored = plan.clone();
    let mut records = steps.clone();
    loop {
        cmd = match cmd {
            Command::RecordPlan(doc) => {
                stored = doc.to_json();
                m.plan_recorded(Ok(()))
            }
            Command::RunStep { seq, .. } => {
                records.push(RecordedStep { seq, ended: Some(Ended::Ok) });
                m.step_ended(seq, StepEnd::new(Ended::Ok, ""))
            }
            Command::Finish(_) => break,
            Command::Park { .. } => panic!(),
        };
    }
    // Second restart (the first one's finish was not written).
    let (_, cmd) = resume(&stored, &records, live_primary_view(), HookSet::default());
    let Command::Finish(f) = cmd else { panic!("nothing runs again: {cmd:?}") };
    assert_eq!(f.status, Status::Aborted);
}

/// Simulator finding F4: a pivot that never saw the failed primary (started
/// after it died) still knows semi-sync was on, from the replicas.
#[test]
fn semi_sync_is_judged_from_the_replicas_when_the_primary_was_never_seen() {
    let mut v = ClusterView::default();
    let semi = |id, received: &str| {
        let mut b = replica(id, received).build();
        b.semi_sync.replica_enabled = true;
        b
    };
    v.apply(down(P, 1_000, FailureKind::Refused), 10);
    for (k, s) in [(C, semi(2, "0-1-100")), (R, semi(3, "0-1-99"))] {
        v.apply(
            crate::observation::Observation {
                instance: key(k),
                at: crate::time::Millis(1_000),
                latency_us: 100,
                outcome: crate::observation::ProbeOutcome::Reachable { state: Box::new(s) },
            },
            10,
        );
    }
    let mut settings = settings(HookSet::default());
    settings.semi_sync = SemiSyncPolicy::Auto;
    let (m, cmd) = RecoveryMachine::start(key(P), v, settings, automatic());
    let (m, _) = drive(m, cmd, &ok, false);
    assert!(
        m.doc().steps.iter().any(|s| matches!(s.step, Step::Promote { semi_sync: true, .. })),
        "{:?}",
        m.doc().steps
    );
}

#[test]
fn the_semi_sync_policy_decides_the_new_primary_side() {
    let promote_semi = |policy: SemiSyncPolicy, primary_semi: bool| {
        let mut v = ClusterView::default();
        let p = if primary_semi { state(1, "0-1-100").semi_sync_primary(2, 0) } else { state(1, "0-1-100") };
        v.apply(up(P, 500, p), 10);
        v.apply(down(P, 1_000, FailureKind::Refused), 10);
        v.apply(up(C, 1_000, replica(2, "0-1-100")), 10);
        v.apply(up(R, 1_000, replica(3, "0-1-99")), 10);
        let mut s = settings(HookSet::default());
        s.semi_sync = policy;
        let (m, cmd) = RecoveryMachine::start(key(P), v, s, automatic());
        let (m, _) = drive(m, cmd, &observe_dead, false);
        m.doc()
            .steps
            .iter()
            .find_map(|s| if let Step::Promote { semi_sync, .. } = s.step { Some(semi_sync) } else { None })
    };
    assert_eq!(promote_semi(SemiSyncPolicy::On, false), Some(true));
    assert_eq!(promote_semi(SemiSyncPolicy::Off, true), Some(false));
    assert_eq!(promote_semi(SemiSyncPolicy::Auto, true), Some(true));
    assert_eq!(promote_semi(SemiSyncPolicy::Auto, false), Some(false));
}

/// Hostile finding 4: a forced failover of a live primary, interrupted; an
/// operator repaired the cluster by hand (the primary writable again). The
/// resume must not promote over it.
#[test]
fn a_forced_plan_is_not_resumed_over_a_primary_made_writable_again() {
    let req = FailoverRequest { automatic: false, target: None, force: true };
    let (mut m, mut cmd) = start(live_primary_view(), HookSet::default(), req.clone());
    let (mut stored, mut records) = (String::new(), Vec::new());
    loop {
        cmd = match cmd {
            Command::RecordPlan(doc) => {
                stored = doc.to_json();
                m.plan_recorded(Ok(()))
            }
            Command::RunStep { seq, step, .. } if step.name() == "register_fence" => {
                records.push(RecordedStep { seq, ended: None });
                break;
            }
            Command::RunStep { seq, step, .. } => {
                records.push(RecordedStep { seq, ended: Some(Ended::Ok) });
                let end = match step {
                    Step::Observe { .. } => StepEnd {
                        observations: vec![up(P, 2_000, state(1, "0-1-100").read_only(true))],
                        ..StepEnd::new(Ended::Ok, "")
                    },
                    _ => StepEnd::new(Ended::Ok, ""),
                };
                m.step_ended(seq, end)
            }
            other => panic!("{other:?}"),
        };
    }
    let (m, cmd) = RecoveryMachine::resume(
        key(P),
        Some(&stored),
        &records,
        live_primary_view(),
        settings(HookSet::default()),
        req,
    );
    let (_, run) = drive(m.unwrap(), cmd, &ok, false);
    assert!(!run.trace.contains(&"promote".to_string()), "{:?}", run.trace);
    let f = run.finish.unwrap();
    assert!(f.summary.contains("writable again"), "{}", f.summary);
}

#[test]
fn a_restart_after_a_finished_abandon_with_a_failed_veto_runs_nothing() {
    let (plan, mut steps) = interrupted_at(HookSet::default(), "register_fence");
    steps.last_mut().unwrap().ended = Some(Ended::Failed);
    let (m, cmd) = resume(&plan, &steps, dead_primary_view(), HookSet::default());
    let mut m = m.unwrap();
    let mut cmd = cmd;
    let mut stored = plan.clone();
    loop {
        cmd = match cmd {
            Command::RecordPlan(doc) => {
                stored = doc.to_json();
                m.plan_recorded(Ok(()))
            }
            Command::RunStep { seq, step, needs_record, .. } => {
                assert!(step.is_undo() && !needs_record, "{}: undo steps run even unrecorded", step.name());
                steps.push(RecordedStep { seq, ended: Some(Ended::Ok) });
                m.step_ended(seq, StepEnd::new(Ended::Ok, ""))
            }
            Command::Finish(_) => break,
            Command::Park { .. } => panic!(),
        };
    }
    let (_, cmd) = resume(&stored, &steps, dead_primary_view(), HookSet::default());
    let Command::Finish(f) = cmd else { panic!("nothing runs again: {cmd:?}") };
    assert_eq!(f.status, Status::Aborted);
}

#[test]
fn forward_steps_need_their_start_record() {
    let (mut m, mut cmd) = start(dead_primary_view(), HookSet::default(), automatic());
    loop {
        cmd = match cmd {
            Command::RecordPlan(_) => m.plan_recorded(Ok(())),
            Command::RunStep { seq, step, needs_record, .. } => {
                assert!(needs_record, "{}", step.name());
                m.step_ended(seq, observe_dead(&step))
            }
            Command::Finish(_) => break,
            Command::Park { .. } => panic!(),
        };
    }
}
