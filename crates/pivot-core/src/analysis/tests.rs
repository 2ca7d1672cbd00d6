//! Observations in, analysis out: one row per case, like orchestrator's
//! analysis tests. Times are milliseconds; P is the primary, R1/R2 replicas.

use super::*;
use crate::fixture::*;
use crate::observation::{FailureKind::*, IoThread::*, Observation};
use crate::view::ClusterView;

const P: &str = "10.0.0.1:3306";
const R1: &str = "10.0.0.2:3306";
const R2: &str = "10.0.0.3:3306";

fn primary() -> StateBuilder {
    state(1, "0-1-100")
}
fn replica(id: u32) -> StateBuilder {
    state(id, "0-1-100").replica_of(P, "0-1-100")
}

struct Case {
    name: &'static str,
    seeds: &'static [&'static str],
    obs: Vec<Observation>,
    settings: DetectionSettings,
    code: Code,
    /// A phrase the signal must contain.
    signal: &'static str,
    /// (instance, phrase) pairs that must appear among the problems.
    problems: &'static [(&'static str, &'static str)],
}

fn case(name: &'static str, obs: Vec<Observation>, code: Code, signal: &'static str) -> Case {
    Case { name, seeds: &[P, R1, R2], obs, settings: DetectionSettings::default(), code, signal, problems: &[] }
}

fn healthy_round(at: u64) -> Vec<Observation> {
    vec![up(P, at, primary()), up(R1, at, replica(2)), up(R2, at, replica(3))]
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        case("healthy", healthy_round(0), Code::Healthy, "writable and answers"),
        Case {
            seeds: &[P, R1, R2],
            ..case(
                "incomplete until every seed answered once",
                vec![up(P, 0, primary())],
                Code::Incomplete,
                "first probe of 10.0.0.2",
            )
        },
        case(
            "kill -9: refused, replicas re-probed after the failure see IO connecting",
            [
                healthy_round(0),
                vec![
                    down(P, 1000, Refused),
                    up(R1, 1010, replica(2).io(Connecting).io_error(2003, "Can't connect")),
                    up(R2, 1010, replica(3).io(Connecting)),
                ],
            ]
            .concat(),
            Code::DeadPrimary,
            "confirmed by 10.0.0.2:3306 IO thread connecting",
        ),
        case(
            "replica readings taken before the failure do not confirm",
            [
                healthy_round(0),
                vec![
                    up(R1, 900, replica(2).io(Connecting)),
                    up(R2, 900, replica(3).io(Connecting)),
                    down(P, 1000, Refused),
                ],
            ]
            .concat(),
            Code::PrimaryUnreachableUnconfirmed,
            "not probed since the primary started failing",
        ),
        case(
            "pivot cut off from the primary while heartbeats still arrive (S3)",
            [
                healthy_round(0),
                vec![
                    up(R1, 200, replica(2).heartbeats(1)),
                    up(R2, 200, replica(3).heartbeats(1)),
                    down(P, 1000, Timeout),
                    up(R1, 1100, replica(2).heartbeats(5)),
                    up(R2, 1100, replica(3).heartbeats(5)),
                    down(P, 2000, Timeout),
                    up(R1, 2100, replica(2).heartbeats(9)),
                    up(R2, 2100, replica(3).heartbeats(9)),
                ],
            ]
            .concat(),
            Code::PrimaryUnreachableReplicasReplicating,
            "received from it 0 ms before its last probe",
        ),
        case(
            "hung primary: silence shorter than the confirm window is not enough",
            [
                healthy_round(0),
                vec![
                    up(R1, 200, replica(2).heartbeats(5)),
                    up(R2, 200, replica(3).heartbeats(5)),
                    down(P, 1000, Timeout),
                    up(R1, 1100, replica(2).heartbeats(5)),
                    up(R2, 1100, replica(3).heartbeats(5)),
                ],
            ]
            .concat(),
            Code::PrimaryUnreachableReplicasReplicating,
            "900 ms",
        ),
        case(
            "hung primary: silence over the confirm window confirms (S2)",
            [
                healthy_round(0),
                vec![
                    up(R1, 200, replica(2).heartbeats(5)),
                    up(R2, 200, replica(3).heartbeats(5)),
                    down(P, 1000, Timeout),
                    up(R1, 1250, replica(2).heartbeats(5)),
                    up(R2, 1250, replica(3).heartbeats(5)),
                ],
            ]
            .concat(),
            Code::DeadPrimary,
            "received nothing for 1050 ms",
        ),
        case(
            "a slow heartbeat period stretches the window it needs",
            [
                healthy_round(0),
                vec![
                    up(R1, 0, replica(2).heartbeats(5).heartbeat_period_ms(Some(2000))),
                    up(R2, 0, replica(3).io(Connecting)),
                    down(P, 1000, Timeout),
                    up(R1, 1500, replica(2).heartbeats(5).heartbeat_period_ms(Some(2000))),
                    up(R2, 1500, replica(3).io(Connecting)),
                ],
            ]
            .concat(),
            Code::PrimaryUnreachableReplicasReplicating,
            "10.0.0.2:3306",
        ),
        case(
            "heartbeats off: a connected IO thread cannot vouch either way",
            [
                healthy_round(0),
                vec![
                    down(P, 1000, Timeout),
                    up(R1, 3000, replica(2).heartbeat_period_ms(None)),
                    up(R2, 3000, replica(3).io(Connecting)),
                ],
            ]
            .concat(),
            Code::PrimaryUnreachableUnconfirmed,
            "heartbeats off",
        ),
        case(
            "an IO thread stopped by an operator has no opinion",
            [
                healthy_round(0),
                vec![
                    down(P, 1000, Refused),
                    up(R1, 1010, replica(2).io(Stopped)),
                    up(R2, 1010, replica(3).io(Connecting)),
                ],
            ]
            .concat(),
            Code::PrimaryUnreachableUnconfirmed,
            "no opinion",
        ),
        case(
            "an IO thread that gave up with an error confirms",
            [
                healthy_round(0),
                vec![
                    down(P, 1000, Refused),
                    up(R1, 1010, replica(2).io(Stopped).io_error(2003, "gave up")),
                    up(R2, 1010, replica(3).io(Connecting)),
                ],
            ]
            .concat(),
            Code::DeadPrimary,
            "IO thread stopped",
        ),
        case(
            "dead primary and one replica",
            [
                healthy_round(0),
                vec![down(P, 1000, Refused), down(R1, 1010, Refused), up(R2, 1010, replica(3).io(Connecting))],
            ]
            .concat(),
            Code::DeadPrimaryAndSomeReplicas,
            "1 replica(s) unreachable too",
        ),
        case(
            "dead primary and every replica (S8)",
            [healthy_round(0), vec![down(P, 1000, Refused), down(R1, 1010, Timeout), down(R2, 1010, Refused)]].concat(),
            Code::DeadPrimaryWithoutReplicas,
            "nor any replica",
        ),
        case(
            "access denied says nothing about health",
            [healthy_round(0), vec![down(P, 1000, AccessDenied), up(R1, 1010, replica(2).io(Connecting))]].concat(),
            Code::PrimaryProbeError,
            "answers but pivot's probe fails",
        ),
        Case {
            settings: DetectionSettings { unreachable_after: 2, ..DetectionSettings::default() },
            ..case(
                "fewer failed probes than required",
                [
                    healthy_round(0),
                    vec![
                        down(P, 1000, Refused),
                        up(R1, 1010, replica(2).io(Connecting)),
                        up(R2, 1010, replica(3).io(Connecting)),
                    ],
                ]
                .concat(),
                Code::PrimaryUnreachableUnconfirmed,
                "1 of 2 probes",
            )
        },
        Case {
            settings: DetectionSettings { unreachable_after: 2, ..DetectionSettings::default() },
            ..case(
                "enough failed probes",
                [
                    healthy_round(0),
                    vec![
                        down(P, 1000, Refused),
                        down(P, 1250, Refused),
                        up(R1, 1260, replica(2).io(Connecting)),
                        up(R2, 1260, replica(3).io(Connecting)),
                    ],
                ]
                .concat(),
                Code::DeadPrimary,
                "confirmed by",
            )
        },
        Case {
            problems: &[(R1, "IO thread connecting"), (R1, "IO error 2003: Can't connect")],
            ..case(
                "a replica that never connected is a problem, not a cluster failure",
                vec![
                    up(P, 0, primary()),
                    up(R1, 0, replica(2).io(Connecting).io_error(2003, "Can't connect")),
                    up(R2, 0, replica(3)),
                ],
                Code::Healthy,
                "writable",
            )
        },
        Case {
            problems: &[(R1, "SQL thread stopped"), (R2, "IO thread stopped")],
            ..case(
                "all replicas of a live primary stopped",
                vec![up(P, 0, primary()), up(R1, 0, replica(2).sql_stopped()), up(R2, 0, replica(3).io(Stopped))],
                Code::AllReplicasNotReplicating,
                "none of the 2 replicas",
            )
        },
        Case {
            problems: &[(R1, "SQL error 1062: Duplicate entry '7' for key 'PRIMARY'"), (R1, "SQL thread stopped")],
            ..case(
                "replica broken by a replication error",
                vec![
                    up(P, 0, primary()),
                    up(R1, 0, replica(2).sql_error(1062, "Duplicate entry '7' for key 'PRIMARY'")),
                    up(R2, 0, replica(3)),
                ],
                Code::Healthy,
                "writable",
            )
        },
        Case {
            problems: &[(R1, "lagging 30s (threshold 10s)"), (R2, "delayed replica")],
            ..case(
                "lag and delay",
                vec![up(P, 0, primary()), up(R1, 0, replica(2).lag(30)), up(R2, 0, replica(3).delay(3600))],
                Code::Healthy,
                "writable",
            )
        },
        Case {
            problems: &[(R1, "errant GTIDs the primary never had: 0-2-101,99-2-1"), (R1, "writable replica")],
            ..case(
                "errant transactions and a writable replica",
                vec![
                    up(P, 0, primary()),
                    up(R1, 0, state(2, "0-1-100,0-2-101,99-2-1").replica_of(P, "0-1-100").read_only(false)),
                    up(R2, 0, replica(3)),
                ],
                Code::SplitBrain,
                "10.0.0.1:3306, 10.0.0.2:3306",
            )
        },
        case(
            "a replica probed later than the primary is not errant",
            vec![up(P, 0, primary()), up(R1, 50, state(2, "0-1-103").replica_of(P, "0-1-103")), up(R2, 0, replica(3))],
            Code::Healthy,
            "writable",
        ),
        case(
            "read-only primary",
            vec![up(P, 0, primary().read_only(true)), up(R1, 0, replica(2)), up(R2, 0, replica(3))],
            Code::NoWritablePrimary,
            "is read-only",
        ),
        case(
            "semi-sync primary stuck without acknowledging replicas",
            vec![
                up(P, 0, primary().semi_sync_primary(0, 3)),
                up(R1, 0, replica(2).io(Connecting)),
                up(R2, 0, replica(3)),
            ],
            Code::SemiSyncPrimaryStuck,
            "3 session(s)",
        ),
        case(
            "semi-sync waits normally while a replica acknowledges",
            vec![up(P, 0, primary().semi_sync_primary(1, 3)), up(R1, 0, replica(2)), up(R2, 0, replica(3))],
            Code::Healthy,
            "writable",
        ),
        Case {
            seeds: &[P, R1],
            ..case(
                "nobody replicates and nobody is writable",
                vec![up(P, 0, primary().read_only(true)), up(R1, 0, state(2, "").read_only(true))],
                Code::NoPrimary,
                "no instance has replicas",
            )
        },
        case(
            "an out-of-order observation is ignored",
            [
                healthy_round(0),
                vec![
                    down(P, 1000, Refused),
                    up(P, 500, primary()),
                    up(R1, 1010, replica(2).io(Connecting)),
                    up(R2, 1010, replica(3).io(Connecting)),
                ],
            ]
            .concat(),
            Code::DeadPrimary,
            "confirmed",
        ),
        case(
            "primary back after a blip",
            [healthy_round(0), vec![down(P, 1000, Timeout), up(P, 1250, primary())]].concat(),
            Code::Healthy,
            "writable",
        ),
    ];
    v.push(Case {
        seeds: &[P, R1, R2],
        ..case(
            "last one standing: dead former primaries do not count as writable",
            vec![
                up(P, 0, primary()),
                up(R1, 0, state(2, "0-2-5")),
                up(R2, 0, state(3, "0-2-5")),
                down(P, 100, Refused),
                down(R1, 100, Refused),
            ],
            Code::Healthy,
            "10.0.0.3:3306 is writable",
        )
    });
    // Primary only known from its replicas (pivot started after it died).
    v.push(Case {
        seeds: &[R1, R2],
        ..case(
            "primary known only through its replicas is probed before judging",
            vec![up(R1, 0, replica(2).io(Connecting)), up(R2, 0, replica(3).io(Connecting))],
            Code::Incomplete,
            "known from its replicas but not probed yet",
        )
    });
    v
}

#[test]
fn analysis_table() {
    let mut failures = Vec::new();
    for c in cases() {
        let mut view = ClusterView::new(c.seeds.iter().map(|s| key(s)));
        let now = c.obs.iter().map(|o| o.at).max().unwrap_or_default();
        for o in c.obs {
            view.apply(o, c.settings.lag_threshold_s);
        }
        let a = analyze(&view, &c.settings, now);
        if a.code != c.code || !a.signal.contains(c.signal) {
            failures
                .push(format!("{}: got {:?} / {:?}, want {:?} / ..{}..", c.name, a.code, a.signal, c.code, c.signal));
        }
        for (inst, phrase) in c.problems {
            if !a.problems_of(&key(inst)).any(|p| p.text.contains(phrase)) {
                failures.push(format!("{}: no problem `{phrase}` on {inst}; have {:?}", c.name, a.problems));
            }
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn only_dead_primary_codes_are_failover_worthy() {
    use Code::*;
    let all = [
        Incomplete,
        Healthy,
        NoPrimary,
        SplitBrain,
        NoWritablePrimary,
        SemiSyncPrimaryStuck,
        AllReplicasNotReplicating,
        PrimaryProbeError,
        PrimaryUnreachableUnconfirmed,
        PrimaryUnreachableReplicasReplicating,
        DeadPrimary,
        DeadPrimaryAndSomeReplicas,
        DeadPrimaryWithoutReplicas,
    ];
    let worthy: Vec<Code> = all.into_iter().filter(|c| c.failover_worthy()).collect();
    assert_eq!(worthy, vec![DeadPrimary, DeadPrimaryAndSomeReplicas]);
}

/// Every verdict but "fine" and "not sure yet" must reach an operator; a
/// dead primary above all (the monitor only consults the gate for alerting
/// verdicts, so a dead primary that stopped alerting would stop failing over).
#[test]
fn every_problem_verdict_alerts() {
    use Code::*;
    let quiet = [Incomplete, Healthy, PrimaryUnreachableUnconfirmed];
    let loud = [
        NoPrimary,
        SplitBrain,
        NoWritablePrimary,
        SemiSyncPrimaryStuck,
        AllReplicasNotReplicating,
        PrimaryProbeError,
        PrimaryUnreachableReplicasReplicating,
        DeadPrimary,
        DeadPrimaryAndSomeReplicas,
        DeadPrimaryWithoutReplicas,
    ];
    for c in quiet {
        assert!(!c.alerting(), "{c} alerts");
    }
    for c in loud {
        assert!(c.alerting(), "{c} does not alert");
    }
}
