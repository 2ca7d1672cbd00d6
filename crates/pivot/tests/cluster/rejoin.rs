//! Rejoin (issue 8): a former primary that comes back holding nothing the
//! new primary lacks becomes its replica, read-only, off the fence list; one
//! that diverged is quarantined, its extra transactions named, judged
//! (could they have been acknowledged?) and saved to a file, and `pivot
//! rejoin` refuses it.

use crate::support::*;
use pivot_drill::eventually;
use pivot_server::actions;

/// `@@gtid_binlog_pos` of a node.
async fn binlog_pos(rig: &Rig, node: &str) -> String {
    let mut s = rig.sb.admin(node).await.unwrap();
    let rows = s.rows(&pivot_dialect::Sql::plain("SELECT @@gtid_binlog_pos AS p")).await.unwrap();
    rows[0]["p"].clone().unwrap_or_default()
}

/// Rows of the drill table with `id` on a node.
async fn has_row(rig: &Rig, node: &str, id: u64) -> Result<bool, String> {
    let mut s = rig.sb.admin(node).await.map_err(|e| e.to_string())?;
    let sql = pivot_dialect::Sql::plain(format!("SELECT COUNT(*) AS n FROM test.drill_writes WHERE id = {id}"));
    let rows = s.rows(&sql).await.map_err(|e| e.to_string())?;
    Ok(rows.first().and_then(|r| r["n"].clone()).as_deref() == Some("1"))
}

/// A node's replication status through a fresh session (pivot's fence ends
/// client sessions of a former primary, a test's too).
async fn replication_of(rig: &Rig, node: &str) -> Option<pivot_core::observation::ReplicationStatus> {
    eventually(WAIT, &format!("{node}'s replication status"), || async {
        let mut s = rig.sb.admin(node).await.map_err(|e| e.to_string())?;
        actions::replication_status(&mut s).await.map_err(|e| e.to_string())
    })
    .await
}

fn node_of(rig: &Rig, key: &str) -> String {
    rig.sb.node_at(&key.parse().unwrap()).unwrap().name.clone()
}

/// The fence entry of `key`, as the API shows it.
async fn fence_entry(rig: &Rig, key: &str) -> Result<Option<serde_json::Value>, String> {
    let c = api_cluster(rig.addr).await?;
    Ok(c["recovery"]["fenced"].as_array().and_then(|f| f.iter().find(|f| f["instance"] == key).cloned()))
}

fn events_text(rig: &Rig) -> String {
    rig.history()["events"].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_former_primary_rejoins_as_a_replica_of_the_new_primary() {
    let mut rig = Rig::start(3, false, |_| "auto_rejoin = true\n".into()).await;
    exec(&rig.sb, "node1", &["INSERT INTO test.drill_writes VALUES (1, 0, NOW(6))"]).await;
    // Asynchronous replication: the replicas have everything the primary has.
    let pos = binlog_pos(&rig, "node1").await;
    for n in ["node2", "node3"] {
        exec(&rig.sb, n, &[&format!("SELECT MASTER_GTID_WAIT('{pos}', 10)")]).await;
    }
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let new_node = node_of(&rig, &new);
    // Written on the new primary while the old one is down: it must arrive.
    exec(&rig.sb, &new_node, &["INSERT INTO test.drill_writes VALUES (2, 0, NOW(6))"]).await;
    rig.sb.start("node1").await.unwrap();
    let back = std::time::Instant::now();
    eventually(WAIT, "node1 replicating from the new primary", || async {
        let mut s = rig.sb.admin("node1").await.map_err(|e| e.to_string())?;
        let r = actions::replication_status(&mut s).await.map_err(|e| e.to_string())?.ok_or("no replication")?;
        let ok = r.source.to_string() == new && r.replicating() && r.io_error.is_none() && r.sql_error.is_none();
        ok.then_some(()).ok_or(format!("{r:?}"))
    })
    .await;
    eprintln!(
        "rejoin: replicating {} ms after the restarted former primary accepted connections",
        back.elapsed().as_millis()
    );
    assert_eq!(read_only(&rig.sb, "node1").await, Some(true), "a rejoined former primary stays read-only");
    eventually(WAIT, "node1 off the fence list", || async {
        match fence_entry(&rig, &old).await? {
            None => Ok(()),
            Some(e) => Err(e.to_string()),
        }
    })
    .await;
    exec(&rig.sb, &new_node, &["INSERT INTO test.drill_writes VALUES (3, 0, NOW(6))"]).await;
    for id in [2, 3] {
        eventually(WAIT, &format!("row {id} on node1"), || async {
            has_row(&rig, "node1", id).await?.then_some(()).ok_or("not yet".to_string())
        })
        .await;
    }
    let events = events_text(&rig);
    assert!(events.contains(&format!("former primary {old} rejoined: replicates from {new}")), "{events}");
    assert_eq!(rig.writable_nodes().await, vec![new.clone()], "one writer");
    // The daemon does not fight a rejoined replica: still replicating later.
    rig.wait_healthy_with_primary(&new).await;
}

/// Semi-sync AFTER_SYNC without fallback (the sandbox's `--semi-sync`: no
/// timeout to speak of, waits with no replica): a commit no replica received
/// was never acknowledged, and pivot says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_diverged_former_primary_is_quarantined_named_judged_saved_and_pivot_rejoin_refuses_it() {
    let mut rig = Rig::start(3, true, |_| "auto_rejoin = true\n".into()).await;
    exec(&rig.sb, "node1", &["INSERT INTO test.drill_writes VALUES (1, 0, NOW(6))"]).await;
    let before = binlog_pos(&rig, "node1").await;
    for n in ["node2", "node3"] {
        exec(&rig.sb, n, &[&format!("SELECT MASTER_GTID_WAIT('{before}', 10)")]).await;
        exec(&rig.sb, n, &["STOP SLAVE IO_THREAD"]).await;
    }
    // A commit no replica receives: it waits for an acknowledgement forever.
    let mut client = rig.sb.admin("node1").await.unwrap();
    let waiting = tokio::spawn(async move {
        let sql = pivot_dialect::Sql::plain("INSERT INTO test.drill_writes VALUES (4242, 7, NOW(6))");
        client.exec(&sql).await
    });
    let extra = eventually(WAIT, "the extra commit in node1's binary log", || async {
        let p = binlog_pos(&rig, "node1").await;
        (p != before).then_some(p).ok_or("not yet".to_string())
    })
    .await;
    // pivot has seen the commit waiting (the primary alive, semi-sync on).
    eventually(WAIT, "pivot sees a commit waiting", || async {
        let c = api_cluster(rig.addr).await?;
        let p = instance(&c, &rig.key("node1")).ok_or("no node1")?;
        let w = p["state"]["semi_sync"]["primary_waiting_sessions"].as_u64().unwrap_or(0);
        (w > 0).then_some(()).ok_or(format!("waiting {w}"))
    })
    .await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    assert!(!matches!(waiting.await, Ok(Ok(()))), "the waiting commit was never acknowledged");
    for n in ["node2", "node3"] {
        exec(&rig.sb, n, &["START SLAVE IO_THREAD"]).await;
    }
    let new = rig.wait_new_primary(&old).await;
    rig.sb.start("node1").await.unwrap();
    let entry = eventually(WAIT, "node1 quarantined with its file", || async {
        let e = fence_entry(&rig, &old).await?.ok_or("not fenced")?;
        let ok = e["status"] == "quarantined" && e["detail"].as_str().unwrap_or("").contains("saved to ");
        ok.then_some(e.clone()).ok_or(e.to_string())
    })
    .await;
    let detail = entry["detail"].as_str().unwrap().to_string();
    assert!(detail.contains(&format!("diverged: {extra} are not on {new}")), "{detail}");
    assert!(
        detail.contains(
            "none of these could have been acknowledged to a client (semi-sync AFTER_SYNC, no replica received them)"
        ),
        "{detail}"
    );
    let file = detail.split("extra transactions saved to ").nth(1).unwrap().split("; ").next().unwrap().to_string();
    assert!(file.contains("/quarantine/sandbox-"), "{file}");
    let text = std::fs::read_to_string(&file).unwrap();
    eprintln!("quarantine: {detail}\n---- {file} ----\n{text}");
    assert!(text.contains("drill_writes") && text.contains("@1=4242"), "the extra row is in {file}:\n{text}");
    assert!(!text.contains("@1=1\n"), "only the extra transaction, not the common ones:\n{text}");
    let events = events_text(&rig);
    assert!(events.contains(&extra) && events.contains(&file), "the alerts name the GTID and the file: {events}");
    // Not replicating, read-only, and it stays so.
    let r = replication_of(&rig, "node1").await;
    assert!(r.as_ref().is_none_or(|r| !r.replicating()), "{r:?}");
    assert_eq!(read_only(&rig.sb, "node1").await, Some(true));
    assert!(!has_row(&rig, &node_of(&rig, &new), 4242).await.unwrap(), "the extra row is not on the new primary");

    // By hand: refused, the extra GTIDs and the file named.
    let out = cli(&rig, &["rejoin", &old]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&format!("diverged: {extra} are not on {new}")) && err.contains(&file), "{err}");
    let out = cli(&rig, &["rejoin", &old, "--discard-extra"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("rebuild") && err.contains(&file), "{err}");
    let r = replication_of(&rig, "node1").await;
    assert!(r.as_ref().is_none_or(|r| !r.replicating()), "refused means untouched: {r:?}");
    assert_eq!(fence_entry(&rig, &old).await.unwrap().unwrap()["status"], "quarantined");
}

/// `auto_rejoin = false`: the former primary waits, fenced, until `pivot
/// rejoin` makes it a replica by hand, through the same checks.
#[tokio::test(flavor = "multi_thread")]
async fn with_auto_rejoin_off_pivot_rejoin_does_it_by_hand() {
    let mut rig = Rig::start(3, false, |_| "auto_rejoin = false\n".into()).await;
    let old = rig.key("node1");
    let pos = binlog_pos(&rig, "node1").await;
    for n in ["node2", "node3"] {
        exec(&rig.sb, n, &[&format!("SELECT MASTER_GTID_WAIT('{pos}', 10)")]).await;
    }
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    rig.sb.start("node1").await.unwrap();
    eventually(WAIT, "node1 judged able to rejoin", || async {
        let e = fence_entry(&rig, &old).await?.ok_or("not fenced")?;
        e["detail"].as_str().unwrap_or("").contains("it can rejoin as a replica").then_some(()).ok_or(e.to_string())
    })
    .await;
    assert!(replication_of(&rig, "node1").await.is_none(), "automatic rejoin is off: untouched");
    let out = cli(&rig, &["rejoin", &old]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains(&format!("former primary {old} rejoined by hand: replicates from {new}")), "{said}");
    let r = replication_of(&rig, "node1").await.expect("replicating");
    assert!(r.source.to_string() == new && r.replicating(), "{r:?}");
    assert_eq!(read_only(&rig.sb, "node1").await, Some(true));
    // The daemon reads the fence list every second.
    eventually(WAIT, "node1 off the fence list", || async {
        match fence_entry(&rig, &old).await? {
            None => Ok(()),
            Some(e) => Err(e.to_string()),
        }
    })
    .await;
    let r = replication_of(&rig, "node1").await.expect("still replicating");
    assert!(r.source.to_string() == new && r.replicating(), "the daemon leaves the rejoined replica be: {r:?}");
    // Again: it is the primary's replica now, not a former primary to rejoin.
    let out = cli(&rig, &["rejoin", &old]);
    assert_ne!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}
