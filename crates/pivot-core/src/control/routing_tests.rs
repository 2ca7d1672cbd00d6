//! The cluster machine's routes, event by event: the table it publishes
//! (held while a recovery runs, released on its stored epoch) and the
//! adoption of a primary nobody recovered to.

use super::cluster::*;
use super::cluster_tests::*;
use crate::fixture::*;
use crate::instance::InstanceKey;
use crate::time::Millis;

fn epoch(number: u64, primary: &str, recovery_id: Option<i64>) -> crate::routes::EpochRecord {
    crate::routes::EpochRecord { number, primary: key(primary), recovery_id, since_ms: 0 }
}

/// Recovery `id` ended well, promoting `new_primary` (if any).
fn ended(id: i64, new_primary: Option<&str>) -> RecoveryEnd {
    RecoveryEnd::Ended { id, new_primary: new_primary.map(key), parked: false, alert: None, unrecorded: None }
}

fn tables(cmds: &[Command]) -> Vec<crate::routes::RouteTable> {
    cmds.iter().filter_map(|c| if let Command::PublishRoutes(t) = c { Some((**t).clone()) } else { None }).collect()
}

fn adoptions(cmds: &[Command]) -> Vec<(InstanceKey, Option<u64>)> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::AdoptPrimary { primary, expected } => Some((primary.clone(), *expected)),
            _ => None,
        })
        .collect()
}

impl Rig {
    /// Every command of an event, log lines included.
    fn raw(&mut self, e: Event) -> Vec<Command> {
        self.m.handle(e, Millis(self.now))
    }
}

#[test]
fn the_first_healthy_primary_is_adopted_once_and_routes_follow_the_stored_epoch() {
    let mut rig = Rig::new(true);
    let cmds = rig.raw(Event::Tick);
    assert_eq!(adoptions(&cmds), vec![], "asked when the primary was first seen, not again: {cmds:?}");
    assert_eq!(rig.m.route_table().write_target(), None, "no epoch, no writes anywhere");
    // Asked while the cluster came into view: exactly once.
    let mut rig2 = Rig::new(true);
    rig2.advance(10);
    let again = rig2.raw(Event::Observed(up(R1, rig2.now, state(2, "0-1-10").replica_of(P, "0-1-10"))));
    assert!(adoptions(&again).is_empty(), "not asked twice: {again:?}");
    // The store answers with epoch 1: the routes point at P, reads at the replicas.
    let cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() }));
    let t = tables(&cmds).pop().expect("a new table");
    assert_eq!((t.epoch, t.write_target()), (1, Some(&key(P))));
    assert_eq!(t.read_targets(), vec![key(R1), key(R2)]);
    // Nothing new to say: no table.
    let cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() }));
    assert!(tables(&cmds).is_empty(), "{cmds:?}");
}

#[test]
fn a_first_view_asks_for_epoch_one() {
    let (mut m, _) = ClusterMachine::new(settings(true), Millis(1_000));
    let mut cmds = m.handle(Event::Store(fresh_store()), Millis(1_000));
    let mut p = up(P, 1_000, state(1, "0-1-10").read_only(false));
    if let Some(s) = obs_state_mut(&mut p) {
        s.registered_replicas = vec![key(R1)];
    }
    cmds.extend(m.handle(Event::Observed(p), Millis(1_001)));
    assert!(adoptions(&cmds).is_empty(), "R1 not observed yet: the view is incomplete");
    cmds.extend(m.handle(Event::Observed(up(R1, 1_002, state(2, "0-1-10").replica_of(P, "0-1-10"))), Millis(1_002)));
    assert_eq!(adoptions(&cmds), vec![(key(P), None)]);
}

#[test]
fn writes_are_held_from_the_recovery_start_until_its_epoch_is_read() {
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    assert!(!rig.m.route_table().hold);
    rig.primary_dies();
    let cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() }));
    assert!(starts(&cmds));
    let t = tables(&cmds).pop().expect("the hold is published");
    assert!(t.hold && t.write_target().is_none(), "{t:?}");
    // The store shows it running, with no epoch of its own yet: still held.
    let running = RunningRecovery { id: 3, owner: "me".into(), ours: true, owner_gone: false };
    rig.store(StoreView { running: Some(running.clone()), epoch: Some(epoch(1, P, None)), ..fresh_store() });
    assert!(rig.m.route_table().hold);
    // Its promotion is stored (epoch 2, R1): released to R1 while it goes on.
    let cmds = rig.raw(Event::Store(StoreView {
        running: Some(running),
        epoch: Some(epoch(2, R1, Some(3))),
        ..fresh_store()
    }));
    let t = tables(&cmds).pop().expect("released");
    assert_eq!((t.hold, t.epoch, t.write_target()), (false, 2, Some(&key(R1))));
    assert!(adoptions(&cmds).is_empty(), "a running recovery's primary is never adopted");
}

#[test]
fn a_recovery_that_ended_keeps_writes_held_until_its_epoch_is_read() {
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.primary_dies();
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    let end = ended(3, Some(R1));
    rig.raw(Event::RecoveryEnded(end));
    let t = rig.m.route_table();
    assert!(t.hold, "the old epoch's primary must not get writes back: {t:?}");
    let cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(2, R1, Some(3))), ..fresh_store() }));
    let t = tables(&cmds).pop().expect("released");
    assert_eq!((t.hold, t.write_target()), (false, Some(&key(R1))));
}

#[test]
fn a_primary_promoted_outside_pivot_is_adopted_with_compare_and_set() {
    let mut rig = Rig::new(true);
    // The epoch names R2, but P is the healthy primary everybody follows.
    let cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(4, R2, Some(9))), ..fresh_store() }));
    assert_eq!(adoptions(&cmds), vec![(key(P), Some(4))]);
    // Not while the store says a recovery runs.
    let mut rig = Rig::new(true);
    let running = RunningRecovery { id: 5, owner: "other".into(), ours: false, owner_gone: false };
    let cmds = rig.raw(Event::Store(StoreView {
        running: Some(running),
        epoch: Some(epoch(4, R2, Some(9))),
        ..fresh_store()
    }));
    assert!(adoptions(&cmds).is_empty(), "{cmds:?}");
    // Never a fenced former primary.
    let mut rig = Rig::new(true);
    let fenced = FenceEntry { instance: key(P), status: "read_only".into(), detail: String::new() };
    let cmds =
        rig.raw(Event::Store(StoreView { fenced: vec![fenced], epoch: Some(epoch(4, R2, Some(9))), ..fresh_store() }));
    assert!(adoptions(&cmds).is_empty(), "{cmds:?}");
    // Nor while the state file is deleted or replaced (the epoch read from it means nothing).
    let mut rig = Rig::new(true);
    let cmds = rig.raw(Event::Store(StoreView {
        file_ok: false,
        problem: Some("state file replaced".into()),
        epoch: Some(epoch(4, R2, Some(9))),
        ..fresh_store()
    }));
    assert!(adoptions(&cmds).is_empty(), "{cmds:?}");
}

#[test]
fn an_adoption_holds_writes_from_before_its_epoch_is_stored_until_it_is_read_or_failed() {
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(4, P, None)), ..fresh_store() });
    let old = StoreView { epoch: Some(epoch(4, R2, Some(9))), ..fresh_store() };
    rig.advance(10);
    // The epoch names R2, P is the healthy primary: the table that holds
    // writes goes out before the shell stores epoch 5 (the simulator's seed
    // 214 saw a table still naming epoch 4's primary once 5 was stored).
    let cmds = rig.raw(Event::Store(old.clone()));
    let adopt = cmds.iter().position(|c| matches!(c, Command::AdoptPrimary { .. })).expect("adopted");
    let held = cmds.iter().position(|c| matches!(c, Command::PublishRoutes(t) if t.hold && t.write_target().is_none()));
    assert!(held.is_some_and(|h| h < adopt), "held before the adoption: {cmds:?}");
    // A read that still says epoch 4 (answered before the write, or the
    // write failed): still held, not asked again, for a second; then the
    // write counts as failed: asked again (and held again).
    let cmds = rig.raw(Event::Store(old.clone()));
    assert!(adoptions(&cmds).is_empty() && rig.m.route_table().hold, "{cmds:?}");
    rig.advance(999);
    assert!(adoptions(&rig.raw(Event::Store(old.clone()))).is_empty());
    assert!(rig.m.route_table().hold);
    rig.advance(1);
    let cmds = rig.raw(Event::Store(old));
    assert_eq!(adoptions(&cmds), vec![(key(P), Some(4))]);
    assert!(!cmds.iter().any(|c| matches!(c, Command::Log { text, .. } if text.contains("storing a new epoch"))));
    assert!(rig.m.route_table().hold);
    // Stored and read: writes go to P under epoch 5.
    rig.raw(Event::Store(StoreView { epoch: Some(epoch(5, P, None)), ..fresh_store() }));
    let t = rig.m.route_table();
    assert_eq!((t.hold, t.epoch, t.write_target()), (false, 5, Some(&key(P))));
}

#[test]
fn a_failed_recovery_task_never_hands_writes_back_to_the_old_primary_before_the_store_is_read() {
    // The task panicked after the promotion and the fence registration,
    // before its epoch was stored: until the store is read again (and the
    // recovery resumed), no table may send writes to the old primary.
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.primary_dies();
    assert!(starts(&rig.raw(Event::Store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() }))));
    let ours = RunningRecovery { id: 5, owner: "me".into(), ours: true, owner_gone: false };
    let fenced = FenceEntry { instance: key(P), status: "pending".into(), detail: String::new() };
    let running =
        StoreView { running: Some(ours), fenced: vec![fenced], epoch: Some(epoch(1, P, None)), ..fresh_store() };
    rig.raw(Event::Store(running.clone()));
    assert!(rig.m.route_table().hold);
    let cmds = rig.raw(Event::RecoveryEnded(RecoveryEnd::TaskFailed { reason: "panicked".into() }));
    for t in tables(&cmds) {
        assert_eq!(t.write_target(), None, "writes handed back to the old primary: {t:?}");
    }
    assert_eq!(rig.m.route_table().write_target(), None);
    // The store is read: the recovery is resumed, writes still held.
    let cmds = rig.raw(Event::Store(running));
    assert!(cmds.iter().any(|c| matches!(c, Command::ResumeRecovery { id: 5, .. })), "{cmds:?}");
    assert_eq!(rig.m.route_table().write_target(), None);
}

#[test]
fn the_epochs_primary_fenced_as_a_split_brain_intruder_gets_no_writes() {
    // Promoted by hand: R1 follows R2, R2 is made writable, P (the epoch's
    // primary) keeps running writable with nobody following it. pivot
    // fences P as the intruder; until R2 is adopted, no table may send
    // writes to P (in the fence list, about to turn read-only).
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    assert_eq!(rig.m.route_table().write_target(), Some(&key(P)));
    rig.advance(100);
    let mut cmds = rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-10").replica_of(R2, "0-1-10"))));
    let mut r2 = up(R2, rig.now + 1, state(3, "0-1-10").read_only(false));
    if let Some(s) = obs_state_mut(&mut r2) {
        s.registered_replicas = vec![key(R1)];
    }
    cmds.extend(rig.raw(Event::Observed(r2)));
    cmds.extend(rig.raw(Event::Observed(up(P, rig.now + 2, state(1, "0-1-10").read_only(false)))));
    rig.advance(2);
    cmds.extend(rig.refresh_all(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() }));
    assert!(cmds.contains(&Command::FenceNow(key(P))), "P is the intruder: {cmds:?}");
    assert!(rig.m.fenced().any(|f| f.instance == key(P)));
    let after = cmds.iter().position(|c| *c == Command::FenceNow(key(P))).unwrap();
    for t in tables(&cmds[after..]) {
        assert_ne!(t.write_target(), Some(&key(P)), "writes sent to the fenced intruder: {t:?}");
    }
    let t = rig.m.route_table();
    assert_ne!(t.write_target(), Some(&key(P)), "{t:?}");
    assert_eq!(crate::routes::answer(&t, &key(P), crate::routes::HealthCheck::Primary).status, 503);
}

#[test]
fn writes_held_for_a_promotion_whose_epoch_was_never_stored_follow_a_newer_epoch() {
    // Recovery 3 promoted R1 but could not store its epoch (the state file
    // was full): writes wait for R1's epoch. R1 is never given one; later a
    // newer epoch names R2 (another recovery, an adoption). The routes must
    // follow it, not wait for R1's epoch forever.
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.primary_dies();
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    let end = ended(3, Some(R1));
    rig.raw(Event::RecoveryEnded(end));
    rig.raw(Event::Store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() }));
    assert!(rig.m.route_table().hold, "held while R1 has no epoch");
    rig.advance(1_000);
    let cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(2, R2, Some(4))), ..fresh_store() }));
    let t = rig.m.route_table();
    assert_eq!((t.epoch, t.hold, t.write_target()), (2, false, Some(&key(R2))), "{cmds:?}");
}

#[test]
fn an_adoption_is_decided_on_a_fresh_read_of_the_store() {
    // `pivot failover` in another process promoted P a moment ago; this
    // machine's last store read (before that recovery started) is most of
    // a second old. It must read the store again before adopting: the
    // recovery running elsewhere forbids it.
    let (mut m, _) = ClusterMachine::new(settings(true), Millis(1_000));
    m.handle(Event::Store(StoreView { epoch: Some(epoch(4, R2, None)), ..fresh_store() }), Millis(1_000));
    let mut p = up(P, 1_800, state(1, "0-1-10").read_only(false));
    if let Some(s) = obs_state_mut(&mut p) {
        s.registered_replicas = vec![key(R1)];
    }
    let mut cmds = m.handle(Event::Observed(p), Millis(1_800));
    cmds.extend(m.handle(Event::Observed(up(R1, 1_801, state(2, "0-1-10").replica_of(P, "0-1-10"))), Millis(1_801)));
    assert!(adoptions(&cmds).is_empty(), "adopted on a store read 800 ms old: {cmds:?}");
    assert!(cmds.contains(&Command::ReadStore), "{cmds:?}");
    let running = RunningRecovery { id: 7, owner: "pivot failover".into(), ours: false, owner_gone: false };
    let cmds = m.handle(
        Event::Store(StoreView { running: Some(running), epoch: Some(epoch(4, R2, None)), ..fresh_store() }),
        Millis(1_802),
    );
    assert!(adoptions(&cmds).is_empty(), "a recovery runs elsewhere: {cmds:?}");
    // It ended: readings taken since (not the ones from while it ran) and
    // a fresh read allow it.
    let cmds = m.handle(Event::Store(StoreView { epoch: Some(epoch(4, R2, None)), ..fresh_store() }), Millis(1_803));
    assert!(adoptions(&cmds).is_empty(), "readings from while it ran: {cmds:?}");
    let mut p = up(P, 1_804, state(1, "0-1-10").read_only(false));
    if let Some(s) = obs_state_mut(&mut p) {
        s.registered_replicas = vec![key(R1)];
    }
    let mut cmds = m.handle(Event::Observed(p), Millis(1_804));
    cmds.extend(m.handle(Event::Observed(up(R1, 1_805, state(2, "0-1-10").replica_of(P, "0-1-10"))), Millis(1_805)));
    assert_eq!(adoptions(&cmds), vec![(key(P), Some(4))]);
}

#[test]
fn writes_held_for_a_promotion_are_not_released_to_the_old_epoch_after_a_failed_read() {
    // The read just before the recovery ended could not get the epoch (a
    // store error: no epoch); the next read shows the old epoch again. That
    // is not a newer epoch: writes stay held for R1's.
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.primary_dies();
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.raw(Event::Store(StoreView { problem: Some("cannot read the epoch: disk I/O error".into()), ..fresh_store() }));
    let end = ended(3, Some(R1));
    rig.raw(Event::RecoveryEnded(end));
    rig.raw(Event::Store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() }));
    let t = rig.m.route_table();
    assert!(t.hold && t.write_target().is_none(), "released to the old epoch: {t:?}");
}

#[test]
fn nothing_is_adopted_on_a_store_read_that_failed() {
    // The read of the running recovery failed (it says none): another
    // process may be in the middle of one. No adoption on such a read.
    let mut rig = Rig::new(true);
    let cmds = rig.raw(Event::Store(StoreView {
        problem: Some("cannot read the state file: disk I/O error".into()),
        epoch: Some(epoch(4, R2, Some(9))),
        ..fresh_store()
    }));
    assert!(adoptions(&cmds).is_empty(), "{cmds:?}");
    let cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(4, R2, Some(9))), ..fresh_store() }));
    assert_eq!(adoptions(&cmds), vec![(key(P), Some(4))], "a good read allows it");
}

/// A switchover's old primary was still writable in the last readings taken
/// before the recovery ended: those readings must not adopt it back as a new
/// epoch (found by the simulator: seed 79 with switchovers).
#[test]
fn the_old_primary_of_a_switchover_is_not_adopted_on_readings_from_before_it_ended() {
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    let cmds = rig.raw(Event::SwitchoverRequested { request: 7, to: Some(key(R1)) });
    assert!(cmds.iter().any(|c| matches!(c, Command::StartSwitchover { request: 7, .. })), "{cmds:?}");
    rig.advance(50);
    let end = ended(1, Some(R1));
    let mut cmds = rig.raw(Event::RecoveryEnded(end));
    cmds.extend(rig.raw(Event::Store(StoreView { epoch: Some(epoch(2, R1, Some(1))), ..fresh_store() })));
    assert_eq!(adoptions(&cmds), vec![], "P is still writable in the old readings: {cmds:?}");
    assert_eq!(rig.m.route_table().write_target(), Some(&key(R1)));
    // Fresh readings: R1 the primary, P its replica. Nothing to adopt either.
    rig.advance(10);
    let mut cmds = rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-11"))));
    cmds.extend(rig.raw(Event::Observed(up(P, rig.now, state(1, "0-1-11").replica_of(R1, "0-1-11")))));
    cmds.extend(rig.raw(Event::Observed(up(R2, rig.now, state(3, "0-1-11").replica_of(R1, "0-1-11")))));
    assert_eq!(adoptions(&cmds), vec![], "{cmds:?}");
    assert_eq!(rig.m.analysis().primary, Some(key(R1)));
}

#[test]
fn a_switchover_passes_the_same_gate_as_a_failover() {
    let refused = |cmds: &[Command]| {
        cmds.iter()
            .find_map(|c| match c {
                Command::RefuseSwitchover { request: 1, reason } => Some(reason.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("not refused: {cmds:?}"))
    };
    let ask = Event::SwitchoverRequested { request: 1, to: None };
    // Another process runs a recovery.
    let mut rig = Rig::new(true);
    let running = RunningRecovery { id: 4, owner: "pivot failover 9".into(), ours: false, owner_gone: false };
    rig.store(StoreView { running: Some(running), epoch: Some(epoch(1, P, None)), ..fresh_store() });
    assert!(refused(&rig.raw(ask.clone())).contains("recovery (4)"));
    // The state file is not usable.
    let mut rig = Rig::new(true);
    rig.store(StoreView { problem: Some("disk I/O error".into()), ..fresh_store() });
    assert!(refused(&rig.raw(ask.clone())).contains("disk I/O error"));
    // This process may not act.
    let mut rig = Rig::new(true);
    rig.raw(Event::MayAct(false));
    assert!(refused(&rig.raw(ask.clone())).contains("may not act"));
    // The primary is gone: a failover's business.
    let mut rig = Rig::new(true);
    rig.primary_dies();
    assert!(
        refused(&rig.raw(ask.clone())).contains("not healthy") || refused(&rig.raw(ask.clone())).contains("running")
    );
    // A healthy cluster: started, and a second request meanwhile refused.
    let mut rig = Rig::new(true);
    let cmds = rig.raw(ask.clone());
    assert!(cmds
        .iter()
        .any(|c| matches!(c, Command::StartSwitchover { request: 1, primary, .. } if *primary == key(P))));
    assert!(refused(&rig.raw(ask)).contains("is running"));
}

/// While another process's recovery runs, what looks like a split brain (its
/// candidate writable, the replicas still following the old primary) is not
/// "repaired"; without a fresh store read no repair happens at all.
#[test]
fn no_repair_while_another_process_recovers_and_none_without_a_fresh_store_read() {
    let split = |rig: &mut Rig| {
        rig.advance(10);
        rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-10"))))
    };
    let fences = |cmds: &[Command]| cmds.iter().any(|c| matches!(c, Command::FenceNow(_) | Command::RecordFence(_)));
    // Readings of everyone after the split brain was first seen.
    let confirm = |rig: &mut Rig| {
        rig.advance(5);
        let mut cmds = rig.raw(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
        cmds.extend(rig.raw(Event::Observed(up(R2, rig.now, state(3, "0-1-10").replica_of(P, "0-1-10")))));
        cmds.extend(rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-10")))));
        cmds
    };
    let mut rig = Rig::new(true);
    let running = RunningRecovery { id: 4, owner: "pivot switchover 9".into(), ours: false, owner_gone: false };
    rig.store(StoreView { running: Some(running), epoch: Some(epoch(1, P, None)), ..fresh_store() });
    let cmds = split(&mut rig);
    assert!(!fences(&cmds), "a recovery runs elsewhere: {cmds:?}");
    // No recovery known, but the last store read is old: read it first.
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.advance(1_000);
    let mut cmds = split(&mut rig);
    cmds.extend(confirm(&mut rig));
    assert!(!fences(&cmds) && cmds.contains(&Command::ReadStore), "{cmds:?}");
    // The fresh read shows a recovery: nothing. Shows none: the intruder is fenced.
    let running = RunningRecovery { id: 4, owner: "pivot switchover 9".into(), ours: false, owner_gone: false };
    let cmds = rig.raw(Event::Store(StoreView { running: Some(running), ..fresh_store() }));
    assert!(!fences(&cmds), "{cmds:?}");
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.advance(1_000);
    split(&mut rig);
    confirm(&mut rig);
    let cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() }));
    assert!(cmds.iter().any(|c| matches!(c, Command::FenceNow(k) if *k == key(R1))), "{cmds:?}");
}

/// A replica found writable when no split brain explains it (the primary
/// itself came back read-only, say) is made read-only, alerted once, and
/// again if it turns writable again: a write there would be errant.
#[test]
fn a_writable_replica_is_made_read_only() {
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    let writable_replica = |rig: &mut Rig| {
        rig.advance(10);
        let mut cmds = rig.raw(Event::Observed(up(P, rig.now, state(1, "0-1-10").read_only(true))));
        let r1 = state(2, "0-1-10").replica_of(P, "0-1-10").read_only(false);
        cmds.extend(rig.raw(Event::Observed(up(R1, rig.now, r1))));
        cmds
    };
    let cmds = writable_replica(&mut rig);
    assert!(cmds.contains(&Command::EnforceReadOnly(key(R1))), "{cmds:?}");
    assert!(cmds.iter().any(|c| matches!(c, Command::Alert { text, .. } if text.contains("writable"))), "{cmds:?}");
    assert!(!writable_replica(&mut rig).contains(&Command::EnforceReadOnly(key(R1))), "asked once");
    rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-10").replica_of(P, "0-1-10").read_only(true))));
    assert!(writable_replica(&mut rig).contains(&Command::EnforceReadOnly(key(R1))), "writable again: asked again");
    // The primary itself is never "a writable replica".
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.advance(10);
    let cmds = rig.raw(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
    assert!(!cmds.iter().any(|c| matches!(c, Command::EnforceReadOnly(_))), "{cmds:?}");
}

/// A switchover takes its old primary off the fence list at its end; a
/// reading of that old primary that arrives before the store is read again
/// must not write a verdict (and so the entry) back (found by
/// `pivot-bench switchover`: every later switchover was refused).
#[test]
fn a_released_old_primary_is_not_written_back_to_the_fence_list() {
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.raw(Event::SwitchoverRequested { request: 1, to: Some(key(R1)) });
    let entry =
        FenceEntry { instance: key(P), status: "read_only".into(), detail: "old primary of switchover 1".into() };
    let running = RunningRecovery { id: 1, owner: "me".into(), ours: true, owner_gone: false };
    rig.raw(Event::Store(StoreView { running: Some(running), fenced: vec![entry], ..fresh_store() }));
    rig.advance(50);
    let end = ended(1, Some(R1));
    let cmds = rig.raw(Event::RecoveryEnded(end));
    assert!(cmds.contains(&Command::ReadStore));
    rig.advance(5);
    let mut cmds = rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-11"))));
    cmds.extend(rig.raw(Event::Observed(up(P, rig.now, state(1, "0-1-11").replica_of(R1, "0-1-11")))));
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::RecordFence(e) | Command::UpdateFence(e) if e.instance == key(P))),
        "{cmds:?}"
    );
}

/// Right after a switchover ends, the new primary's fresh reading (writable)
/// meets the old primary's reading from before the switchover (writable, the
/// replicas on it): no split brain is resolved on that mix, or the new
/// primary would be fenced (found by `pivot-bench switchover`).
#[test]
fn the_new_primary_is_not_fenced_on_readings_from_before_the_switchover() {
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.raw(Event::SwitchoverRequested { request: 1, to: Some(key(R1)) });
    rig.advance(50);
    let end = ended(1, Some(R1));
    rig.raw(Event::RecoveryEnded(end));
    let mut cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(2, R1, Some(1))), ..fresh_store() }));
    rig.advance(3);
    cmds.extend(rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-11")))));
    let fenced = |cmds: &[Command]| {
        cmds.iter().any(|c| matches!(c, Command::FenceNow(k) if *k == key(R1)))
            || cmds
                .iter()
                .any(|c| matches!(c, Command::RecordFence(e) | Command::UpdateFence(e) if e.instance == key(R1)))
    };
    assert!(!fenced(&cmds), "{cmds:?}");
    // Fresh readings of everyone: the switchover's shape, nothing to repair.
    cmds.extend(rig.raw(Event::Observed(up(P, rig.now, state(1, "0-1-11").replica_of(R1, "0-1-11")))));
    cmds.extend(rig.raw(Event::Observed(up(R2, rig.now, state(3, "0-1-11").replica_of(R1, "0-1-11")))));
    assert!(!fenced(&cmds), "{cmds:?}");
    assert_eq!(rig.m.analysis().primary, Some(key(R1)));
}

/// The same after another process's switchover (`pivot switchover --local`):
/// once the store no longer shows it running, only readings taken since
/// count (found by the integration test injecting a failure after each step).
#[test]
fn after_another_process_recovered_only_fresh_readings_count() {
    let mut rig = Rig::new(true);
    let running = RunningRecovery { id: 3, owner: "pivot switchover 77".into(), ours: false, owner_gone: false };
    rig.store(StoreView { running: Some(running), epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.advance(200);
    let cmds = rig.raw(Event::Store(StoreView { epoch: Some(epoch(2, R1, Some(3))), ..fresh_store() }));
    assert!(cmds.contains(&Command::ProbeNow(key(P))), "every instance probed again: {cmds:?}");
    rig.advance(3);
    let cmds = rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-11"))));
    assert!(!cmds.iter().any(|c| matches!(c, Command::FenceNow(_))), "P's old reading is stale: {cmds:?}");
}

/// Right after a recovery (not every instance observed since), and with an
/// instance never observed, a switchover waits.
#[test]
fn a_switchover_waits_for_readings_of_every_instance() {
    let refused = |cmds: &[Command]| cmds.iter().any(|c| matches!(c, Command::RefuseSwitchover { .. }));
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.advance(10);
    let end = ended(1, None);
    rig.raw(Event::RecoveryEnded(end));
    let cmds = rig.raw(Event::SwitchoverRequested { request: 1, to: None });
    assert!(refused(&cmds), "not observed since the last recovery: {cmds:?}");
    rig.advance(5);
    for (k, st) in [
        (P, state(1, "0-1-10")),
        (R1, state(2, "0-1-10").replica_of(P, "0-1-10")),
        (R2, state(3, "0-1-10").replica_of(P, "0-1-10")),
    ] {
        rig.raw(Event::Observed(up(k, rig.now, st)));
    }
    rig.raw(Event::Store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() }));
    let cmds = rig.raw(Event::SwitchoverRequested { request: 2, to: None });
    assert!(cmds.iter().any(|c| matches!(c, Command::StartSwitchover { request: 2, .. })), "{cmds:?}");
}

/// Another process's switchover can fall between two store reads: the new
/// primary's fresh reading (writable) meets the old primary's older one
/// (writable, the replicas on it). That is no split brain until readings of
/// everyone taken after confirm it; here they show the switchover's shape
/// (found by the integration test injecting a failure after each step).
#[test]
fn a_split_brain_is_confirmed_on_fresh_readings_before_anything_is_fenced() {
    let mut rig = Rig::new(true);
    rig.store(StoreView { epoch: Some(epoch(1, P, None)), ..fresh_store() });
    rig.advance(100);
    let cmds = rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-11"))));
    assert!(!cmds.iter().any(|c| matches!(c, Command::FenceNow(_))), "{cmds:?}");
    assert!(cmds.contains(&Command::ProbeNow(key(P))), "everyone read again: {cmds:?}");
    rig.advance(5);
    let mut cmds = rig.raw(Event::Observed(up(P, rig.now, state(1, "0-1-11").replica_of(R1, "0-1-11"))));
    cmds.extend(rig.raw(Event::Observed(up(R2, rig.now, state(3, "0-1-11").replica_of(R1, "0-1-11")))));
    cmds.extend(rig.raw(Event::Observed(up(R1, rig.now, state(2, "0-1-11")))));
    cmds.extend(rig.raw(Event::Store(StoreView { epoch: Some(epoch(2, R1, Some(9))), ..fresh_store() })));
    assert!(!cmds.iter().any(|c| matches!(c, Command::FenceNow(_) | Command::RecordFence(_))), "{cmds:?}");
}
