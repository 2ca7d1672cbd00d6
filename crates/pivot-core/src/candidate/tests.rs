//! Topology in, candidate out: one row per rule.

use super::*;
use crate::fixture::*;
use crate::observation::{FailureKind, IoThread::Connecting};
use crate::view::ClusterView;

const P: &str = "10.0.0.1:3306";
const R1: &str = "10.0.0.2:3306";
const R2: &str = "10.0.0.3:3306";
const R3: &str = "10.0.0.4:3306";

/// A replica of the dead primary P that applied `applied` and received `received`.
fn r(id: u32, applied: &str, received: &str) -> StateBuilder {
    state(id, applied).replica_of(P, received).io(Connecting)
}

struct Case {
    name: &'static str,
    replicas: Vec<(&'static str, Option<StateBuilder>)>,
    rules: PromotionRules,
    target: Option<&'static str>,
    force: bool,
    /// Ok((candidate, catch_up_from)) or Err(phrase of the refusal).
    want: Result<(&'static str, Option<&'static str>), &'static str>,
    /// A phrase that must appear in the report of some replica.
    report_has: &'static str,
}

fn case(
    name: &'static str,
    replicas: Vec<(&'static str, Option<StateBuilder>)>,
    want: Result<(&'static str, Option<&'static str>), &'static str>,
) -> Case {
    Case { name, replicas, rules: rules(), target: None, force: false, want, report_has: "" }
}

fn rules() -> PromotionRules {
    PromotionRules { max_lag_s: 60, ..PromotionRules::default() }
}

fn healthy() -> Vec<(&'static str, Option<StateBuilder>)> {
    vec![
        (R1, Some(r(2, "0-1-100", "0-1-100"))),
        (R2, Some(r(3, "0-1-100", "0-1-100"))),
        (R3, Some(r(4, "0-1-100", "0-1-100"))),
    ]
}

fn cases() -> Vec<Case> {
    vec![
        case("all equal: lowest key wins, deterministically", healthy(), Ok((R1, None))),
        case(
            "most received wins",
            vec![
                (R1, Some(r(2, "0-1-100", "0-1-100"))),
                (R2, Some(r(3, "0-1-100", "0-1-105"))),
                (R3, Some(r(4, "0-1-100", "0-1-101"))),
            ],
            Ok((R2, None)),
        ),
        case(
            "same received: most applied wins",
            vec![
                (R1, Some(r(2, "0-1-98", "0-1-105"))),
                (R2, Some(r(3, "0-1-104", "0-1-105"))),
                (R3, Some(r(4, "0-1-99", "0-1-105"))),
            ],
            Ok((R2, None)),
        ),
        Case {
            rules: PromotionRules { preferred: vec![key(R1)], ..rules() },
            ..case(
                "a preferred replica that is behind catches up from the most advanced",
                vec![
                    (R1, Some(r(2, "0-1-100", "0-1-100"))),
                    (R2, Some(r(3, "0-1-100", "0-1-105"))),
                    (R3, Some(r(4, "0-1-100", "0-1-100"))),
                ],
                Ok((R1, Some(R2))),
            )
        },
        Case {
            rules: PromotionRules { never_promote: vec![key(R2)], ..rules() },
            report_has: "marked never_promote",
            ..case(
                "never_promote is never chosen but can still serve what it received",
                vec![
                    (R1, Some(r(2, "0-1-100", "0-1-100"))),
                    (R2, Some(r(3, "0-1-100", "0-1-105"))),
                    (R3, Some(r(4, "0-1-100", "0-1-103"))),
                ],
                Ok((R3, Some(R2))),
            )
        },
        Case {
            report_has: "errant GTIDs the primary never had: 0-3-101",
            ..case(
                "errant replica is not promoted",
                vec![
                    (R1, Some(r(2, "0-1-100", "0-1-100"))),
                    (R2, Some(state(3, "0-1-100,0-3-101").replica_of(P, "0-1-100").io(Connecting))),
                ],
                Ok((R1, None)),
            )
        },
        Case {
            report_has: "errant GTIDs",
            ..case(
                "errant replica that received more cannot serve it: refused",
                vec![
                    (R1, Some(r(2, "0-1-100", "0-1-100"))),
                    (R2, Some(state(3, "0-1-100,99-3-1").replica_of(P, "0-1-104").io(Connecting))),
                ],
                Err("promoting would lose it"),
            )
        },
        Case {
            force: true,
            ..case(
                "... unless forced",
                vec![
                    (R1, Some(r(2, "0-1-100", "0-1-100"))),
                    (R2, Some(state(3, "0-1-100,99-3-1").replica_of(P, "0-1-104").io(Connecting))),
                ],
                Ok((R1, None)),
            )
        },
        Case {
            report_has: "binary log off",
            ..case(
                "binlog off",
                vec![(R1, Some(r(2, "0-1-100", "0-1-100").log_bin(false))), (R2, Some(r(3, "0-1-100", "0-1-100")))],
                Ok((R2, None)),
            )
        },
        Case {
            report_has: "SQL thread stopped with error 1062",
            ..case(
                "replication error",
                vec![
                    (R1, Some(r(2, "0-1-100", "0-1-100").sql_error(1062, "dup"))),
                    (R2, Some(r(3, "0-1-100", "0-1-100"))),
                ],
                Ok((R2, None)),
            )
        },
        Case {
            report_has: "filters differ",
            ..case(
                "different replication filters",
                vec![
                    (R1, Some(r(2, "0-1-100", "0-1-100").filter_do_db("app"))),
                    (R2, Some(r(3, "0-1-100", "0-1-100"))),
                    (R3, Some(r(4, "0-1-100", "0-1-100"))),
                ],
                Ok((R2, None)),
            )
        },
        Case {
            report_has: "delayed replica (3600s)",
            ..case(
                "delayed",
                vec![(R1, Some(r(2, "0-1-100", "0-1-100").delay(3600))), (R2, Some(r(3, "0-1-100", "0-1-100")))],
                Ok((R2, None)),
            )
        },
        Case {
            report_has: "newer server version than replica 10.0.0.3:3306",
            ..case(
                "newer version than another replica",
                vec![
                    (R1, Some(r(2, "0-1-100", "0-1-100").version("11.4.2-MariaDB"))),
                    (R2, Some(r(3, "0-1-100", "0-1-100").version("10.11.6-MariaDB"))),
                ],
                Ok((R2, None)),
            )
        },
        Case {
            report_has: "lagging 300s (limit 60s)",
            ..case(
                "lagging beyond the limit",
                vec![(R1, Some(r(2, "0-1-100", "0-1-100").lag(300))), (R2, Some(r(3, "0-1-100", "0-1-100")))],
                Ok((R2, None)),
            )
        },
        Case {
            report_has: "unreachable",
            ..case(
                "unreachable replicas are skipped and reported lost",
                vec![(R1, None), (R2, Some(r(3, "0-1-100", "0-1-100")))],
                Ok((R2, None)),
            )
        },
        case("all replicas unreachable", vec![(R1, None), (R2, None)], Err("no reachable replica can serve")),
        case(
            "every replica has a reason",
            vec![
                (R1, Some(r(2, "0-1-100", "0-1-100").delay(10))),
                (R2, Some(r(3, "0-1-100", "0-1-100").sql_error(1146, "no table"))),
            ],
            Err("no reachable replica can serve as the new primary"),
        ),
        Case {
            target: Some(R3),
            report_has: "not the requested target",
            ..case(
                "a target that is eligible is chosen even if another received more",
                vec![
                    (R1, Some(r(2, "0-1-100", "0-1-105"))),
                    (R2, Some(r(3, "0-1-100", "0-1-100"))),
                    (R3, Some(r(4, "0-1-100", "0-1-100"))),
                ],
                Ok((R3, Some(R1))),
            )
        },
        Case {
            target: Some(R2),
            ..case(
                "a target with a reason is refused",
                vec![(R1, Some(r(2, "0-1-100", "0-1-100"))), (R2, Some(r(3, "0-1-100", "0-1-100").delay(60)))],
                Err("the requested target 10.0.0.3:3306 cannot be promoted"),
            )
        },
        Case {
            target: Some(R2),
            force: true,
            ..case(
                "a target with an overridable reason is promoted when forced",
                vec![(R1, Some(r(2, "0-1-100", "0-1-100"))), (R2, Some(r(3, "0-1-100", "0-1-100").delay(60)))],
                Ok((R2, None)),
            )
        },
        Case {
            target: Some(R2),
            force: true,
            ..case(
                "an unreachable target is refused even when forced",
                vec![(R1, Some(r(2, "0-1-100", "0-1-100"))), (R2, None)],
                Err("cannot be promoted"),
            )
        },
        Case {
            target: Some("10.9.9.9:3306"),
            ..case("a target that is not a replica", healthy(), Err("is not a replica of 10.0.0.1:3306"))
        },
    ]
}

#[test]
fn candidate_table() {
    let mut failures = Vec::new();
    for c in cases() {
        let mut seeds = vec![key(P)];
        seeds.extend(c.replicas.iter().map(|(k, _)| key(k)));
        let mut view = ClusterView::new(seeds);
        view.apply(up(P, 0, state(1, "0-1-100")), 10);
        view.apply(down(P, 1000, FailureKind::Refused), 10);
        for (k, st) in &c.replicas {
            // Known as a replica of P first, then as it is now.
            view.apply(up(k, 0, r(9, "0-1-1", "0-1-1").io(crate::observation::IoThread::Running)), 10);
            match st {
                Some(s) => view.apply(up(k, 1010, s.clone()), 10),
                None => view.apply(down(k, 1010, FailureKind::Refused), 10),
            };
        }
        let topo = Topology::derive(&view);
        let target = c.target.map(key);
        let req = ChoiceRequest {
            view: &view,
            topology: &topo,
            failed_primary: &key(P),
            rules: &c.rules,
            target: target.as_ref(),
            force: c.force,
        };
        let got = choose(&req);
        let ok = match (&got, &c.want) {
            (Ok(ch), Ok((cand, from))) => ch.candidate == key(cand) && ch.catch_up_from == from.map(key),
            (Err(refusal), Err(phrase)) => refusal.reason.contains(phrase),
            _ => false,
        };
        let report = match &got {
            Ok(ch) => format!("{:?}", ch.report),
            Err(r) => r.to_string(),
        };
        if !ok {
            failures.push(format!(
                "{}: got {:?}",
                c.name,
                got.as_ref().map(|ch| (&ch.candidate, &ch.catch_up_from)).map_err(|r| r.to_string())
            ));
        } else if !report.contains(c.report_has) {
            failures.push(format!("{}: report lacks `{}`: {report}", c.name, c.report_has));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn followers_lost_and_target_position() {
    let mut view = ClusterView::new([key(P), key(R1), key(R2), key(R3)]);
    view.apply(up(P, 0, state(1, "0-1-100")), 10);
    view.apply(down(P, 1000, FailureKind::Refused), 10);
    for (k, id) in [(R1, 2), (R2, 3), (R3, 4)] {
        view.apply(up(k, 0, r(id, "0-1-100", "0-1-100").io(crate::observation::IoThread::Running)), 10);
    }
    view.apply(up(R1, 1010, r(2, "0-1-100", "0-1-103")), 10);
    view.apply(up(R2, 1010, r(3, "0-1-100", "0-1-101").delay(5)), 10);
    view.apply(down(R3, 1010, FailureKind::Timeout), 10);
    let topo = Topology::derive(&view);
    let rules = rules();
    let ch = choose(&ChoiceRequest {
        view: &view,
        topology: &topo,
        failed_primary: &key(P),
        rules: &rules,
        target: None,
        force: false,
    })
    .unwrap();
    assert_eq!(ch.candidate, key(R1));
    assert_eq!(ch.target.to_string(), "0-1-103");
    assert_eq!(ch.followers, vec![key(R2)], "a delayed replica still follows");
    assert_eq!(ch.lost.len(), 1);
    assert_eq!(ch.lost[0].0, key(R3));
    assert!(ch.lost[0].1.contains("repoint it to 10.0.0.2:3306 when it is back"));
}
