//! Active/passive dual primaries (a two-node ring): observations in,
//! analysis out. A is the active (writable, replicating back from the
//! passive), B the passive (read-only, replicating from the active).

use super::*;
use crate::fixture::*;
use crate::observation::{FailureKind::*, IoThread::*, Observation};
use crate::view::ClusterView;

const A: &str = "10.0.0.1:3306";
const B: &str = "10.0.0.2:3306";

fn active() -> StateBuilder {
    state(1, "0-1-100").replica_of(B, "0-1-100").read_only(false)
}
fn passive() -> StateBuilder {
    state(2, "0-1-100").replica_of(A, "0-1-100")
}
fn healthy_round(at: u64) -> Vec<Observation> {
    vec![up(A, at, active()), up(B, at, passive())]
}

struct Case {
    name: &'static str,
    obs: Vec<Observation>,
    code: Code,
    primary: Option<&'static str>,
    /// A phrase the signal must contain.
    signal: &'static str,
    /// (instance, phrase) pairs that must appear among the problems.
    problems: &'static [(&'static str, &'static str)],
    /// Instances that must have no problem at all.
    clean: &'static [&'static str],
    /// Whether the topology names the pair (active A, passive B).
    ring: bool,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "healthy ring: the active's replication from the passive is expected",
            obs: healthy_round(0),
            code: Code::Healthy,
            primary: Some(A),
            signal: "active of a dual-primary pair, passive 10.0.0.2:3306 read-only",
            problems: &[],
            clean: &[A, B],
            ring: true,
        },
        Case {
            name: "both writable: split brain, no primary",
            obs: vec![up(A, 0, active()), up(B, 0, passive().read_only(false))],
            code: Code::SplitBrain,
            primary: None,
            signal: "several instances are writable: 10.0.0.1:3306, 10.0.0.2:3306",
            problems: &[],
            clean: &[],
            ring: false,
        },
        Case {
            name: "the passive's SQL thread stopped (the field report's 1062)",
            obs: vec![
                up(A, 0, active()),
                up(B, 0, passive().sql_error(1062, "Duplicate entry '25' for key 'PRIMARY'")),
            ],
            code: Code::AllReplicasNotReplicating,
            primary: Some(A),
            signal: "none of the 1 replicas of 10.0.0.1:3306 replicates",
            problems: &[(B, "SQL error 1062"), (B, "SQL thread stopped")],
            clean: &[A],
            ring: true,
        },
        Case {
            name: "the active's return replication broken: a problem of the active, the cluster still healthy",
            obs: vec![up(A, 0, active().sql_error(1062, "Duplicate entry '25'")), up(B, 0, passive())],
            code: Code::Healthy,
            primary: Some(A),
            signal: "active of a dual-primary pair",
            problems: &[(A, "SQL error 1062")],
            clean: &[B],
            ring: true,
        },
        Case {
            name: "active dead: the passive's IO thread confirms",
            obs: [
                healthy_round(0),
                vec![down(A, 1000, Refused), up(B, 1010, passive().io(Connecting).io_error(2003, "Can't connect"))],
            ]
            .concat(),
            code: Code::DeadPrimary,
            primary: Some(A),
            signal: "confirmed by 10.0.0.2:3306 IO thread connecting",
            problems: &[(A, "unreachable")],
            clean: &[],
            ring: true,
        },
        Case {
            name: "active dead, the passive not probed since: not confirmed",
            obs: [healthy_round(0), vec![down(A, 1000, Refused)]].concat(),
            code: Code::PrimaryUnreachableUnconfirmed,
            primary: Some(A),
            signal: "not probed since the primary started failing",
            problems: &[],
            clean: &[],
            ring: true,
        },
        Case {
            name: "the passive lagging: a problem, the cluster healthy",
            obs: vec![up(A, 0, active()), up(B, 0, passive().lag(60))],
            code: Code::Healthy,
            primary: Some(A),
            signal: "writable and answers",
            problems: &[(B, "lagging 60s")],
            clean: &[A],
            ring: true,
        },
        Case {
            name: "the passive writable while the active is fine: split brain",
            obs: vec![up(A, 0, active()), up(B, 0, passive().read_only(false))],
            code: Code::SplitBrain,
            primary: None,
            signal: "several instances are writable",
            problems: &[],
            clean: &[],
            ring: false,
        },
        Case {
            name: "both read-only (a switchover between its steps): no primary",
            obs: vec![up(A, 0, active().read_only(true)), up(B, 0, passive())],
            code: Code::NoPrimary,
            primary: None,
            signal: "replication cycle with no writable member",
            problems: &[],
            clean: &[],
            ring: false,
        },
    ]
}

#[test]
fn dual_primary_analysis_table() {
    let mut failures = Vec::new();
    for c in cases() {
        let mut view = ClusterView::new([key(A), key(B)]);
        let now = c.obs.iter().map(|o| o.at).max().unwrap_or_default();
        for o in c.obs {
            view.apply(o, DetectionSettings::default().lag_threshold_s);
        }
        let a = analyze(&view, &DetectionSettings::default(), now);
        let primary = c.primary.map(key);
        if a.code != c.code || !a.signal.contains(c.signal) || a.primary != primary {
            failures.push(format!(
                "{}: got {:?} {:?} / {:?}, want {:?} {:?} / ..{}..",
                c.name, a.code, a.primary, a.signal, c.code, primary, c.signal
            ));
        }
        for (inst, phrase) in c.problems {
            if !a.problems_of(&key(inst)).any(|p| p.text.contains(phrase)) {
                failures.push(format!("{}: no problem `{phrase}` on {inst}; have {:?}", c.name, a.problems));
            }
        }
        for inst in c.clean {
            let k = key(inst);
            if a.problems_of(&k).next().is_some() {
                failures.push(format!("{}: {inst} should have no problem; have {:?}", c.name, a.problems));
            }
        }
        let ring = a.topology.ring.as_ref().map(|r| (r.active.clone(), r.passive.clone()));
        let want = c.ring.then(|| (key(A), key(B)));
        if ring != want {
            failures.push(format!("{}: ring {ring:?}, want {want:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}
