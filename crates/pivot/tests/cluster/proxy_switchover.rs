//! The target for the protocol mode, with the switchover done by
//! the test itself on the route hub (the way a switchover moves the routes:
//! held, the old primary's transactions finish, it is made read-only, the
//! replica catches up and is promoted, the new epoch is published): sysbench
//! `oltp_read_write` with 16 connections through the write port sees zero
//! errors across 20 switchovers back and forth, every session moved.

use crate::support::Sysbench;
use pivot::config::{ProxyConfig, ProxyMode};
use pivot::proxy::stats::ProxyStats;
use pivot::routes::RouteHub;
use pivot_core::routes::{EpochRecord, RouteTable};
use pivot_core::{ClusterView, InstanceKey};
use pivot_dialect::{ChangeSource, Sql};
use pivot_drill::{eventually, TestSandbox};
use pivot_server::Session;
use std::time::{Duration, Instant};

const SWITCHOVERS: u64 = 20;
const THREADS: u64 = 16;
const WAIT: Duration = Duration::from_secs(30);

fn table(epoch: u64, primary: &InstanceKey, hold: bool) -> RouteTable {
    let e = EpochRecord { number: epoch, primary: primary.clone(), recovery_id: None, since_ms: 0 };
    RouteTable::derive(Some(&e), &ClusterView::default(), hold, 10)
}

async fn one(s: &mut Session, q: &str) -> String {
    let rows = s.rows(&Sql::plain(q)).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    rows.first().and_then(|r| r.values().next().cloned().flatten()).unwrap_or_default()
}

async fn exec(s: &mut Session, sql: &Sql) {
    s.exec(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Move the primary from `old` to `new` under the proxy's routes.
async fn switchover(
    sb: &TestSandbox,
    hub: &RouteHub,
    stats: &ProxyStats,
    epoch: u64,
    old: (&str, &InstanceKey),
    new: (&str, &InstanceKey),
) {
    let (mut a, mut b) = (sb.admin(old.0).await.unwrap(), sb.admin(new.0).await.unwrap());
    // The replica catches up first, while the writes go on (as a switchover
    // waits for a candidate with little lag before it holds anything).
    let pos = one(&mut a, "SELECT @@gtid_binlog_pos").await;
    let waited = one(&mut b, &format!("SELECT MASTER_GTID_WAIT('{pos}', 60)")).await;
    assert_eq!(waited, "0", "the replica caught up with {pos} (before the hold)");
    let held_at = Instant::now();
    // Held: no new transaction reaches the old primary through the proxy;
    // the open ones finish there (it is still writable).
    assert!(hub.offer(table(epoch, old.1, true)));
    // Every session parked by the proxy: outside a transaction, waiting.
    eventually(WAIT, "every session parked outside a transaction", || async {
        let n = stats.parked.load(std::sync::atomic::Ordering::Relaxed);
        (n == THREADS).then_some(()).ok_or(format!("{n} parked"))
    })
    .await;
    let trx_done = held_at.elapsed();
    for st in a.dialect.set_read_only() {
        exec(&mut a, &st).await;
    }
    let pos = one(&mut a, "SELECT @@gtid_binlog_pos").await;
    let waited = one(&mut b, &format!("SELECT MASTER_GTID_WAIT('{pos}', 20)")).await;
    assert_eq!(waited, "0", "the replica caught up with {pos}");
    let st = b.dialect.stop_replica();
    exec(&mut b, &st).await;
    let st = b.dialect.reset_replica_all();
    exec(&mut b, &st).await;
    for st in b.dialect.set_writable() {
        exec(&mut b, &st).await;
    }
    let repl = sb.credentials("repl").unwrap();
    let change = ChangeSource {
        source: Some(new.1.clone()),
        user: Some(repl.user.clone()),
        password: Some(repl.password.expose().to_string()),
        heartbeat_ms: None,
        connect_retry_s: Some(1),
    };
    let st = a.dialect.change_source(&change);
    exec(&mut a, &st).await;
    let st = a.dialect.start_replica();
    exec(&mut a, &st).await;
    assert!(hub.offer(table(epoch + 1, new.1, false)));
    eprintln!(
        "  writes held for {} ms (every session parked after {} ms)",
        held_at.elapsed().as_millis(),
        trx_done.as_millis()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sysbench_sees_no_error_across_twenty_switchovers_through_the_protocol_mode() {
    let _ = tracing_subscriber::fmt().with_env_filter("pivot=info").with_test_writer().try_init();
    let sb = TestSandbox::up_with(|s| pivot_sandbox::SandboxSpec { nodes: 2, semi_sync: false, ..s }).await;
    let nodes = [("node1", sb.key("node1").unwrap()), ("node2", sb.key("node2").unwrap())];
    let write: std::net::SocketAddr = format!("127.0.0.1:{}", crate::support::free_port()).parse().unwrap();
    let cfg = ProxyConfig {
        write: Some(write),
        read: None,
        max_connections: 256,
        hold_queue: 64,
        hold_timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(600),
        required: true,
        threads: 1,
        mode: ProxyMode::Mysql,
        transaction_grace: Duration::from_secs(5),
    };
    // The replica keeps up with 16 writers only if commits do not wait for
    // the disk (this machine's disk is not what is measured).
    for (name, _) in &nodes {
        let mut admin = sb.admin(name).await.unwrap();
        for st in admin.dialect.commit_without_fsync() {
            exec(&mut admin, &st).await;
        }
    }
    let hub = RouteHub::new();
    assert!(hub.offer(table(1, &nodes[0].1, false)));
    let proxy = pivot::proxy::start("sandbox", sb.credentials("pivot").unwrap(), cfg, hub.clone()).unwrap();
    let app = sb.credentials("app").unwrap();
    let sysbench = |port: u16, args: &[&str]| Sysbench::oltp_read_write(&app, port, args);
    let prepare = sysbench(nodes[0].1.port, &["prepare"]).output().unwrap();
    assert!(prepare.status.success(), "sysbench prepare: {}", String::from_utf8_lossy(&prepare.stderr));
    let run = sysbench(write.port(), &[&format!("--threads={THREADS}"), "--time=600", "--report-interval=0", "run"])
        .spawn()
        .unwrap();
    let mut run = Sysbench(Some(run));
    let _ = &mut run;
    let stats = proxy.stats.clone();
    eventually(WAIT, "sysbench's sessions on node1", || async {
        let n = stats.active("write", &nodes[0].1);
        (n == THREADS).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    let t0 = Instant::now();
    for i in 0..SWITCHOVERS {
        let (old, new) = if i % 2 == 0 { (&nodes[0], &nodes[1]) } else { (&nodes[1], &nodes[0]) };
        let started = Instant::now();
        switchover(&sb, &hub, &stats, 1 + 2 * i, (old.0, &old.1), (new.0, &new.1)).await;
        // Every session on the new primary, or sysbench stopped (an error).
        let moved = loop {
            let (on_new, on_old) = (stats.active("write", &new.1), stats.active("write", &old.1));
            if on_new == THREADS && on_old == 0 {
                break started.elapsed();
            }
            if !run.running() {
                panic!("sysbench stopped at switchover {}: {}", i + 1, run.end());
            }
            let ended: Vec<String> = pivot::proxy::mysql::session::Reason::ALL
                .iter()
                .filter(|r| stats.ended(**r) > 0)
                .map(|r| format!("{} {}", r.name(), stats.ended(*r)))
                .collect();
            assert!(
                started.elapsed() < WAIT,
                "{on_new} sessions on the new primary, {on_old} on the old; ended {ended:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        eprintln!("switchover {}: {} -> {}: all sessions moved after {} ms", i + 1, old.0, new.0, moved.as_millis());
        assert!(run.running(), "sysbench stopped (at an error: --mysql-ignore-errors=none)");
    }
    let migrated = stats.migrated.load(std::sync::atomic::Ordering::Relaxed);
    let ended: u64 = pivot::proxy::mysql::session::Reason::ALL.iter().map(|r| stats.ended(*r)).sum();
    eprintln!(
        "{SWITCHOVERS} switchovers in {} ms: sessions migrated {migrated}, ended {ended}",
        t0.elapsed().as_millis()
    );
    // sysbench stops at its first error (--mysql-ignore-errors=none): still
    // running, it has seen none. Its output says so too.
    assert!(run.running(), "sysbench stopped (at an error?)");
    let out = run.end();
    assert!(!out.contains("FATAL") && !out.contains("error"), "sysbench reported an error:\n{out}");
    assert_eq!(ended, 0, "no session had to be ended");
    assert_eq!(migrated, SWITCHOVERS * THREADS, "every session moved at every switchover");
    proxy.stop();
}
