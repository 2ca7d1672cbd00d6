//! The route table and the health checks, as tables of cases.

use super::*;
use crate::fixture::*;
use crate::observation::{FailureKind, IoThread};
use crate::view::ClusterView;

const P: &str = "10.0.0.1:3306";
const R1: &str = "10.0.0.2:3306";
const R2: &str = "10.0.0.3:3306";
const OLD: &str = "10.0.0.9:3306";

fn epoch(n: u64, primary: &str) -> EpochRecord {
    EpochRecord { number: n, primary: key(primary), recovery_id: None, since_ms: 0 }
}

fn replica() -> StateBuilder {
    state(2, "0-1-10").replica_of(P, "0-1-10").lag(0)
}

/// A view of P (writable) with R1 healthy, plus R2 in the given state.
fn view_with(r2: Option<StateBuilder>) -> ClusterView {
    let mut v = ClusterView::default();
    v.apply(up(P, 10, state(1, "0-1-10").read_only(false)), 10);
    v.apply(up(R1, 10, replica()), 10);
    match r2 {
        Some(s) => v.apply(up(R2, 10, s), 10),
        None => v.apply(down(R2, 10, FailureKind::Refused), 10),
    };
    v
}

fn r2(table: &RouteTable) -> &InstanceRoute {
    table.get(&key(R2)).expect("R2 in the table")
}

#[test]
fn replica_health_table() {
    // (case, R2's state (None: unreachable), healthy, reason contains)
    let cases: Vec<(&str, Option<StateBuilder>, bool, &str)> = vec![
        ("replicating, no lag", Some(replica()), true, "replicating from"),
        ("lag at the limit", Some(replica().lag(10)), true, "10 s behind"),
        ("lag over the limit", Some(replica().lag(11)), false, "lagging 11 s"),
        ("IO stopped", Some(replica().io(IoThread::Stopped)), false, "IO thread Stopped"),
        ("IO error named", Some(replica().io(IoThread::Connecting).io_error(2003, "can't connect")), false, "2003"),
        ("SQL error named", Some(replica().sql_error(1062, "Duplicate entry")), false, "error 1062"),
        ("writable replica", Some(replica().read_only(false)), false, "writable"),
        ("not replicating", Some(state(3, "0-1-10")), false, "not replicating"),
        (
            "from another source",
            Some(state(3, "0-1-10").replica_of(OLD, "0-1-10").lag(0)),
            false,
            "not from the primary",
        ),
        ("chained through R1", Some(state(3, "0-1-10").replica_of(R1, "0-1-10").lag(0)), true, "replicating from"),
        ("unreachable", None, false, "unreachable"),
    ];
    for (case, s, healthy, reason) in cases {
        let table = RouteTable::derive(Some(&epoch(3, P)), &view_with(s), false, 10);
        let r = r2(&table);
        assert_eq!(r.healthy, healthy, "{case}: {r:?}");
        assert!(r.reason.contains(reason), "{case}: `{}` should contain `{reason}`", r.reason);
        assert_eq!(r.role, Role::Replica, "{case}");
        assert_eq!(table.read_targets().contains(&key(R2)), healthy, "{case}: read targets");
    }
}

#[test]
fn write_target_is_the_epochs_primary_never_the_observed_one() {
    let v = view_with(Some(replica()));
    // The epoch names R1 (just promoted; the view still shows it as a replica).
    let t = RouteTable::derive(Some(&epoch(4, R1)), &v, false, 10);
    assert_eq!(t.write_target(), Some(&key(R1)));
    assert_eq!(t.get(&key(R1)).unwrap().role, Role::Primary);
    // P is writable but not the epoch's primary: a replica that is not healthy.
    let p = t.get(&key(P)).unwrap();
    assert_eq!((p.role, p.healthy), (Role::Replica, false), "{p:?}");
    // An epoch naming an instance not observed yet: still the write target,
    // listed once, as a primary not known healthy.
    let t = RouteTable::derive(Some(&epoch(6, OLD)), &v, false, 10);
    assert_eq!(t.write_target(), Some(&key(OLD)));
    let listed: Vec<&InstanceRoute> = t.instances.iter().filter(|r| r.instance == key(OLD)).collect();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].role, listed[0].healthy, listed[0].reachable), (Role::Primary, false, false));
    assert_eq!(t.instances.len(), 4, "P, R1, R2 and the epoch's primary");
    // Without an epoch nothing is written anywhere.
    let t = RouteTable::derive(None, &v, false, 10);
    assert_eq!((t.epoch, t.write_target()), (0, None));
    assert!(t.read_targets().is_empty(), "no primary, no replica of it: no reads");
}

#[test]
fn hold_stops_writes_and_the_primary_fallback_for_reads() {
    let v = view_with(None);
    let t = RouteTable::derive(Some(&epoch(2, P)), &v, true, 10);
    assert_eq!(t.write_target(), None, "held");
    assert_eq!(t.read_targets(), vec![key(R1)], "reads keep going to a healthy replica");
    let mut v = view_with(None);
    v.apply(down(R1, 20, FailureKind::Refused), 10);
    let t = RouteTable::derive(Some(&epoch(2, P)), &v, false, 10);
    assert_eq!(t.read_targets(), vec![key(P)], "no healthy replica: reads fall back to the primary");
    let t = RouteTable::derive(Some(&epoch(2, P)), &v, true, 10);
    assert!(t.read_targets().is_empty(), "not even the primary while held");
}

#[test]
fn a_fenced_former_primary_is_never_a_target() {
    let mut v = view_with(Some(replica()));
    v.apply(up(OLD, 10, state(9, "0-1-10")), 10);
    v.fenced.insert(key(OLD));
    let t = RouteTable::derive(Some(&epoch(5, P)), &v, false, 10);
    let old = t.get(&key(OLD)).unwrap();
    assert_eq!((old.role, old.healthy), (Role::Fenced, false));
    assert!(!t.read_targets().contains(&key(OLD)));
    for check in [HealthCheck::Primary, HealthCheck::Health, HealthCheck::ReadOnly { max_lag_s: None }] {
        assert_eq!(answer(&t, &key(OLD), check).status, 503, "{check:?}");
    }
}

#[test]
fn an_epoch_never_goes_back() {
    let v = view_with(Some(replica()));
    let newer = RouteTable::derive(Some(&epoch(5, R1)), &v, false, 10);
    let older = RouteTable::derive(Some(&epoch(4, P)), &v, false, 10);
    assert!(!older.supersedes(&newer));
    assert!(newer.supersedes(&older));
    assert!(newer.supersedes(&newer.clone()), "the same epoch refreshes health");
}

#[test]
fn health_check_answers() {
    let v = view_with(Some(replica().lag(7)));
    let t = RouteTable::derive(Some(&epoch(3, P)), &v, false, 10);
    let held = RouteTable::derive(Some(&epoch(3, P)), &v, true, 10);
    // (case, table, instance, check, status, body contains)
    let lag = |s| Some(s);
    let cases: Vec<(&str, &RouteTable, &str, HealthCheck, u16, &str)> = vec![
        ("primary is primary", &t, P, HealthCheck::Primary, 200, "epoch 3"),
        ("replica is not primary", &t, R1, HealthCheck::Primary, 503, "not the primary"),
        ("held primary", &held, P, HealthCheck::Primary, 503, "recovery is running"),
        ("replica", &t, R1, HealthCheck::Replica { max_lag_s: None }, 200, "0 s behind"),
        ("primary is no replica", &t, P, HealthCheck::Replica { max_lag_s: None }, 503, "not a replica"),
        ("lag within the asked limit", &t, R2, HealthCheck::Replica { max_lag_s: lag(7) }, 200, "limit 7 s"),
        ("lag over the asked limit", &t, R2, HealthCheck::Replica { max_lag_s: lag(6) }, 503, "lagging 7 s"),
        ("read-only: primary", &t, P, HealthCheck::ReadOnly { max_lag_s: None }, 200, "primary"),
        ("read-only: replica", &t, R1, HealthCheck::ReadOnly { max_lag_s: None }, 200, "behind"),
        ("health", &t, R1, HealthCheck::Health, 200, "answers"),
        ("unknown instance", &t, OLD, HealthCheck::Health, 404, "not an instance"),
    ];
    for (case, table, inst, check, status, body) in cases {
        let a = answer(table, &key(inst), check);
        assert_eq!(a.status, status, "{case}: {a:?}");
        assert!(a.body.contains(body), "{case}: `{}` should contain `{body}`", a.body);
    }
    let mut v = view_with(Some(replica()));
    v.apply(down(R1, 20, FailureKind::Refused), 10);
    let t = RouteTable::derive(Some(&epoch(3, P)), &v, false, 10);
    assert_eq!(answer(&t, &key(R1), HealthCheck::Health).status, 503, "unreachable");
}

#[test]
fn health_check_paths_and_lag() {
    let ok: Vec<(&str, Option<&str>, HealthCheck)> = vec![
        ("primary", None, HealthCheck::Primary),
        ("master", None, HealthCheck::Primary),
        ("read-write", None, HealthCheck::Primary),
        ("replica", Some("lag=10s"), HealthCheck::Replica { max_lag_s: Some(10) }),
        ("replica", Some("lag=2m"), HealthCheck::Replica { max_lag_s: Some(120) }),
        ("replica", Some("lag=1500ms"), HealthCheck::Replica { max_lag_s: Some(2) }),
        ("replica", Some("lag=5"), HealthCheck::Replica { max_lag_s: Some(5) }),
        ("read-only", Some(""), HealthCheck::ReadOnly { max_lag_s: None }),
        ("health", None, HealthCheck::Health),
    ];
    for (path, q, want) in ok {
        assert_eq!(HealthCheck::parse(path, q), Ok(want), "{path}?{q:?}");
    }
    for (path, q, err) in [
        ("primray", None, "unknown health check `primray`"),
        ("replica", Some("lag=ten"), "lag `ten` is not a duration"),
        ("replica", Some("lag=99999999999999999h"), "not a duration"),
        ("replica", Some("max=1"), "unknown parameter `max`"),
    ] {
        let e = HealthCheck::parse(path, q).unwrap_err();
        assert!(e.contains(err), "{path}?{q:?}: {e}");
    }
}

#[test]
fn after_a_promotion_writes_go_to_the_new_primary_and_nothing_to_the_old() {
    let v = view_with(Some(replica()));
    let held = RouteTable::derive(Some(&epoch(3, P)), &v, true, 10);
    let t = held.after_promotion(&EpochRecord { recovery_id: Some(9), ..epoch(4, R1) }, Some(&key(P)));
    assert!(t.supersedes(&held));
    assert_eq!((t.epoch, t.hold, t.write_target()), (4, false, Some(&key(R1))));
    assert_eq!(t.get(&key(P)).unwrap().role, Role::Fenced);
    assert_eq!(t.read_targets(), vec![key(R2)], "R2 still reads; neither R1 (now primary) nor P");
    assert_eq!(answer(&t, &key(R1), HealthCheck::Primary).status, 200);
    assert_eq!(answer(&t, &key(P), HealthCheck::Primary).status, 503);
    assert_eq!(t.instances.len(), 3, "each instance once");
}

#[test]
fn open_connections_are_cut_when_their_backend_leaves_the_route() {
    // (case, R2's state, the table holds, write kept on P, read kept on R2)
    let cases: Vec<(&str, Option<StateBuilder>, bool, bool, bool)> = vec![
        ("healthy", Some(replica()), false, true, true),
        ("a recovery starts: writes cut", Some(replica()), true, false, true),
        ("lagging: open reads finish", Some(replica().lag(60)), false, true, true),
        ("SQL thread broke: reads cut", Some(replica().sql_error(1062, "dup")), false, true, false),
        ("unreachable: reads cut", None, false, true, false),
    ];
    for (case, r2, hold, write, read) in cases {
        let t = RouteTable::derive(Some(&epoch(3, P)), &view_with(r2), hold, 10);
        assert_eq!(t.keeps_write(&key(P)), write, "{case}: write");
        assert_eq!(t.keeps_read(&key(R2)), read, "{case}: read");
        assert!(!t.keeps_write(&key(R1)), "{case}: writes never to a replica");
    }
    let moved = RouteTable::derive(Some(&epoch(4, R1)), &view_with(Some(replica())), false, 10);
    assert!(!moved.keeps_write(&key(P)) && moved.keeps_write(&key(R1)), "a new epoch moves writes");
    let mut v = view_with(Some(replica()));
    v.fenced.insert(key(R2));
    let fenced = RouteTable::derive(Some(&epoch(4, P)), &v, false, 10);
    assert!(!fenced.keeps_read(&key(R2)), "nothing stays on a fenced instance");
}

#[test]
fn a_read_only_primary_of_the_epoch_is_not_a_healthy_primary() {
    let mut v = ClusterView::default();
    v.apply(up(P, 10, state(1, "0-1-10").read_only(true)), 10);
    v.apply(up(R1, 10, replica()), 10);
    let t = RouteTable::derive(Some(&epoch(3, P)), &v, false, 10);
    let p = t.get(&key(P)).unwrap();
    assert_eq!((p.role, p.healthy), (Role::Primary, false));
    let a = answer(&t, &key(P), HealthCheck::Primary);
    assert_eq!(a.status, 503);
    assert!(a.body.contains("read-only"), "{}", a.body);
}

#[test]
fn a_chain_with_a_broken_link_does_not_replicate_from_the_primary() {
    let chained = || state(3, "0-1-10").replica_of(R1, "0-1-10").lag(0);
    for (case, r1, healthy) in [
        ("R1 fine", replica(), true),
        ("R1's SQL thread stopped", replica().sql_stopped(), false),
        ("R1's IO thread stopped", replica().io(IoThread::Stopped), false),
    ] {
        let mut v = ClusterView::default();
        v.apply(up(P, 10, state(1, "0-1-10").read_only(false)), 10);
        v.apply(up(R1, 10, r1), 10);
        v.apply(up(R2, 10, chained()), 10);
        let t = RouteTable::derive(Some(&epoch(3, P)), &v, false, 10);
        assert_eq!(r2(&t).healthy, healthy, "{case}: {:?}", r2(&t));
    }
}
