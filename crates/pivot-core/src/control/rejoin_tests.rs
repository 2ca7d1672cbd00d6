//! The cluster machine and former primaries after the verdict: rejoin asked
//! once, retried with a backoff, taken off the fence list; quarantine with
//! the acknowledged verdict and the saved file.

use super::cluster::*;
use super::cluster_tests::{acts, alerts, fresh_store, obs_state_mut, settings, Rig, P, R1, R2};
use crate::fixture::*;
use crate::instance::InstanceKey;
use crate::observation::{FailureKind, IoThread};
use crate::routes::EpochRecord;

const X: &str = "10.0.0.9:3306";

fn epoch(primary: &str) -> Option<EpochRecord> {
    Some(EpochRecord { number: 1, primary: key(primary), recovery_id: None, since_ms: 0 })
}

fn auto_rig() -> Rig {
    Rig::with(ClusterSettings { auto_rejoin: true, ..settings(true) })
}

fn unjudged(x: &str) -> FenceEntry {
    FenceEntry {
        instance: key(x),
        status: "read_only".into(),
        detail: "made read-only, 0 client session(s) ended".into(),
    }
}

fn rejoins(cmds: &[Command]) -> Vec<InstanceKey> {
    cmds.iter()
        .filter_map(|c| if let Command::Rejoin { instance, primary } = c { Some((instance, primary)) } else { None })
        .inspect(|(_, p)| assert_eq!(**p, key(P), "always to the primary"))
        .map(|(i, _)| i.clone())
        .collect()
}

#[test]
fn a_former_primary_able_to_rejoin_is_rejoined_once_retried_later_then_unfenced() {
    let mut rig = auto_rig();
    rig.store(StoreView { fenced: vec![unjudged(X)], epoch: epoch(P), ..fresh_store() });
    rig.advance(10);
    let cmds = rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-9").read_only(true))));
    assert_eq!(rejoins(&cmds), vec![key(X)], "judged able to rejoin, then asked at once: {cmds:?}");
    rig.advance(10);
    let cmds = rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-9").read_only(true))));
    assert!(rejoins(&cmds).is_empty(), "one rejoin at a time: {cmds:?}");
    // It failed: alerted, tried again only after the backoff.
    let cmds = rig.ev(Event::Rejoined { instance: key(X), result: Err("IO thread error 1236".into()) });
    assert!(alerts(&cmds).iter().any(|a| a.contains("did not rejoin: IO thread error 1236")), "{cmds:?}");
    // 5 s, then 10 s: the wait doubles with each failure in a row.
    for wait in [5_000, 10_000] {
        rig.advance(wait - 100);
        let cmds = rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-9").read_only(true))));
        assert!(rejoins(&cmds).is_empty(), "backing off {wait}: {cmds:?}");
        rig.advance(100);
        let cmds = rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-9").read_only(true))));
        assert_eq!(rejoins(&cmds), vec![key(X)], "{wait}: {cmds:?}");
        if wait == 5_000 {
            rig.ev(Event::Rejoined { instance: key(X), result: Err("again".into()) });
        }
    }
    let cmds = rig.ev(Event::Rejoined { instance: key(X), result: Ok("replicates from P".into()) });
    assert!(cmds.contains(&Command::ClearFence(key(X))), "{cmds:?}");
    assert!(cmds.iter().any(|c| matches!(c, Command::Record { text } if text.contains("rejoined"))), "{cmds:?}");
    assert!(!rig.m.fenced().any(|f| f.instance == key(X)));
    rig.advance(10);
    let cmds = rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-10").read_only(true).replica_of(P, "0-1-10"))));
    assert!(rejoins(&cmds).is_empty() && !cmds.iter().any(|c| matches!(c, Command::FenceNow(_))), "{cmds:?}");
}

#[test]
fn no_rejoin_while_a_recovery_runs_here_elsewhere_or_waits_to_be_resumed() {
    let others = RunningRecovery { id: 4, owner: "other".into(), ours: false, owner_gone: false };
    let gone = RunningRecovery { id: 5, owner: "dead".into(), ours: false, owner_gone: true };
    for (name, running) in [("elsewhere, live lease", others), ("left to resume", gone)] {
        let mut rig = auto_rig();
        rig.store(StoreView { fenced: vec![unjudged(X)], epoch: epoch(P), running: Some(running), ..fresh_store() });
        rig.advance(10);
        let cmds = rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-9").read_only(true))));
        assert!(rejoins(&cmds).is_empty(), "{name}: {cmds:?}");
        // The store says it ended: the rejoin goes ahead, on readings of
        // every instance taken since.
        rig.store(StoreView { fenced: vec![unjudged(X)], epoch: epoch(P), ..fresh_store() });
        rig.advance(10);
        let replica = |id| state(id, "0-1-10").replica_of(P, "0-1-10");
        let mut cmds = rig.ev(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
        cmds.extend(rig.ev(Event::Observed(up(R1, rig.now, replica(2)))));
        cmds.extend(rig.ev(Event::Observed(up(R2, rig.now, replica(3)))));
        cmds.extend(rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-9").read_only(true)))));
        if name == "elsewhere, live lease" {
            assert_eq!(rejoins(&cmds), vec![key(X)], "{name}: {cmds:?}");
        } else {
            assert!(rejoins(&cmds).is_empty(), "resumed by this process, which runs it now: {cmds:?}");
        }
    }
    // This process runs one.
    let mut rig = auto_rig();
    rig.store(StoreView { fenced: vec![unjudged(X)], ..fresh_store() });
    rig.advance(10);
    let cmds = rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-9").read_only(true))));
    assert!(rejoins(&cmds).is_empty(), "no epoch yet: {cmds:?}");
    rig.primary_dies();
    let store = StoreView { fenced: vec![unjudged(X)], epoch: epoch(P), ..fresh_store() };
    assert!(rig.store(store).iter().any(|c| matches!(c, Command::StartRecovery { .. })));
    rig.advance(10);
    let cmds = rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-9").read_only(true))));
    assert!(rejoins(&cmds).is_empty(), "ours runs: {cmds:?}");
}

#[test]
fn no_rejoin_without_the_epoch_naming_the_primary_when_off_or_when_writable() {
    for (name, auto, epoch_of, read_only) in
        [("no epoch", true, None, true), ("off", false, Some(P), true), ("writable", true, Some(P), false)]
    {
        let mut rig = Rig::with(ClusterSettings { auto_rejoin: auto, ..settings(true) });
        rig.store(StoreView { fenced: vec![unjudged(X)], epoch: epoch_of.and_then(epoch), ..fresh_store() });
        rig.advance(10);
        let cmds = rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-9").read_only(read_only))));
        assert!(rejoins(&cmds).is_empty(), "{name}: {cmds:?}");
    }
}

/// P's reading: semi-sync AFTER_SYNC without fallback, `waiting` commits
/// waiting for a replica.
fn after_sync_primary(now: u64, waiting: u32) -> crate::observation::Observation {
    let mut obs = up(P, now, state(1, "0-1-10").semi_sync_primary(2, waiting));
    let s = obs_state_mut(&mut obs).unwrap();
    s.semi_sync.primary_wait_point = Some("AFTER_SYNC".into());
    s.semi_sync.primary_wait_no_replica = Some(true);
    s.semi_sync.primary_timeout_ms = Some(60_000);
    s.registered_replicas = vec![key(R1), key(R2)];
    obs
}

/// P dies, R1 is promoted, P comes back holding 0-1-11, which nobody
/// received, and is fenced: the commands of that fencing.
fn p_returns_diverged(rig: &mut Rig) -> Vec<Command> {
    rig.primary_dies();
    assert!(rig.store(fresh_store()).iter().any(|c| matches!(c, Command::StartRecovery { .. })));
    let end = RecoveryEnd::Ended { id: 1, new_primary: Some(key(R1)), parked: false, alert: None, unrecorded: None };
    rig.ev(Event::RecoveryEnded(end));
    let pending = FenceEntry { instance: key(P), status: "pending".into(), detail: "failed primary".into() };
    rig.store(StoreView { fenced: vec![pending], epoch: epoch(R1), ..fresh_store() });
    rig.advance(10);
    rig.ev(Event::Observed(up(R1, rig.now, state(2, "0-1-10"))));
    rig.ev(Event::Observed(up(R2, rig.now, state(3, "0-1-10").replica_of(R1, "0-1-10"))));
    assert_eq!(rig.m.analysis().primary, Some(key(R1)));
    let fenced = Fenced { sessions_ended: 0, executed: maria("0-1-11"), took_ms: 2 };
    rig.ev(Event::Fence(FenceResult { instance: key(P), result: Ok(fenced) }))
}

#[test]
fn the_reading_taken_before_the_analysis_named_the_primary_counts_for_the_verdict() {
    // pivot's first reading of P finds it idle and is the one that names it
    // the primary; a commit waits at every later reading.
    let (m, _) = ClusterMachine::new(ClusterSettings { auto_rejoin: true, ..settings(true) }, crate::Millis(1_000));
    let mut rig = Rig { m, now: 1_000 };
    rig.store(StoreView { file_ok: true, ..StoreView::default() });
    rig.ev(Event::Observed(after_sync_primary(rig.now, 0)));
    assert_eq!(rig.m.analysis().primary, Some(key(P)), "named by its own first reading");
    let replica = |id| state(id, "0-1-10").replica_of(P, "0-1-10");
    rig.ev(Event::Observed(up(R1, rig.now, replica(2))));
    rig.ev(Event::Observed(up(R2, rig.now, replica(3))));
    assert_eq!(rig.m.analysis().primary, Some(key(P)));
    rig.advance(100);
    rig.ev(Event::Observed(after_sync_primary(rig.now, 1)));
    p_returns_diverged(&mut rig);
    let entry = rig.m.fenced().find(|f| f.instance == key(P)).unwrap().clone();
    assert!(entry.detail.contains("none of these could have been acknowledged"), "{}", entry.detail);
}

#[test]
fn a_diverged_former_primary_is_quarantined_with_the_acknowledged_verdict_and_its_file() {
    let mut rig = auto_rig();
    // P runs semi-sync AFTER_SYNC without fallback; a commit waits when it dies.
    for waiting in [0, 1] {
        rig.advance(100);
        rig.ev(Event::Observed(after_sync_primary(rig.now, waiting)));
    }
    let cmds = p_returns_diverged(&mut rig);
    let save = cmds.iter().find_map(|c| match c {
        Command::SaveExtra { instance, extra, start } => Some((instance.clone(), extra.to_string(), start.to_string())),
        _ => None,
    });
    assert_eq!(save, Some((key(P), "0-1-11".into(), "0-1-10".into())), "{cmds:?}");
    let alert = alerts(&cmds).join("\n");
    assert!(alert.contains("0-1-11") && alert.contains("none of these could have been acknowledged"), "{alert}");
    let entry = rig.m.fenced().find(|f| f.instance == key(P)).unwrap().clone();
    assert_eq!(entry.status, "quarantined");
    assert!(entry.detail.contains("none of these could have been acknowledged"), "{}", entry.detail);
    assert!(rejoins(&cmds).is_empty());
    // Saved: the path goes into the entry and an alert.
    let cmds = rig.ev(Event::ExtraSaved { instance: key(P), result: Ok("/var/lib/pivot/quarantine/x.sql".into()) });
    assert!(alerts(&cmds).iter().any(|a| a.contains("/var/lib/pivot/quarantine/x.sql")), "{cmds:?}");
    let recorded = cmds.iter().find_map(|c| if let Command::UpdateFence(e) = c { Some(e.clone()) } else { None });
    let recorded = recorded.expect("the path is recorded");
    assert!(recorded.detail.contains(&format!("{SAVED_TO}/var/lib/pivot/quarantine/x.sql")), "{}", recorded.detail);
    assert_eq!(recorded.status, "quarantined");
    // Fenced again (found writable): judged again, the same file named, not saved anew.
    let fenced = Fenced { sessions_ended: 1, executed: maria("0-1-11"), took_ms: 2 };
    let cmds = rig.ev(Event::Fence(FenceResult { instance: key(P), result: Ok(fenced) }));
    assert!(!cmds.iter().any(|c| matches!(c, Command::SaveExtra { .. })), "{cmds:?}");
    let recorded = cmds.iter().find_map(|c| if let Command::UpdateFence(e) = c { Some(e.clone()) } else { None });
    let detail = recorded.expect("judged again").detail;
    assert!(detail.ends_with(&format!("{SAVED_TO}/var/lib/pivot/quarantine/x.sql")), "{detail}");
    assert!(detail.contains("none of these could have been acknowledged"), "{detail}");
}

#[test]
fn a_quarantine_file_is_asked_once_while_its_save_runs() {
    let mut rig = auto_rig();
    rig.store(StoreView { fenced: vec![unjudged(X)], epoch: epoch(P), ..fresh_store() });
    let fenced = || Fenced { sessions_ended: 0, executed: maria("0-1-10,0-9-2"), took_ms: 2 };
    let first = rig.ev(Event::Fence(FenceResult { instance: key(X), result: Ok(fenced()) }));
    let again = rig.ev(Event::Fence(FenceResult { instance: key(X), result: Ok(fenced()) }));
    let saves = |cmds: &[Command]| cmds.iter().filter(|c| matches!(c, Command::SaveExtra { .. })).count();
    assert_eq!((saves(&first), saves(&again)), (1, 0), "{first:?} {again:?}");
    // It failed: said in the entry and an alert; not retried by itself.
    let cmds = rig.ev(Event::ExtraSaved { instance: key(X), result: Err("mariadb-binlog failed".into()) });
    assert!(alerts(&cmds).iter().any(|a| a.contains("could not be saved: mariadb-binlog failed")), "{cmds:?}");
}

#[test]
fn a_received_extra_transaction_may_have_been_acknowledged() {
    let mut rig = auto_rig();
    rig.store(StoreView { fenced: vec![unjudged(X)], epoch: epoch(P), ..fresh_store() });
    rig.advance(10);
    // R2 received 0-7-3 from X before X was cut off; P never did.
    let r2 = state(3, "0-1-10").replica_of(P, "0-1-10,0-7-3").io(IoThread::Running);
    rig.ev(Event::Observed(up(R2, rig.now, r2)));
    let cmds = acts(rig.m.handle(
        Event::Observed(up(X, rig.now, state(9, "0-1-10,0-7-3").read_only(true))),
        crate::time::Millis(rig.now),
    ));
    let alert = alerts(&cmds).join("\n");
    assert!(alert.contains("some may have been acknowledged: replica(s) 10.0.0.3:3306 received"), "{alert}");
    let _ = FailureKind::Refused;
}
