//! What a failover leaves behind, checked where an operator looks: the
//! cluster metrics through a recovery, a fence hook that succeeds, and a
//! former primary that diverged (quarantined, its extra GTIDs named).

use crate::support::*;
use pivot_drill::{eventually, http_get};

async fn metric(rig: &Rig, name: &str) -> Result<f64, String> {
    let (_, text) = http_get(rig.addr, "/metrics").await?;
    let prefix = format!("{name}{{cluster=\"sandbox\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .ok_or(format!("no {name} in /metrics"))?
        .parse()
        .map_err(|e| format!("{name}: {e}"))
}

async fn wait_metric(rig: &Rig, name: &str, want: f64) {
    eventually(WAIT, &format!("{name} = {want}"), || async {
        let v = metric(rig, name).await?;
        (v == want).then_some(()).ok_or(format!("{name} = {v}"))
    })
    .await;
}

/// Every `pivot_cluster_*` metric, before, during and after a failover whose
/// `fence` hook (STONITH) succeeds and is called with pivot's arguments.
#[tokio::test(flavor = "multi_thread")]
async fn cluster_metrics_follow_a_failover_with_a_fence_hook() {
    let mut rig = Rig::start(3, false, |sb| {
        let calls = sb.dir.join("fence.calls");
        let fence = script(sb, "fence", &format!("echo \"$@\" >> {}; sleep 2; exit 0", calls.display()));
        format!("[cluster.hooks]\nfence = [\"{}\"]\n", fence.display())
    })
    .await;
    for (name, want) in [
        ("pivot_cluster_healthy", 1.0),
        ("pivot_cluster_alerting", 0.0),
        ("pivot_cluster_recovery_running", 0.0),
        ("pivot_cluster_automatic_recovery_blocked", 0.0),
        ("pivot_cluster_fenced_instances", 0.0),
        ("pivot_cluster_control_problems", 0.0),
        ("pivot_cluster_max_instances_reached", 0.0),
    ] {
        assert_eq!(metric(&rig, name).await.unwrap(), want, "{name} before");
    }
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    wait_step_running(&rig, "hook_fence").await;
    wait_metric(&rig, "pivot_cluster_recovery_running", 1.0).await;
    assert_eq!(metric(&rig, "pivot_cluster_healthy").await.unwrap(), 0.0);
    assert_eq!(metric(&rig, "pivot_cluster_alerting").await.unwrap(), 1.0);
    let new = rig.wait_new_primary(&old).await;
    wait_metric(&rig, "pivot_cluster_recovery_running", 0.0).await;
    wait_metric(&rig, "pivot_cluster_automatic_recovery_blocked", 1.0).await;
    wait_metric(&rig, "pivot_cluster_fenced_instances", 1.0).await;
    wait_metric(&rig, "pivot_cluster_healthy", 1.0).await;
    let (_, text) = http_get(rig.addr, "/metrics").await.unwrap();
    assert!(text.contains("pivot_cluster_analysis{cluster=\"sandbox\",code=\"healthy\"} 1"), "{text}");
    let h = rig.history();
    let s = steps(last_recovery(&h));
    assert!(s.contains(&"hook_fence=ok".to_string()), "{s:?}");
    let calls = std::fs::read_to_string(rig.sb.dir.join("fence.calls")).unwrap();
    assert!(calls.contains("--hook=fence") && calls.contains(&format!("--failed-primary={old}")), "{calls}");
    assert!(calls.contains(&format!("--new-primary={new}")), "{calls}");
    let out = cli(&rig, &["ack", "--cluster", "sandbox"]);
    assert_eq!(out.status.code(), Some(0));
    wait_metric(&rig, "pivot_cluster_automatic_recovery_blocked", 0.0).await;
    rig.pivot.kill();
}

/// The quarantine verdict: a former primary that took a write pivot's new
/// primary never got is made read-only when it answers and quarantined with
/// the divergent GTIDs named.
#[tokio::test(flavor = "multi_thread")]
async fn a_former_primary_that_diverged_is_quarantined_with_its_gtids_named() {
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    rig.wait_new_primary(&old).await;
    // pivot down; the old primary back, writable, and written to.
    rig.pivot.kill();
    rig.sb.start("node1").await.unwrap();
    exec(
        &rig.sb,
        "node1",
        &[
            "STOP SLAVE",
            "SET GLOBAL read_only = OFF",
            "CREATE TABLE IF NOT EXISTS test.diverged (id INT PRIMARY KEY)",
            "INSERT INTO test.diverged VALUES (1)",
        ],
    )
    .await;
    restart_daemon(&mut rig);
    let entry = eventually(WAIT, "node1 quarantined", || async {
        let c = api_cluster(rig.addr).await?;
        let f = c["recovery"]["fenced"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["instance"] == old.as_str()).cloned())
            .ok_or("not in the fence list")?;
        (f["status"] == "quarantined").then_some(f.clone()).ok_or(f.to_string())
    })
    .await;
    let detail = entry["detail"].as_str().unwrap();
    assert!(detail.contains("diverged: ") && detail.contains("are not on"), "{detail}");
    // Written while pivot was down, asynchronous replication: pivot cannot
    // rule out that a client got an OK, and says so.
    assert!(detail.contains("some may have been acknowledged: "), "{detail}");
    assert_eq!(read_only(&rig.sb, "node1").await, Some(true));
}

async fn rows_in(rig: &Rig, node: &str, table: &str) -> usize {
    let Ok(mut s) = rig.sb.admin(node).await else { return 0 };
    let sql = pivot_dialect::Sql::plain(format!("SELECT COUNT(*) AS n FROM {table}"));
    s.rows(&sql)
        .await
        .ok()
        .and_then(|r| r.first()?.get("n").cloned().flatten())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Catch-up on real servers: the preferred replica received less than
/// another one. It first replicates from that one up to what it received, so
/// nothing a surviving replica has is lost, then it is promoted.
#[tokio::test(flavor = "multi_thread")]
async fn the_preferred_replica_catches_up_from_a_more_advanced_one_first() {
    let mut rig =
        Rig::start(3, false, |sb| format!("[cluster.failover]\npreferred = [{}]\n", toml_key(sb, "node2"))).await;
    exec(&rig.sb, "node2", &["STOP SLAVE IO_THREAD"]).await;
    exec(
        &rig.sb,
        "node1",
        &["CREATE TABLE test.ahead (id INT PRIMARY KEY)", "INSERT INTO test.ahead VALUES (1), (2), (3)"],
    )
    .await;
    eventually(WAIT, "node3 received the rows", || async {
        let n = rows_in(&rig, "node3", "test.ahead").await;
        (n == 3).then_some(()).ok_or(format!("{n} rows"))
    })
    .await;
    assert_eq!(rows_in(&rig, "node2", "test.ahead").await, 0, "node2 received none of it");
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    // Its IO thread running again (and failing to reach node1), node2 confirms too.
    exec(&rig.sb, "node2", &["START SLAVE IO_THREAD"]).await;
    let new = rig.wait_new_primary(&old).await;
    assert_eq!(new, rig.key("node2"), "the preferred replica");
    let s = steps(last_recovery(&rig.history()));
    assert!(s.contains(&"catch_up=ok".to_string()), "{s:?}");
    assert_eq!(rows_in(&rig, "node2", "test.ahead").await, 3, "what only node3 had is on the new primary");
}
