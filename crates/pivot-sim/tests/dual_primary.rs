//! Active/passive dual primaries (S14) in the simulator: a two-server ring
//! (the first primary also replicates from the second), both option files
//! `read_only=ON`, writers on, and the invariant "no server is writable
//! while it holds events received from the other that it has not applied"
//! checked after every event, with every other invariant.

use pivot_sim::{Config, Sim};

const WAIT: u64 = 30_000;

fn ok<T>(r: Result<T, pivot_sim::Failure>) -> T {
    r.unwrap_or_else(|f| panic!("{f}"))
}

fn ring() -> Config {
    Config { servers: 2, dual_primary: true, ..Config::scripted() }
}

fn source_of(s: &Sim, i: usize) -> Option<usize> {
    s.world.servers[i].channel.as_ref().map(|c| c.source)
}

/// The field report's moment: the passive holds a backlog it has not
/// applied when the active dies. pivot recognises the ring (healthy, the
/// active's replication from the passive expected), promotes the passive
/// only after it applied the backlog, loses no acknowledged write, and the
/// old active comes back read-only.
#[test]
fn the_passive_is_promoted_only_after_it_applied_everything_from_the_dead_active() {
    let mut s = Sim::new(1, &ring());
    ok(s.run_until(3_000));
    assert_eq!((source_of(&s, 0), source_of(&s, 1)), (Some(1), Some(0)), "a ring");
    let a = s.analysis().expect("an analysis");
    assert_eq!(a.code, pivot_core::Code::Healthy, "{}", a.signal);
    assert!(a.signal.contains("active of a dual-primary pair"), "{}", a.signal);
    assert_eq!(s.writable(), vec![0]);
    // The passive receives but applies nothing for two seconds: a backlog.
    let now = s.world.now;
    s.stall_apply(1, now + 2_000);
    ok(s.run_until(now + 1_000));
    let backlog = s.world.servers[1].channel.as_ref().map_or(0, |c| c.relay.len());
    assert!(backlog > 10, "a backlog on the passive ({backlog} events)");
    s.crash(0);
    let promoted = ok(s.run_while_not(WAIT, |s| s.writable() == vec![1]));
    assert!(promoted, "the passive promoted; trace:\n{}", s.world.trace.tail().join("\n"));
    assert_eq!(s.missing_on(1), vec![], "acknowledged writes missing on the new active");
    assert!(s.world.servers[1].channel.is_none(), "no replication from the dead active left");
    let r = s.world.store.last_recovery().expect("a recovery").clone();
    let steps = r.step_outcomes();
    let at = |n: &str| steps.iter().position(|x| x.starts_with(&format!("{n}="))).expect(n);
    assert!(at("stop_replica_io") < at("wait_relay_applied") && at("wait_relay_applied") < at("promote"), "{steps:?}");
    // The old active restarts read-only (its option file) and stays so.
    s.restart(0);
    let t = s.world.now;
    ok(s.run_until(t + 5_000));
    assert_eq!(s.writable(), vec![1], "one writer");
}

/// The invariant itself: a passive made writable by hand with a backlog
/// (what keepalived's VIP move did) breaks it at once.
#[test]
fn a_passive_made_writable_with_a_backlog_breaks_the_invariant() {
    let mut s = Sim::new(1, &ring());
    ok(s.run_until(3_000));
    let now = s.world.now;
    s.stall_apply(1, now + 5_000);
    ok(s.run_until(now + 500));
    s.set_read_only(1, false);
    let f = s.run_until(now + 1_000).expect_err("the invariant breaks");
    assert_eq!(f.invariant, "dual primary: applied before writable", "{f}");
}

/// Random faults (crashes, hangs, cuts, pivot killed and restarted,
/// switchovers) on the ring, the cluster itself fixed (no variation: it
/// would change the number of servers): every invariant after every event,
/// the dual-primary one included.
#[test]
fn random_faults_on_a_ring_keep_every_invariant() {
    let cfg = Config { servers: 2, dual_primary: true, randomize: false, ..Config::default() };
    let mut failures = Vec::new();
    for seed in 0..40 {
        if let Err(f) = pivot_sim::run_seed(seed, &cfg) {
            failures.push(f);
        }
    }
    if let Some(f) = failures.first() {
        let seeds: Vec<u64> = failures.iter().map(|f| f.seed).collect();
        panic!("{} seed(s) broke an invariant: {seeds:?}\n\n{f}", failures.len());
    }
}
