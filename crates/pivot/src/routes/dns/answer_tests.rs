//! Every kind of name, table by table: what `dig` would show.

use super::*;
use pivot_core::routes::{InstanceRoute, Role};

fn key(s: &str) -> InstanceKey {
    s.parse().unwrap()
}

fn route(k: &str, role: Role, healthy: bool, lag_s: Option<u64>) -> InstanceRoute {
    InstanceRoute { instance: key(k), role, reachable: healthy, healthy, lag_s, reason: String::new() }
}

/// Primary 10.0.0.1:3306; replicas .2 (healthy), .3 on port 3307 (healthy),
/// .4 (lagging past the limit), .5 (broken); a fenced former primary .9.
fn main_table() -> RouteTable {
    RouteTable {
        epoch: 3,
        primary: Some(key("10.0.0.1:3306")),
        hold: false,
        instances: vec![
            route("10.0.0.1:3306", Role::Primary, true, None),
            route("10.0.0.2:3306", Role::Replica, true, Some(0)),
            route("10.0.0.3:3307", Role::Replica, true, Some(2)),
            route("10.0.0.4:3306", Role::Replica, true, Some(60)),
            route("10.0.0.5:3306", Role::Replica, false, None),
            route("10.0.0.9:3306", Role::Fenced, false, None),
        ],
        max_lag_s: 10,
    }
}

fn held(mut t: RouteTable) -> RouteTable {
    t.hold = true;
    t
}

/// A primary and a replica known by name, an IPv6 one, and the sandbox's
/// case: three instances on one address. Instances in key order, as
/// `RouteTable::derive` keeps them.
fn other_tables() -> Vec<(&'static str, RouteTable)> {
    let named = RouteTable {
        epoch: 1,
        primary: Some(key("db1.internal:3306")),
        instances: vec![
            route("10.0.1.2:3306", Role::Replica, true, Some(0)),
            route("db1.internal:3306", Role::Primary, true, None),
            route("db2.internal:3307", Role::Replica, true, Some(0)),
        ],
        max_lag_s: 10,
        ..RouteTable::default()
    };
    let v6 = RouteTable {
        epoch: 1,
        primary: Some(key("[fd00::1]:3306")),
        instances: vec![
            route("[fd00::1]:3306", Role::Primary, true, None),
            route("[fd00::2]:3306", Role::Replica, true, Some(0)),
        ],
        max_lag_s: 10,
        ..RouteTable::default()
    };
    let sandbox = RouteTable {
        epoch: 2,
        primary: Some(key("127.0.0.1:4002")),
        instances: vec![
            route("127.0.0.1:4001", Role::Fenced, false, None),
            route("127.0.0.1:4002", Role::Primary, true, None),
            route("127.0.0.1:4003", Role::Replica, true, Some(0)),
        ],
        max_lag_s: 10,
        ..RouteTable::default()
    };
    vec![
        ("held", held(main_table())),
        ("none", RouteTable::default()),
        ("named", named),
        ("v6", v6),
        ("Sand_box", sandbox),
    ]
}

fn labels(name: &str) -> Vec<String> {
    name.trim_end_matches('.').split('.').map(str::to_string).collect()
}

/// `RCODE` then the answers, `;` between, then `+ ` and the additional
/// records; a negative answer shows its SOA as `(soa)`.
fn show(a: &Answer) -> String {
    let mut out = a.rcode.to_string();
    for r in &a.answers {
        out += &format!("; {r}");
    }
    for r in &a.additional {
        out += &format!(" + {r}");
    }
    match a.authority.as_slice() {
        [] => {}
        [soa] if matches!(soa.data, Data::Soa { .. }) && a.answers.is_empty() => out += " (soa)",
        other => out += &format!(" authority {other:?}"),
    }
    out
}

#[test]
fn each_name_answers_from_the_tables() {
    use QType::*;
    let zone = Zone::new("db.example", 1);
    let main = main_table();
    let others = other_tables();
    let mut clusters: Vec<(&str, &RouteTable)> = vec![("main", &main)];
    clusters.extend(others.iter().map(|(n, t)| (*n, t)));
    let cases: &[(&str, QType, &str)] = &[
        // The write target, its SRV with the port, and the SRV target.
        ("primary.main.db.example", A, "NOERROR; primary.main.db.example A 10.0.0.1"),
        ("primary.main.db.example", Any, "NOERROR; primary.main.db.example A 10.0.0.1"),
        ("primary.main.db.example", Aaaa, "NOERROR (soa)"),
        ("primary.main.db.example", Srv, "NOERROR (soa)"),
        (
            "_mysql._tcp.primary.main.db.example",
            Srv,
            "NOERROR; _mysql._tcp.primary.main.db.example SRV 0 0 3306 10-0-0-1.main.db.example \
             + 10-0-0-1.main.db.example A 10.0.0.1",
        ),
        ("_mysql._tcp.primary.main.db.example", A, "NOERROR (soa)"),
        ("10-0-0-1.main.db.example", A, "NOERROR; 10-0-0-1.main.db.example A 10.0.0.1"),
        ("10-0-0-9.main.db.example", A, "NOERROR; 10-0-0-9.main.db.example A 10.0.0.9"),
        ("10-0-0-9.main.db.example", Aaaa, "NOERROR (soa)"),
        ("10-0-0-77.main.db.example", A, "NXDOMAIN (soa)"),
        ("10-0-0-1.held.db.example", A, "NOERROR; 10-0-0-1.held.db.example A 10.0.0.1"),
        // Healthy replicas within the lag: not the lagging, broken or fenced.
        (
            "replicas.main.db.example",
            A,
            "NOERROR; replicas.main.db.example A 10.0.0.2; replicas.main.db.example A 10.0.0.3",
        ),
        ("replicas.main.db.example", Aaaa, "NOERROR (soa)"),
        (
            "_mysql._tcp.replicas.main.db.example",
            Srv,
            "NOERROR; _mysql._tcp.replicas.main.db.example SRV 0 1 3306 10-0-0-2.main.db.example; \
             _mysql._tcp.replicas.main.db.example SRV 0 1 3307 10-0-0-3.main.db.example \
             + 10-0-0-2.main.db.example A 10.0.0.2 + 10-0-0-3.main.db.example A 10.0.0.3",
        ),
        // Held writes (a recovery before its promotion) or no primary:
        // nothing, never the old primary; the replicas still read.
        ("primary.held.db.example", A, "NOERROR (soa)"),
        ("primary.held.db.example", Any, "NOERROR (soa)"),
        ("_mysql._tcp.primary.held.db.example", Srv, "NOERROR (soa)"),
        (
            "replicas.held.db.example",
            A,
            "NOERROR; replicas.held.db.example A 10.0.0.2; replicas.held.db.example A 10.0.0.3",
        ),
        ("primary.none.db.example", A, "NOERROR (soa)"),
        ("replicas.none.db.example", A, "NOERROR (soa)"),
        ("_mysql._tcp.replicas.none.db.example", Srv, "NOERROR (soa)"),
        // Host names: a CNAME for the primary whatever the type, SRV
        // targets for the replicas; addresses are still A records.
        ("primary.named.db.example", A, "NOERROR; primary.named.db.example CNAME db1.internal"),
        ("primary.named.db.example", Srv, "NOERROR; primary.named.db.example CNAME db1.internal"),
        (
            "_mysql._tcp.primary.named.db.example",
            Srv,
            "NOERROR; _mysql._tcp.primary.named.db.example SRV 0 0 3306 db1.internal",
        ),
        ("replicas.named.db.example", A, "NOERROR; replicas.named.db.example A 10.0.1.2"),
        (
            "_mysql._tcp.replicas.named.db.example",
            Srv,
            "NOERROR; _mysql._tcp.replicas.named.db.example SRV 0 1 3306 10-0-1-2.named.db.example; \
             _mysql._tcp.replicas.named.db.example SRV 0 1 3307 db2.internal \
             + 10-0-1-2.named.db.example A 10.0.1.2",
        ),
        // IPv6.
        ("primary.v6.db.example", Aaaa, "NOERROR; primary.v6.db.example AAAA fd00::1"),
        ("primary.v6.db.example", A, "NOERROR (soa)"),
        ("replicas.v6.db.example", Aaaa, "NOERROR; replicas.v6.db.example AAAA fd00::2"),
        (
            "_mysql._tcp.primary.v6.db.example",
            Srv,
            "NOERROR; _mysql._tcp.primary.v6.db.example SRV 0 0 3306 fd00-0-0-0-0-0-0-1.v6.db.example \
             + fd00-0-0-0-0-0-0-1.v6.db.example AAAA fd00::1",
        ),
        ("fd00-0-0-0-0-0-0-2.v6.db.example", Aaaa, "NOERROR; fd00-0-0-0-0-0-0-2.v6.db.example AAAA fd00::2"),
        // One address, several ports: only the SRV tells them apart; the
        // address once. Names ignore case.
        ("primary.sand_box.db.example", A, "NOERROR; primary.sand_box.db.example A 127.0.0.1"),
        (
            "_MySQL._TCP.Primary.SAND_BOX.DB.example.",
            Srv,
            "NOERROR; _mysql._tcp.primary.sand_box.db.example SRV 0 0 4002 127-0-0-1.sand_box.db.example \
             + 127-0-0-1.sand_box.db.example A 127.0.0.1",
        ),
        ("replicas.sand_box.db.example", A, "NOERROR; replicas.sand_box.db.example A 127.0.0.1"),
        // Names that exist without records, and names that do not exist.
        ("main.db.example", A, "NOERROR (soa)"),
        ("_tcp.primary.main.db.example", Srv, "NOERROR (soa)"),
        ("_tcp.replicas.main.db.example", A, "NOERROR (soa)"),
        ("nosuch.db.example", A, "NXDOMAIN (soa)"),
        ("primary.nosuch.db.example", A, "NXDOMAIN (soa)"),
        ("_mysql._tcp.primary.nosuch.db.example", Srv, "NXDOMAIN (soa)"),
        ("writer.main.db.example", A, "NXDOMAIN (soa)"),
        ("_tcp.main.db.example", A, "NXDOMAIN (soa)"),
        ("_mysql._tcp.writer.main.db.example", Srv, "NXDOMAIN (soa)"),
        ("x.primary.main.db.example", A, "NXDOMAIN (soa)"),
        // The apex.
        ("db.example", Soa, "NOERROR; db.example SOA db.example hostmaster.db.example 10"),
        ("db.example", Ns, "NOERROR; db.example NS db.example"),
        ("db.example", A, "NOERROR (soa)"),
        // Outside the zone: not pivot's to answer.
        ("example", A, "REFUSED"),
        ("primary.main.db.example.com", A, "REFUSED"),
        ("primary.main.xdb.example", A, "REFUSED"),
        ("", A, "REFUSED"),
    ];
    let mut failures = Vec::new();
    for (name, qtype, want) in cases {
        let got = show(&zone.answer(&clusters, &labels(name), *qtype));
        if got != *want {
            failures.push(format!("{name} {qtype:?}:\n  want {want}\n  got  {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_record_and_negative_answer_has_the_ttl() {
    let zone = Zone::new("DB.Example.", 7);
    let main = main_table();
    let clusters = [("main", &main)];
    assert_eq!(zone.domain(), "db.example");
    let srv = zone.answer(&clusters, &labels("_mysql._tcp.replicas.main.db.example"), QType::Srv);
    assert!(srv.authoritative());
    assert!(srv.answers.iter().chain(&srv.additional).all(|r| r.ttl == 7), "{srv:?}");
    let nx = zone.answer(&clusters, &labels("nosuch.db.example"), QType::A);
    let [soa] = nx.authority.as_slice() else { panic!("{nx:?}") };
    assert_eq!(soa.ttl, 7);
    assert!(matches!(soa.data, Data::Soa { minimum: 7, .. }), "negative caching lasts one TTL: {soa:?}");
    assert!(!zone.answer(&clusters, &labels("example.com"), QType::A).authoritative());
}

#[test]
fn the_answer_follows_the_table_and_never_the_old_primary() {
    // The failover as the hub sees it: running, held, promoted.
    let zone = Zone::new("db.example", 1);
    let before = main_table();
    let ask = |t: &RouteTable| {
        let a = zone.answer(&[("main", t)], &labels("_mysql._tcp.primary.main.db.example"), QType::Srv);
        a.answers.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    assert_eq!(ask(&before), ["_mysql._tcp.primary.main.db.example SRV 0 0 3306 10-0-0-1.main.db.example"]);
    assert!(ask(&held(before.clone())).is_empty(), "held: nothing");
    let epoch =
        pivot_core::routes::EpochRecord { number: 4, primary: key("10.0.0.3:3307"), recovery_id: Some(1), since_ms: 0 };
    let after = held(before.clone()).after_promotion(&epoch, Some(&key("10.0.0.1:3306")));
    assert_eq!(ask(&after), ["_mysql._tcp.primary.main.db.example SRV 0 0 3307 10-0-0-3.main.db.example"]);
    let replicas = zone.answer(&[("main", &after)], &labels("replicas.main.db.example"), QType::A);
    assert_eq!(show(&replicas), "NOERROR; replicas.main.db.example A 10.0.0.2", "the new primary left the replicas");
}
