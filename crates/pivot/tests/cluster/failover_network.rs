//! S3 and S4 on real network faults: each node in its own network namespace
//! (198.18.0.0/15 addresses on a bridge pivot reaches from the root namespace).

use crate::support::*;
use pivot_drill::{eventually, missing_writes};
use pivot_sandbox::Network;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn s3_pivot_cut_off_from_the_primary_while_replicas_replicate_is_no_failover() {
    let rig = Rig::start_in(Network::Namespaces, 3, false, |_| String::new()).await;
    let primary = rig.key("node1");
    rig.sb.cut("node1").unwrap();
    let c = eventually(WAIT, "unreachable but replicating", || async {
        let c = api_cluster(rig.addr).await?;
        (c["code"] == "primary_unreachable_replicas_replicating")
            .then_some(c.clone())
            .ok_or(format!("{} {}", c["code"], c["signal"]))
    })
    .await;
    assert!(
        c["signal"].as_str().unwrap().contains(&format!("pivot cannot reach {primary}, but replica")),
        "{}",
        c["signal"]
    );
    // Stays that way: several confirm windows, no recovery.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let c = api_cluster(rig.addr).await.unwrap();
        assert_ne!(c["code"], "dead_primary", "{c:#}");
        for n in ["node2", "node3"] {
            let r = instance(&c, &rig.key(n)).unwrap();
            assert_eq!(r["state"]["replication"]["io_thread"], "running", "{n} still replicates");
        }
    }
    assert!(rig.history()["recoveries"].as_array().unwrap().is_empty(), "no recovery");
    rig.sb.heal("node1").unwrap();
    rig.wait_healthy_with_primary(&primary).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn s4_primary_cut_off_from_everyone_fails_over_and_is_fenced_when_it_returns() {
    let rig = Rig::start_in(Network::Namespaces, 3, true, |_| String::new()).await;
    let writer = rig.writer(1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let old = rig.key("node1");
    rig.sb.isolate("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let new_key: pivot_core::InstanceKey = new.parse().unwrap();
    eventually(WAIT, "a write on the new primary", || async {
        writer
            .first_ack_on(&new_key, std::time::Instant::now() - Duration::from_secs(60))
            .map(|_| ())
            .ok_or("none".to_string())
    })
    .await;
    let acks = writer.stop().await;
    let node = rig.sb.node_at(&new_key).unwrap().name.clone();
    assert!(!acks.is_empty(), "writes were acknowledged before the fault");
    let missing = missing_writes(&mut rig.sb.admin(&node).await.unwrap(), &acks).await;
    assert!(missing.is_empty(), "{} acknowledged writes missing", missing.len());
    let c = api_cluster(rig.addr).await.unwrap();
    assert!(c["signal"].as_str().is_some());
    rig.sb.heal("node1").unwrap();
    eventually(WAIT, "the old primary read-only once back", || async {
        (read_only(&rig.sb, "node1").await == Some(true)).then_some(()).ok_or("not yet".to_string())
    })
    .await;
    assert_eq!(rig.writable_nodes().await, vec![new]);
    let h = rig.history();
    assert_eq!(last_recovery(&h)["status"], "succeeded");
    assert!(
        last_recovery(&h)["analysis"].as_str().unwrap().contains("received nothing for"),
        "confirmed by replica silence: {}",
        last_recovery(&h)["analysis"]
    );
}
