//! Issue 8: a former primary that diverged (a write only it has; `pivot
//! rejoin` refuses it) is rebuilt from a replica's physical backup with
//! `pivot rebuild`, under write load: it replicates from the new primary,
//! has every acknowledged write and not the diverged one, its old datadir is
//! kept aside, and the donor kept replicating and answering the whole time.
//! The primary is never touched.

use crate::rebuild_agents::*;
use crate::support::*;
use pivot_drill::{eventually, missing_writes};
use pivot_server::actions;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every 100 ms: does `node` answer and replicate from `source`? Returns
/// the samples that said no.
fn watch_donor(
    sb: &pivot_drill::TestSandbox,
    node: &str,
    source: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    let key = sb.key(node).unwrap();
    let creds = sb.credentials("admin").unwrap();
    tokio::spawn(async move {
        let (mut samples, bad) = (0, Arc::new(Mutex::new(Vec::new())));
        while !stop.load(Ordering::Relaxed) {
            samples += 1;
            let seen = async {
                let mut s = pivot_server::Session::connect(&key, &creds, Duration::from_secs(2)).await?;
                s.rows(&pivot_dialect::Sql::plain("SELECT COUNT(*) AS n FROM test.drill_writes")).await?;
                actions::replication_status(&mut s).await
            }
            .await;
            let ok = matches!(&seen, Ok(Some(r)) if r.source.to_string() == source
                && r.io_thread == pivot_core::observation::IoThread::Running && r.sql_running);
            if !ok {
                bad.lock().unwrap().push(format!("{seen:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let bad = bad.lock().unwrap().clone();
        (samples, bad)
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_diverged_former_primary_is_rebuilt_from_a_replica_and_replicates_with_every_acknowledged_write() {
    let mut rig = Rig::start(3, true, |_| String::new()).await;
    let writer = rig.writer(1);
    let old = rig.key("node1");
    wait_acks(&writer, &old, 20).await;
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let new_node = rig.sb.node_at(&new.parse().unwrap()).unwrap().name.clone();
    let donor_node = if new_node == "node2" { "node3" } else { "node2" };
    let donor = rig.key(donor_node);

    // The old primary comes back (pivot fences it) and takes a write
    // nobody else has: it has diverged.
    rig.sb.start("node1").await.unwrap();
    eventually(WAIT, "the old primary fenced", || async {
        (read_only(&rig.sb, "node1").await == Some(true)).then_some(()).ok_or("not read-only yet".to_string())
    })
    .await;
    // (pivot's fence ends the sessions it finds: retried until it lands.)
    eventually(WAIT, "the diverged write on the old primary", || async {
        let mut s = rig.sb.admin("node1").await.map_err(|e| e.to_string())?;
        let insert = "INSERT IGNORE INTO test.drill_writes (id, writer, at) VALUES (424242, 99, NOW(6))";
        s.exec(&pivot_dialect::Sql::plain(insert)).await.map_err(|e| e.to_string())
    })
    .await;
    let mut s1 = rig.sb.admin("node1").await.unwrap();
    let q = pivot_dialect::Sql::plain("SELECT id FROM test.drill_writes WHERE id = 424242");
    assert_eq!(s1.rows(&q).await.unwrap().len(), 1, "node1 has the diverged write");
    drop(s1);
    // pivot judges it diverged and refuses to rejoin it: a rebuild is the way back.
    let out = cli(&rig, &["rejoin", &old]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("diverged"), "{}", text(&out));

    let admin_pw = std::fs::read_to_string(rig.sb.dir.join("secrets/admin.password")).unwrap();
    let agents = TestAgents::start(
        &rig.sb,
        &[
            AgentSpec { name: "target", node: "node1", backup_password: Some(admin_pw.clone()), after_stop: None },
            AgentSpec { name: "donor", node: donor_node, backup_password: Some(admin_pw), after_stop: None },
        ],
    )
    .await;
    let map = [("node1", agents.addr("target")), (donor_node, agents.addr("donor"))];
    // The daemon goes on with the agents in its configuration (same state
    // file), so that its API shows the rebuild.
    let (config, api) =
        write_config(&rig.sb, ConfigOptions { extra: cluster_rebuild(&rig.sb, &map), ..Default::default() });
    rig.pivot.stop();
    rig.pivot = start_daemon(&rig.sb, &config);
    rig.addr = api;
    rig.wait_healthy_with_primary(&new).await;
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = vec!["rebuild".into(), old.clone()];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.extend(["--config".into(), config.display().to_string()]);
        a
    };

    // The donor is the only promotion candidate left: pivot does not take
    // it by itself.
    let out = pivot_async(args(&[])).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("only healthy replica that could be promoted"), "{}", text(&out));

    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_donor(&rig.sb, donor_node, new.clone(), stop.clone());
    let began = Instant::now();
    let out = pivot_async(args(&["--from", &donor])).await;
    let took = began.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (samples, bad) = watcher.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains(&format!("replicating from {new}")), "{said}");
    eprintln!("rebuild took {took:?}: {said}");
    assert!(
        samples >= 3 && bad.is_empty(),
        "the donor answered and replicated throughout: {samples} samples, bad: {bad:?}"
    );

    // It replicates from the new primary, read-only.
    let mut s = rig.sb.admin("node1").await.unwrap();
    let r = actions::replication_status(&mut s).await.unwrap().expect("node1 replicates");
    assert_eq!(r.source.to_string(), new);
    assert!(r.io_thread == pivot_core::observation::IoThread::Running && r.sql_running, "{r:?}");
    assert_eq!(read_only(&rig.sb, "node1").await, Some(true));
    assert_eq!(rig.writable_nodes().await, vec![new.clone()], "exactly one writer");

    // Every acknowledged write arrives; the diverged row is gone.
    let acks = writer.stop().await;
    assert!(acks.iter().any(|a| a.instance.to_string() == new), "writes went on during the rebuild");
    eventually(WAIT, "every acknowledged write on the rebuilt server", || {
        let acks = acks.clone();
        let creds = rig.sb.credentials("admin").unwrap();
        let key = rig.sb.key("node1").unwrap();
        async move {
            let mut s = pivot_server::Session::connect(&key, &creds, Duration::from_secs(2))
                .await
                .map_err(|e| e.to_string())?;
            let missing = missing_writes(&mut s, &acks).await;
            missing.is_empty().then_some(()).ok_or(format!("{} of {} missing", missing.len(), acks.len()))
        }
    })
    .await;
    let diverged =
        s.rows(&pivot_dialect::Sql::plain("SELECT id FROM test.drill_writes WHERE id = 424242")).await.unwrap();
    assert!(diverged.is_empty(), "the diverged write is gone");

    // The old datadir is kept aside, with the diverged write in it.
    let kept = kept_datadirs(&rig.sb, "node1");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].join("ibdata1").exists() && kept[0].join("test").exists(), "{kept:?}");

    // The API shows the rebuild's outcome on the target's agent.
    let (status, body) = pivot_drill::http_get(api, "/api/clusters/sandbox/rebuild").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let target =
        v["agents"].as_array().unwrap().iter().find(|a| a["status"]["instance"] == old).expect("the target's agent");
    assert_eq!(target["status"]["job"]["phase"], "done", "{v:#}");
    assert!(target["status"]["job"]["bytes"].as_u64().unwrap() > 1 << 20, "{v:#}");

    // Recorded in the history; no longer on the fence list.
    let h = rig.history();
    let events = h["events"].to_string();
    assert!(events.contains(&format!("rebuild of {old} from {donor} started")), "{events}");
    assert!(events.contains(&format!("rebuild of {old} from {donor} ended")), "{events}");
    let state = pivot_state::open(&rig.sb.dir.join("test-pivot.db")).unwrap();
    assert!(state.fenced("sandbox").unwrap().iter().all(|f| f.instance != old), "node1 left the fence list");
    drop(agents);
}
