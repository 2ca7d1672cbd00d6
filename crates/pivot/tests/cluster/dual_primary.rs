//! Active/passive dual primaries (issue 9, S14): the field report's
//! keepalived pair, where the virtual IP moved back and forth while both
//! sides took auto-increment writes and replication stopped on a duplicate
//! key (error 1062).
//!
//! `the_field_reports_failure_without_pivot` reproduces that failure on a
//! plain two-node ring (no pivot): the passive is made writable before it
//! applied what it received, and its SQL thread stops on 1062.
//! `the_route_moves_back_and_forth_without_a_duplicate_key_stop` runs the
//! same ring under pivot (`dual_primary = true`), writers inserting
//! auto-increment rows through pivot's proxy write port (the route; the VIP
//! route follows the same route table, its agents need network namespaces
//! and are tested in `routes_vip.rs`), and moves the writes back and forth:
//! a switchover, a switchover back, a `kill -9` of the active while the
//! passive holds a relay-log backlog, its restart, and a switchover back to
//! it. Both servers use the same auto-increment offset, so any write taken
//! by one while the other has unapplied events from it collides.

use crate::support::*;
use pivot_core::observation::ReplicationStatus;
use pivot_dialect::{ChangeSource, Sql};
use pivot_drill::{eventually, missing_writes, TestSandbox, WriterTarget};
use pivot_server::{actions, Credentials, Session};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const AUTO_TABLE: &str = "test.ring_auto";
/// Rounds of the chaos test; each kills the active once.
const ROUNDS: usize = 2;

/// Make `node` replicate from `source` (the way the field report's DBA
/// wired the pair by hand).
async fn replicate_from(sb: &TestSandbox, node: &str, source: &str) {
    let repl = sb.credentials("repl").unwrap();
    let mut s = sb.admin(node).await.unwrap();
    let change = ChangeSource {
        source: Some(sb.key(source).unwrap()),
        user: Some(repl.user.clone()),
        password: Some(repl.password.expose().to_string()),
        heartbeat_ms: Some(250),
        connect_retry_s: Some(1),
    };
    let sql = s.dialect.change_source(&change);
    s.exec(&sql).await.unwrap();
    actions::start_replica(&mut s).await.unwrap();
}

async fn replication(sb: &TestSandbox, node: &str) -> Result<Option<ReplicationStatus>, String> {
    let mut s = sb.admin(node).await.map_err(|e| e.to_string())?;
    actions::replication_status(&mut s).await.map_err(|e| e.to_string())
}

/// Wait until `node` replicates from `source` with both threads running.
async fn wait_replicating(sb: &TestSandbox, node: &str, source: &str) {
    let want = sb.key(source).unwrap();
    eventually(WAIT, &format!("{node} replicating from {source}"), || async {
        match replication(sb, node).await? {
            Some(r) if r.source == want && r.replicating() => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn one(s: &mut Session, q: &str) -> String {
    let rows = s.rows(&Sql::plain(q)).await.unwrap_or_else(|e| panic!("{q}: {e}"));
    rows.first().and_then(|r| r.values().next().cloned().flatten()).unwrap_or_default()
}

async fn create_auto_table(sb: &TestSandbox, node: &str) {
    exec(
        sb,
        node,
        &[&format!(
            "CREATE TABLE {AUTO_TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY, writer INT NOT NULL, \
             seq BIGINT NOT NULL, UNIQUE KEY (writer, seq))"
        )],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_field_reports_failure_without_pivot() {
    let sb = TestSandbox::up(2, false).await;
    replicate_from(&sb, "node1", "node2").await;
    create_auto_table(&sb, "node1").await;
    let mut a = sb.admin("node1").await.unwrap();
    let pos = one(&mut a, "SELECT @@gtid_binlog_pos").await;
    exec(&sb, "node2", &[&format!("SELECT MASTER_GTID_WAIT('{pos}', 10)")]).await;
    // The passive receives but has not applied yet (a backlog) when the
    // VIP moves to it and it is made writable, keepalived-style. The field
    // report's servers had no GTID strict mode; with it (the sandbox's) the
    // same moment stops replication on error 1950 (out-of-order GTID)
    // before the row is tried.
    exec(&sb, "node2", &["SET GLOBAL gtid_strict_mode = OFF", "STOP SLAVE SQL_THREAD"]).await;
    exec(&sb, "node1", &[&format!("INSERT INTO {AUTO_TABLE} (writer, seq) VALUES (1, 1)")]).await;
    exec(&sb, "node2", &["SET GLOBAL read_only = OFF"]).await;
    exec(&sb, "node2", &[&format!("INSERT INTO {AUTO_TABLE} (writer, seq) VALUES (2, 1)")]).await;
    exec(&sb, "node2", &["START SLAVE SQL_THREAD"]).await;
    eventually(WAIT, "node2's SQL thread stops on a duplicate key", || async {
        match replication(&sb, "node2").await? {
            Some(r) if r.sql_error.as_ref().is_some_and(|e| e.number == 1062) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// What an [`AutoWriter`] is asked to do.
#[derive(Clone, Copy, PartialEq)]
enum Run {
    Write,
    Pause,
    Stop,
}

/// Inserts auto-increment rows through `via` and records each acknowledged
/// (writer, seq); reconnects after an error.
struct AutoWriter {
    run: tokio::sync::watch::Sender<Run>,
    /// Set while no statement is in flight and the writer is paused.
    idle: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl AutoWriter {
    fn start(writer: u32, via: pivot_core::InstanceKey, creds: Credentials) -> AutoWriter {
        let (run, mut asked) = tokio::sync::watch::channel(Run::Write);
        let idle = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let (id, ac) = (Arc::clone(&idle), acks.clone());
        let task = tokio::spawn(async move {
            let mut seq = 0u64;
            let mut session: Option<Session> = None;
            loop {
                match *asked.borrow_and_update() {
                    Run::Stop => break,
                    Run::Pause => id.store(true, Ordering::SeqCst),
                    Run::Write => id.store(false, Ordering::SeqCst),
                }
                if id.load(Ordering::SeqCst) {
                    // Until resumed or stopped (or the sender is gone).
                    if asked.changed().await.is_err() {
                        break;
                    }
                    continue;
                }
                let s = match session.as_mut() {
                    Some(s) => s,
                    None => match Session::connect(&via, &creds, Duration::from_secs(2)).await {
                        Ok(s) => session.insert(s),
                        Err(_) => {
                            // Reconnect pace, not a wait for anything.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    },
                };
                seq += 1;
                let sql = Sql::plain(format!("INSERT INTO {AUTO_TABLE} (writer, seq) VALUES ({writer}, {seq})"));
                match tokio::time::timeout(Duration::from_secs(3), s.exec(&sql)).await {
                    Ok(Ok(())) => ac.lock().unwrap().push(seq),
                    _ => session = None,
                }
                // The write rate (about 500 a second at most), not a wait.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        AutoWriter { run, idle, acks, task }
    }

    async fn pause(&self) {
        self.idle.store(false, Ordering::SeqCst);
        self.run.send_replace(Run::Pause);
        eventually(WAIT, "the writer idle", || async {
            self.idle.load(Ordering::SeqCst).then_some(()).ok_or("in flight".to_string())
        })
        .await
    }

    fn resume(&self) {
        self.run.send_replace(Run::Write);
    }

    fn count(&self) -> usize {
        self.acks.lock().unwrap().len()
    }

    async fn stop(self) -> Vec<u64> {
        self.run.send_replace(Run::Stop);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
        let acks = self.acks.lock().unwrap().clone();
        acks
    }
}

/// Samples `@@read_only` of both nodes in turn (a, b, a): two writers at
/// once is recorded only when `a` was writable before and after `b` was
/// seen writable (readings of two servers are never one instant).
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, Vec<String>)>,
}

impl Sampler {
    fn start(keys: [pivot_core::InstanceKey; 2], creds: Credentials) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let task = tokio::spawn(async move {
            let mut sessions: [Option<Session>; 2] = [None, None];
            let (mut samples, mut both) = (0usize, Vec::new());
            let mut flip = false;
            while !st.load(Ordering::Relaxed) {
                flip = !flip;
                let (a, b) = if flip { (0, 1) } else { (1, 0) };
                let mut seen = Vec::new();
                for i in [a, b, a] {
                    seen.push(writable(&mut sessions[i], &keys[i], &creds).await);
                }
                samples += 1;
                if seen.iter().all(|w| *w == Some(true)) {
                    both.push(format!("{} and {} writable at once (sample {samples})", keys[a], keys[b]));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (samples, both)
        });
        Sampler { stop, task }
    }

    async fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// `Some(true)` if the instance answers writable, `None` if it does not answer.
async fn writable(slot: &mut Option<Session>, key: &pivot_core::InstanceKey, creds: &Credentials) -> Option<bool> {
    if slot.is_none() {
        *slot = Session::connect(key, creds, Duration::from_millis(300)).await.ok();
    }
    let s = slot.as_mut()?;
    let q = Sql::plain("SELECT @@read_only AS ro");
    match tokio::time::timeout(Duration::from_millis(500), s.rows(&q)).await {
        Ok(Ok(rows)) => rows.first().and_then(|r| r.get("ro").cloned().flatten()).map(|v| v == "0"),
        _ => {
            *slot = None;
            None
        }
    }
}

fn switchover(rig: &Rig, to: &str) {
    let out = cli(rig, &["switchover", "--cluster", "sandbox", "--to", to]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "switchover to {to}: {text}");
}

/// The ring is whole with `active` the primary: each replicates from the other.
async fn ring_whole(rig: &Rig, active: &str, passive: &str) {
    rig.wait_healthy_with_primary(&rig.key(active)).await;
    wait_replicating(&rig.sb, passive, active).await;
    wait_replicating(&rig.sb, active, passive).await;
    eventually(WAIT, "the API names the pair", || async {
        let c = api_cluster(rig.addr).await?;
        let s = c["signal"].as_str().unwrap_or_default().to_string();
        s.contains("active of a dual-primary pair").then_some(()).ok_or(s)
    })
    .await;
}

/// Let the writers take `n` more acknowledgements.
async fn more_writes(writers: &[AutoWriter], n: usize) {
    let target: Vec<usize> = writers.iter().map(|w| w.count() + n).collect();
    eventually(WAIT, &format!("{n} more writes through the proxy"), || async {
        let done = writers.iter().zip(&target).all(|(w, t)| w.count() >= *t);
        done.then_some(()).ok_or(format!("{:?}", writers.iter().map(AutoWriter::count).collect::<Vec<_>>()))
    })
    .await
}

/// The field report's moment: the passive `p` received writes it has not
/// applied (its SQL thread held back) when the active `a` dies; pivot must
/// apply them before it opens writes there. The writers pause only for the
/// instant of the kill: with asynchronous replication a kill may leave the
/// active with transactions the passive never received (that one is
/// quarantined, tested in rejoin.rs); received, not applied, is the case here.
async fn kill_the_active_with_a_backlog(rig: &mut Rig, writers: &[AutoWriter], a: &str, p: &str) {
    exec(&rig.sb, p, &["STOP SLAVE SQL_THREAD"]).await;
    more_writes(writers, 50).await;
    for w in writers {
        w.pause().await;
    }
    let mut s = rig.sb.admin(a).await.unwrap();
    let pos = one(&mut s, "SELECT @@gtid_binlog_pos").await;
    eventually(WAIT, &format!("{p} received everything of {a}"), || async {
        let r = replication(&rig.sb, p).await?.ok_or("no replication")?;
        let want = pivot_core::GtidSet::parse(pivot_core::Flavor::MariaDb, &pos).map_err(|e| format!("{e:?}"))?;
        r.received.contains(&want).then_some(()).ok_or(format!("received {}", r.received))
    })
    .await;
    rig.sb.kill(a).unwrap();
    for w in writers {
        w.resume();
    }
    // Its only replica is the dead old active: not "healthy", but p writes.
    let new = rig.key(p);
    eventually(WAIT, &format!("{p} promoted"), || async {
        let c = api_cluster(rig.addr).await?;
        (c["primary"] == new.as_str() && rig.writable_nodes().await == vec![new.clone()])
            .then_some(())
            .ok_or(format!("{} {} {}", c["code"], c["primary"], c["signal"]))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_route_moves_back_and_forth_without_a_duplicate_key_stop() {
    let (w, r) = (free_port(), free_port());
    let proxy: pivot_core::InstanceKey = format!("127.0.0.1:{w}").parse().unwrap();
    let extra = format!(
        "auto_rejoin = true\ndual_primary = true\n\
         [cluster.failover]\nblock_period = \"0s\"\n\
         [cluster.proxy]\nwrite = \"127.0.0.1:{w}\"\nread = \"127.0.0.1:{r}\"\nhold_timeout = \"20s\"\n"
    );
    let mut rig = Rig::start(2, false, move |_| extra).await;
    // pivot closes the ring itself: node1 (active) replicates from node2.
    ring_whole(&rig, "node1", "node2").await;
    with_api_token(&rig);
    rig.pivot.stop();
    restart_daemon(&mut rig);
    create_auto_table(&rig.sb, "node1").await;
    ring_whole(&rig, "node1", "node2").await;

    let app = rig.sb.credentials("app").unwrap();
    let sampler = Sampler::start([rig.sb.key("node1").unwrap(), rig.sb.key("node2").unwrap()], app.clone());
    let writers: Vec<AutoWriter> = (1..=2).map(|i| AutoWriter::start(i, proxy.clone(), app.clone())).collect();
    let servers: Vec<(u32, pivot_core::InstanceKey)> =
        rig.sb.nodes().iter().map(|n| (n.server_id, rig.sb.key(&n.name).unwrap())).collect();
    // pivot-drill's writer cannot pause: it runs through the switchovers
    // and stops before the first kill, which must leave the passive with
    // every transaction of the active received (a write between the check
    // and the kill made a full run quarantine the old active).
    let mut ids = Some(pivot_drill::Writer::start(
        9,
        WriterTarget::Proxy { proxy: proxy.clone(), servers },
        app.clone(),
        Duration::from_secs(2),
        Duration::from_millis(2),
    ));
    let mut id_acks = Vec::new();
    more_writes(&writers, 30).await;

    // Each round: switch over and back, then the active dies with a
    // backlog on the passive, comes back and rejoins as the passive. The
    // second round does it the other way round.
    for round in 0..ROUNDS {
        let (a, p) = if round.is_multiple_of(2) { ("node1", "node2") } else { ("node2", "node1") };
        switchover(&rig, &rig.key(p));
        more_writes(&writers, 30).await;
        ring_whole(&rig, p, a).await;
        switchover(&rig, &rig.key(a));
        more_writes(&writers, 30).await;
        ring_whole(&rig, a, p).await;
        if let Some(w) = ids.take() {
            id_acks = w.stop().await;
        }
        kill_the_active_with_a_backlog(&mut rig, &writers, a, p).await;
        more_writes(&writers, 30).await;
        // Back: fenced, rejoined as the passive, the ring closed again. Its
        // option file says read_only = ON, as the README asks of both
        // servers of a pair (the sandbox writes OFF for its first primary):
        // a restarted server is never writable before pivot fences it.
        let cnf = rig.sb.dir.join(a).join("my.cnf");
        let text = std::fs::read_to_string(&cnf).unwrap().replace("read_only = OFF", "read_only = ON");
        std::fs::write(&cnf, text).unwrap();
        rig.sb.start(a).await.unwrap();
        ring_whole(&rig, p, a).await;
        more_writes(&writers, 30).await;
    }
    let last = if ROUNDS.is_multiple_of(2) { "node1" } else { "node2" };

    let mut acks = Vec::new();
    for w in writers {
        acks.push(w.stop().await);
    }
    assert!(!id_acks.is_empty(), "pivot-drill's writer wrote through the switchovers");
    let (samples, both) = sampler.stop().await;
    assert!(both.is_empty(), "two writable instances seen: {both:?}");
    assert!(samples > 50, "the sampler ran: {samples} samples");

    let mut a = rig.sb.admin(last).await.unwrap();
    let pos = one(&mut a, "SELECT @@gtid_binlog_pos").await;
    for node in ["node1", "node2"] {
        exec(&rig.sb, node, &[&format!("SELECT MASTER_GTID_WAIT('{pos}', 20)")]).await;
    }
    for node in ["node1", "node2"] {
        let r = replication(&rig.sb, node).await.unwrap().expect("replicates");
        assert!(r.sql_running && r.sql_error.is_none(), "{node}'s SQL thread: {r:?}");
        assert!(r.io_error.is_none(), "{node}'s IO thread: {r:?}");
        let mut s = rig.sb.admin(node).await.unwrap();
        let rows = s.rows(&Sql::plain(format!("SELECT writer, seq FROM {AUTO_TABLE}"))).await.unwrap();
        let have: BTreeSet<(u32, u64)> = rows
            .iter()
            .filter_map(|r| Some((r.get("writer")?.as_ref()?.parse().ok()?, r.get("seq")?.as_ref()?.parse().ok()?)))
            .collect();
        for (i, seqs) in acks.iter().enumerate() {
            let missing: Vec<&u64> = seqs.iter().filter(|q| !have.contains(&(i as u32 + 1, **q))).collect();
            assert!(
                missing.is_empty(),
                "{node} lacks acknowledged auto-increment rows of writer {}: {missing:?}",
                i + 1
            );
        }
        let missing = missing_writes(&mut s, &id_acks).await;
        assert!(missing.is_empty(), "{node} lacks acknowledged writes: {missing:?}");
    }
    assert!(acks.iter().map(Vec::len).sum::<usize>() >= 2 * 170 * ROUNDS, "the writers wrote throughout");
    // The failover waited for the passive's relay log before the promotion.
    let h = rig.history();
    let failovers: Vec<&serde_json::Value> = h["recoveries"]
        .as_array()
        .map(|rs| rs.iter().filter(|r| r["kind"] == "automatic_failover").collect())
        .unwrap_or_default();
    assert_eq!(failovers.len(), ROUNDS, "one failover a round: {h}");
    for failover in failovers {
        let s = steps(failover);
        let at = |n: &str| s.iter().position(|x| x == &format!("{n}=ok")).unwrap_or_else(|| panic!("{n}: {s:?}"));
        assert!(at("stop_replica_io") < at("wait_relay_applied") && at("wait_relay_applied") < at("promote"), "{s:?}");
    }
    assert!(h["events"].to_string().contains("dual primary: ring closed"), "{}", h["events"]);
}
