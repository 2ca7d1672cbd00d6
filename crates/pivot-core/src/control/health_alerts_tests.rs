//! Replication-health alerts, table-driven: a script of readings (and
//! recovery starts and ends, ticks) per row, and the alerts that went out.

use super::health_alerts::*;
use crate::instance::InstanceKey;
use crate::observation::ReplicationError;
use crate::time::Millis;

const INTERVAL: u64 = 60_000;

#[derive(Clone, Copy)]
enum Step {
    /// A reading of the SQL thread: running, or stopped with this error.
    Sql(u64, Option<u32>),
    /// A reading of the IO thread (`source_down`: its source is unreachable).
    Io(u64, &'static str, bool),
    Lag(u64, u64),
    Reach(u64, bool),
    Tick(u64),
    /// A tick while the replica's source is unreachable.
    TickSourceDown(u64),
    Recovering(u64, bool),
}

fn key() -> InstanceKey {
    "10.0.0.2:3306".parse().unwrap()
}

fn reading(state: &'static str, bad: bool, error: Option<u32>, lag_s: Option<u64>) -> Reading {
    Reading {
        state,
        bad,
        error: error.map(|n| ReplicationError { number: n, message: format!("error text {n}") }),
        lag_s,
        message: (state == "unreachable").then(|| "connection refused".to_string()),
    }
}

/// Each alert as `kind:PROBLEM|RESOLVED:from->to[:error][+suppressed]`.
fn run(steps: &[Step]) -> Vec<String> {
    let mut h = HealthAlerts::new("main".into(), INTERVAL, 10);
    let mut out = Vec::new();
    for s in steps {
        let alerts = match *s {
            Step::Sql(t, e) => {
                let r = match e {
                    Some(n) => reading("error", true, Some(n), None),
                    None => reading("running", false, None, None),
                };
                h.observe(&key(), vec![(HealthKind::Sql, r)], false, Millis(t))
            }
            Step::Io(t, state, down) => {
                let r = reading(state, state != "running", None, None);
                h.observe(&key(), vec![(HealthKind::Io, r)], down, Millis(t))
            }
            Step::Lag(t, l) => {
                let r = reading(if l > 10 { "over" } else { "ok" }, l > 10, None, Some(l));
                h.observe(&key(), vec![(HealthKind::Lag, r)], false, Millis(t))
            }
            Step::Reach(t, up) => {
                let r = reading(if up { "reachable" } else { "unreachable" }, !up, None, None);
                h.observe(&key(), vec![(HealthKind::Reachability, r)], false, Millis(t))
            }
            Step::Tick(t) => h.tick(Millis(t), |_| false),
            Step::TickSourceDown(t) => h.tick(Millis(t), |_| true),
            Step::Recovering(t, r) => {
                h.set_recovering(r, Millis(t));
                vec![]
            }
        };
        for a in alerts {
            let what = if a.resolved { "RESOLVED" } else { "PROBLEM" };
            let mut s = format!("{}:{what}:{}->{}", a.kind.as_str(), a.from, a.to);
            if let Some(e) = &a.error {
                s.push_str(&format!(":{}", e.number));
            }
            if a.suppressed > 0 {
                s.push_str(&format!("+{}", a.suppressed));
            }
            out.push(s);
        }
    }
    out
}

#[test]
fn transitions_rate_limits_and_recoveries() {
    use Step::*;
    let rows: Vec<(&str, Vec<Step>, Vec<&str>)> = vec![
        ("healthy from the start: nothing", vec![Sql(0, None), Sql(1_000, None), Tick(2_000)], vec![]),
        (
            "SQL error then fixed: a problem with its error, then one resolve",
            vec![Sql(0, None), Sql(1_000, Some(1062)), Sql(2_000, Some(1062)), Sql(3_000, None), Sql(4_000, None)],
            vec!["sql:PROBLEM:running->error:1062", "sql:RESOLVED:error->running:1062"],
        ),
        ("broken at the first reading: announced", vec![Sql(0, Some(1062))], vec!["sql:PROBLEM:running->error:1062"]),
        (
            "a flap within the interval: held back, sent when due with the count, resolve sent",
            vec![
                Sql(0, None),
                Sql(1_000, Some(1062)),
                Sql(2_000, None),
                Sql(3_000, Some(1062)),
                Tick(30_000),
                Tick(62_000),
                Sql(63_000, None),
            ],
            vec![
                "sql:PROBLEM:running->error:1062",
                "sql:RESOLVED:error->running:1062",
                "sql:PROBLEM:running->error:1062",
                "sql:RESOLVED:error->running:1062",
            ],
        ),
        (
            "a flap that ends healthy within the interval: no second problem; counted on the next",
            vec![
                Sql(0, None),
                Sql(1_000, Some(1062)),
                Sql(2_000, None),
                Sql(3_000, Some(1032)),
                Sql(4_000, None),
                Tick(70_000),
                Sql(80_000, Some(1146)),
            ],
            vec![
                "sql:PROBLEM:running->error:1062",
                "sql:RESOLVED:error->running:1062",
                "sql:PROBLEM:running->error:1146+2",
            ],
        ),
        (
            "another error while the first is announced: rate-limited, then sent from the old error",
            vec![Sql(0, Some(1062)), Sql(1_000, Some(1032)), Tick(61_000)],
            vec!["sql:PROBLEM:running->error:1062", "sql:PROBLEM:error->error:1032"],
        ),
        (
            "lag over the threshold and back; lag moving while over is no transition",
            vec![Lag(0, 0), Lag(1_000, 30), Lag(2_000, 50), Lag(3_000, 2)],
            vec!["lag:PROBLEM:ok->over", "lag:RESOLVED:over->ok"],
        ),
        (
            "unreachable and back",
            vec![Reach(0, true), Reach(1_000, false), Reach(2_000, false), Reach(3_000, true)],
            vec!["reachability:PROBLEM:reachable->unreachable", "reachability:RESOLVED:unreachable->reachable"],
        ),
        (
            "IO thread connecting while its source is down: held, healthy again: nothing",
            vec![
                Io(0, "running", false),
                Io(1_000, "connecting", true),
                TickSourceDown(70_000),
                Io(71_000, "running", false),
            ],
            vec![],
        ),
        (
            "IO thread still broken once its source is back: sent on the tick",
            vec![
                Io(0, "running", false),
                Io(1_000, "connecting", true),
                Io(2_000, "connecting", false),
                Tick(3_000),
                Tick(1_000 + IO_CONNECTING_GRACE_MS),
            ],
            vec!["io:PROBLEM:running->connecting"],
        ),
        (
            "IO thread reconnecting briefly (a blip): nothing",
            vec![Io(0, "running", false), Io(1_000, "connecting", false), Tick(2_000), Io(3_000, "running", false)],
            vec![],
        ),
        (
            "IO thread stopped: at once",
            vec![Io(0, "running", false), Io(1_000, "stopped", false)],
            vec!["io:PROBLEM:running->stopped"],
        ),
        (
            "during a recovery and its quiet time: held; repointed replicas raise nothing",
            vec![
                Sql(0, None),
                Recovering(1_000, true),
                Sql(2_000, Some(2013)),
                Sql(3_000, None),
                Recovering(4_000, false),
                Tick(5_000),
                Tick(20_000),
            ],
            vec![],
        ),
        (
            "still broken after the quiet time: one problem, with the hidden flaps counted",
            vec![
                Sql(0, None),
                Recovering(1_000, true),
                Sql(2_000, Some(1062)),
                Recovering(4_000, false),
                Tick(5_000),
                Tick(4_000 + QUIET_AFTER_RECOVERY_MS),
            ],
            vec!["sql:PROBLEM:running->error:1062"],
        ),
        (
            "a resolve of an announced problem goes out even during a recovery",
            vec![Sql(0, Some(1062)), Recovering(1_000, true), Sql(2_000, None)],
            vec!["sql:PROBLEM:running->error:1062", "sql:RESOLVED:error->running:1062"],
        ),
    ];
    for (name, steps, want) in rows {
        assert_eq!(run(&steps), want, "{name}");
    }
}

#[test]
fn the_alert_names_instance_error_and_lag() {
    let mut h = HealthAlerts::new("main".into(), INTERVAL, 10);
    let r = reading("error", true, Some(1062), None);
    let a = h.observe(&key(), vec![(HealthKind::Sql, r)], false, Millis(5)).remove(0);
    assert_eq!((a.cluster.as_str(), a.instance.clone(), a.kind, a.resolved), ("main", key(), HealthKind::Sql, false));
    assert!(a.line().contains("10.0.0.2:3306 sql: running -> error (error 1062: error text 1062)"), "{}", a.line());
    let r = reading("over", true, None, Some(42));
    let a = h.observe(&key(), vec![(HealthKind::Lag, r)], false, Millis(6)).remove(0);
    assert_eq!((a.lag_s, a.threshold_s), (Some(42), Some(10)));
    assert!(a.line().contains("lag 42s, threshold 10s"), "{}", a.line());
}

#[test]
fn memory_is_bounded_by_the_instances_known() {
    let mut h = HealthAlerts::new("main".into(), INTERVAL, 10);
    for port in 0..100u16 {
        let k: InstanceKey = format!("10.0.0.9:{}", 1000 + port).parse().unwrap();
        h.observe(&k, vec![(HealthKind::Sql, reading("running", false, None, None))], false, Millis(1));
    }
    assert_eq!(h.len(), 100);
    h.retain(|k| k.port < 1010);
    assert_eq!(h.len(), 10);
}

// ---- the cluster machine's side -------------------------------------------------

use super::cluster::{Command, Event};
use super::cluster_tests::{Rig, R1, R2};
use crate::fixture::{down, state, up};
use crate::observation::{FailureKind, IoThread};

fn health(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::HealthAlert(a) => Some(format!(
                "{} {} {}{}",
                a.instance,
                a.kind.as_str(),
                if a.resolved { "resolved" } else { "problem" },
                a.error.as_ref().map(|e| format!(" {}", e.number)).unwrap_or_default()
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn the_machine_alerts_a_replica_whose_sql_thread_stopped_and_its_fix() {
    let mut rig = Rig::new(false);
    rig.advance(100);
    let broken = state(2, "0-1-10").replica_of(super::cluster_tests::P, "0-1-10").sql_error(1062, "Duplicate entry");
    let cmds = rig.ev(Event::Observed(up(R1, rig.now, broken.clone())));
    assert_eq!(health(&cmds), vec![format!("{R1} sql problem 1062")]);
    rig.advance(100);
    assert!(health(&rig.ev(Event::Observed(up(R1, rig.now, broken)))).is_empty(), "said once");
    rig.advance(100);
    let fixed = state(2, "0-1-10").replica_of(super::cluster_tests::P, "0-1-10");
    let cmds = rig.ev(Event::Observed(up(R1, rig.now, fixed)));
    assert_eq!(health(&cmds), vec![format!("{R1} sql resolved 1062")]);
}

#[test]
fn a_dead_primary_is_one_alert_not_one_per_replica_and_a_recovery_raises_none() {
    let mut rig = Rig::new(true);
    let cmds = rig.primary_dies();
    assert_eq!(
        health(&cmds),
        vec![format!("{} reachability problem", super::cluster_tests::P)],
        "the replicas' IO threads, reconnecting to the dead source, are the source's alert"
    );
    // While a recovery runs, a replica's trouble (repointing) is held back.
    let mut cmds = rig.ev(Event::Store(super::cluster_tests::fresh_store()));
    cmds.extend(rig.ev(Event::Tick));
    cmds.extend(rig.ev(Event::Store(super::cluster_tests::fresh_store())));
    assert!(super::cluster_tests::starts(&cmds), "{cmds:?}");
    rig.advance(100);
    let repointing = state(3, "0-1-10").replica_of(R1, "0-1-10").io(IoThread::Stopped).sql_stopped();
    let cmds = rig.ev(Event::Observed(up(R2, rig.now, repointing)));
    assert!(health(&cmds).is_empty(), "{:?}", health(&cmds));
    rig.advance(100);
    assert!(health(&rig.ev(Event::Observed(down(R2, rig.now, FailureKind::Refused)))).is_empty());
}

// ---- readings, timing and wording --------------------------------------------------

/// What one reading of a replica says, per kind: (state, bad, error, lag).
fn read(b: crate::fixture::StateBuilder, lag_s: Option<u64>) -> Vec<(String, bool, Option<u32>, Option<u64>)> {
    readings(&up(R1, 1, b), lag_s, 10)
        .into_iter()
        .map(|(k, r)| (format!("{}={}", k.as_str(), r.state), r.bad, r.error.map(|e| e.number), r.lag_s))
        .collect()
}

#[test]
fn readings_of_a_replica_carry_the_thread_errors_and_judge_the_lag_given() {
    let replica = || state(2, "0-1-10").replica_of(super::cluster_tests::P, "0-1-10");
    let io = |b, lag| read(b, lag).into_iter().find(|r| r.0.starts_with("io=")).unwrap();
    let lag = |l| read(replica(), l).into_iter().find(|r| r.0.starts_with("lag=")).unwrap();
    assert_eq!(
        io(replica().io(IoThread::Stopped).io_error(1236, "x"), None),
        ("io=stopped".into(), true, Some(1236), None)
    );
    assert_eq!(
        io(replica().io(IoThread::Connecting).io_error(2003, "x"), None),
        ("io=connecting".into(), true, Some(2003), None)
    );
    assert_eq!(io(replica(), None), ("io=running".into(), false, None, None));
    // The lag judged is the one given (the heartbeat's when measured), not
    // the server's own figure; over means strictly over the threshold.
    assert_eq!(lag(Some(10)), ("lag=ok".into(), false, None, Some(10)));
    assert_eq!(lag(Some(11)), ("lag=over".into(), true, None, Some(11)));
    assert_eq!(lag(None), ("lag=ok".into(), false, None, None));
    let server_says_600 = read(replica().lag(600), Some(2)).into_iter().find(|r| r.0.starts_with("lag=")).unwrap();
    assert_eq!(server_says_600, ("lag=ok".into(), false, None, Some(2)));
    // Unreachable: reachability only, with the probe's message.
    let r = readings(&down(R1, 1, FailureKind::Refused), None, 10);
    assert_eq!(r.len(), 1);
    assert!(r[0].1.bad && r[0].1.message.is_some());
}

/// When the first alert goes out (ticks every 1 ms up to `until`) after a
/// recovery that ends at `ended_at`, an SQL error having been seen during it.
fn first_alert_after_recovery(ended_at: u64, until: u64) -> Option<u64> {
    let mut h = HealthAlerts::new("main".into(), INTERVAL, 10);
    h.observe(&key(), vec![(HealthKind::Sql, reading("running", false, None, None))], false, Millis(0));
    h.set_recovering(true, Millis(100));
    let broken = reading("error", true, Some(1062), None);
    assert!(h.observe(&key(), vec![(HealthKind::Sql, broken)], false, Millis(200)).is_empty(), "held: recovering");
    h.set_recovering(false, Millis(ended_at));
    (ended_at..=until).find(|t| !h.tick(Millis(*t), |_| false).is_empty())
}

#[test]
fn the_quiet_time_starts_when_the_recovery_ends_and_lasts_exactly_its_length() {
    assert_eq!(
        first_alert_after_recovery(5_000, 5_000 + 2 * QUIET_AFTER_RECOVERY_MS),
        Some(5_000 + QUIET_AFTER_RECOVERY_MS)
    );
}

#[test]
fn only_the_io_thread_is_held_while_the_source_is_down() {
    let mut h = HealthAlerts::new("main".into(), INTERVAL, 10);
    let sent = |h: &mut HealthAlerts, kind, r: Reading, t| h.observe(&key(), vec![(kind, r)], true, Millis(t));
    assert!(sent(&mut h, HealthKind::Io, reading("stopped", true, Some(2003), None), 0).is_empty());
    let a = sent(&mut h, HealthKind::Sql, reading("error", true, Some(1062), None), 1);
    assert_eq!(a.len(), 1, "an SQL error is the replica's own, source down or not");
    assert_eq!(a[0].message, None, "only reachability alerts carry the probe's message");
    let a = sent(&mut h, HealthKind::Reachability, reading("unreachable", true, None, None), 2);
    assert_eq!(a[0].message.as_deref(), Some("connection refused"));
    assert!(!h.is_empty());
    h.retain(|_| false);
    assert!(h.is_empty());
}

#[test]
fn the_log_line_names_the_error_the_lag_and_what_was_not_announced() {
    let mut h = HealthAlerts::new("main".into(), INTERVAL, 10);
    let obs = |h: &mut HealthAlerts, r, t| h.observe(&key(), vec![(HealthKind::Sql, r)], false, Millis(t));
    obs(&mut h, reading("running", false, None, None), 0);
    let first = obs(&mut h, reading("error", true, Some(1062), None), 1);
    assert_eq!(first[0].line(), "PROBLEM 10.0.0.2:3306 sql: running -> error (error 1062: error text 1062)");
    obs(&mut h, reading("running", false, None, None), 2); // resolve: sent
    obs(&mut h, reading("error", true, Some(1032), None), 3); // held: rate limit
    obs(&mut h, reading("running", false, None, None), 4);
    let later = obs(&mut h, reading("error", true, Some(1146), None), INTERVAL + 10);
    assert!(later[0].line().ends_with("[2 earlier transitions not announced]"), "{}", later[0].line());
    let mut lag = HealthAlerts::new("main".into(), INTERVAL, 10);
    let over = lag.observe(&key(), vec![(HealthKind::Lag, reading("over", true, None, Some(42)))], false, Millis(0));
    assert!(over[0].line().ends_with("(lag 42s, threshold 10s)"), "{}", over[0].line());
}

#[test]
fn an_instance_that_never_answered_is_no_alert_one_that_answered_and_stopped_is() {
    const X: &str = "10.0.0.9:3306";
    let mut rig = Rig::new(false);
    let mut obs = up(super::cluster_tests::P, rig.now, state(1, "0-1-10"));
    super::cluster_tests::obs_state_mut(&mut obs).unwrap().registered_replicas =
        vec![R1.parse().unwrap(), R2.parse().unwrap(), X.parse().unwrap()];
    rig.ev(Event::Observed(obs));
    for _ in 0..5 {
        rig.advance(100);
        let cmds = rig.ev(Event::Observed(down(X, rig.now, FailureKind::Refused)));
        assert!(health(&cmds).is_empty(), "a seed that never answered: {:?}", health(&cmds));
    }
    rig.advance(100);
    rig.ev(Event::Observed(up(X, rig.now, state(9, "0-1-10").replica_of(super::cluster_tests::P, "0-1-10"))));
    rig.advance(100);
    let cmds = rig.ev(Event::Observed(down(X, rig.now, FailureKind::Refused)));
    assert_eq!(health(&cmds), vec![format!("{X} reachability problem")]);
}
