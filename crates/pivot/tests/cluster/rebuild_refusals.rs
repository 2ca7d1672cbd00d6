//! `pivot rebuild` refuses before anything changes when it cannot be done
//! safely, and a rebuild that fails mid-way puts the target back on its old
//! datadir, with the cause named.

use crate::rebuild_agents::*;
use crate::support::*;
use pivot_drill::{eventually, TestSandbox};
use pivot_server::actions;

async fn replicating_from(sb: &TestSandbox, node: &str, source: &str) -> Result<(), String> {
    let mut s = sb.admin(node).await.map_err(|e| e.to_string())?;
    let r = actions::replication_status(&mut s).await.map_err(|e| e.to_string())?.ok_or("no replication")?;
    let ok =
        r.source.to_string() == source && r.io_thread == pivot_core::observation::IoThread::Running && r.sql_running;
    ok.then_some(()).ok_or(format!("{node}: source {} io {:?} sql {}", r.source, r.io_thread, r.sql_running))
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_refuses_before_touching_anything_and_restores_the_old_datadir_on_failure() {
    let sb = TestSandbox::up(3, false).await;
    exec(&sb, "node1", &["CREATE TABLE test.marker (id INT PRIMARY KEY)", "INSERT INTO test.marker VALUES (7)"]).await;
    let wrong = "not-the-admin-password".to_string();
    let admin_pw = std::fs::read_to_string(sb.dir.join("secrets/admin.password")).unwrap();
    let agents = TestAgents::start(
        &sb,
        &[
            AgentSpec { name: "node2-good", node: "node2", backup_password: Some(admin_pw.clone()), after_stop: None },
            AgentSpec { name: "node2-bare", node: "node2", backup_password: None, after_stop: None },
            AgentSpec { name: "node1-good", node: "node1", backup_password: Some(admin_pw.clone()), after_stop: None },
            AgentSpec { name: "node3-wrong-password", node: "node3", backup_password: Some(wrong), after_stop: None },
        ],
    )
    .await;
    let (node1, node2, node3) = (key_of(&sb, "node1"), key_of(&sb, "node2"), key_of(&sb, "node3"));
    let pid2 = sb.live_pid("node2").unwrap().expect("node2 runs");
    let config = |map: &[(&str, std::net::SocketAddr)]| {
        write_config(&sb, ConfigOptions { extra: cluster_rebuild(&sb, map), ..Default::default() }).0
    };
    let rebuild = |cfg: &std::path::Path, args: &[&str]| {
        let mut all = vec!["rebuild".to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        all.extend(["--config".to_string(), cfg.display().to_string()]);
        pivot_async(all)
    };
    let unchanged = |why: &str| {
        assert_eq!(sb.live_pid("node2").unwrap(), Some(pid2), "{why}: node2 was not restarted");
        assert!(kept_datadirs(&sb, "node2").is_empty(), "{why}: node2's datadir was not moved");
    };

    // The primary is never rebuilt.
    let good = config(&[("node2", agents.addr("node2-good")), ("node3", agents.addr("node3-wrong-password"))]);
    let out = rebuild(&good, &[&node1, "--from", &node3]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("never rebuilds the primary"), "{}", text(&out));
    // The only other replica is the only promotion candidate: not taken by default.
    let out = rebuild(&good, &[&node2]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains(&format!("--from {node3} to use it anyway")), "{}", text(&out));
    unchanged("refused choices");

    // Asked directly, an agent refuses to rebuild a writable server (a
    // primary), whatever asks it.
    let body = format!("{{\"donor_agent\": \"{}\", \"donor\": \"{node3}\"}}", agents.addr("node2-good"));
    let bearer = format!("Bearer {TOKEN}");
    let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json")];
    let (status, said) =
        pivot_drill::http_request(agents.addr("node1-good"), "POST", "/v1/rebuild", &headers, &body).await.unwrap();
    assert_eq!(status, 409, "{said}");
    assert!(said.contains("is writable") && said.contains("never rebuilt"), "{said}");
    assert_eq!(read_only(&sb, "node1").await, Some(false), "the primary still answers, writable");

    // A target whose backup account cannot log in: whether it is writable
    // cannot be checked, so it is not stopped.
    let pid3 = sb.live_pid("node3").unwrap();
    let blind = config(&[("node3", agents.addr("node3-wrong-password")), ("node2", agents.addr("node2-good"))]);
    let out = rebuild(&blind, &[&node3, "--from", &node2]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("cannot log in to check that it is read-only"), "{}", text(&out));
    assert_eq!(sb.live_pid("node3").unwrap(), pid3, "node3 was not stopped");

    // An agent without [rebuild]: refused, the missing section named.
    let bare = config(&[("node2", agents.addr("node2-bare")), ("node3", agents.addr("node3-wrong-password"))]);
    let out = rebuild(&bare, &[&node2, "--from", &node3]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("has no [rebuild] section"), "{}", text(&out));
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    unchanged("an agent without [rebuild]");

    // The donor's agent is unreachable: refused before the target is stopped.
    let nobody: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gone = config(&[("node2", agents.addr("node2-good")), ("node3", nobody)]);
    let out = rebuild(&gone, &[&node2, "--from", &node3]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("donor's agent is unreachable"), "{}", text(&out));
    unchanged("an unreachable donor");

    // mariabackup fails on the donor (wrong password): the target was
    // stopped, so it is put back on its old datadir and started; the cause
    // is named.
    let out = rebuild(&good, &[&node2, "--from", &node3]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("mariabackup --backup failed") && said.contains("Access denied"), "{said}");
    assert!(said.contains("runs on its old datadir again"), "{said}");
    assert!(kept_datadirs(&sb, "node2").is_empty(), "the old datadir is back in place");
    let mut s = sb.admin("node2").await.unwrap();
    let rows = s.rows(&pivot_dialect::Sql::plain("SELECT id FROM test.marker")).await.unwrap();
    assert_eq!(rows.len(), 1, "node2 has its own data again");
    eventually(WAIT, "node2 replicating from node1 again", || replicating_from(&sb, "node2", &node1)).await;

    // A target that was down (a crashed former primary) is left down by a
    // failed rebuild, on its old datadir: it might start writable.
    let killed = run_pivot(&["sandbox", "kill", "--dir", sb.dir.to_str().unwrap(), "node2"]);
    assert!(killed.status.success(), "{}", text(&killed));
    let out = rebuild(&good, &[&node2, "--from", &node3]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("was not running before and is left stopped"), "{}", text(&out));
    assert_eq!(read_only(&sb, "node2").await, None, "node2 stays down");
    assert!(kept_datadirs(&sb, "node2").is_empty() && sb.dir.join("node2/data/ibdata1").exists());
    drop(agents);
}
