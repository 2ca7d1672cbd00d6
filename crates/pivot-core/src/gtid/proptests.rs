//! Property tests of the GTID algebra for both flavours.

use super::*;
use proptest::prelude::*;

fn maria_list() -> impl Strategy<Value = MariaGtidList> {
    prop::collection::vec((0u32..3, 1u32..4, 1u64..50), 0..8).prop_map(|items| {
        let mut l = MariaGtidList::new();
        for (domain, server_id, seq) in items {
            l.insert(MariaGtid { domain, server_id, seq });
        }
        l
    })
}

const UUIDS: [&str; 3] = [
    "3e11fa47-71ca-11e1-9e33-c80aa9429562",
    "4d2e1c5a-0000-11e1-9e33-c80aa9429562",
    "00000000-0000-0000-0000-000000000001",
];

fn mysql_set() -> impl Strategy<Value = MysqlGtidSet> {
    prop::collection::vec(
        (0usize..3, prop::option::of(prop::sample::select(vec!["a", "blue"])), 1u64..40, 0u64..6),
        0..8,
    )
    .prop_map(|items| {
        let mut s = MysqlGtidSet::new();
        for (u, tag, lo, len) in items {
            let src = SourceId { uuid: UUIDS[u].to_string(), tag: tag.map(str::to_string) };
            s.insert_range(&src, lo, lo + len);
        }
        s
    })
}

proptest! {
    #[test]
    fn maria_round_trips(a in maria_list()) {
        prop_assert_eq!(MariaGtidList::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn maria_lattice_laws(a in maria_list(), b in maria_list()) {
        let u = a.union(&b);
        prop_assert!(u.contains(&a) && u.contains(&b));
        prop_assert_eq!(a.union(&b), b.union(&a));
        // What subtract leaves is exactly what b does not cover.
        let d = a.subtract(&b);
        prop_assert!(a.contains(&d));
        prop_assert!(d.iter().all(|g| !b.contains(&MariaGtidList::parse(&g.to_string()).unwrap())));
        prop_assert!(d.union(&b).contains(&a));
        prop_assert_eq!(a.contains(&b), b.subtract(&a).is_empty());
    }

    #[test]
    fn mysql_round_trips(a in mysql_set()) {
        prop_assert_eq!(MysqlGtidSet::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn mysql_set_laws(a in mysql_set(), b in mysql_set()) {
        let u = a.union(&b);
        prop_assert!(u.contains(&a) && u.contains(&b));
        prop_assert_eq!(u.count(), a.count() + b.count() - a.intersect(&b).count());
        let d = a.subtract(&b);
        prop_assert!(d.intersect(&b).is_empty());
        prop_assert_eq!(d.union(&a.intersect(&b)), a.clone());
        prop_assert_eq!(a.contains(&b), b.subtract(&a).is_empty());
    }

    #[test]
    fn enum_agrees_with_flavors(a in mysql_set(), b in mysql_set()) {
        let (ga, gb) = (GtidSet::MySql(a.clone()), GtidSet::MySql(b.clone()));
        prop_assert_eq!(ga.contains(&gb), a.contains(&b));
        prop_assert_eq!(GtidSet::parse(Flavor::MySql, &ga.to_string()).unwrap(), ga);
    }
}

#[test]
fn cross_flavor_operations_are_conservative() {
    let m = GtidSet::parse(Flavor::MariaDb, "0-1-5").unwrap();
    let y = GtidSet::parse(Flavor::MySql, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5").unwrap();
    assert!(!m.contains(&y) && !y.contains(&m));
    assert_eq!(m.subtract(&y), m);
}
