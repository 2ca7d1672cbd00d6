//! Heartbeat lag (`[cluster.heartbeat]`) on real servers: the table is
//! created on the primary on first use and replicates; with a replica's IO
//! thread stopped, `Seconds_Behind_Master` is NULL while the heartbeat's lag
//! grows past the threshold (API, `lagging` problem, `/metrics`,
//! `pivot status`); after `START SLAVE` it is small again. A missing grant is
//! one alert naming it, and no heartbeat lag: nothing else changes.
//!
//! Not here, and why: clock independence (the host's clock cannot be skewed
//! under the sandbox's servers) and the long transaction whose
//! `Seconds_Behind_Master` jumps while the data is fresh (a probe rarely
//! lands while such an event applies) are covered by the table tests of
//! `pivot_core::heartbeat` (`heartbeat_tests.rs`), on skewed clocks.

use crate::support::*;
use pivot_drill::{eventually, http_get, TestSandbox};
use serde_json::Value;
use std::net::SocketAddr;

const HEARTBEAT: &str = "lag_threshold = \"2s\"\n[cluster.heartbeat]\nenabled = true\ninterval = \"200ms\"\n";

/// The lag block of `key` in the API, when the instance shows one.
async fn lag_of(addr: SocketAddr, key: &str) -> Result<Value, String> {
    let c = api_cluster(addr).await?;
    let i = instance(&c, key).ok_or(format!("no {key}"))?;
    Ok(i["lag"].clone())
}

/// `pivot_replica_lag_seconds` samples of `key` by source.
async fn metric_lags(addr: SocketAddr, key: &str) -> Result<(Option<f64>, Option<f64>), String> {
    let (_, text) = http_get(addr, "/metrics").await?;
    let sample = |source: &str| {
        text.lines()
            .filter(|l| l.starts_with("pivot_replica_lag_seconds{"))
            .filter(|l| l.contains(&format!("instance=\"{key}\"")) && l.contains(&format!("source=\"{source}\"")))
            .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    Ok((sample("server"), sample("heartbeat")))
}

async fn heartbeat_rows(rig: &Rig, node: &str) -> Result<Vec<String>, String> {
    let mut s = rig.sb.admin(node).await.map_err(|e| e.to_string())?;
    let sql = pivot_dialect::Sql::plain("SELECT server_id FROM pivot.heartbeat ORDER BY server_id");
    let rows = s.rows(&sql).await.map_err(|e| e.to_string())?;
    Ok(rows.iter().filter_map(|r| r.get("server_id").cloned().flatten()).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_lag_grows_while_the_io_thread_is_stopped() {
    let rig = Rig::start(3, false, |_| HEARTBEAT.to_string()).await;
    let (n2, n3) = (rig.key("node2"), rig.key("node3"));
    let primary_id = rig.sb.nodes()[0].server_id.to_string();

    // Created on first use on the primary, replicated to every replica.
    for node in ["node1", "node2", "node3"] {
        eventually(WAIT, &format!("the heartbeat row on {node}"), || async {
            let rows = heartbeat_rows(&rig, node).await?;
            (rows == vec![primary_id.clone()]).then_some(()).ok_or(format!("{rows:?}"))
        })
        .await;
    }
    for key in [&n2, &n3] {
        eventually(WAIT, &format!("a small heartbeat lag on {key}"), || async {
            let lag = lag_of(rig.addr, key).await?;
            let hb = lag["heartbeat_lag"].as_f64().ok_or(format!("{lag}"))?;
            (hb < 2.0 && lag["seconds_behind_master"] == 0).then_some(()).ok_or(format!("{lag}"))
        })
        .await;
    }

    exec(&rig.sb, "node2", &["STOP SLAVE IO_THREAD"]).await;
    let lag = eventually(WAIT, "node2's heartbeat lag past the threshold", || async {
        let lag = lag_of(rig.addr, &n2).await?;
        let hb = lag["heartbeat_lag"].as_f64().ok_or(format!("{lag}"))?;
        (hb > 3.0).then(|| lag.clone()).ok_or(format!("{lag}"))
    })
    .await;
    assert!(lag["seconds_behind_master"].is_null(), "the server's own figure says nothing: {lag}");
    assert_eq!(lag["effective_s"].as_u64(), Some(lag["heartbeat_lag"].as_f64().unwrap() as u64), "{lag}");
    let c = api_cluster(rig.addr).await.unwrap();
    let problems = instance(&c, &n2).unwrap()["problems"].to_string();
    assert!(problems.contains("lagging") && problems.contains("threshold 2s"), "{problems}");
    let (server, heartbeat) = metric_lags(rig.addr, &n2).await.unwrap();
    assert_eq!(server, None, "no server figure while the IO thread is stopped");
    assert!(heartbeat.is_some_and(|h| h > 3.0), "{heartbeat:?}");
    eventually(WAIT, "node3 keeps up in /metrics", || async {
        let (server, heartbeat) = metric_lags(rig.addr, &n3).await?;
        (server == Some(0.0) && heartbeat.is_some_and(|h| h < 2.0))
            .then_some(())
            .ok_or(format!("{server:?} {heartbeat:?}"))
    })
    .await;
    // `pivot status` reads the rows the daemon writes; retried, as a loaded
    // machine may delay a write past the staleness bound.
    eventually(WAIT, "both lags in `pivot status`", || async {
        let out = cli(&rig, &["status"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let row = text.lines().find(|l| l.contains(n2.as_str())).unwrap_or_default();
        (row.contains("- hb ") && text.contains("lagging")).then_some(()).ok_or(text)
    })
    .await;

    exec(&rig.sb, "node2", &["START SLAVE IO_THREAD"]).await;
    eventually(WAIT, "node2's heartbeat lag small again", || async {
        let lag = lag_of(rig.addr, &n2).await?;
        let hb = lag["heartbeat_lag"].as_f64().ok_or(format!("{lag}"))?;
        (hb < 2.0).then_some(()).ok_or(format!("{lag}"))
    })
    .await;
    // Only the primary ever wrote: no transaction of the replicas' own.
    let c = rig.wait_healthy_with_primary(&rig.key("node1")).await;
    assert!(!c["problems"].to_string().contains("errant"), "{}", c["problems"]);
    let log = rig.pivot.log_text();
    assert_eq!(log.matches("creating pivot's heartbeat table").count(), 1, "first use only: {log}");
    assert!(!log.contains("heartbeat not written"), "{log}");
}

/// After a failover the heartbeat follows the new primary: its own row
/// appears (on it and on the remaining replica), the replica's heartbeat lag
/// is measured against it, and nothing was written elsewhere (the failover
/// succeeds with no errant GTIDs).
#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_follows_the_new_primary_after_a_failover() {
    let mut rig = Rig::start(3, false, |_| HEARTBEAT.to_string()).await;
    let old = rig.key("node1");
    eventually(WAIT, "heartbeat lag on node2", || async {
        let lag = lag_of(rig.addr, &rig.key("node2")).await?;
        lag["heartbeat_lag"].as_f64().map(|_| ()).ok_or(format!("{lag}"))
    })
    .await;
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let new_key: pivot_core::InstanceKey = new.parse().unwrap();
    let new_node = rig.sb.node_at(&new_key).unwrap().clone();
    let other = if new_node.name == "node2" { "node3" } else { "node2" };
    let mut ids = [rig.sb.nodes()[0].server_id, new_node.server_id];
    ids.sort();
    let want: Vec<String> = ids.iter().map(u32::to_string).collect();
    for node in [new_node.name.as_str(), other] {
        eventually(WAIT, &format!("the new primary's row on {node}"), || async {
            let rows = heartbeat_rows(&rig, node).await?;
            (rows == want).then_some(()).ok_or(format!("{rows:?}"))
        })
        .await;
    }
    let other_key = rig.key(other);
    eventually(WAIT, &format!("{other_key}'s heartbeat lag against the new primary"), || async {
        let lag = lag_of(rig.addr, &other_key).await?;
        let hb = lag["heartbeat_lag"].as_f64().ok_or(format!("{lag}"))?;
        (hb < 2.0).then_some(()).ok_or(format!("{lag}"))
    })
    .await;
    let r = last_recovery(&rig.history()).clone();
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let c = api_cluster(rig.addr).await.unwrap();
    assert!(!c["problems"].to_string().contains("errant"), "{}", c["problems"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_grant_is_one_alert_and_no_heartbeat_lag() {
    let sb = TestSandbox::up(2, false).await;
    // Replicates: no instance grants it any more.
    exec(&sb, "node1", &["REVOKE SELECT, INSERT, UPDATE, CREATE ON `pivot`.* FROM 'pivot'@'%'"]).await;
    let (config, addr) = write_config(&sb, ConfigOptions { extra: HEARTBEAT.to_string(), ..ConfigOptions::default() });
    let pivot = start_daemon(&sb, &config);
    let n2 = key_of(&sb, "node2");
    let grant = "GRANT SELECT, INSERT, UPDATE, CREATE ON `pivot`.* TO 'pivot'@'%'";
    eventually(WAIT, "the alert naming the grant", || async {
        pivot.log_text().contains(grant).then_some(()).ok_or("not yet".to_string())
    })
    .await;
    let lag = eventually(WAIT, "healthy, node2 without heartbeat lag", || async {
        let c = api_cluster(addr).await?;
        let lag = instance(&c, &n2).ok_or("no node2")?["lag"].clone();
        (c["code"] == "healthy" && lag["seconds_behind_master"] == 0).then(|| lag.clone()).ok_or(format!("{c}"))
    })
    .await;
    assert!(lag["heartbeat_lag"].is_null(), "{lag}");
    assert_eq!(lag["heartbeat_absent"]["why"], "no_primary_row", "{lag}");
    // The writer kept trying meanwhile (with a backoff); the alert stays one.
    let log = pivot.log_text();
    assert_eq!(log.matches("lacks the heartbeat grant").count(), 1, "{log}");
    let c = api_cluster(addr).await.unwrap();
    assert_eq!(c["primary"], key_of(&sb, "node1"), "nothing else changed: {c}");
}

/// A semi-sync primary with no replica to acknowledge (the sandbox's
/// semi-sync timeout is endless): the heartbeat is not written there, or a
/// write already under way when the last replica left is abandoned after
/// the probe timeout (its session waits on the server until a replica is
/// back, as any client's commit would); they never pile up nor hold up
/// probing. Once the replicas are back, heartbeat lag is measured again.
#[tokio::test(flavor = "multi_thread")]
async fn semi_sync_primary_without_replicas_gets_no_pile_of_heartbeats() {
    let rig = Rig::start(3, true, |_| HEARTBEAT.to_string()).await;
    let (n1, n2, n3) = (rig.key("node1"), rig.key("node2"), rig.key("node3"));
    for key in [&n2, &n3] {
        eventually(WAIT, &format!("heartbeat lag on {key}"), || async {
            let lag = lag_of(rig.addr, key).await?;
            lag["heartbeat_lag"].as_f64().filter(|h| *h < 2.0).map(|_| ()).ok_or(format!("{lag}"))
        })
        .await;
    }
    for node in ["node2", "node3"] {
        exec(&rig.sb, node, &["STOP SLAVE"]).await;
    }
    let observed = |c: &Value| instance(c, &n1).and_then(|i| i["observed_at"].as_u64()).unwrap_or(0);
    let c = api_cluster(rig.addr).await.unwrap();
    let since = observed(&c);
    // Probing goes on: three seconds of readings of the primary after the
    // replicas left, while the writer had many chances to write.
    eventually(WAIT, "the primary probed for 3 s more", || async {
        let c = api_cluster(rig.addr).await?;
        let i = instance(&c, &n1).ok_or("no node1")?;
        (i["reachable"] == true && observed(&c) >= since + 3_000).then_some(()).ok_or(format!("{}", i["observed_at"]))
    })
    .await;
    let mut admin = rig.sb.admin("node1").await.unwrap();
    let waiting = pivot_dialect::Sql::plain(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'pivot' AND INFO LIKE 'INSERT INTO `pivot`%'",
    );
    let rows = admin.rows(&waiting).await.unwrap();
    let n: u32 = rows[0]["n"].as_deref().unwrap().parse().unwrap();
    assert!(n <= 1, "{n} heartbeat writes wait for an acknowledgement");
    let c = api_cluster(rig.addr).await.unwrap();
    assert_eq!(c["primary"], n1.as_str(), "{c}");

    for node in ["node2", "node3"] {
        exec(&rig.sb, node, &["START SLAVE"]).await;
    }
    for key in [&n2, &n3] {
        eventually(WAIT, &format!("heartbeat lag on {key} again"), || async {
            let lag = lag_of(rig.addr, key).await?;
            lag["heartbeat_lag"].as_f64().filter(|h| *h < 2.0).map(|_| ()).ok_or(format!("{lag}"))
        })
        .await;
    }
}
