//! S10 and the operator's side of failover: the block period, `pivot ack`,
//! `pivot failover`, hooks.

use crate::support::*;
use pivot_drill::{eventually, missing_writes};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn s10_second_failure_in_the_block_period_waits_for_an_operator() {
    let mut rig = Rig::start(4, false, |_| String::new()).await;
    rig.sb.kill("node1").unwrap();
    let first = rig.wait_new_primary(&rig.key("node1")).await;
    let first_node = rig.sb.node_at(&first.parse().unwrap()).unwrap().name.clone();

    // Second failure, inside the 30 min default block: no automatic failover.
    rig.sb.kill(&first_node).unwrap();
    let h = eventually(WAIT, "a blocked alert", || async {
        let h = rig.history();
        h["events"]
            .to_string()
            .contains("automatic failover is blocked by recovery")
            .then_some(h.clone())
            .ok_or(h["events"].to_string())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.history()["recoveries"].as_array().unwrap().len(), 1, "no second automatic recovery: {h:#}");
    assert!(rig.writable_nodes().await.is_empty());

    // The manual command works.
    let out = cli(&rig, &["failover", "--cluster", "sandbox"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("succeeded: promoted"), "{text}");
    let second = rig.wait_new_primary(&first).await;
    let r = &rig.history()["recoveries"][0];
    assert_eq!(r["kind"], "manual_failover");
    assert!(r["owner"].as_str().unwrap().starts_with("pivot failover"), "{r}");

    // Third failure: blocked again (manual recoveries block too) until acknowledged.
    let second_node = rig.sb.node_at(&second.parse().unwrap()).unwrap().name.clone();
    rig.sb.kill(&second_node).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rig.history()["recoveries"].as_array().unwrap().len(), 2);
    let out = cli(&rig, &["ack", "--cluster", "sandbox"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("automatic recovery is allowed again"), "{out:?}");
    let third = rig.wait_new_primary(&second).await;
    assert_eq!(rig.writable_nodes().await, vec![third]);
    assert_eq!(rig.history()["recoveries"][0]["kind"], "automatic_failover");
    let out = cli(&rig, &["ack", "--cluster", "sandbox"]);
    assert_eq!(out.status.code(), Some(0), "the new recovery blocks again and can be acknowledged");
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_failover_refuses_a_live_primary_unless_forced_then_fences_it() {
    let rig = Rig::start(3, false, |sb| {
        format!("[cluster.failover]\nautomatic = false\n{}", {
            let _ = sb;
            ""
        })
    })
    .await;
    let writer = rig.writer(1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acks = writer.stop().await;
    let out = cli(&rig, &["failover", "--cluster", "sandbox"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("answers"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(rig.writable_nodes().await, vec![rig.key("node1")], "nothing changed");
    let out = cli(&rig, &["failover", "--cluster", "sandbox", "--to", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(3), "a bogus target changes nothing either");

    let out = cli(&rig, &["failover", "--cluster", "sandbox", "--to", &rig.key("node3"), "--force"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    rig.wait_healthy_with_primary(&rig.key("node3")).await;
    assert_eq!(read_only(&rig.sb, "node1").await, Some(true), "the old primary was fenced first");
    assert_eq!(rig.writable_nodes().await, vec![rig.key("node3")]);
    assert!(!acks.is_empty(), "writes were acknowledged before the fault");
    let missing = missing_writes(&mut rig.sb.admin("node3").await.unwrap(), &acks).await;
    assert!(missing.is_empty());
    let h = rig.history();
    assert_eq!(steps(last_recovery(&h))[0], "fence_live_primary=ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn hooks_veto_report_and_mha_script_runs_unchanged() {
    let mut rig = Rig::start(3, false, |sb| {
        let out = sb.dir.join("hooks.out");
        let veto = sb.dir.join("veto");
        std::fs::write(&veto, "").unwrap();
        let pre = script(sb, "pre", &format!("[ -e {} ] && {{ echo 'maintenance window' >&2; exit 1; }}; echo pre >> {}", veto.display(), out.display()));
        let failed = script(sb, "failed", &format!("echo \"failed $PIVOT_FAILED_PRIMARY $PIVOT_OUTCOME\" >> {}", out.display()));
        let post = script(sb, "post", &format!("echo \"post $PIVOT_FAILED_PRIMARY $PIVOT_NEW_PRIMARY $*\" >> {}", out.display()));
        let mha = script(sb, "master_ip_failover", &format!("echo \"mha $*\" >> {}", out.display()));
        format!(
            "[cluster.hooks]\npre_failover = [\"{}\"]\npost_unsuccessful_failover = [\"{}\"]\npost_failover = [\"{}\", \"--from-config\"]\n\
             mha_master_ip_failover = \"{}\"\n",
            pre.display(),
            failed.display(),
            post.display(),
            mha.display()
        )
    })
    .await;
    let out_file = rig.sb.dir.join("hooks.out");
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let h = wait_recovery_status(&rig, "aborted").await;
    let summary = last_recovery(&h)["summary"].as_str().unwrap().to_string();
    assert!(summary.contains("hook_pre_failover: exit 1; output: maintenance window"), "{summary}");
    assert!(rig.writable_nodes().await.is_empty(), "a vetoed failover changes nothing");
    eventually(WAIT, "post-unsuccessful hook", || async {
        let text = std::fs::read_to_string(&out_file).unwrap_or_default();
        text.contains(&format!("failed {old} aborted: hook_pre_failover")).then_some(()).ok_or(text)
    })
    .await;

    // Lift the veto: the retry after the backoff goes through, hooks in order.
    std::fs::remove_file(rig.sb.dir.join("veto")).unwrap();
    let new = rig.wait_new_primary(&old).await;
    let text = eventually(WAIT, "post-failover hook", || async {
        let text = std::fs::read_to_string(&out_file).unwrap_or_default();
        text.contains("post ").then_some(text.clone()).ok_or(text)
    })
    .await;
    let lines: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("pre")).collect();
    assert_eq!(lines[0], "pre");
    assert_eq!(
        lines[1],
        format!(
            "mha --command=stop --orig_master_host=127.0.0.1 --orig_master_ip=127.0.0.1 --orig_master_port={}",
            old.rsplit(':').next().unwrap()
        )
    );
    assert!(
        lines[2].starts_with("mha --command=start")
            && lines[2].contains(&format!("--new_master_port={}", new.rsplit(':').next().unwrap())),
        "{}",
        lines[2]
    );
    assert!(!lines[2].contains("password"), "no password in argv: {}", lines[2]);
    assert!(
        lines[3].starts_with(&format!("post {old} {new} --from-config --hook=post_failover --cluster=sandbox")),
        "{}",
        lines[3]
    );
    let _ = &mut rig;
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_failover_of_a_hung_primary_needs_no_force() {
    let rig = Rig::start(3, false, |_| "[cluster.failover]\nautomatic = false\n".to_string()).await;
    rig.sb.pause("node1").unwrap();
    // One reading cannot show the replicas' silence; the command looks twice.
    let out = cli(&rig, &["failover", "--cluster", "sandbox"]);
    let text = String::from_utf8_lossy(&out.stdout);
    rig.sb.resume("node1").unwrap();
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("succeeded: promoted"), "{text}");
    let h = rig.history();
    let analysis = last_recovery(&h)["analysis"].as_str().unwrap().to_string();
    assert!(analysis.starts_with("dead_primary:") && analysis.contains("confirmed by"), "{analysis}");
    eventually(WAIT, "node1 fenced once awake", || async {
        (read_only(&rig.sb, "node1").await == Some(true)).then_some(()).ok_or("writable".to_string())
    })
    .await;
    assert_eq!(rig.writable_nodes().await.len(), 1);
}
