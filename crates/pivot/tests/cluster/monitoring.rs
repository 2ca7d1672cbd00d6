//! The daemon notices replication and reachability changes within a few
//! poll intervals and shows them in its API, its logs and `pivot status`.

use crate::support::*;
use pivot_drill::{eventually, TestSandbox};
use std::collections::BTreeSet;
use std::path::Path;

#[tokio::test(flavor = "multi_thread")]
async fn stopped_sql_thread_and_replication_error_show_up() {
    let sb = TestSandbox::up(3, false).await;
    exec(&sb, "node1", &["CREATE TABLE test.t (id INT PRIMARY KEY)"]).await;
    let (config, addr) = write_config(&sb, ConfigOptions::default());
    let pivot = start_daemon(&sb, &config);
    let (n2, n3) = (key_of(&sb, "node2"), key_of(&sb, "node3"));
    eventually(WAIT, "cluster healthy", || async {
        let c = api_cluster(addr).await?;
        (c["code"] == "healthy").then_some(()).ok_or(format!("{}", c["code"]))
    })
    .await;

    exec(&sb, "node2", &["STOP SLAVE SQL_THREAD"]).await;
    eventually(WAIT, "SQL thread stopped in the API", || async {
        let c = api_cluster(addr).await?;
        let r = instance(&c, &n2).ok_or("no node2")?;
        let stopped = r["state"]["replication"]["sql_running"] == false
            && r["problems"].as_array().unwrap().iter().any(|p| p == "SQL thread stopped");
        stopped.then_some(()).ok_or(format!("{}", r["problems"]))
    })
    .await;
    let out = run_pivot(&["status", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "a stopped SQL thread needs attention");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("! SQL thread stopped"), "{text}");
    exec(&sb, "node2", &["START SLAVE SQL_THREAD"]).await;

    // A row only node3 has, then the same key from the primary: duplicate key.
    exec(&sb, "node3", &["SET SESSION sql_log_bin = 0", "INSERT INTO test.t VALUES (42)"]).await;
    exec(&sb, "node1", &["INSERT INTO test.t VALUES (42)"]).await;
    let error = eventually(WAIT, "replication error in the API", || async {
        let c = api_cluster(addr).await?;
        let r = instance(&c, &n3).ok_or("no node3")?;
        let e = &r["state"]["replication"]["sql_error"];
        (e["number"] == 1062).then(|| e["message"].as_str().unwrap_or("").to_string()).ok_or(format!("{e}"))
    })
    .await;
    assert!(error.contains("Duplicate entry '42'"), "{error}");
    let c = api_cluster(addr).await.unwrap();
    let problems = instance(&c, &n3).unwrap()["problems"].to_string();
    assert!(problems.contains("SQL error 1062: ") && problems.contains("Duplicate entry"), "{problems}");
    eventually(WAIT, "node2 replicating again", || async {
        let c = api_cluster(addr).await?;
        let r = instance(&c, &n2).ok_or("no node2")?;
        (r["state"]["replication"]["sql_running"] == true).then_some(()).ok_or("still stopped".into())
    })
    .await;
    let log = pivot.log_text();
    assert!(log.contains(&format!("{n2} SQL thread stopped")), "the daemon logs the change:\n{log}");
    assert!(log.contains(&format!("{n2} SQL thread started")), "{log}");
    assert!(log.contains(&format!("{n3} SQL thread stopped (error 1062")), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_replica_shows_unreachable_then_back() {
    let mut sb = TestSandbox::up(3, false).await;
    let (config, addr) = write_config(&sb, ConfigOptions::default());
    let pivot = start_daemon(&sb, &config);
    let n3 = key_of(&sb, "node3");
    eventually(WAIT, "cluster healthy", || async {
        let c = api_cluster(addr).await?;
        (c["code"] == "healthy").then_some(()).ok_or(format!("{}", c["code"]))
    })
    .await;

    sb.kill("node3").unwrap();
    let failure = eventually(WAIT, "node3 unreachable", || async {
        let c = api_cluster(addr).await?;
        let r = instance(&c, &n3).ok_or("no node3")?;
        (r["reachable"] == false).then(|| r.clone()).ok_or("still reachable".into())
    })
    .await;
    assert!(["refused", "network"].contains(&failure["failure"]["kind"].as_str().unwrap()), "{failure:#}");
    assert!(failure["problems"][0].as_str().unwrap().starts_with("unreachable: "), "{failure:#}");
    assert_eq!(failure["state_is_last_known"], true, "last known state kept");
    let (_, metrics) = pivot_drill::http_get(addr, "/metrics").await.unwrap();
    assert!(
        metrics.contains(&format!("pivot_instance_up{{cluster=\"sandbox\",instance=\"{n3}\",role=\"replica\"}} 0")),
        "{metrics}"
    );

    sb.start("node3").await.unwrap();
    eventually(WAIT, "node3 back and replicating", || async {
        let c = api_cluster(addr).await?;
        let r = instance(&c, &n3).ok_or("no node3")?;
        let ok = r["reachable"] == true && r["state"]["replication"]["io_thread"] == "running";
        ok.then_some(()).ok_or(format!("{}", r["problems"]))
    })
    .await;
    let log = pivot.log_text();
    assert!(log.contains(&format!("{n3} unreachable")) && log.contains(&format!("{n3} reachable again")), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_clusters_and_a_hung_instance_delays_nobody() {
    let a = TestSandbox::up(3, false).await;
    let b = TestSandbox::up(2, false).await;
    let (config, addr) = write_multi_config(&[("alpha", &a), ("beta", &b)], "100ms");
    let _pivot = start_daemon(&a, &config);
    let all = eventually(WAIT, "both clusters healthy", || async {
        let (_, body) = pivot_drill::http_get(addr, "/api/clusters").await?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let codes: Vec<String> =
            v.as_array().unwrap().iter().map(|c| format!("{}={}", c["cluster"], c["code"])).collect();
        (codes == ["\"alpha\"=\"healthy\"", "\"beta\"=\"healthy\""]).then_some(v).ok_or(codes.join(" "))
    })
    .await;
    assert_eq!(all[0]["primary"], key_of(&a, "node1"));
    assert_eq!(all[1]["primary"], key_of(&b, "node1"));
    assert_eq!(all[0]["instances"].as_array().unwrap().len(), 3, "discovered from one seed");
    assert_eq!(all[1]["instances"].as_array().unwrap().len(), 2);

    // A hung replica (SIGSTOP) times out its own probes (1 s each); the others
    // keep their 100 ms schedule. Waited for as a condition, in the daemon's
    // own probe times: node2 is probed several times between two consecutive
    // failed probes of node3, which a schedule waiting on node3 could not do
    // (it would probe node2 once per node3 timeout).
    a.pause("node3").unwrap();
    let (n2, n3) = (key_of(&a, "node2"), key_of(&a, "node3"));
    let seen = std::sync::Mutex::new((BTreeSet::<u64>::new(), BTreeSet::<u64>::new()));
    let node3_failure =
        eventually(WAIT, "node2 probed 3 times between two failed probes of the hung node3", || async {
            let (_, body) = pivot_drill::http_get(addr, "/api/clusters/alpha").await?;
            let c: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let (r2, r3) = (instance(&c, &n2).ok_or("no node2")?, instance(&c, &n3).ok_or("no node3")?);
            let mut guard = seen.lock().unwrap();
            let (node2_probes, node3_failures) = &mut *guard;
            node2_probes.extend(r2["observed_at"].as_u64());
            if r3["reachable"] == false {
                node3_failures.extend(r3["observed_at"].as_u64());
            }
            let failures: Vec<u64> = node3_failures.iter().copied().collect();
            let most_between = failures.windows(2).map(|w| node2_probes.range(w[0] + 1..w[1]).count()).max();
            match most_between {
                Some(n) if n >= 3 => Ok(r3["failure"].clone()),
                _ => Err(format!("node3 failures at {failures:?}, node2 probed between them: {most_between:?}")),
            }
        })
        .await;
    a.resume("node3").unwrap();
    assert_eq!(node3_failure["kind"], "timeout", "the hung replica is reported unreachable: {node3_failure}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_privileges_are_reported_by_status_and_at_start() {
    let sb = TestSandbox::up(2, false).await;
    // An account that can watch (probes work, the cluster looks healthy) but
    // could not fail over. Created on the primary, it replicates.
    exec(
        &sb,
        "node1",
        &[
            "CREATE USER 'watcher'@'%' IDENTIFIED BY 'watcher-pw'",
            "GRANT SLAVE MONITOR, PROCESS, REPLICATION MASTER ADMIN ON *.* TO 'watcher'@'%'",
        ],
    )
    .await;
    let (config, _) = write_config(&sb, ConfigOptions::default());
    let text = std::fs::read_to_string(&config).unwrap();
    let out = run_pivot(&["status", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "the sandbox's pivot account lacks nothing: {}", stdout(&out));
    let pivot_account = format!("user = \"pivot\"\npassword_file = \"{}/secrets/pivot.password\"", sb.dir.display());
    assert!(text.contains(&pivot_account), "{text}");
    let watcher_config = sb.dir.join("watcher.toml");
    std::fs::write(&watcher_config, text.replace(&pivot_account, "user = \"watcher\"\npassword = \"watcher-pw\""))
        .unwrap();
    let watcher_config = watcher_config.to_str().unwrap();
    let nodes = [key_of(&sb, "node1"), key_of(&sb, "node2")];
    let missing = "missing privileges: \
        REPLICATION SLAVE ADMIN or SUPER (STOP/START SLAVE, CHANGE MASTER: freezing, catching up, repointing), \
        RELOAD (RESET SLAVE ALL: promoting a replica), \
        READ_ONLY ADMIN (SET GLOBAL read_only: fencing, promoting), \
        CONNECTION ADMIN or SUPER (KILL: ending sessions when fencing, unblocking a stuck IO thread); \
        grant them: GRANT REPLICATION SLAVE ADMIN, RELOAD, READ_ONLY ADMIN, CONNECTION ADMIN ON *.* TO `watcher`@`%`";

    let all = eventually(WAIT, "both nodes checked as watcher", || async {
        let out = run_pivot(&["status", "--json", "--config", watcher_config]);
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        // The user reaches node2 once replicated.
        let checked = nodes.iter().all(|n| instance(&all[0], n).is_some_and(|i| i["reachable"] == true));
        (checked && out.status.code() == Some(3)).then_some(all.clone()).ok_or(format!("{all:#}"))
    })
    .await;
    assert_eq!(all[0]["code"], "healthy", "it can watch: {all:#}");
    for n in &nodes {
        let problems = &instance(&all[0], n).unwrap()["problems"];
        assert_eq!(problems, &serde_json::json!([format!("user watcher: {missing}")]), "{n}");
    }
    let out = run_pivot(&["status", "--config", watcher_config]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out).matches(&format!("! user watcher: {missing}")).count(), 2, "{}", stdout(&out));

    let pivot = start_daemon(&sb, Path::new(watcher_config));
    for n in &nodes {
        eventually(WAIT, &format!("an error logged for {n}"), || async {
            let log = pivot.log_text();
            let line = log.lines().find(|l| l.contains(&format!("{n}: user watcher: {missing}")));
            line.filter(|l| l.contains("ERROR")).map(|_| ()).ok_or(log.clone())
        })
        .await;
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
