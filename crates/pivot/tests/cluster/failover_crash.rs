//! S1, S2, S9: a primary crashes or hangs under write load; pivot fails over
//! without losing an acknowledged write, and the old primary never comes back
//! writable.

use crate::support::*;
use pivot_drill::{eventually, missing_writes, Writer, WriterTarget};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread")]
async fn s1_kill_9_under_load_with_semi_sync_loses_no_acknowledged_write() {
    let mut rig = Rig::start(3, true, |_| String::new()).await;
    let writer = rig.writer(1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let old = rig.key("node1");
    let killed_at = Instant::now();
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let new_key: pivot_core::InstanceKey = new.parse().unwrap();
    eventually(WAIT, "a write acknowledged by the new primary", || async {
        writer.first_ack_on(&new_key, killed_at).map(|_| ()).ok_or("none yet".to_string())
    })
    .await;
    let acks = writer.stop().await;
    let on_old = acks.iter().filter(|a| a.instance.to_string() == old).count();
    assert!(on_old > 50, "the old primary took real load first ({on_old} writes)");
    let node = rig.sb.node_at(&new_key).unwrap().name.clone();
    let mut admin = rig.sb.admin(&node).await.unwrap();
    let missing = missing_writes(&mut admin, &acks).await;
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes missing on {new}: {:?}",
        missing.len(),
        acks.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(rig.writable_nodes().await, vec![new.clone()], "exactly one writer");

    let h = rig.history();
    let r = last_recovery(&h);
    assert_eq!(r["kind"], "automatic_failover");
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["failed_primary"], old);
    assert_eq!(r["new_primary"], new);
    let s = steps(r);
    for want in [
        "stop_replica_io=ok",
        "wait_relay_applied=ok",
        "register_fence=ok",
        "promote=ok",
        "repoint=ok",
        "confirm_replicating=ok",
    ] {
        assert!(s.contains(&want.to_string()), "{want} missing from {s:?}");
    }
    assert!(r["detected_at"].as_i64().unwrap() <= r["started_at"].as_i64().unwrap());
    // The remaining replica follows the new primary.
    let c = api_cluster(rig.addr).await.unwrap();
    let other = if new == rig.key("node2") { rig.key("node3") } else { rig.key("node2") };
    assert_eq!(instance(&c, &other).unwrap()["source"], new);
}

#[tokio::test(flavor = "multi_thread")]
async fn s1_async_replication_loses_nothing_when_the_candidate_had_everything() {
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    let writer = rig.writer(1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acks = writer.stop().await;
    // Quiesce: both replicas receive everything before the crash.
    let mut primary = rig.sb.admin("node1").await.unwrap();
    let pos = primary.rows(&pivot_dialect::Sql::plain("SELECT @@gtid_binlog_pos AS p")).await.unwrap()[0]["p"]
        .clone()
        .unwrap();
    for n in ["node2", "node3"] {
        exec(&rig.sb, n, &[&format!("SELECT MASTER_GTID_WAIT('{pos}', 10)")]).await;
    }
    drop(primary);
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let node = rig.sb.node_at(&new.parse().unwrap()).unwrap().name.clone();
    let missing = missing_writes(&mut rig.sb.admin(&node).await.unwrap(), &acks).await;
    assert!(!acks.is_empty());
    assert!(missing.is_empty(), "{} missing", missing.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn s2_hung_primary_fails_over_then_is_fenced_when_it_wakes_and_no_write_splits() {
    let rig = Rig::start(3, true, |_| String::new()).await;
    let writer = rig.writer(1);
    let old = rig.key("node1");
    let old_key: pivot_core::InstanceKey = old.parse().unwrap();
    // A script with the old primary's address hard-coded.
    let stubborn = Writer::start(
        2,
        WriterTarget::Fixed(old_key.clone()),
        rig.sb.credentials("app").unwrap(),
        Duration::from_secs(30),
        Duration::from_millis(5),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let paused_at = Instant::now();
    rig.sb.pause("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let new_key: pivot_core::InstanceKey = new.parse().unwrap();
    let first_new_ack = eventually(WAIT, "a write acknowledged by the new primary", || async {
        writer.first_ack_on(&new_key, paused_at).ok_or("none yet".to_string())
    })
    .await;
    rig.sb.resume("node1").unwrap();
    eventually(WAIT, "the old primary read-only after it woke up", || async {
        match read_only(&rig.sb, "node1").await {
            Some(true) => Ok(()),
            other => Err(format!("read_only = {other:?}")),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let follow = writer.stop().await;
    let fixed = stubborn.stop().await;
    assert!(!fixed.is_empty());
    assert!(fixed.len() > 10, "the hard-coded writer really wrote to the old primary first");
    let node = rig.sb.node_at(&new_key).unwrap().name.clone();
    assert!(!follow.is_empty(), "writes were acknowledged before the fault");
    let missing = missing_writes(&mut rig.sb.admin(&node).await.unwrap(), &follow).await;
    assert!(missing.is_empty(), "{} acknowledged writes missing", missing.len());
    // Every write the old primary ever acknowledged is on the new primary:
    // nothing acknowledged exists only on the old one. An acknowledgement can
    // arrive after the new primary's first (a write replicated and acked by a
    // replica just before the hang, whose OK the old primary sends when it
    // wakes), but its data is on the new primary.
    let late = fixed.iter().filter(|a| a.at > first_new_ack).count();
    let missing = missing_writes(&mut rig.sb.admin(&node).await.unwrap(), &fixed).await;
    assert!(
        missing.is_empty(),
        "{} writes acknowledged by the old primary exist only there (split brain); {late} acknowledged late",
        missing.len()
    );
    eprintln!("s2: {} writes to the old primary, {late} acknowledged after the new primary's first acknowledgement, none missing", fixed.len());
    assert_eq!(rig.writable_nodes().await, vec![new], "exactly one writer after the old primary woke");
    let c = eventually(WAIT, "the former primary judged", || async {
        let c = api_cluster(rig.addr).await?;
        let fenced = c["recovery"]["fenced"].to_string();
        (fenced.contains("read_only") || fenced.contains("quarantined")).then_some(c).ok_or(fenced)
    })
    .await;
    assert_eq!(c["recovery"]["fenced"][0]["instance"], old, "{c:#}");
    assert_eq!(instance(&c, &old).unwrap()["role"], "former_primary");
}

#[tokio::test(flavor = "multi_thread")]
async fn s9_old_primary_restarted_is_read_only_at_once_and_reported_for_rejoin() {
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    exec(&rig.sb, "node1", &["INSERT INTO test.drill_writes VALUES (1, 0, NOW(6))"]).await;
    // Asynchronous replication: let the replicas have it, so the old primary
    // holds nothing they lack (else quarantine would be the right verdict).
    let pos = rig
        .sb
        .admin("node1")
        .await
        .unwrap()
        .rows(&pivot_dialect::Sql::plain("SELECT @@gtid_binlog_pos AS p"))
        .await
        .unwrap()[0]["p"]
        .clone()
        .unwrap();
    for n in ["node2", "node3"] {
        exec(&rig.sb, n, &[&format!("SELECT MASTER_GTID_WAIT('{pos}', 10)")]).await;
    }
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    // node1's own configuration makes it writable on start: pivot must win.
    rig.sb.start("node1").await.unwrap();
    eventually(WAIT, "node1 read-only", || async {
        (read_only(&rig.sb, "node1").await == Some(true)).then_some(()).ok_or("still writable".to_string())
    })
    .await;
    let c = eventually(WAIT, "node1 reported as able to rejoin", || async {
        let c = api_cluster(rig.addr).await?;
        let f = c["recovery"]["fenced"].to_string();
        f.contains("it can rejoin as a replica").then_some(c).ok_or(f)
    })
    .await;
    assert_eq!(rig.writable_nodes().await, vec![new.clone()]);
    assert_eq!(instance(&c, &old).unwrap()["role"], "former_primary");
    assert_eq!(c["recovery"]["fenced"][0]["status"], "read_only");
    let log = rig.pivot.log_text();
    assert!(log.contains(&format!("former primary {old}: read_only: made read-only in")), "{log}");
    // Made writable again by hand: pivot fences it again.
    exec(&rig.sb, "node1", &["SET GLOBAL read_only = OFF"]).await;
    eventually(WAIT, "node1 read-only again", || async {
        (read_only(&rig.sb, "node1").await == Some(true)).then_some(()).ok_or("still writable".to_string())
    })
    .await;
}
