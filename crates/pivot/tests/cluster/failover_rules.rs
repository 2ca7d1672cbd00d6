//! S5, S6, S7, S8: the failover chooses the right replica or refuses.

use crate::support::*;
use pivot_drill::{eventually, missing_writes};
use std::time::Duration;

/// A session holding `LOCK TABLES ... WRITE` on a replica: its SQL thread
/// stops applying while its IO thread keeps receiving.
async fn lock_drill_table(rig: &Rig, node: &str) -> pivot_server::Session {
    let mut s = rig.sb.admin(node).await.unwrap();
    s.exec(&pivot_dialect::Sql::plain("LOCK TABLES test.drill_writes WRITE")).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn s5_lagging_candidate_applies_its_relay_log_before_it_opens_for_writes() {
    let mut rig =
        Rig::start(3, true, |sb| format!("[cluster.failover]\npreferred = [{}]\n", toml_key(sb, "node2"))).await;
    let lock = lock_drill_table(&rig, "node2").await;
    let writer = rig.writer(1);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    wait_step_running(&rig, "wait_relay_applied").await;
    // While the candidate still has unapplied relay log, nobody is writable.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rig.writable_nodes().await.is_empty(), "no instance may open for writes before the relay log is applied");
    drop(lock);
    let new = rig.wait_new_primary(&old).await;
    assert_eq!(new, rig.key("node2"), "the preferred replica is promoted once it has applied everything");
    let acks = writer.stop().await;
    assert!(!acks.is_empty(), "writes were acknowledged before the fault");
    let missing = missing_writes(&mut rig.sb.admin("node2").await.unwrap(), &acks).await;
    assert!(missing.is_empty(), "{} acknowledged writes missing", missing.len());
    let h = rig.history();
    let r = last_recovery(&h);
    assert_eq!(r["status"], "succeeded");
    let wait = r["steps"].as_array().unwrap().iter().find(|s| s["name"] == "wait_relay_applied").unwrap();
    assert!(wait["message"].as_str().unwrap().contains("applied everything it received"), "{wait}");
}

#[tokio::test(flavor = "multi_thread")]
async fn s5_relay_log_that_does_not_apply_in_time_aborts_then_retries() {
    let mut rig = Rig::start(3, false, |sb| {
        format!("[cluster.failover]\npreferred = [{}]\nrelay_apply_timeout = \"1s\"\n", toml_key(sb, "node2"))
    })
    .await;
    let lock = lock_drill_table(&rig, "node2").await;
    exec(&rig.sb, "node1", &["INSERT INTO test.drill_writes VALUES (1, 0, NOW(6))"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let h = wait_recovery_status(&rig, "aborted").await;
    let r = last_recovery(&h);
    assert!(r["summary"].as_str().unwrap().contains("did not apply"), "{r:#}");
    assert!(steps(r).contains(&"restore_replication=ok".to_string()), "{:?}", steps(r));
    assert!(rig.writable_nodes().await.is_empty(), "the cluster is left as it was: no writer");
    // Left as it was: the replicas point at the old primary again.
    let c = api_cluster(rig.addr).await.unwrap();
    for n in ["node2", "node3"] {
        assert_eq!(instance(&c, &rig.key(n)).unwrap()["source"], old, "{n}");
    }
    eventually(WAIT, "the backoff alert", || async {
        let events = rig.history()["events"].to_string();
        events.contains("last automatic failover attempt was aborted").then_some(()).ok_or(events)
    })
    .await;
    drop(lock);
    let new = rig.wait_new_primary(&old).await;
    assert_eq!(new, rig.key("node2"), "the retry after the backoff succeeds");
}

#[tokio::test(flavor = "multi_thread")]
async fn s6_replica_with_errant_transaction_is_never_promoted() {
    // node3 would win by preference; its errant transaction rules it out.
    let mut rig =
        Rig::start(3, false, |sb| format!("[cluster.failover]\npreferred = [{}]\n", toml_key(sb, "node3"))).await;
    exec(
        &rig.sb,
        "node3",
        &["SET SESSION gtid_domain_id = 99", "INSERT INTO test.drill_writes VALUES (424242, 9, NOW(6))"],
    )
    .await;
    let c = eventually(WAIT, "errant GTIDs shown", || async {
        let c = api_cluster(rig.addr).await?;
        let p = instance(&c, &rig.key("node3")).unwrap()["problems"].to_string();
        p.contains("errant GTIDs the primary never had: 99-3-1").then_some(c).ok_or(p)
    })
    .await;
    assert_eq!(c["code"], "healthy");
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    assert_eq!(new, rig.key("node2"));
    assert_eq!(rig.writable_nodes().await, vec![new]);
    let h = rig.history();
    let plan = last_recovery(&h)["plan"].as_str().unwrap().to_string();
    assert!(plan.contains("errant GTIDs the primary never had: 99-3-1"), "the choice names the GTIDs: {plan}");
}

#[tokio::test(flavor = "multi_thread")]
async fn s7_never_promote_is_respected() {
    let mut rig =
        Rig::start(3, false, |sb| format!("[cluster.failover]\nnever_promote = [{}]\n", toml_key(sb, "node2"))).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    assert_eq!(
        rig.wait_new_primary(&old).await,
        rig.key("node3"),
        "node2 would win the tie but must never be promoted"
    );
    let c = api_cluster(rig.addr).await.unwrap();
    assert_eq!(instance(&c, &rig.key("node2")).unwrap()["source"], rig.key("node3"), "it still follows");
}

#[tokio::test(flavor = "multi_thread")]
async fn s7_preferred_is_respected() {
    let mut rig =
        Rig::start(3, false, |sb| format!("[cluster.failover]\npreferred = [{}]\n", toml_key(sb, "node3"))).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    assert_eq!(rig.wait_new_primary(&old).await, rig.key("node3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn s7_no_allowed_candidate_refuses_and_leaves_the_cluster_as_it_was() {
    let mut rig = Rig::start(3, false, |sb| {
        format!("[cluster.failover]\nnever_promote = [{}, {}]\n", toml_key(sb, "node2"), toml_key(sb, "node3"))
    })
    .await;
    rig.sb.kill("node1").unwrap();
    let h = wait_recovery_status(&rig, "aborted").await;
    let summary = last_recovery(&h)["summary"].as_str().unwrap().to_string();
    assert!(
        summary.contains("refused: no replica can be promoted") && summary.contains("marked never_promote"),
        "{summary}"
    );
    assert!(rig.writable_nodes().await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn s8_all_replicas_down_too_means_no_failover_and_a_loud_alert() {
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    rig.sb.kill("node2").unwrap();
    rig.sb.kill("node3").unwrap();
    rig.sb.kill("node1").unwrap();
    let h = eventually(WAIT, "an alert", || async {
        let h = rig.history();
        let events = h["events"].to_string();
        events
            .contains("all of its replicas are unreachable: nothing can be promoted")
            .then_some(h.clone())
            .ok_or(events)
    })
    .await;
    assert!(h["recoveries"].as_array().unwrap().is_empty(), "no recovery attempted: {h:#}");
    let c = api_cluster(rig.addr).await.unwrap();
    assert_eq!(c["code"], "dead_primary_without_replicas");
    assert!(rig.pivot.log_text().contains("ERROR") && rig.pivot.log_text().contains("ALERT"), "logged loudly");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_promotion_aborts_and_leaves_the_cluster_as_it_was() {
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    // Replicated to every node: the promotion (RESET SLAVE ALL) will be refused.
    exec(&rig.sb, "node1", &["REVOKE RELOAD ON *.* FROM 'pivot'@'%'"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let h = wait_recovery_status(&rig, "aborted").await;
    let r = last_recovery(&h);
    let s = steps(r);
    assert!(s.contains(&"promote=failed".to_string()), "{s:?}");
    let at = s.iter().position(|x| x == "promote=failed").unwrap();
    assert!(
        !s[at..].iter().any(|x| x.starts_with("repoint") || x.starts_with("confirm")),
        "nothing after a failed promotion: {s:?}"
    );
    assert!(s.contains(&"restore_replication=ok".to_string()), "{s:?}");
    assert!(r["summary"].as_str().unwrap().contains("RELOAD"), "{r:#}");
    assert!(rig.writable_nodes().await.is_empty(), "nobody writable");
    let c = api_cluster(rig.addr).await.unwrap();
    for n in ["node2", "node3"] {
        assert_eq!(instance(&c, &rig.key(n)).unwrap()["source"], old, "{n} replicates from the old primary again");
    }
}
