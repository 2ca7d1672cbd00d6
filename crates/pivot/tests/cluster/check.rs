//! `pivot check` on a real sandbox: a clean one gives nothing; problems
//! planted one by one are each found with their code and instance; an
//! unreachable cluster or wrong credentials are "could not check" (exit 1).
//! `pivot check --simulate dead` agrees with the failover a running daemon
//! then performs when the primary is killed; a primary changed by hand
//! behind a stopped daemon leaves the stored epoch pointing elsewhere
//! (PVT-E015).
//!
//! Not planted here (the core's table in `pivot-core/src/check/tests.rs`
//! covers them): PVT-E016 (dual primaries), PVT-E018 (one server version
//! here), PVT-W009 (MariaDB replicas here use GTID positions) and PVT-W010
//! (one host, one clock).

use crate::support::*;
use pivot_drill::{eventually, TestSandbox};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `pivot check --json` on `config`: exit code and the cluster's report.
fn check(config: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["check", "--json", "--config", config.to_str().unwrap()];
    args.extend(extra);
    let out = run_pivot(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v["clusters"][0].clone(), stderr)
}

/// `code` -> the instances of each finding with that code.
fn found(report: &Value) -> Vec<(String, Vec<String>)> {
    report["findings"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let keys = f["instances"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string());
                    (f["code"].as_str().unwrap().to_string(), keys.collect())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A configuration for `user` with `password` (in a 0600 file) and extra TOML.
pub(crate) fn config_for(sb: &TestSandbox, user: &str, password: &str, extra: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let pw = sb.dir.join(format!("{user}.password"));
    std::fs::write(&pw, password).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let seeds = sb.nodes().iter().map(|n| format!("\"{}:{}\"", n.host, n.port)).collect::<Vec<_>>().join(", ");
    let text = format!(
        "[pivot]\nstate = \"{d}/{user}.db\"\nhttp = \"off\"\n\n[[cluster]]\nname = \"sandbox\"\nseeds = [{seeds}]\n\
         probe_timeout = \"1s\"\n\n[cluster.credentials]\nuser = \"{user}\"\npassword_file = \"{pw}\"\n{extra}\n",
        d = sb.dir.display(),
        pw = pw.display()
    );
    let path = sb.dir.join(format!("check-{user}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn admin_password(sb: &TestSandbox) -> String {
    std::fs::read_to_string(sb.dir.join("secrets/pivot.password")).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_sandbox_gives_nothing_and_every_planted_problem_is_found() {
    let mut sb = TestSandbox::up(3, false).await;
    let (n1, n2, n3) = (key_of(&sb, "node1"), key_of(&sb, "node2"), key_of(&sb, "node3"));
    // The sandbox trades durability for speed (PVT-W007/W008, see the
    // README): a clean cluster has it back.
    for node in ["node1", "node2", "node3"] {
        exec(&sb, node, &["SET GLOBAL sync_binlog = 1", "SET GLOBAL innodb_flush_log_at_trx_commit = 1"]).await;
    }
    let clean = config_for(&sb, "pivot", &admin_password(&sb), "");
    let (code, report, err) = check(&clean, &[]);
    assert_eq!(code, Some(0), "{report:#} {err}");
    assert_eq!(report["findings"], serde_json::json!([]), "a clean sandbox: {report:#}");
    let text = run_pivot(&["check", "--config", clean.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("0 error(s), 0 warning(s): nothing found"));

    // Wrong credentials everywhere: could not check.
    let wrong = config_for(&sb, "nobody", "wrong", "");
    let (code, _, err) = check(&wrong, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("could not check cluster `sandbox`: no instance answers") && err.contains("denied"), "{err}");

    // An account without the privileges a failover needs, and replicas
    // that may never be promoted: PVT-E013 on each instance, PVT-E017.
    exec(
        &sb,
        "node1",
        &[
            "CREATE USER weak@'%' IDENTIFIED BY 'weak-pw'",
            "GRANT SLAVE MONITOR, REPLICATION MASTER ADMIN, PROCESS, BINLOG MONITOR ON *.* TO weak@'%'",
        ],
    )
    .await;
    let weak = config_for(&sb, "weak", "weak-pw", &format!("[cluster.failover]\nnever_promote = [\"{n2}\", \"{n3}\"]"));
    let report = eventually(WAIT, "the weak account replicated everywhere", || async {
        let (code, report, err) = check(&weak, &[]);
        let e013 = found(&report).iter().filter(|(c, _)| c == "PVT-E013").count();
        (code == Some(3) && e013 == 3).then_some(report.clone()).ok_or(format!("{code:?} {report:#} {err}"))
    })
    .await;
    let f = found(&report);
    assert!(f.contains(&("PVT-E017".into(), vec![n2.clone(), n3.clone()])), "{report:#}");
    let e013 = report["findings"].as_array().unwrap().iter().find(|f| f["code"] == "PVT-E013").unwrap();
    assert!(e013["text"].as_str().unwrap().contains("RELOAD (RESET SLAVE ALL: promoting a replica)"), "{e013:#}");
    assert!(e013["fix"].as_str().unwrap().starts_with("GRANT "), "{e013:#}");

    // Static ones need a restart: the binary log off on node2,
    // log_slave_updates off on node3 (the last setting in the file wins).
    for (node, line) in [("node2", "skip_log_bin\n"), ("node3", "log_slave_updates = OFF\n")] {
        sb.stop(node).unwrap();
        let cnf = sb.dir.join(node).join("my.cnf");
        let text = std::fs::read_to_string(&cnf).unwrap() + line;
        std::fs::write(&cnf, text).unwrap();
        sb.start(node).await.unwrap();
    }
    // A hook whose interpreter is missing (the file itself is executable).
    let hook = script(&sb, "bad-hook.sh", "");
    std::fs::write(&hook, "#!/nonexistent/interpreter\n").unwrap();
    // Dynamic ones.
    exec(&sb, "node3", &["SET SESSION gtid_domain_id = 9", "CREATE DATABASE errant_db"]).await;
    exec(&sb, "node3", &["SET GLOBAL binlog_format = 'STATEMENT'"]).await;
    exec(&sb, "node2", &["SET GLOBAL read_only = OFF"]).await;
    exec(
        &sb,
        "node2",
        &["SET GLOBAL rpl_semi_sync_master_enabled = ON", "SET GLOBAL innodb_flush_log_at_trx_commit = 2"],
    )
    .await;
    exec(&sb, "node2", &["STOP SLAVE SQL_THREAD"]).await;
    exec(&sb, "node3", &["SET GLOBAL gtid_strict_mode = OFF", "STOP SLAVE", "SET GLOBAL slave_net_timeout = 20"]).await;
    exec(
        &sb,
        "node3",
        &[
            "SET GLOBAL replicate_ignore_db = 'ignored_db'",
            "CHANGE MASTER TO MASTER_HEARTBEAT_PERIOD = 30, MASTER_CONNECT_RETRY = 60, MASTER_DELAY = 3600",
            "START SLAVE",
        ],
    )
    .await;
    let node2_id = sb.node("node2").unwrap().server_id;
    exec(&sb, "node3", &[&format!("SET GLOBAL server_id = {node2_id}")]).await;
    exec(
        &sb,
        "node1",
        &[
            "SET GLOBAL rpl_semi_sync_master_enabled = ON",
            "SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_COMMIT",
            "SET GLOBAL rpl_semi_sync_master_timeout = 10000",
            "SET GLOBAL sync_binlog = 0",
        ],
    )
    .await;
    let planted = config_for(
        &sb,
        "pivot",
        &admin_password(&sb),
        &format!("[cluster.hooks]\npost_failover = [\"{}\"]", hook.display()),
    );
    let one = |k: &String| vec![k.clone()];
    let want: Vec<(&str, Vec<String>)> = vec![
        ("PVT-E002", vec![n1.clone(), n2.clone()]),
        ("PVT-E003", one(&n2)),
        ("PVT-E004", vec![n2.clone(), n3.clone()]),
        ("PVT-E005", one(&n2)),
        ("PVT-E006", one(&n3)),
        ("PVT-E007", one(&n3)),
        ("PVT-E008", one(&n2)),
        ("PVT-E009", one(&n3)),
        ("PVT-E010", vec![n2.clone(), n3.clone()]),
        ("PVT-E011", one(&n2)),
        ("PVT-E012", one(&n3)),
        ("PVT-E014", vec![]),
        ("PVT-W001", one(&n3)),
        ("PVT-W002", one(&n1)),
        ("PVT-W003", one(&n1)),
        ("PVT-W004", one(&n1)),
        ("PVT-W005", one(&n3)),
        ("PVT-W006", one(&n3)),
        ("PVT-W007", one(&n1)),
        ("PVT-W008", one(&n2)),
        ("PVT-W011", one(&n3)),
    ];
    let (code, report, err) = check(&planted, &[]);
    assert_eq!(code, Some(3), "{err}");
    let f = found(&report);
    for (c, keys) in &want {
        assert!(f.contains(&(c.to_string(), keys.clone())), "{c} on {keys:?} missing from {f:#?}");
    }
    let errant = report["findings"].as_array().unwrap().iter().find(|f| f["code"] == "PVT-E009").unwrap();
    assert!(errant["text"].as_str().unwrap().contains("9-"), "the errant GTID is named: {errant:#}");
    assert!(errant["fix"].as_str().unwrap().contains("RESET MASTER"), "{errant:#}");

    // A replica that stops answering.
    sb.kill("node3").unwrap();
    let (code, report, err) = check(&planted, &[]);
    assert_eq!(code, Some(3), "{err}");
    assert!(found(&report).contains(&("PVT-E001".into(), one(&n3))), "{report:#}");
}

#[test]
fn an_unreachable_cluster_is_could_not_check() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pivot.toml");
    let port = free_port();
    std::fs::write(
        &config,
        format!(
            "[pivot]\nstate = \"{}/s.db\"\nhttp = \"off\"\n[[cluster]]\nname = \"gone\"\nseeds = [\"127.0.0.1:{port}\"]\n\
             [cluster.credentials]\nuser = \"pivot\"\npassword = \"x\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = run_pivot(&["check", "--config", config.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("could not check cluster `gone`: no instance answers (127.0.0.1:{port}")), "{err}");
    let out = run_pivot(&["check", "--simulate", "--config", config.to_str().unwrap(), "--cluster", "other"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no cluster `other`"));
}

#[tokio::test(flavor = "multi_thread")]
async fn simulate_dead_agrees_with_the_failover_pivot_then_performs() {
    let rig = Rig::start(3, false, |sb| {
        let hook = script(sb, "post.sh", "exit 0");
        format!("[cluster.hooks]\npost_failover = [\"{}\"]", hook.display())
    })
    .await;
    // Both replicas have what the primary wrote (the drill table): the
    // choice between them is then the same now and after the kill.
    let report = eventually(WAIT, "a simulation with both replicas level", || async {
        let (code, report, err) = check(&rig.config, &["--simulate", "dead"]);
        let received: Vec<&Value> = report["simulation"]["replicas"]
            .as_array()
            .map(|a| a.iter().map(|r| &r["received"]).collect())
            .unwrap_or_default();
        let level = received.len() == 2 && received[0] == received[1] && received[0] != "";
        (code == Some(0) && level).then_some(report.clone()).ok_or(format!("{code:?} {err} {report:#}"))
    })
    .await;
    let sim = &report["simulation"];
    assert_eq!(sim["failed_primary"], rig.key("node1"));
    let winner = sim["winner"].as_str().expect("a winner").to_string();
    let simulated: Vec<String> =
        sim["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap().to_string()).collect();
    assert!(simulated.contains(&"promote".to_string()) && simulated.contains(&"hook_post_failover".to_string()));
    assert_eq!(sim["hooks"], serde_json::json!(["post_failover"]));
    assert_eq!(sim["data_loss"], "", "no writes: nothing to lose");
    let skipped = sim["replicas"].as_array().unwrap().iter().find(|r| r["chosen"] == false).unwrap();
    assert!(skipped["why"].as_str().unwrap().contains("ranked after"), "{skipped:#}");

    let mut rig = rig;
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&rig.key("node1")).await;
    assert_eq!(new, winner, "the simulated winner was promoted");
    let h = eventually(WAIT, "the recovery recorded as ended", || async {
        let h = rig.history();
        let done = last_recovery(&h)["status"] == "succeeded";
        done.then_some(h.clone()).ok_or(format!("{h:#}"))
    })
    .await;
    let real: Vec<String> = last_recovery(&h)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(real, simulated, "the real failover ran the simulated steps");

    // With the daemon up, its route table and the stored epoch name the
    // new primary: no route finding, and the daemon was asked.
    let (_, report, err) = check(&rig.config, &[]);
    let codes: Vec<String> = found(&report).into_iter().map(|(c, _)| c).collect();
    assert!(!codes.contains(&"PVT-E015".to_string()), "{report:#} {err}");
    assert!(report["notes"].as_array().unwrap().iter().all(|n| !n.as_str().unwrap().contains("no pivot daemon")));
    // The primary changed by hand behind a stopped pivot: the stored
    // epoch (which every route follows) now points elsewhere.
    rig.pivot.stop();
    let other = if new == rig.key("node2") { "node3" } else { "node2" };
    let old_node = rig.sb.node_at(&new.parse().unwrap()).unwrap().name.clone();
    exec(&rig.sb, &old_node, &["SET GLOBAL read_only = ON"]).await;
    exec(&rig.sb, other, &["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF"]).await;
    let (code, report, err) = check(&rig.config, &[]);
    assert_eq!(code, Some(3), "{err}");
    assert!(found(&report).contains(&("PVT-E015".into(), vec![rig.key(other), new.clone()])), "{report:#}");
}
