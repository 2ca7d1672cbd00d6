//! Planned switchover on real sandboxes: under a writer through the daemon's
//! API (nothing lost, nothing written to two primaries, the old primary a
//! replica), refusals that change nothing, a failure injected after each
//! step (rolled back to the old primary before the promotion, the new one
//! kept after it), and pivot killed mid-way.

use crate::support::*;
use pivot_drill::{eventually, http_request, missing_writes, PivotProcess};
use std::time::Duration;

/// `pivot switchover` with `env` (failpoints), its exit code and output.
fn switchover(rig: &Rig, to: &str, local: bool, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut args = vec!["switchover", "--cluster", "sandbox", "--to", to, "--config", rig.config.to_str().unwrap()];
    if local {
        args.push("--local");
    }
    let out = std::process::Command::new(pivot_bin()).args(&args).envs(env.iter().copied()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// Wait until `node` replicates from `source` with both threads running.
async fn wait_replicating(rig: &Rig, node: &str, source: &str) {
    let key = rig.sb.key(node).unwrap();
    let creds = rig.sb.credentials("admin").unwrap();
    eventually(WAIT, &format!("{node} replicating from {source}"), || {
        let (key, creds) = (key.clone(), creds.clone());
        async move {
            let mut s = pivot_server::Session::connect(&key, &creds, Duration::from_secs(2))
                .await
                .map_err(|e| e.to_string())?;
            let r = pivot_server::actions::replication_status(&mut s).await.map_err(|e| e.to_string())?;
            match r {
                Some(r) if r.source.to_string() == source && r.replicating() => Ok(()),
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await
}

/// The fence list of a cluster snapshot.
fn fenced(c: &serde_json::Value) -> Vec<String> {
    c["recovery"]["fenced"]
        .as_array()
        .map(|f| f.iter().map(|e| e["instance"].as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default()
}

fn node_of(rig: &Rig, key: &str) -> String {
    rig.sb.node_at(&key.parse().unwrap()).unwrap().name.clone()
}

/// Every node but `primary` replicates from it, and only it is writable.
async fn one_writer(rig: &Rig, primary: &str) {
    rig.wait_healthy_with_primary(primary).await;
    assert_eq!(rig.writable_nodes().await, vec![primary.to_string()], "exactly one writer");
    for n in rig.sb.nodes() {
        let key = rig.key(&n.name);
        if key != primary {
            wait_replicating(rig, &n.name, primary).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_switchover_under_a_writer_loses_nothing_and_the_old_primary_follows() {
    let mut rig = Rig::start(3, true, |_| String::new()).await;
    with_api_token(&rig);
    rig.pivot.stop();
    restart_daemon(&mut rig);
    rig.wait_healthy_with_primary(&rig.key("node1")).await;
    let (old, new) = (rig.key("node1"), rig.key("node2"));

    let writer = rig.writer(1);
    wait_acks(&writer, &old, 20).await;
    // Through the daemon (its API takes changes): the CLI asks it.
    let (code, text) = switchover(&rig, &new, false, &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("succeeded: switched over to") && text.contains(&new), "{text}");
    wait_acks(&writer, &new, 20).await;
    let acks = writer.stop().await;

    one_writer(&rig, &new).await;
    let first_new =
        acks.iter().filter(|a| a.instance.to_string() == new).map(|a| a.at).min().expect("writes on the new primary");
    let last_old =
        acks.iter().filter(|a| a.instance.to_string() == old).map(|a| a.at).max().expect("writes on the old one");
    assert!(last_old < first_new, "nothing acknowledged by the old primary after the new one's first write");
    let missing = missing_writes(&mut rig.sb.admin("node2").await.unwrap(), &acks).await;
    assert!(missing.is_empty(), "acknowledged writes missing on the new primary: {missing:?}");
    eventually(WAIT, "every write on the old primary too", || async {
        let m = missing_writes(&mut rig.sb.admin("node1").await.unwrap(), &acks).await;
        m.is_empty().then_some(()).ok_or(format!("{} missing", m.len()))
    })
    .await;
    let h = rig.history();
    let r = last_recovery(&h);
    assert_eq!(r["kind"], "switchover", "{r}");
    assert_eq!(r["status"], "succeeded", "{r}");
    let s = steps(r);
    assert!(s.contains(&"demote=ok".to_string()) && s.contains(&"release_fence=ok".to_string()), "{s:?}");
    eventually(WAIT, "the old primary left the fence list", || async {
        let f = fenced(&api_cluster(rig.addr).await?);
        f.is_empty().then_some(()).ok_or(format!("{f:?}"))
    })
    .await;

    // The API itself: the token is required, the body checked, then back to node1.
    let path = "/api/clusters/sandbox/switchover";
    let (status, body) = http_request(rig.addr, "POST", path, &[], "{}").await.unwrap();
    assert_eq!(status, 401, "{body}");
    let (status, _) = http_request(rig.addr, "POST", path, &[("Authorization", "Bearer wrong")], "{}").await.unwrap();
    assert_eq!(status, 401);
    let auth = format!("Bearer {API_TOKEN}");
    let (status, body) =
        http_request(rig.addr, "POST", path, &[("Authorization", &auth)], "{\"to\": 12}").await.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("must be JSON"), "{body}");
    let (status, body) =
        http_request(rig.addr, "POST", "/api/clusters/nope/switchover", &[("Authorization", &auth)], "").await.unwrap();
    assert_eq!(status, 404, "{body}");
    let (status, body) =
        http_request(rig.addr, "POST", path, &[("Authorization", &auth)], &format!("{{\"to\": \"{old}\"}}"))
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\":\"succeeded\""), "{body}");
    one_writer(&rig, &old).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_change_nothing() {
    let rig = Rig::start(3, false, |_| "[cluster.switchover]\nmax_transaction = \"1s\"\n".to_string()).await;
    let (old, n3) = (rig.key("node1"), rig.key("node3"));
    // The API is read-only without a token.
    let (status, body) = http_request(rig.addr, "POST", "/api/clusters/sandbox/switchover", &[], "").await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("api_token_file"), "{body}");

    // A broken candidate.
    exec(&rig.sb, "node3", &["STOP SLAVE SQL_THREAD"]).await;
    eventually(WAIT, "pivot sees node3's SQL thread stopped", || async {
        let c = api_cluster(rig.addr).await?;
        let i = instance(&c, &n3).cloned().unwrap_or_default();
        (i["state"]["replication"]["sql_running"] == false).then_some(()).ok_or(i.to_string())
    })
    .await;
    let (code, text) = switchover(&rig, &n3, false, &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("SQL thread stopped") && text.contains("nothing was changed"), "{text}");
    exec(&rig.sb, "node3", &["START SLAVE SQL_THREAD"]).await;

    // A transaction open longer than max_transaction: refused, and it can still commit.
    let mut app = rig.sb.admin("node1").await.unwrap();
    app.exec(&pivot_dialect::Sql::plain("BEGIN")).await.unwrap();
    app.exec(&pivot_dialect::Sql::plain("INSERT INTO test.drill_writes (id, writer, at) VALUES (999999, 99, NOW(6))"))
        .await
        .unwrap();
    // Until the server itself counts it older than max_transaction (1 s).
    eventually(WAIT, "the transaction open for 2 s", || async {
        let mut s = rig.sb.admin("node1").await.map_err(|e| e.to_string())?;
        let old = pivot_server::handover::oldest_transaction(&mut s).await.map_err(|e| e.to_string())?;
        old.filter(|(_, secs)| *secs >= 2).map(|_| ()).ok_or(format!("{old:?}"))
    })
    .await;
    let (code, text) = switchover(&rig, &rig.key("node2"), false, &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("has run") && text.contains("max_transaction"), "{text}");
    app.exec(&pivot_dialect::Sql::plain("COMMIT")).await.expect("the transaction commits: nothing was changed");
    assert_eq!(rig.writable_nodes().await, vec![old.clone()]);
    let h = rig.history();
    assert_eq!(last_recovery(&h)["status"], "aborted", "{h}");
    assert!(
        !steps(last_recovery(&h)).iter().any(|s| s.starts_with("make_read_only")),
        "{:?}",
        steps(last_recovery(&h))
    );

    // A target that is no replica, and the primary itself.
    let (code, text) = switchover(&rig, "127.0.0.1:1", false, &[]);
    assert_eq!(code, Some(3), "{text}");
    let (code, text) = switchover(&rig, &old, false, &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("already the primary"), "{text}");
    one_writer(&rig, &old).await;
}

/// A failure after each step (its effect in place, then reported failed):
/// before the promotion everything is undone and the old primary is the one
/// writer again; from the promotion on, the new primary stays the one writer.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_at_each_step_leaves_exactly_one_writer() {
    let rig = Rig::start(3, false, |_| String::new()).await;
    let before = [
        "check_transactions",
        "register_fence",
        "make_read_only",
        "end_transactions",
        "wait_caught_up",
        "confirm_frozen",
    ];
    let after = ["promote", "record_epoch", "route_local", "repoint", "demote", "confirm_replicating", "release_fence"];
    let mut primary = rig.key("node1");
    for step in before.iter().chain(&after) {
        let target = rig.key(if node_of(&rig, &primary) == "node2" { "node3" } else { "node2" });
        let failpoint = format!("fail_after_step:{step}");
        eprintln!("---- {failpoint}: {primary} -> {target}");
        let (code, text) = switchover(&rig, &target, true, &[("PIVOT_FAILPOINTS", &failpoint)]);
        eprintln!("{text}");
        let rolled_back = before.contains(step) || *step == "promote";
        if rolled_back {
            assert_eq!(code, Some(3), "{step}: {text}");
            assert!(text.contains("aborted"), "{step}: {text}");
        } else {
            assert_eq!(code, Some(3), "{step}: {text}");
            assert!(text.contains("succeeded_with_errors"), "{step}: {text}");
            primary = target.clone();
        }
        one_writer(&rig, &primary).await;
        // The old primary leaves the fence list (the daemon reads it within a second).
        eventually(WAIT, &format!("{step}: an empty fence list"), || async {
            let f = fenced(&api_cluster(rig.addr).await?);
            f.is_empty().then_some(()).ok_or(format!("{f:?}"))
        })
        .await;
    }
}

/// pivot killed in the middle: before the promotion the restarted daemon
/// rolls back; after it, it finishes the switchover.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_pivot_rolls_back_before_the_promotion_and_finishes_after_it() {
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    with_api_token(&rig);
    let (n1, n2) = (rig.key("node1"), rig.key("node2"));
    for (failpoint, expected) in [("kill_before_step:promote", n1.clone()), ("kill_before_step:demote", n2.clone())] {
        rig.pivot.stop();
        let log = rig.sb.dir.join(format!("pivot-kill-{}.log", free_port()));
        rig.pivot = PivotProcess::start_with_env(pivot_bin(), &rig.config, &log, &[("PIVOT_FAILPOINTS", failpoint)]);
        rig.wait_healthy_with_primary(&n1).await;
        let (_, text) = switchover(&rig, &n2, false, &[]);
        assert!(rig.pivot.wait_exit(WAIT).is_some(), "{failpoint}: pivot killed itself: {text}");
        restart_daemon(&mut rig);
        one_writer(&rig, &expected).await;
        let h = wait_recovery_status(&rig, if expected == n1 { "aborted" } else { "succeeded" }).await;
        let r = last_recovery(&h);
        assert!(r["summary"].as_str().unwrap_or_default().contains("resumed"), "{failpoint}: {r}");
        if expected == n2 {
            // Back to node1 for a clean end.
            let (code, text) = switchover(&rig, &n1, false, &[]);
            assert_eq!(code, Some(0), "{text}");
            one_writer(&rig, &n1).await;
        }
    }
}

/// An account that writes through `read_only` (READ_ONLY ADMIN or SUPER on
/// MariaDB) writes on the old primary after it was made read-only, and the
/// candidate does not receive it (its IO thread stopped): the switchover
/// sees it right before the promotion and rolls back; the write is kept on
/// the old primary, still the writer.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_through_read_only_rolls_the_switchover_back() {
    let rig = Rig::start(3, false, |_| String::new()).await;
    let old = rig.key("node1");
    let config = rig.config.to_str().unwrap().to_string();
    let target = rig.key("node2");
    let child = std::process::Command::new(pivot_bin())
        .args(["switchover", "--cluster", "sandbox", "--to", &target, "--local", "--config", &config])
        .env("PIVOT_FAILPOINTS", "sleep_before_step:confirm_frozen")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    eventually(WAIT, "the candidate caught up", || async {
        let h = rig.history();
        let s = steps(last_recovery(&h));
        s.contains(&"wait_caught_up=ok".to_string()).then_some(()).ok_or(format!("{s:?}"))
    })
    .await;
    exec(&rig.sb, "node2", &["STOP SLAVE IO_THREAD"]).await;
    // The admin account has SUPER: read_only does not stop it.
    exec(&rig.sb, "node1", &["INSERT INTO test.drill_writes (id, writer, at) VALUES (424242, 7, NOW(6))"]).await;
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("aborted") && text.contains("took writes after it was made read-only"), "{text}");
    exec(&rig.sb, "node2", &["START SLAVE IO_THREAD"]).await;
    one_writer(&rig, &old).await;
    eventually(WAIT, "the write replicated to node2", || async {
        let mut s = rig.sb.admin("node2").await.map_err(|e| e.to_string())?;
        let rows = s.rows(&pivot_dialect::Sql::plain("SELECT id FROM test.drill_writes WHERE id = 424242")).await;
        rows.map_err(|e| e.to_string())?.first().map(|_| ()).ok_or("not yet".to_string())
    })
    .await;
}
