//! The heartbeat's arithmetic and the write decision, as tables.
//!
//! Clock independence is tested here, not against real servers: a test
//! cannot skew the host's clock under the sandbox's servers. Every clock a
//! row uses is deliberately unrelated to the others.

use super::*;
use crate::fixture::*;
use crate::observation::{HeartbeatReading, HeartbeatRow};
use crate::time::Millis;

const P: &str = "10.0.0.1:3306";
const R: &str = "10.0.0.2:3306";
/// The primary's server_id.
const PID: u32 = 1;
/// An arbitrary point of the primary's clock, in µs since the epoch.
const T: i64 = 1_700_000_000_000_000;

fn reading(taken_at: u64, server_now_us: i64, rows: &[(u32, i64)]) -> HeartbeatReading {
    HeartbeatReading {
        taken_at: Millis(taken_at),
        server_now_us,
        rows: rows.iter().map(|&(server_id, ts_us)| HeartbeatRow { server_id, ts_us }).collect(),
        stale_after_ms: 5_000,
    }
}

#[test]
fn lag_table() {
    // (name, primary reading, replica reading, expected lag in ms or why none)
    type Row = (&'static str, HeartbeatReading, HeartbeatReading, Result<u64, NoHeartbeatLag>);
    let cases: Vec<Row> = vec![
        (
            "in step: the replica has the primary's last heartbeat, read at the same moment",
            reading(10_000, T + 200_000, &[(PID, T)]),
            reading(10_000, 0, &[(PID, T)]),
            Ok(200),
        ),
        (
            "the replica's clock is an hour ahead: its clock never enters",
            reading(10_000, T + 200_000, &[(PID, T)]),
            reading(10_000, T + 3_600_000_000, &[(PID, T)]),
            Ok(200),
        ),
        (
            "the replica's clock is a day behind: same lag",
            reading(10_000, T + 200_000, &[(PID, T)]),
            reading(10_000, T - 86_400_000_000, &[(PID, T)]),
            Ok(200),
        ),
        (
            "pivot's monotonic clock starts anywhere: only differences count",
            reading(987_654_321, T + 200_000, &[(PID, T)]),
            reading(987_654_321, 42, &[(PID, T)]),
            Ok(200),
        ),
        (
            "replica read 800 ms after the primary: the primary's clock is carried forward",
            reading(10_000, T + 200_000, &[(PID, T)]),
            reading(10_800, 0, &[(PID, T)]),
            Ok(1_000),
        ),
        (
            "replica read before the primary: carried backward",
            reading(10_000, T + 900_000, &[(PID, T + 800_000)]),
            reading(9_500, 0, &[(PID, T)]),
            Ok(400),
        ),
        (
            "a replica 30 s behind, whatever the replica's own clock says",
            reading(10_000, T + 30_500_000, &[(PID, T + 30_000_000)]),
            reading(10_000, T + 30_500_000 - 7_000_000, &[(PID, T)]),
            Ok(30_500),
        ),
        (
            "the replica holds a newer row than the primary's reading implies (read later): never negative",
            reading(10_000, T, &[(PID, T)]),
            reading(9_000, 0, &[(PID, T)]),
            Ok(0),
        ),
        (
            "rows of former primaries are ignored: the current primary's row counts",
            reading(10_000, T + 100_000, &[(7, T - 999_000_000), (PID, T)]),
            reading(10_000, 0, &[(7, T - 999_000_000), (PID, T - 2_000_000)]),
            Ok(2_100),
        ),
        (
            "no heartbeat row yet on the primary (first use, missing grant)",
            reading(10_000, T, &[]),
            reading(10_000, 0, &[]),
            Err(NoHeartbeatLag::NoPrimaryRow),
        ),
        (
            "the primary's row has not reached the replica yet",
            reading(10_000, T, &[(PID, T)]),
            reading(10_000, 0, &[(7, T)]),
            Err(NoHeartbeatLag::NoReplicaRow),
        ),
        (
            "the writer is stuck (own row 6 s old): the replicas are not blamed",
            reading(10_000, T + 6_000_000, &[(PID, T)]),
            reading(10_000, 0, &[(PID, T)]),
            Err(NoHeartbeatLag::WriterStale { age_ms: 6_000 }),
        ),
        (
            "a stale primary reading (6 s older than the replica's) does not stand for its clock",
            reading(10_000, T, &[(PID, T)]),
            reading(16_000, 0, &[(PID, T)]),
            Err(NoHeartbeatLag::PrimaryReadingStale { apart_ms: 6_000 }),
        ),
        (
            "at the staleness bound it still counts",
            reading(10_000, T + 5_000_000, &[(PID, T)]),
            reading(15_000, 0, &[(PID, T)]),
            Ok(10_000),
        ),
    ];
    for (name, primary, replica, want) in cases {
        assert_eq!(lag_ms(PID, &primary, &replica), want, "{name}");
    }
}

/// The IO thread stopped at T: the replica's row stays, the primary keeps
/// writing, and the lag grows with every reading while `Seconds_Behind_Master`
/// says nothing (NULL); that is the point of the heartbeat.
#[test]
fn io_thread_stopped_lag_keeps_growing() {
    let mut last = None;
    for step in 0..10u64 {
        let at = 10_000 + step * 1_000;
        let now = T + (step as i64) * 1_000_000 + 100_000;
        let primary = state(PID, "0-1-5").heartbeat(at, now, &[(PID, now - 100_000)]);
        let replica = state(2, "0-1-5").replica_of(P, "0-1-5").io(crate::observation::IoThread::Stopped).heartbeat(
            at + 50,
            0,
            &[(PID, T)],
        );
        let mut view = ClusterView::new([key(P), key(R)]);
        view.apply(up(P, at, primary), 10);
        view.apply(up(R, at + 50, replica), 10);
        let lag = lag_of(&view, Some(&key(P)), &key(R)).unwrap();
        assert_eq!(lag.server_s, None, "the server's own figure is NULL");
        let ms = lag.heartbeat_ms.clone().unwrap();
        assert_eq!(ms, step * 1_000 + 150, "step {step}");
        assert!(last.is_none_or(|l| ms > l), "grows");
        assert_eq!(lag.seconds(), Some(ms / 1000), "the heartbeat's lag is the one acted on");
        last = Some(ms);
    }
}

/// `Seconds_Behind_Master` jumps while a long transaction applies; the
/// heartbeat says how old the replica's data really is.
#[test]
fn long_transaction_the_heartbeat_is_honest() {
    let primary = state(PID, "0-1-5").heartbeat(10_000, T + 300_000, &[(PID, T)]);
    let replica = state(2, "0-1-5").replica_of(P, "0-1-5").lag(600).heartbeat(10_000, 0, &[(PID, T - 2_000_000)]);
    let mut view = ClusterView::new([key(P), key(R)]);
    view.apply(up(P, 10_000, primary), 10);
    view.apply(up(R, 10_000, replica), 10);
    let lag = lag_of(&view, Some(&key(P)), &key(R)).unwrap();
    assert_eq!((lag.server_s, lag.heartbeat_ms.clone()), (Some(600), Ok(2_300)));
    assert_eq!(lag.seconds(), Some(2));
}

#[test]
fn without_a_heartbeat_the_servers_figure_stands() {
    let replica = || state(2, "0-1-5").replica_of(P, "0-1-5").lag(7);
    let read = |s: StateBuilder| s.heartbeat(10_000, 0, &[(PID, T)]);
    let cases = [
        ("heartbeat off", Some(P), state(PID, "0-1-5"), replica(), NoHeartbeatLag::NoReplicaReading),
        ("no primary known", None, read(state(PID, "0-1-5")), read(replica()), NoHeartbeatLag::NoPrimaryReading),
        (
            "primary read without heartbeat",
            Some(P),
            state(PID, "0-1-5"),
            read(replica()),
            NoHeartbeatLag::NoPrimaryReading,
        ),
        (
            "replica read without heartbeat",
            Some(P),
            state(PID, "0-1-5").heartbeat(10_000, T, &[(PID, T)]),
            replica(),
            NoHeartbeatLag::NoReplicaReading,
        ),
    ];
    for (name, primary_key, primary, replica, why) in cases {
        let mut view = ClusterView::new([key(P), key(R)]);
        view.apply(up(P, 10_000, primary), 10);
        view.apply(up(R, 10_000, replica), 10);
        let lag = lag_of(&view, primary_key.map(key).as_ref(), &key(R)).unwrap();
        assert_eq!(lag, Lag { server_s: Some(7), heartbeat_ms: Err(why) }, "{name}");
        assert_eq!(lag.seconds(), Some(7), "{name}");
    }
}

#[test]
fn no_lag_for_the_primary_or_an_unreachable_instance() {
    let mut view = ClusterView::new([key(P), key(R)]);
    view.apply(up(P, 10_000, state(PID, "0-1-5").heartbeat(10_000, T, &[(PID, T)])), 10);
    view.apply(down(R, 10_000, crate::observation::FailureKind::Refused), 10);
    assert_eq!(lag_of(&view, Some(&key(P)), &key(P)), None, "the primary replicates from nobody");
    assert_eq!(lag_of(&view, Some(&key(P)), &key(R)), None, "unreachable");
}

#[test]
fn write_target_table() {
    let healthy = || state(PID, "0-1-5");
    // (name, route primary, analysis primary, primary's state, expected)
    type Row = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<StateBuilder>,
        Result<&'static str, &'static str>,
    );
    let cases: Vec<Row> = vec![
        ("the primary both agree on", Some(P), Some(P), Some(healthy()), Ok(P)),
        ("a recovery holds the routes", None, Some(P), Some(healthy()), Err("routes name no primary")),
        ("the analysis names another", Some(P), Some(R), Some(healthy()), Err("analysis does not name")),
        ("no analysis primary (dead)", Some(P), None, Some(healthy()), Err("analysis does not name")),
        ("read-only (a switchover demoted it)", Some(P), Some(P), Some(healthy().read_only(true)), Err("read-only")),
        ("does not answer", Some(P), Some(P), None, Err("does not answer")),
        (
            "semi-sync on, no replica to acknowledge",
            Some(P),
            Some(P),
            Some(with_semi_sync(healthy(), true, 0, 0)),
            Err("semi-sync"),
        ),
        (
            "semi-sync sessions already wait",
            Some(P),
            Some(P),
            Some(with_semi_sync(healthy(), true, 1, 3)),
            Err("semi-sync"),
        ),
        ("semi-sync with a replica connected", Some(P), Some(P), Some(with_semi_sync(healthy(), true, 1, 0)), Ok(P)),
        ("semi-sync fell back to async", Some(P), Some(P), Some(with_semi_sync(healthy(), false, 0, 0)), Ok(P)),
    ];
    for (name, route, analysis, primary, want) in cases {
        let mut view = ClusterView::new([key(P)]);
        match primary {
            Some(s) => view.apply(up(P, 10_000, s), 10),
            None => view.apply(down(P, 10_000, crate::observation::FailureKind::Refused), 10),
        };
        let got = write_target(route.map(key).as_ref(), analysis.map(key).as_ref(), &view);
        match want {
            Ok(k) => assert_eq!(got, Ok(key(k)), "{name}"),
            Err(part) => assert!(got.as_ref().is_err_and(|e| e.contains(part)), "{name}: {got:?}"),
        }
    }
}

fn with_semi_sync(s: StateBuilder, active: bool, clients: u32, waiting: u32) -> StateBuilder {
    let mut st = s.build();
    st.semi_sync.primary_enabled = true;
    st.semi_sync.primary_active = active;
    st.semi_sync.primary_clients = clients;
    st.semi_sync.primary_waiting_sessions = waiting;
    StateBuilder::from(st)
}

/// The analysis' `lagging` problem and the read routes use the heartbeat's
/// lag when measured: a replica whose server says 0 but is 30 s behind lags;
/// one whose server says 600 s in a long transaction but holds data 2 s old
/// does not.
#[test]
fn problems_and_read_routes_use_the_heartbeat() {
    use crate::analysis::{analyze, DetectionSettings, ProblemKind};
    use crate::routes::{EpochRecord, RouteTable};
    const R2: &str = "10.0.0.3:3306";
    let mut view = ClusterView::new([key(P), key(R), key(R2)]);
    view.apply(up(P, 10_000, state(PID, "0-1-5").heartbeat(10_000, T + 30_000_000, &[(PID, T + 29_900_000)])), 10);
    view.apply(up(R, 10_000, state(2, "0-1-5").replica_of(P, "0-1-5").lag(0).heartbeat(10_000, 0, &[(PID, T)])), 10);
    let long_trx = state(3, "0-1-5").replica_of(P, "0-1-5").lag(600).heartbeat(10_000, 0, &[(PID, T + 28_000_000)]);
    view.apply(up(R2, 10_000, long_trx), 10);
    let analysis = analyze(&view, &DetectionSettings::default(), Millis(10_000));
    let lagging: Vec<(String, u64)> = analysis
        .problems
        .iter()
        .filter_map(|p| match p.kind {
            ProblemKind::Lagging { seconds, .. } => Some((p.instance.to_string(), seconds)),
            _ => None,
        })
        .collect();
    assert_eq!(lagging, vec![(R.to_string(), 30)]);
    let epoch = EpochRecord { number: 1, primary: key(P), recovery_id: None, since_ms: 0 };
    let table = RouteTable::derive(Some(&epoch), &view, false, 10);
    let readable: Vec<String> = table.readable(None).map(|r| r.instance.to_string()).collect();
    assert_eq!(readable, vec![R2.to_string()]);
    assert_eq!(table.get(&key(R)).unwrap().lag_s, Some(30));
    assert_eq!(table.get(&key(R2)).unwrap().lag_s, Some(2));
}
