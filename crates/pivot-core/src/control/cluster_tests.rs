//! The cluster machine, event by event: what it asks the shell to do.

use super::cluster::*;
use crate::analysis::DetectionSettings;
use crate::fixture::*;
use crate::instance::InstanceKey;
use crate::observation::{FailureKind, IoThread};
use crate::time::Millis;

const P: &str = "10.0.0.1:3306";
const R1: &str = "10.0.0.2:3306";
const R2: &str = "10.0.0.3:3306";

fn settings(automatic: bool) -> ClusterSettings {
    ClusterSettings {
        name: "main".into(),
        seeds: vec![key(P)],
        detection: DetectionSettings::default(),
        automatic,
        max_instances: 16,
        route_max_lag_s: 10,
    }
}

/// A machine that has seen a healthy cluster: P with replicas R1, R2.
struct Rig {
    m: ClusterMachine,
    now: u64,
}

impl Rig {
    fn new(automatic: bool) -> Rig {
        let (m, first) = ClusterMachine::new(settings(automatic), Millis(1_000));
        assert_eq!(acts(first), vec![Command::ReadStore, Command::Watch(key(P))], "read the store, watch the seeds");
        let mut rig = Rig { m, now: 1_000 };
        rig.store(StoreView { file_ok: true, ..StoreView::default() });
        let primary = state(1, "0-1-10").semi_sync_primary(2, 0);
        let replica = |id| state(id, "0-1-10").replica_of(P, "0-1-10");
        let mut p = primary.clone();
        p = p.semi_sync_primary(2, 0);
        let mut obs = up(P, rig.now, p);
        if let Some(s) = obs_state_mut(&mut obs) {
            s.registered_replicas = vec![key(R1), key(R2)];
        }
        let mut cmds = rig.ev(Event::Observed(obs));
        assert!(cmds.contains(&Command::Watch(key(R1))) && cmds.contains(&Command::Watch(key(R2))), "{cmds:?}");
        cmds.extend(rig.ev(Event::Observed(up(R1, rig.now, replica(2)))));
        cmds.extend(rig.ev(Event::Observed(up(R2, rig.now, replica(3)))));
        assert_eq!(cmds.iter().filter(|c| **c == Command::WatchPrimary(key(P))).count(), 1, "watched once: {cmds:?}");
        assert_eq!(rig.m.analysis().code, crate::analysis::Code::Healthy);
        rig
    }

    /// Handle an event; the commands other than log lines.
    fn ev(&mut self, e: Event) -> Vec<Command> {
        acts(self.m.handle(e, Millis(self.now)))
    }

    fn store(&mut self, s: StoreView) -> Vec<Command> {
        self.ev(Event::Store(s))
    }

    fn advance(&mut self, ms: u64) {
        self.now += ms;
    }

    /// The primary crashes; the replicas confirm. Returns every command.
    fn primary_dies(&mut self) -> Vec<Command> {
        self.advance(300);
        let mut all = self.ev(Event::Observed(down(P, self.now, FailureKind::Refused)));
        self.advance(5);
        let r = |id| state(id, "0-1-10").replica_of(P, "0-1-10").io(IoThread::Connecting);
        all.extend(self.ev(Event::Observed(up(R1, self.now, r(2)))));
        all.extend(self.ev(Event::Observed(up(R2, self.now, r(3)))));
        all
    }
}

/// The commands other than log lines and routes (tested on their own).
fn acts(cmds: Vec<Command>) -> Vec<Command> {
    cmds.into_iter()
        .filter(|c| !matches!(c, Command::Log { .. } | Command::PublishRoutes(_) | Command::AdoptPrimary { .. }))
        .collect()
}

fn obs_state_mut(o: &mut crate::observation::Observation) -> Option<&mut crate::observation::InstanceState> {
    match &mut o.outcome {
        crate::observation::ProbeOutcome::Reachable { state } => Some(state),
        _ => None,
    }
}

fn starts(cmds: &[Command]) -> bool {
    cmds.iter().any(|c| matches!(c, Command::StartRecovery { .. }))
}

fn alerts(cmds: &[Command]) -> Vec<String> {
    cmds.iter().filter_map(|c| if let Command::Alert { text, .. } = c { Some(text.clone()) } else { None }).collect()
}

fn fresh_store() -> StoreView {
    StoreView { file_ok: true, ..StoreView::default() }
}

#[test]
fn a_dead_primary_speeds_probes_up_rereads_the_store_then_recovers() {
    let mut rig = Rig::new(true);
    rig.advance(300);
    let cmds = rig.ev(Event::Observed(down(P, rig.now, FailureKind::Refused)));
    assert!(cmds.contains(&Command::SetFast(true)), "{cmds:?}");
    assert!(cmds.contains(&Command::ProbeNow(key(R1))) && cmds.contains(&Command::ProbeNow(key(R2))));
    rig.advance(5);
    let r = |id| state(id, "0-1-10").replica_of(P, "0-1-10").io(IoThread::Connecting);
    rig.ev(Event::Observed(up(R1, rig.now, r(2))));
    let cmds = rig.ev(Event::Observed(up(R2, rig.now, r(3))));
    assert!(!starts(&cmds), "the store is read first: {cmds:?}");
    assert!(cmds.contains(&Command::ReadStore));
    let cmds = rig.store(fresh_store());
    assert!(starts(&cmds), "{cmds:?}");
    assert_eq!(rig.m.running_recovery(), None, "its id is not known yet");
    let ours = RunningRecovery { id: 3, owner: "me".into(), ours: true, owner_gone: false };
    rig.store(StoreView { running: Some(ours), ..fresh_store() });
    assert_eq!(rig.m.running_recovery(), Some(3), "the store tells it");
    // Nothing starts twice while it runs.
    rig.advance(10);
    let cmds = rig.ev(Event::Observed(down(P, rig.now, FailureKind::Refused)));
    assert!(!starts(&cmds));
}

#[test]
fn the_gate_holds_automatic_recovery_back_when_it_must() {
    // Off: an alert, no recovery.
    let mut rig = Rig::new(false);
    let cmds = rig.primary_dies();
    assert!(!starts(&cmds));
    assert!(alerts(&cmds).iter().any(|a| a.contains("automatic failover is off")), "{cmds:?}");

    // Another process runs a recovery under a live lease: nothing.
    let mut rig = Rig::new(true);
    let running = RunningRecovery { id: 4, owner: "pivot failover".into(), ours: false, owner_gone: false };
    let mut cmds = rig.store(StoreView { running: Some(running.clone()), ..fresh_store() });
    cmds.extend(rig.primary_dies());
    cmds.extend(rig.store(StoreView { running: Some(running), ..fresh_store() }));
    assert!(!starts(&cmds) && alerts(&cmds).is_empty(), "{cmds:?}");
    assert!(!cmds.iter().any(|c| matches!(c, Command::ResumeRecovery { .. })), "its owner holds it: {cmds:?}");

    // Blocked after a recent recovery: an alert naming the block.
    let mut rig = Rig::new(true);
    let block = BlockInfo { until: Millis(100_000), until_wall: 0, recovery_id: Some(3) };
    rig.store(StoreView { block: Some(block), ..fresh_store() });
    let cmds = rig.primary_dies();
    assert!(!starts(&cmds));
    assert!(alerts(&cmds).iter().any(|a| a.contains("blocked by recovery 3")), "{cmds:?}");

    // This process may not act (another pivot node holds the lease): nothing.
    let mut rig = Rig::new(true);
    rig.ev(Event::MayAct(false));
    let mut cmds = rig.primary_dies();
    cmds.extend(rig.store(fresh_store()));
    assert!(!starts(&cmds), "{cmds:?}");
}

#[test]
fn an_aborted_attempt_backs_off_and_alerts_once() {
    let mut rig = Rig::new(true);
    rig.primary_dies();
    assert!(starts(&rig.store(fresh_store())));
    let end = RecoveryEnd::Ended {
        id: 1,
        new_primary: None,
        parked: false,
        alert: Some("aborted: boom".into()),
        unrecorded: None,
    };
    let cmds = rig.ev(Event::RecoveryEnded(end));
    assert_eq!(alerts(&cmds), vec!["aborted: boom".to_string()]);
    assert!(cmds.contains(&Command::ProbeNow(key(R1))), "fresh readings before judging again");
    let mut later = rig.primary_dies();
    later.extend(rig.store(fresh_store()));
    assert!(!starts(&later), "backing off");
    let texts = alerts(&later);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("next attempt in 5 s"), "{texts:?}");
    let again = rig.primary_dies();
    assert!(alerts(&again).is_empty(), "the same alert once");
    rig.advance(5_000);
    let mut after = rig.primary_dies();
    after.extend(rig.store(fresh_store()));
    assert!(starts(&after), "the backoff is over: {after:?}");
}

#[test]
fn a_recovery_left_running_is_resumed_once_the_view_is_complete() {
    let (mut m, _) = ClusterMachine::new(settings(true), Millis(1_000));
    let gone = RunningRecovery { id: 9, owner: "pivot run, pid 1".into(), ours: false, owner_gone: true };
    let cmds = m.handle(Event::Store(StoreView { running: Some(gone), ..fresh_store() }), Millis(1_000));
    assert!(!cmds.iter().any(|c| matches!(c, Command::ResumeRecovery { .. })), "not before P was observed");
    let cmds = m.handle(Event::Observed(up(P, 1_010, state(1, "0-1-10"))), Millis(1_010));
    assert!(cmds.iter().any(|c| matches!(c, Command::ResumeRecovery { id: 9, .. })), "{cmds:?}");
    assert_eq!(m.running_recovery(), Some(9));
}

#[test]
fn a_failed_recovery_task_is_resumed_from_the_store_and_alerted() {
    let mut rig = Rig::new(true);
    rig.primary_dies();
    assert!(starts(&rig.store(fresh_store())));
    let cmds = rig.ev(Event::RecoveryEnded(RecoveryEnd::TaskFailed { reason: "panicked".into() }));
    assert!(alerts(&cmds).iter().any(|a| a.contains("the recovery task failed (panicked)")), "{cmds:?}");
    assert!(cmds.contains(&Command::ReadStore));
    let ours = RunningRecovery { id: 5, owner: "me".into(), ours: true, owner_gone: false };
    let cmds = rig.store(StoreView { running: Some(ours), ..fresh_store() });
    assert!(cmds.iter().any(|c| matches!(c, Command::ResumeRecovery { id: 5, .. })), "{cmds:?}");
    assert!(rig.m.problems().any(|p| p.contains("task failed")));
}

#[test]
fn an_end_that_cannot_be_written_is_retried_and_does_not_count_as_running() {
    let mut rig = Rig::new(true);
    rig.primary_dies();
    assert!(starts(&rig.store(fresh_store())));
    let end = RecoveryEnd::Ended {
        id: 6,
        new_primary: None,
        parked: false,
        alert: None,
        unrecorded: Some("disk full".into()),
    };
    let cmds = rig.ev(Event::RecoveryEnded(end));
    assert!(alerts(&cmds).iter().any(|a| a.contains("cannot be written") && a.contains("disk full")), "{cmds:?}");
    assert!(rig.ev(Event::Tick).contains(&Command::RetryUnrecorded));
    let stale = RunningRecovery { id: 6, owner: "me".into(), ours: true, owner_gone: false };
    let cmds = rig.store(StoreView { running: Some(stale.clone()), ..fresh_store() });
    assert!(!cmds.iter().any(|c| matches!(c, Command::ResumeRecovery { .. })), "it ended here: {cmds:?}");
    rig.m.unrecorded_written(6);
    assert!(!rig.ev(Event::Tick).contains(&Command::RetryUnrecorded));
    assert_eq!(rig.m.problems().count(), 0);
}

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
    let recorded = cmds.iter().find_map(|c| if let Command::RecordFence(e) = c { Some(e.clone()) } else { None });
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
fn the_primary_watch_ending_probes_the_primary_now() {
    let mut rig = Rig::new(true);
    let cmds = rig.ev(Event::WatchEnded(key(P)));
    assert_eq!(cmds, vec![Command::ProbeNow(key(P))]);
    assert_eq!(rig.ev(Event::WatchEnded(key(R1))), vec![], "only the watched primary counts");
    // Asked again, at most once a second.
    rig.advance(10);
    let cmds = rig.ev(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
    assert!(!cmds.contains(&Command::WatchPrimary(key(P))), "{cmds:?}");
    rig.advance(1_000);
    let cmds = rig.ev(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
    assert!(cmds.contains(&Command::WatchPrimary(key(P))), "{cmds:?}");
}

#[test]
fn a_store_that_cannot_be_read_empties_nothing() {
    let mut rig = Rig::new(true);
    let x = key("10.0.0.9:3306");
    let entry = FenceEntry { instance: x.clone(), status: "read_only".into(), detail: "d".into() };
    rig.store(StoreView { fenced: vec![entry], ..fresh_store() });
    rig.store(StoreView { file_ok: true, problem: Some("database is locked".into()), ..StoreView::default() });
    assert!(rig.m.fenced().any(|f| f.instance == x), "a failed read is no empty fence list");
    assert!(rig.m.problems().any(|p| p.contains("database is locked")));
}

#[test]
fn probes_speed_up_only_while_the_primary_is_down() {
    let mut rig = Rig::new(true);
    rig.advance(250);
    let cmds = rig.ev(Event::Observed(up(P, rig.now, state(1, "0-1-10").semi_sync_primary(2, 0))));
    assert!(!cmds.iter().any(|c| matches!(c, Command::ProbeNow(_) | Command::SetFast(_))), "{cmds:?}");
    let cmds = rig.primary_dies();
    assert!(cmds.contains(&Command::SetFast(true)));
    rig.advance(100);
    let cmds = rig.ev(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
    assert!(cmds.contains(&Command::SetFast(false)), "back to the normal pace: {cmds:?}");
}

#[test]
fn the_view_and_the_discovery_limit_are_shown() {
    let mut s = settings(true);
    s.max_instances = 2;
    let (mut m, _) = ClusterMachine::new(s, Millis(1_000));
    let mut p = up(P, 1_000, state(1, "0-1-10"));
    obs_state_mut(&mut p).unwrap().registered_replicas = vec![key(R1), key(R2)];
    m.handle(Event::Observed(p), Millis(1_000));
    assert_eq!(m.view().keys().count(), 2, "within max_instances");
    let limit = m.discovery_limit().expect("the limit is shown once reached");
    assert!(limit.contains("max_instances 2 reached"), "{limit}");
}

/// Simulator finding F8: the block is converted to monotonic time once; a
/// wall clock that jumps forward later does not end it early.
#[test]
fn a_wall_clock_jump_does_not_shorten_the_block() {
    let mut rig = Rig::new(true);
    let first = BlockInfo { until: Millis(rig.now + 1_800_000), until_wall: 5_000_000, recovery_id: Some(2) };
    rig.store(StoreView { block: Some(first), ..fresh_store() });
    // The wall clock jumped an hour forward: the same block now converts to the past.
    let jumped = BlockInfo { until: Millis(rig.now), until_wall: 5_000_000, recovery_id: Some(2) };
    rig.store(StoreView { block: Some(jumped), ..fresh_store() });
    assert_eq!(rig.m.blocked_until().map(|b| b.until), Some(Millis(1_000 + 1_800_000)));
    let mut cmds = rig.primary_dies();
    cmds.extend(rig.store(StoreView {
        block: Some(BlockInfo { until: Millis(0), until_wall: 5_000_000, recovery_id: Some(2) }),
        ..fresh_store()
    }));
    assert!(!starts(&cmds), "still blocked: {cmds:?}");
}

#[test]
fn a_running_recovery_is_never_started_twice() {
    let mut rig = Rig::new(true);
    rig.primary_dies();
    assert!(starts(&rig.store(fresh_store())));
    // Whatever comes next while it runs: fresh readings, a fresh store.
    for _ in 0..3 {
        let mut cmds = rig.primary_dies();
        cmds.extend(rig.store(fresh_store()));
        assert!(!starts(&cmds), "{cmds:?}");
    }
}

#[test]
fn only_a_healthy_cluster_resets_the_backoff() {
    let mut rig = Rig::new(true);
    rig.primary_dies();
    assert!(starts(&rig.store(fresh_store())));
    let end = RecoveryEnd::Ended { id: 1, new_primary: None, parked: false, alert: None, unrecorded: None };
    rig.ev(Event::RecoveryEnded(end));
    // The primary is seen failing before the replicas are read again:
    // "unconfirmed", which must not reset the backoff.
    rig.advance(300);
    rig.ev(Event::Observed(down(P, rig.now, FailureKind::Refused)));
    let mut cmds = rig.primary_dies();
    cmds.extend(rig.store(fresh_store()));
    assert!(!starts(&cmds), "still backing off: {cmds:?}");
}

#[test]
fn each_control_problem_alerts_once() {
    let mut rig = Rig::new(true);
    let a = rig.m.shell_problem("fence_list", "cannot record X".into());
    assert_eq!(alerts(&a), vec!["cannot record X".to_string()]);
    assert!(alerts(&rig.m.shell_problem("fence_list", "cannot record X".into())).is_empty(), "once");
    let b = rig.m.shell_problem("state", "state file gone".into());
    assert_eq!(alerts(&b), vec!["state file gone".to_string()], "another problem alerts too");
    assert_eq!(rig.m.problems().count(), 2);
}

#[test]
fn the_watched_primary_is_not_watched_again() {
    let mut rig = Rig::new(true);
    for _ in 0..4 {
        rig.advance(1_500);
        let cmds = rig.ev(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
        assert!(!cmds.contains(&Command::WatchPrimary(key(P))), "{cmds:?}");
    }
}

/// Hostile finding 1: a former primary that rejoined and is promoted by the
/// next failover is never fenced by pivot itself (no writer left).
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

/// Hostile finding 8: with the state file gone, "one recovery at a time"
/// cannot be guaranteed: failover waits (alerted) until the file is opened
/// again, with the fence list written back.
#[test]
fn failover_waits_for_the_state_file_to_be_back() {
    let mut rig = Rig::new(true);
    let x = key("10.0.0.9:3306");
    let entry = FenceEntry { instance: x.clone(), status: "read_only".into(), detail: "d".into() };
    rig.store(StoreView { fenced: vec![entry.clone()], ..fresh_store() });
    rig.ev(Event::Observed(down("10.0.0.9:3306", rig.now, FailureKind::Refused)));
    let gone = StoreView { file_ok: false, problem: Some("state file gone".into()), ..StoreView::default() };
    rig.store(gone.clone());
    let mut cmds = rig.primary_dies();
    cmds.extend(rig.store(gone));
    assert!(!starts(&cmds), "{cmds:?}");
    assert!(alerts(&cmds).iter().any(|a| a.contains("failover waits")), "{cmds:?}");
    let tick = rig.ev(Event::Tick);
    assert!(tick.contains(&Command::ReopenStore { fenced: vec![entry] }), "{tick:?}");
    let cmds = rig.store(fresh_store());
    assert!(starts(&cmds), "the file is back: {cmds:?}");
}

/// Hostile finding 7: a former primary fenced when no primary was known (or
/// by the failover's own fence step) is judged once one is, and a divergence
/// is alerted.
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
    let recorded = cmds.iter().find_map(|c| if let Command::RecordFence(e) = c { Some(e.clone()) } else { None });
    let recorded = recorded.expect("judged");
    assert_eq!(recorded.status, "quarantined");
    assert!(alerts(&cmds).iter().any(|a| a.contains("quarantined")), "{cmds:?}");
    rig.advance(10);
    let again = rig.ev(Event::Observed(up("10.0.0.9:3306", rig.now, state(9, "0-1-12").read_only(true))));
    assert!(!again.iter().any(|c| matches!(c, Command::RecordFence(_))), "judged once");
}

/// Simulator finding F9: a replica lost at a failover comes back still
/// replicating from the fenced former primary: it is detached from it.
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
fn an_unconfirmed_moment_does_not_reset_the_backoff() {
    let mut rig = Rig::new(true);
    rig.primary_dies();
    assert!(starts(&rig.store(fresh_store())));
    let end = RecoveryEnd::Ended { id: 1, new_primary: None, parked: false, alert: None, unrecorded: None };
    rig.ev(Event::RecoveryEnded(end));
    // P answers again while the replicas are still frozen (not healthy), then
    // fails anew: "unconfirmed" until the replicas are read, then dead.
    rig.advance(100);
    let frozen = |id| state(id, "0-1-10").replica_of(P, "0-1-10").io(IoThread::Stopped);
    rig.ev(Event::Observed(up(R1, rig.now, frozen(2))));
    rig.ev(Event::Observed(up(R2, rig.now, frozen(3))));
    rig.ev(Event::Observed(up(P, rig.now, state(1, "0-1-10"))));
    assert_ne!(rig.m.analysis().code, crate::analysis::Code::Healthy);
    rig.advance(100);
    rig.ev(Event::Observed(down(P, rig.now, FailureKind::Refused)));
    assert_eq!(rig.m.analysis().code, crate::analysis::Code::PrimaryUnreachableUnconfirmed);
    rig.advance(5);
    let r = |id| state(id, "0-1-10").replica_of(P, "0-1-10").io(IoThread::Connecting);
    rig.ev(Event::Observed(up(R1, rig.now, r(2))));
    let mut cmds = rig.ev(Event::Observed(up(R2, rig.now, r(3))));
    cmds.extend(rig.store(fresh_store()));
    assert!(!starts(&cmds), "still backing off: {cmds:?}");
}

#[test]
fn the_store_is_reopened_only_when_no_recovery_runs_and_a_finished_one_is_not_resumed() {
    let mut rig = Rig::new(true);
    rig.primary_dies();
    assert!(starts(&rig.store(fresh_store())));
    // Our own running recovery, as the store shows it while it runs.
    let ours = RunningRecovery { id: 7, owner: "me".into(), ours: true, owner_gone: false };
    rig.store(StoreView { running: Some(ours), ..fresh_store() });
    rig.store(StoreView { file_ok: false, problem: Some("gone".into()), ..StoreView::default() });
    assert!(!rig.ev(Event::Tick).iter().any(|c| matches!(c, Command::ReopenStore { .. })), "not mid-recovery");
    let end = RecoveryEnd::Ended { id: 7, new_primary: Some(key(R1)), parked: false, alert: None, unrecorded: None };
    let mut cmds = rig.ev(Event::RecoveryEnded(end));
    cmds.extend(rig.store(fresh_store()));
    cmds.extend(rig.ev(Event::Observed(up(R1, rig.now + 1, state(2, "0-1-10")))));
    assert!(!cmds.iter().any(|c| matches!(c, Command::ResumeRecovery { .. })), "{cmds:?}");
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
        assert!(!cmds.iter().any(|c| matches!(c, Command::RecordFence(_))), "{status}: {cmds:?}");
    }
}

// ---- routes ------------------------------------------------------------------------

fn epoch(number: u64, primary: &str, recovery_id: Option<i64>) -> crate::routes::EpochRecord {
    crate::routes::EpochRecord { number, primary: key(primary), recovery_id, since_ms: 0 }
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
    let end = RecoveryEnd::Ended { id: 3, new_primary: Some(key(R1)), parked: false, alert: None, unrecorded: None };
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
fn a_resume_that_cannot_take_the_recovery_over_is_not_retried_in_a_hot_loop() {
    // The state file is full: the end of recovery 6 could not be written,
    // its lease ran out, and taking it over fails at once (the shell says
    // "held elsewhere"). The store still says it runs, owner gone: the
    // machine must not ask again at once, forever, without time passing.
    let mut rig = Rig::new(true);
    rig.primary_dies();
    assert!(starts(&rig.store(fresh_store())));
    let end = RecoveryEnd::Ended {
        id: 6,
        new_primary: Some(key(R1)),
        parked: false,
        alert: None,
        unrecorded: Some("disk full".into()),
    };
    rig.ev(Event::RecoveryEnded(end));
    let gone = RunningRecovery { id: 6, owner: "me".into(), ours: true, owner_gone: true };
    let view = StoreView { running: Some(gone), ..fresh_store() };
    let resumes = |cmds: &[Command]| cmds.iter().filter(|c| matches!(c, Command::ResumeRecovery { .. })).count();
    let mut asked = resumes(&rig.store(view.clone()));
    for _ in 0..20 {
        let cmds = rig.ev(Event::RecoveryEnded(RecoveryEnd::HeldElsewhere));
        assert!(cmds.contains(&Command::ReadStore));
        asked += resumes(&rig.store(view.clone()));
    }
    assert!(asked <= 1, "asked to resume {asked} times within the same millisecond");
    // A second later it is tried again.
    rig.advance(1_500);
    rig.ev(Event::Tick);
    assert_eq!(resumes(&rig.store(view)), 1, "tried again after a pause");
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
    let end = RecoveryEnd::Ended { id: 3, new_primary: Some(key(R1)), parked: false, alert: None, unrecorded: None };
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
    // Without one, the fresh read allows it.
    let cmds = m.handle(Event::Store(StoreView { epoch: Some(epoch(4, R2, None)), ..fresh_store() }), Millis(1_803));
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
    let end = RecoveryEnd::Ended { id: 3, new_primary: Some(key(R1)), parked: false, alert: None, unrecorded: None };
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
