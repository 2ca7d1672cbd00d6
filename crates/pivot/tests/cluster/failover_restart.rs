//! S11: pivot is killed in the middle of a failover and restarted. It resumes
//! where it stopped, repeats nothing blindly, and the cluster ends with
//! exactly one writer.

use crate::support::*;
use pivot_drill::{eventually, missing_writes};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn s11_killed_before_the_promotion_resumes_and_promotes_once() {
    let mut rig =
        Rig::start(3, true, |sb| format!("[cluster.failover]\npreferred = [{}]\n", toml_key(sb, "node2"))).await;
    // The candidate cannot apply its relay log while this lock is held.
    let mut lock = rig.sb.admin("node2").await.unwrap();
    lock.exec(&pivot_dialect::Sql::plain("LOCK TABLES test.drill_writes WRITE")).await.unwrap();
    let writer = rig.writer(1);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    wait_step_running(&rig, "wait_relay_applied").await;
    rig.pivot.kill();
    drop(lock);
    assert!(rig.writable_nodes().await.is_empty(), "nothing promoted yet");
    restart_daemon(&mut rig);
    let new = rig.wait_new_primary(&old).await;
    assert_eq!(new, rig.key("node2"));
    let acks = writer.stop().await;
    assert!(!acks.is_empty(), "writes were acknowledged before the fault");
    let missing = missing_writes(&mut rig.sb.admin("node2").await.unwrap(), &acks).await;
    assert!(missing.is_empty(), "{} acknowledged writes missing", missing.len());
    assert_eq!(rig.writable_nodes().await, vec![new]);
    let h = rig.history();
    let all = h["recoveries"].as_array().unwrap();
    assert_eq!(all.len(), 1, "one recovery, resumed, not a second one: {h:#}");
    let r = &all[0];
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert!(r["summary"].as_str().unwrap().starts_with("resumed after a pivot restart"), "{r:#}");
    let wait = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "wait_relay_applied" && s["detail"].as_str().unwrap().contains(&rig.key("node2")))
        .unwrap();
    assert!(wait["message"].as_str().unwrap().starts_with("interrupted by a pivot restart; resumed"), "{wait}");
    assert!(r["owner"].as_str().unwrap().contains("pivot run"), "adopted by the new daemon");
    let promotes = r["steps"].as_array().unwrap().iter().filter(|s| s["name"] == "promote").count();
    assert_eq!(promotes, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn s11_killed_after_the_promotion_finishes_and_asks_the_interrupted_hook_again() {
    let mut rig = Rig::start(3, false, |sb| {
        let calls = sb.dir.join("mha.calls");
        // The first `start` hangs long enough for pivot to be killed in the
        // middle of it; hooks are idempotent, so the second one just works.
        let pid = sb.dir.join("mha.pid");
        let mha = script(
            sb,
            "master_ip_failover",
            &format!(
                "echo \"$1\" >> {c}; [ \"$1\" = --command=start ] && [ ! -e {p} ] && {{ echo $$ > {p}; sleep 30; }}; exit 0",
                c = calls.display(),
                p = pid.display()
            ),
        );
        format!("[cluster.hooks]\nmha_master_ip_failover = \"{}\"\ntimeout = \"60s\"\n", mha.display())
    })
    .await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    wait_step_running(&rig, "hook_mha_start").await;
    rig.pivot.kill();
    // The hook outlives a SIGKILLed pivot; end it (its own process group) here.
    let hook_pid = wait_pid_file(&rig, "mha.pid").await;
    // SAFETY: signalling the process group of the hook this test's pivot started.
    unsafe { libc::kill(-hook_pid, libc::SIGKILL) };
    let writers = rig.writable_nodes().await;
    assert_eq!(writers.len(), 1, "promoted before pivot died: {writers:?}");
    let new = writers[0].clone();
    restart_daemon(&mut rig);
    let c = eventually(WAIT, "the other replica follows the new primary", || async {
        let c = api_cluster(rig.addr).await?;
        let other = ["node2", "node3"].iter().map(|n| rig.key(n)).find(|k| *k != new).unwrap();
        let r = instance(&c, &other).ok_or("missing")?;
        (c["code"] == "healthy" && r["source"] == new)
            .then_some(c.clone())
            .ok_or(format!("{} {}", c["code"], r["source"]))
    })
    .await;
    assert_eq!(c["primary"], new);
    assert_ne!(new, old);
    assert_eq!(rig.writable_nodes().await, vec![new]);
    let h = wait_recovery_status(&rig, "succeeded").await;
    let s = steps(last_recovery(&h));
    assert!(s.contains(&"hook_mha_start=ok".to_string()), "an interrupted hook is asked again: {s:?}");
    assert!(s.contains(&"promote=ok".to_string()) && s.contains(&"repoint=ok".to_string()), "{s:?}");
    let calls = std::fs::read_to_string(rig.sb.dir.join("mha.calls")).unwrap();
    assert_eq!(
        calls.lines().collect::<Vec<_>>(),
        vec!["--command=stop", "--command=start", "--command=start"],
        "stop once (it ended), start again (it was interrupted)"
    );
}
