//! The cluster machine's former primaries, event by event: watched,
//! fenced when writable, judged (rejoin or quarantine), split-brain
//! intruders, replicas cut off from a fenced former primary.

use super::cluster::*;
use super::cluster_tests::*;
use crate::fixture::*;
use crate::instance::InstanceKey;
use crate::observation::FailureKind;

#[test]
fn former_primaries_are_watched_fenced_when_writable_and_judged() {
    let mut rig = Rig::new(true);
    let x: InstanceKey = key("10.0.0.9:3306");
    let entry = FenceEntry { instance: x.clone(), status: "pending".into(), detail: "failed primary".into() };
    let cmds = rig.store(StoreView { fenced: vec![entry.clone()], ..fresh_store() });
    assert!(cmds.contains(&Command::WatchFormerPrimary(x.clone())), "{cmds:?}");
    assert!(cmds.contains(&Command::Watch(x.clone())), "and probed");
    let again = rig.store(StoreView { fenced: vec![entry.clone()], ..fresh_store() });
    assert!(!again.contains(&Command::WatchFormerPrimary(x.clone())), "one watcher at a time");
    // It answers holding a transaction the primary lacks: quarantined.
    let fenced = Fenced { sessions_ended: 2, executed: maria("0-1-11"), took_ms: 3 };
    let cmds = rig.ev(Event::Fence(FenceResult { instance: x.clone(), result: Ok(fenced) }));
    let recorded = cmds.iter().find_map(|c| if let Command::UpdateFence(e) = c { Some(e.clone()) } else { None });
    let recorded = recorded.expect("the verdict is recorded");
    assert_eq!(recorded.status, "quarantined");
    assert!(recorded.detail.contains("0-1-11"), "{}", recorded.detail);
    // Found writable later: fenced again at once, once.
    rig.advance(100);
    let cmds = rig.ev(Event::Observed(up("10.0.0.9:3306", rig.now, state(9, "0-1-11"))));
    assert!(cmds.contains(&Command::FenceNow(x.clone())), "{cmds:?}");
    let cmds = rig.ev(Event::Observed(up("10.0.0.9:3306", rig.now + 1, state(9, "0-1-11"))));
    assert!(!cmds.contains(&Command::FenceNow(x.clone())), "one fence at a time");
}

#[test]
fn a_writable_instance_nobody_follows_is_fenced_recorded_and_alerted_once() {
    let mut rig = Rig::new(true);
    rig.advance(100);
    let cmds = rig.ev(Event::Observed(up(R2, rig.now, state(3, "0-1-10"))));
    // Confirmed on readings of everyone taken after it was first seen.
    assert!(!cmds.contains(&Command::FenceNow(key(R2))) && cmds.contains(&Command::ProbeNow(key(P))), "{cmds:?}");
    let cmds = rig.refresh_all(fresh_store());
    assert!(cmds.contains(&Command::FenceNow(key(R2))), "{cmds:?}");
    assert!(cmds.iter().any(|c| matches!(c, Command::RecordFence(e) if e.instance == key(R2))));
    assert_eq!(alerts(&cmds).iter().filter(|a| a.contains("split brain")).count(), 1, "{cmds:?}");
    let cmds = rig.ev(Event::Observed(up(R2, rig.now + 1, state(3, "0-1-10"))));
    assert!(!cmds.contains(&Command::FenceNow(key(R2))) && alerts(&cmds).iter().all(|a| !a.contains("split")));
}

#[test]
fn the_fence_list_survives_a_deleted_state_file() {
    let mut rig = Rig::new(true);
    let x = key("10.0.0.9:3306");
    let entry = FenceEntry { instance: x.clone(), status: "read_only".into(), detail: "d".into() };
    rig.store(StoreView { fenced: vec![entry], ..fresh_store() });
    let cmds = rig.store(StoreView { file_ok: false, problem: Some("state file gone".into()), ..StoreView::default() });
    assert!(alerts(&cmds).iter().any(|a| a.contains("state file gone")));
    assert!(rig.m.fenced().any(|f| f.instance == x), "kept in memory");
    rig.store(fresh_store());
    assert!(!rig.m.fenced().any(|f| f.instance == x), "the file again says what is fenced");
}

#[test]
fn a_promoted_former_primary_is_taken_off_the_fence_list_and_not_fenced_meanwhile() {
    let mut rig = Rig::new(true);
    let entry = FenceEntry { instance: key(R1), status: "read_only".into(), detail: "can rejoin".into() };
    rig.store(StoreView { fenced: vec![entry.clone()], ..fresh_store() });
    rig.primary_dies();
    assert!(starts(&rig.store(StoreView { fenced: vec![entry.clone()], ..fresh_store() })));
    // The recovery promotes R1: writable while the recovery still runs.
    rig.advance(20);
    let cmds = rig.ev(Event::Observed(up(R1, rig.now, state(2, "0-1-10"))));
    assert!(!cmds.contains(&Command::FenceNow(key(R1))), "the recovery is not undone by the monitor: {cmds:?}");
    let end = RecoveryEnd::Ended { id: 2, new_primary: Some(key(R1)), parked: false, alert: None, unrecorded: None };
    rig.ev(Event::RecoveryEnded(end));
    assert!(!rig.m.fenced().any(|f| f.instance == key(R1)));
    rig.advance(20);
    let cmds = rig.ev(Event::Observed(up(R1, rig.now, state(2, "0-1-10"))));
    assert!(!cmds.contains(&Command::FenceNow(key(R1))), "{cmds:?}");
}

#[test]
fn a_former_primary_fenced_without_a_verdict_is_judged_later() {
    let mut rig = Rig::new(true);
    let x = key("10.0.0.9:3306");
    let entry = FenceEntry {
        instance: x.clone(),
        status: "read_only".into(),
        detail: "made read-only, 0 client session(s) ended".into(),
    };
    let cmds = rig.store(StoreView { fenced: vec![entry], ..fresh_store() });
    assert!(cmds.contains(&Command::Watch(x.clone())));
    rig.advance(10);
    let cmds = rig.ev(Event::Observed(up("10.0.0.9:3306", rig.now, state(9, "0-1-12").read_only(true))));
    let recorded = cmds.iter().find_map(|c| if let Command::UpdateFence(e) = c { Some(e.clone()) } else { None });
    let recorded = recorded.expect("judged");
    assert_eq!(recorded.status, "quarantined");
    assert!(alerts(&cmds).iter().any(|a| a.contains("quarantined")), "{cmds:?}");
    rig.advance(10);
    let again = rig.ev(Event::Observed(up("10.0.0.9:3306", rig.now, state(9, "0-1-12").read_only(true))));
    assert!(!again.iter().any(|c| matches!(c, Command::RecordFence(_) | Command::UpdateFence(_))), "judged once");
}

#[test]
fn a_replica_still_following_a_fenced_former_primary_is_detached() {
    let mut rig = Rig::new(true);
    let x = key("10.0.0.9:3306");
    let entry =
        FenceEntry { instance: x.clone(), status: "read_only".into(), detail: "it can rejoin as a replica".into() };
    rig.store(StoreView { fenced: vec![entry], ..fresh_store() });
    rig.ev(Event::Observed(down("10.0.0.9:3306", rig.now, FailureKind::Refused)));
    rig.advance(10);
    let lost = state(3, "0-9-3").replica_of("10.0.0.9:3306", "0-9-3");
    let cmds = rig.ev(Event::Observed(up(R2, rig.now, lost.clone())));
    assert!(cmds.contains(&Command::DetachReplica(key(R2))), "{cmds:?}");
    assert!(alerts(&cmds).iter().any(|a| a.contains("still replicates from the fenced former primary")));
    rig.advance(10);
    let again = rig.ev(Event::Observed(up(R2, rig.now, lost)));
    assert!(!again.contains(&Command::DetachReplica(key(R2))), "asked once");
    // A replica of the current primary is left alone.
    let cmds = rig.ev(Event::Observed(up(R1, rig.now + 1, state(2, "0-1-10").replica_of(P, "0-1-10"))));
    assert!(!cmds.iter().any(|c| matches!(c, Command::DetachReplica(_))));
}

#[test]
fn a_fence_entry_with_a_verdict_is_not_judged_again() {
    let mut rig = Rig::new(true);
    let x = key("10.0.0.9:3306");
    for (status, detail) in [
        ("quarantined", "diverged: 0-1-12 are not on it"),
        ("read_only", "all its GTIDs are on 10.0.0.1:3306: it can rejoin as a replica"),
        ("pending", "failed primary"),
    ] {
        let entry = FenceEntry { instance: x.clone(), status: status.into(), detail: detail.into() };
        rig.store(StoreView { fenced: vec![entry], ..fresh_store() });
        rig.advance(10);
        let cmds = rig.ev(Event::Observed(up("10.0.0.9:3306", rig.now, state(9, "0-1-10").read_only(true))));
        assert!(
            !cmds.iter().any(|c| matches!(c, Command::RecordFence(_) | Command::UpdateFence(_))),
            "{status}: {cmds:?}"
        );
    }
}

/// A recovery whose owner is gone (and that this process cannot take over)
/// does not hold back re-fencing a writable former primary; one under a live
/// lease elsewhere does.
#[test]
fn a_stuck_recovery_of_a_gone_owner_does_not_hold_back_fencing() {
    let x = key("10.0.0.9:3306");
    let entry = FenceEntry { instance: x.clone(), status: "read_only".into(), detail: "read-only".into() };
    for (gone, fenced) in [(true, true), (false, false)] {
        let mut rig = Rig::new(true);
        let running = RunningRecovery { id: 3, owner: "other".into(), ours: false, owner_gone: gone };
        rig.store(StoreView { fenced: vec![entry.clone()], running: Some(running.clone()), ..fresh_store() });
        rig.advance(10);
        let cmds = rig.ev(Event::Observed(up("10.0.0.9:3306", rig.now, state(9, "0-1-10").read_only(true))));
        if cmds.iter().any(|c| matches!(c, Command::ResumeRecovery { .. })) {
            // It cannot be taken over (the state file cannot be written).
            rig.ev(Event::RecoveryEnded(RecoveryEnd::HeldElsewhere));
        }
        rig.advance(10);
        rig.store(StoreView { fenced: vec![entry.clone()], running: Some(running), ..fresh_store() });
        let replica = |id| state(id, "0-1-10").replica_of(P, "0-1-10");
        let mut cmds = rig.ev(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
        cmds.extend(rig.ev(Event::Observed(up(R1, rig.now, replica(2)))));
        cmds.extend(rig.ev(Event::Observed(up(R2, rig.now, replica(3)))));
        cmds.extend(rig.ev(Event::Observed(up("10.0.0.9:3306", rig.now, state(9, "0-1-10")))));
        assert_eq!(cmds.contains(&Command::FenceNow(x.clone())), fenced, "owner gone {gone}: {cmds:?}");
    }
}

/// Only a replica of a fenced former primary is detached: one of an
/// intermediate replica (a chain) is left alone.
#[test]
fn a_replica_of_an_intermediate_replica_is_not_detached() {
    let mut rig = Rig::new(true);
    rig.store(fresh_store());
    rig.advance(10);
    let mut cmds = rig.ev(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
    cmds.extend(rig.ev(Event::Observed(up(R1, rig.now, state(2, "0-1-10").replica_of(P, "0-1-10")))));
    cmds.extend(rig.ev(Event::Observed(up(R2, rig.now, state(3, "0-1-10").replica_of(R1, "0-1-10")))));
    assert!(!cmds.iter().any(|c| matches!(c, Command::DetachReplica(_))), "{cmds:?}");
}
