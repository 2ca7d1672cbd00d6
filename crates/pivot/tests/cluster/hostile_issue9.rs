//! What a hostile review of `pivot check`, the alerts and the heartbeat
//! found, each reproduced on real servers (the fixes' table tests are in
//! `pivot-core`), and what it tried that held.

use crate::support::*;
use pivot_drill::{eventually, TestSandbox};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// `pivot check --json` with `extra` arguments: exit code, the cluster's report, stderr.
fn check(config: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let mut args = vec!["check", "--json", "--config", config.to_str().unwrap()];
    args.extend(extra);
    let out = run_pivot(&args);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), v["clusters"][0].clone(), String::from_utf8_lossy(&out.stderr).to_string())
}

/// A configuration for `user` whose password is in a 0600 file (`check.rs`'s,
/// with nothing extra).
fn config_for(sb: &TestSandbox, user: &str, password: &str) -> PathBuf {
    super::check::config_for(sb, user, password, "")
}

async fn one_value(sb: &TestSandbox, node: &str, sql: &str) -> String {
    let mut s = sb.admin(node).await.unwrap();
    let rows = s.rows(&pivot_dialect::Sql::plain(sql)).await.unwrap();
    rows[0].get("v").cloned().flatten().unwrap_or_default()
}

fn codes(report: &Value, field: &str) -> Vec<String> {
    report[field]
        .as_array()
        .map(|a| a.iter().map(|f| f["code"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Hole: `pivot check --simulate` said "would promote" and exited 0 while
/// pivot's account could not stop, promote or repoint anything (every step
/// is simulated as ended well). Now the findings that would make a real step
/// fail are its `blockers`, and it exits 3.
///
/// Hole: PVT-E009's MariaDB fix (`SET gtid_seq_no=N; BEGIN; COMMIT;` on the
/// primary) does nothing on MariaDB, which logs no empty transaction: shown
/// here, then the fix now given (on the replica) clears the finding.
#[tokio::test(flavor = "multi_thread")]
async fn check_simulate_names_what_would_fail_and_errant_fix_works_on_mariadb() {
    let sb = TestSandbox::up(3, false).await;
    let pivot_pw = std::fs::read_to_string(sb.dir.join("secrets/pivot.password")).unwrap().trim().to_string();
    exec(
        &sb,
        "node1",
        &[
            "CREATE USER weak@'%' IDENTIFIED BY 'weak-pw'",
            "GRANT SLAVE MONITOR, REPLICATION MASTER ADMIN, PROCESS, BINLOG MONITOR ON *.* TO weak@'%'",
        ],
    )
    .await;
    let weak = config_for(&sb, "weak", "weak-pw");
    let report = eventually(WAIT, "the weak account everywhere, a blocked simulation", || async {
        let (code, report, err) = check(&weak, &["--simulate"]);
        let blockers = codes(&report["simulation"], "blockers");
        (code == Some(3) && blockers.iter().filter(|c| *c == "PVT-E013").count() == 2)
            .then(|| report.clone())
            .ok_or(format!("{code:?} {report:#} {err}"))
    })
    .await;
    assert!(report["simulation"]["winner"].is_string(), "the choice is still shown: {report:#}");
    let out = run_pivot(&["check", "--simulate", "--config", weak.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("but the failover would fail:") && text.contains("PVT-E013"), "{text}");
    // The daemon's own account: nothing blocks.
    let good = config_for(&sb, "pivot", &pivot_pw);
    let (code, report, err) = check(&good, &["--simulate"]);
    assert_eq!(code, Some(0), "{report:#} {err}");
    assert_eq!(report["simulation"]["blockers"], serde_json::json!([]), "{report:#}");

    // An errant transaction on node3.
    exec(&sb, "node3", &["SET GLOBAL read_only = OFF", "CREATE DATABASE errant_db", "SET GLOBAL read_only = ON"]).await;
    let errant = one_value(&sb, "node3", "SELECT @@gtid_binlog_pos AS v").await;
    let (code, report, _) = check(&good, &[]);
    assert_eq!(code, Some(3));
    let e009 = report["findings"].as_array().unwrap().iter().find(|f| f["code"] == "PVT-E009").unwrap().clone();
    // The old advice, followed on the primary: nothing is logged.
    let (d, s, n) = {
        let mut it = errant.split('-');
        (it.next().unwrap().to_string(), it.next().unwrap().to_string(), it.next().unwrap().to_string())
    };
    let before = one_value(&sb, "node1", "SELECT @@gtid_binlog_pos AS v").await;
    let inject = format!("SET gtid_domain_id={d}, server_id={s}, gtid_seq_no={n}");
    exec(&sb, "node1", &[&inject, "BEGIN", "COMMIT"]).await;
    let after = one_value(&sb, "node1", "SELECT @@gtid_binlog_pos AS v").await;
    assert_eq!(before, after, "MariaDB logs no empty transaction");
    // The advice now: on the replica.
    let fix = e009["fix"].as_str().unwrap();
    assert!(!fix.contains("BEGIN; COMMIT"), "{e009:#}");
    assert!(
        fix.contains(&format!("on {}, run STOP SLAVE; RESET MASTER; START SLAVE;", key_of(&sb, "node3"))),
        "{e009:#}"
    );
    exec(&sb, "node3", &["STOP SLAVE", "RESET MASTER", "START SLAVE"]).await;
    exec(&sb, "node1", &["CREATE TABLE test.after_fix (id INT PRIMARY KEY)"]).await;
    eventually(WAIT, "no errant GTIDs, node3 replicating", || async {
        let (_, report, err) = check(&good, &[]);
        let c = codes(&report, "findings");
        (!c.iter().any(|c| c == "PVT-E009" || c == "PVT-E003")).then_some(()).ok_or(format!("{c:?} {err}"))
    })
    .await;

    // Hole: the primary already dead when check runs (never read): the
    // data-loss bound said "none" next to a note saying it was unknown.
    let mut sb = sb;
    sb.kill("node1").unwrap();
    let (code, report, err) = check(&good, &["--simulate"]);
    assert_eq!(code, Some(0), "a replica would be promoted: {report:#} {err}");
    assert!(report["simulation"]["data_loss"].is_null(), "unknown, not none: {report:#}");
    let out = run_pivot(&["check", "--simulate", "--config", good.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("data-loss bound: unknown") && !text.contains("data-loss bound: none"), "{text}");
}

/// Every (domain, server_id) -> last seq_no of `@@gtid_binlog_state` of `node`.
async fn binlog_state(sb: &TestSandbox, node: &str) -> Result<Vec<(u32, u32, u64)>, String> {
    let mut s = sb.admin(node).await.map_err(|e| e.to_string())?;
    let rows =
        s.rows(&pivot_dialect::Sql::plain("SELECT @@gtid_binlog_state AS v")).await.map_err(|e| e.to_string())?;
    let text = rows[0].get("v").cloned().flatten().unwrap_or_default();
    Ok(text
        .split(',')
        .filter(|g| !g.trim().is_empty())
        .map(|g| {
            let p: Vec<&str> = g.trim().split('-').collect();
            (p[0].parse().unwrap(), p[1].parse().unwrap(), p[2].parse().unwrap())
        })
        .collect())
}

/// GTIDs in any node's binary log that `primary`'s does not have (errant
/// transactions), as `node: D-S-N` (empty: none).
async fn errant_anywhere(sb: &TestSandbox, primary: &str) -> Result<Vec<String>, String> {
    let mut states = Vec::new();
    for n in sb.nodes() {
        states.push((n.name.clone(), binlog_state(sb, &n.name).await?));
    }
    // The primary read last: it keeps writing (the heartbeat), and what the
    // others hold it held before (a full run read it first and saw its own
    // next heartbeat, and the replica's copy, as "errant").
    let p = binlog_state(sb, primary).await?;
    let mut out = Vec::new();
    for (name, state) in states {
        for (d, s, seq) in state {
            if !p.iter().any(|(pd, ps, pseq)| (*pd, *ps) == (d, s) && *pseq >= seq) {
                out.push(format!("{name}: {d}-{s}-{seq}"));
            }
        }
    }
    Ok(out)
}

/// Held: with the heartbeat written every 100 ms, a switchover run by the
/// CLI (`--local`: the daemon's writer goes on until it reads the new epoch)
/// and then a kill -9 failover leave no GTID on any replica or former
/// primary that the primary lacks, and the killed former primary rejoins
/// (`auto_rejoin`) rather than being quarantined for a heartbeat.
#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_never_makes_an_errant_gtid_across_switchover_and_kill_9() {
    let hb = "auto_rejoin = true\nlag_threshold = \"2s\"\n[cluster.heartbeat]\nenabled = true\ninterval = \"100ms\"\n";
    let mut rig = Rig::start(3, false, |_| hb.to_string()).await;
    let n2 = rig.key("node2");
    eventually(WAIT, "heartbeat lag on node2", || async {
        let c = api_cluster(rig.addr).await?;
        let lag = instance(&c, &n2).ok_or("no node2")?["lag"].clone();
        lag["heartbeat_lag"].as_f64().map(|_| ()).ok_or(format!("{lag}"))
    })
    .await;
    let out = cli(&rig, &["switchover", "--cluster", "sandbox", "--to", &n2, "--local"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    rig.wait_healthy_with_primary(&n2).await;
    let id2 = rig.sb.nodes()[1].server_id.to_string();
    eventually(WAIT, "node2's heartbeat on node1 (the old primary replicates it)", || async {
        let mut s = rig.sb.admin("node1").await.map_err(|e| e.to_string())?;
        let sql = pivot_dialect::Sql::plain("SELECT server_id AS v FROM pivot.heartbeat");
        let rows = s.rows(&sql).await.map_err(|e| e.to_string())?;
        let ids: Vec<String> = rows.iter().filter_map(|r| r.get("v").cloned().flatten()).collect();
        ids.contains(&id2).then_some(()).ok_or(format!("{ids:?}"))
    })
    .await;
    let errant = errant_anywhere(&rig.sb, "node2").await.unwrap();
    assert!(errant.is_empty(), "after the switchover: {errant:?}");
    assert_eq!(read_only(&rig.sb, "node1").await, Some(true));

    rig.sb.kill("node2").unwrap();
    let new = rig.wait_new_primary(&n2).await;
    let new_node = rig.sb.node_at(&new.parse().unwrap()).unwrap().name.clone();
    rig.sb.start("node2").await.unwrap();
    eventually(WAIT, "node2 rejoined: off the fence list, replicating from the new primary", || async {
        let c = api_cluster(rig.addr).await?;
        let fenced = c["recovery"]["fenced"].as_array().is_some_and(|f| f.iter().any(|e| e["instance"] == n2));
        let i = instance(&c, &n2).ok_or("no node2")?;
        let src = i["source"].as_str().unwrap_or_default().to_string();
        (!fenced && c["code"] == "healthy" && src == new)
            .then_some(())
            .ok_or(format!("{fenced} {src} {}", c["recovery"]))
    })
    .await;
    // A few more heartbeats everywhere, then compare.
    eventually(WAIT, "no errant GTID anywhere", || async {
        let e = errant_anywhere(&rig.sb, &new_node).await?;
        e.is_empty().then_some(()).ok_or(format!("{e:?}"))
    })
    .await;
    assert_eq!(rig.writable_nodes().await, vec![new.clone()]);

    // Hole: right after that failover the daemon is blocked (block_period)
    // and would not fail over again by itself, yet `check --simulate` said
    // "would promote" and exited 0. Now it says why not, and exits 3.
    let (code, report, err) = check(&rig.config, &["--simulate"]);
    let why = report["simulation"]["not_automatic"].to_string();
    assert_eq!(code, Some(3), "{report:#} {err}");
    assert!(why.contains("blocked until") && why.contains("pivot ack"), "{report:#}");
    let out = cli(&rig, &["ack", "--cluster", "sandbox"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, report, err) = check(&rig.config, &["--simulate"]);
    assert_eq!(code, Some(0), "acknowledged: {report:#} {err}");
    assert_eq!(report["simulation"]["not_automatic"], serde_json::json!([]), "{report:#}");
}

/// Stop then start node2's replication `cycles` times, each state seen by
/// the daemon (its API) before the next.
async fn flap(rig: &Rig, cycles: usize) {
    let n2 = rig.key("node2");
    for _ in 0..cycles {
        for (sql, io) in [("STOP SLAVE", "stopped"), ("START SLAVE", "running")] {
            exec(&rig.sb, "node2", &[sql]).await;
            eventually(WAIT, &format!("node2's IO thread {io} in the API"), || async {
                let c = api_cluster(rig.addr).await?;
                let i = instance(&c, &n2).ok_or("no node2")?;
                let got = i["state"]["replication"]["io_thread"].as_str().unwrap_or_default().to_string();
                (got == io).then_some(()).ok_or(got)
            })
            .await;
        }
    }
}

/// Alert lines about `key` in the state file (`pivot history --json`).
fn alert_events(rig: &Rig, key: &str) -> Vec<String> {
    let out = cli(rig, &["history", "--json", "--limit", "1000"]);
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.to_string().contains("alert") && e.to_string().contains(key))
        .map(|e| e.to_string())
        .collect()
}

const SECRET: &str = "hooks/T9/B9/s3cr3t-in-the-path?token=s3cr3t-in-the-query";

/// Held: replication flapping (STOP/START SLAVE, 8 times, each state seen
/// by pivot) within `alert_interval` raises the problem and its resolve
/// per kind once: no storm, in the state file or at the alert hook. Then,
/// with no rate limit (`alert_interval = "0s"`), a webhook that accepts and
/// never answers, and a queue of 2: the burst is dropped oldest first and
/// counted, pivot keeps answering, and the URL's secret path and query
/// appear nowhere: log, `/metrics`, API, `pivot status`, `pivot history`.
#[tokio::test(flavor = "multi_thread")]
async fn flapping_replication_is_rate_limited_and_a_burst_to_a_hung_webhook_is_bounded() {
    let mut rig = Rig::start(3, false, |sb| {
        let calls = sb.dir.join("alert-calls.txt");
        let hook = script(
            sb,
            "alert-count.sh",
            &format!("echo \"$PIVOT_ALERT_INSTANCE $PIVOT_ALERT_KIND $PIVOT_ALERT_STATUS\" >> {}", calls.display()),
        );
        format!("alert_interval = \"30s\"\n[cluster.hooks]\nalert = [\"{}\"]\n", hook.display())
    })
    .await;
    let n2 = rig.key("node2");
    flap(&rig, 8).await;
    let calls = rig.sb.dir.join("alert-calls.txt");
    // The resolves of the first problems went out; wait for them, then count.
    let hook_lines = eventually(WAIT, "the first problems and their resolves at the hook", || async {
        let text = std::fs::read_to_string(&calls).unwrap_or_default();
        let mine: Vec<String> = text.lines().filter(|l| l.starts_with(n2.as_str())).map(String::from).collect();
        (mine.iter().filter(|l| l.ends_with("resolved")).count() >= 2).then(|| mine.clone()).ok_or(format!("{mine:?}"))
    })
    .await;
    assert!(hook_lines.len() <= 4, "an alert storm at the hook: {hook_lines:#?}");
    let events = alert_events(&rig, &n2);
    assert!(events.len() <= 4, "an alert storm in the state file: {events:#?}");
    rig.wait_healthy_with_primary(&rig.key("node1")).await;

    // No rate limit, a hung webhook, a queue of 2.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = accepted.clone();
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(conn); // never answered
        }
    });
    let url_file = rig.sb.dir.join("webhook.url");
    std::fs::write(&url_file, format!("http://{hook_addr}/{SECRET}\n")).unwrap();
    std::fs::set_permissions(&url_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text =
        std::fs::read_to_string(&rig.config).unwrap().replace("alert_interval = \"30s\"", "alert_interval = \"0s\"");
    let (head, rest) = text.split_once("\n[[cluster]]").unwrap();
    let text = format!(
        "{head}\n[pivot.webhook]\nurl_file = \"{}\"\ntimeout = \"5s\"\nretries = 0\nqueue = 2\n\n[[cluster]]{rest}",
        url_file.display()
    );
    std::fs::write(&rig.config, text).unwrap();
    rig.pivot.kill();
    restart_daemon(&mut rig);
    rig.wait_healthy_with_primary(&rig.key("node1")).await;
    flap(&rig, 6).await;
    let dropped = eventually(WAIT, "alerts dropped from the full queue, counted", || async {
        let (_, m) = pivot_drill::http_get(rig.addr, "/metrics").await?;
        let n: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("pivot_webhook_dropped_total "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("no counter".to_string())?;
        (n > 0).then_some(n).ok_or(format!("{n}"))
    })
    .await;
    // One sender: one connection waits, the rest queue (2) or are dropped.
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "dropped {dropped}");
    let c = api_cluster(rig.addr).await.unwrap();
    assert_eq!(c["primary"], rig.key("node1"), "pivot keeps working: {c}");
    let (_, metrics) = pivot_drill::http_get(rig.addr, "/metrics").await.unwrap();
    let status = cli(&rig, &["status", "--json"]);
    let history = cli(&rig, &["history", "--json", "--limit", "1000"]);
    let check = cli(&rig, &["check", "--json"]);
    let surfaces = [
        ("log", rig.pivot.log_text()),
        ("metrics", metrics),
        ("API", c.to_string()),
        ("status", out_text(&status)),
        ("history", out_text(&history)),
        ("check", out_text(&check)),
    ];
    for (what, text) in surfaces {
        assert!(!text.contains("s3cr3t"), "the webhook's secret in the {what}: {text}");
    }
    server.abort();
}

fn out_text(o: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Held: a lock held on the primary (`FLUSH TABLES WITH READ LOCK` for a
/// backup) makes each heartbeat write wait; pivot abandons it after the
/// probe timeout and closes its connection, and MariaDB ends a lock wait
/// whose client left: no session piles up per attempt, probing goes on.
#[tokio::test(flavor = "multi_thread")]
async fn a_lock_on_the_primary_does_not_pile_up_heartbeat_sessions() {
    let hb = "[cluster.heartbeat]\nenabled = true\ninterval = \"100ms\"\n";
    let rig = Rig::start(3, false, |_| hb.to_string()).await;
    let (n1, n2) = (rig.key("node1"), rig.key("node2"));
    eventually(WAIT, "heartbeat lag on node2", || async {
        let c = api_cluster(rig.addr).await?;
        let lag = instance(&c, &n2).ok_or("no node2")?["lag"].clone();
        lag["heartbeat_lag"].as_f64().map(|_| ()).ok_or(format!("{lag}"))
    })
    .await;
    let mut locker = rig.sb.admin("node1").await.unwrap();
    locker.exec(&pivot_dialect::Sql::plain("FLUSH TABLES WITH READ LOCK")).await.unwrap();
    let observed = |c: &Value| instance(c, &n1).and_then(|i| i["observed_at"].as_u64()).unwrap_or(0);
    let since = observed(&api_cluster(rig.addr).await.unwrap());
    let mut admin = rig.sb.admin("node1").await.unwrap();
    let waiting = pivot_dialect::Sql::plain(
        "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = 'pivot' AND INFO LIKE 'INSERT INTO `pivot`%'",
    );
    let mut most = 0u32;
    // Eight seconds of the primary's readings under the lock: the writer
    // tried about six times meanwhile (1 s timeout, doubling waits).
    eventually(WAIT, "the primary probed for 8 s under the lock", || async {
        let c = api_cluster(rig.addr).await?;
        (observed(&c) >= since + 8_000).then_some(()).ok_or(format!("{}", observed(&c)))
    })
    .await;
    for _ in 0..3 {
        let rows = admin.rows(&waiting).await.unwrap();
        most = most.max(rows[0]["n"].as_deref().unwrap().parse().unwrap());
    }
    locker.exec(&pivot_dialect::Sql::plain("UNLOCK TABLES")).await.unwrap();
    assert!(most <= 1, "{most} heartbeat writes wait on the server under the lock");
    let c = api_cluster(rig.addr).await.unwrap();
    assert_eq!(c["primary"], n1.as_str(), "{c}");
}

/// Hole: with `[cluster.heartbeat]` on and pivot's account lacking its
/// grant, `pivot check` (which lists pivot's privileges) found nothing;
/// only `pivot run` said it, in one alert, once running. Now PVT-W012.
#[tokio::test(flavor = "multi_thread")]
async fn check_finds_a_missing_heartbeat_grant() {
    let sb = TestSandbox::up(2, false).await;
    let pivot_pw = std::fs::read_to_string(sb.dir.join("secrets/pivot.password")).unwrap().trim().to_string();
    let config = config_for(&sb, "pivot", &pivot_pw);
    let text = std::fs::read_to_string(&config).unwrap() + "\n[cluster.heartbeat]\nenabled = true\n";
    std::fs::write(&config, text).unwrap();
    let w012 = |report: &Value| codes(report, "findings").iter().filter(|c| *c == "PVT-W012").count();
    let (_, report, err) = check(&config, &[]);
    assert_eq!(w012(&report), 0, "the sandbox's account has the grant: {report:#} {err}");
    exec(&sb, "node1", &["REVOKE INSERT, CREATE ON `pivot`.* FROM 'pivot'@'%'"]).await;
    let report = eventually(WAIT, "PVT-W012 on both instances", || async {
        let (_, report, err) = check(&config, &[]);
        (w012(&report) == 2).then(|| report.clone()).ok_or(format!("{report:#} {err}"))
    })
    .await;
    let f = report["findings"].as_array().unwrap().iter().find(|f| f["code"] == "PVT-W012").unwrap();
    assert!(f["text"].as_str().unwrap().contains("lacks INSERT, CREATE"), "{f:#}");
    assert_eq!(f["fix"], "GRANT SELECT, INSERT, UPDATE, CREATE ON `pivot`.* TO 'pivot'@'%'", "{f:#}");

    // Hole: one cluster that could not be checked (every instance down)
    // hid the report of every other cluster: nothing on stdout, exit 1.
    let port = free_port();
    let text = std::fs::read_to_string(&config).unwrap()
        + &format!(
            "\n[[cluster]]\nname = \"gone\"\nseeds = [\"127.0.0.1:{port}\"]\n[cluster.credentials]\nuser = \"pivot\"\npassword = \"x\"\n"
        );
    std::fs::write(&config, text).unwrap();
    let out = run_pivot(&["check", "--json", "--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a report on stdout");
    let sandbox = &v["clusters"][0];
    assert_eq!(sandbox["cluster"], "sandbox", "{v:#}");
    assert!(sandbox["findings"].as_array().is_some_and(|f| f.iter().any(|f| f["code"] == "PVT-W012")), "{v:#}");
    assert_eq!(v["clusters"][1]["cluster"], "gone", "{v:#}");
    assert!(v["clusters"][1]["error"].as_str().unwrap().contains("no instance answers"), "{v:#}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not check cluster `gone`"), "{err}");
}

/// Held: a primary whose binary log format is STATEMENT (the heartbeat's
/// no-op on a demoted primary would be logged, an errant GTID): pivot
/// writes nothing there and says so in one alert; the primary's GTIDs do
/// not move while the daemon runs.
#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_writes_nothing_on_a_statement_format_primary() {
    let sb = TestSandbox::up(2, false).await;
    exec(&sb, "node1", &["SET GLOBAL binlog_format = 'STATEMENT'"]).await;
    let before = one_value(&sb, "node1", "SELECT @@gtid_binlog_pos AS v").await;
    let hb = "[cluster.heartbeat]\nenabled = true\ninterval = \"100ms\"\n".to_string();
    let (config, addr) = write_config(&sb, ConfigOptions { extra: hb, ..ConfigOptions::default() });
    let pivot = start_daemon(&sb, &config);
    eventually(WAIT, "the alert about the format", || async {
        pivot.log_text().contains("binlog_format is STATEMENT").then_some(()).ok_or("not yet".to_string())
    })
    .await;
    let n1 = key_of(&sb, "node1");
    let observed = |c: &Value| instance(c, &n1).and_then(|i| i["observed_at"].as_u64()).unwrap_or(0);
    let since = observed(&api_cluster(addr).await.unwrap());
    eventually(WAIT, "three more seconds of readings", || async {
        let c = api_cluster(addr).await?;
        (observed(&c) >= since + 3_000).then_some(()).ok_or(format!("{}", observed(&c)))
    })
    .await;
    let after = one_value(&sb, "node1", "SELECT @@gtid_binlog_pos AS v").await;
    assert_eq!(before, after, "pivot wrote on a STATEMENT-format primary");
    let log = pivot.log_text();
    assert_eq!(log.matches("binlog_format is STATEMENT").count(), 1, "one alert: {log}");
}

/// Hole: the control plane's alerts (here: the primary is dead and pivot
/// will not fail over, `automatic = false`) went to the log, the state file
/// and the alert hook but never to the webhook, which only heard
/// "reachability: unreachable". Now they are POSTed too (`kind: control`).
#[tokio::test(flavor = "multi_thread")]
async fn a_dead_primary_pivot_will_not_fail_over_reaches_the_webhook() {
    let hook = super::alerts::WebhookServer::start(super::alerts::Answer::Ok).await;
    let hook_addr = hook.addr;
    let mut rig = Rig::start(3, false, |sb| {
        let url = sb.dir.join("webhook.url");
        std::fs::write(&url, format!("http://{hook_addr}/{SECRET}\n")).unwrap();
        std::fs::set_permissions(&url, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        format!("[cluster.failover]\nautomatic = false\n\n[pivot.webhook]\nurl_file = \"{}\"\n", url.display())
    })
    .await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let control = eventually(WAIT, "a control alert about the dead primary at the webhook", || async {
        let b = hook.bodies();
        b.iter().find(|b| b["kind"] == "control" && b["analysis"] == "dead_primary").cloned().ok_or(format!("{b:#?}"))
    })
    .await;
    assert_eq!(control["instance"], old.as_str(), "{control:#}");
    assert!(control["text"].as_str().unwrap().contains("automatic"), "says why nothing happens: {control:#}");
    let b = hook.bodies();
    assert!(b.iter().any(|b| b["kind"] == "reachability" && b["instance"] == old.as_str()), "{b:#?}");
}

/// Hole: the heartbeat read took the first 64 rows by server_id; rows of
/// former primaries are never deleted, so once 64 of them had smaller
/// server_ids than the current primary's (years of host replacements and
/// failovers), its row was never read: heartbeat lag silently gone for
/// good. Now the newest rows are read first.
#[tokio::test(flavor = "multi_thread")]
async fn heartbeat_lag_survives_many_former_primaries_rows() {
    let sb = TestSandbox::up(2, false).await;
    exec(&sb, "node1", &["SET GLOBAL server_id = 1000"]).await;
    let hb = "[cluster.heartbeat]\nenabled = true\ninterval = \"200ms\"\n".to_string();
    let (config, addr) = write_config(&sb, ConfigOptions { extra: hb, ..ConfigOptions::default() });
    let _pivot = start_daemon(&sb, &config);
    let n2 = key_of(&sb, "node2");
    let measured = |c: &Value| -> Result<u64, String> {
        let i = instance(c, &n2).ok_or("no node2")?;
        i["lag"]["heartbeat_lag"].as_f64().ok_or(format!("{}", i["lag"]))?;
        Ok(i["observed_at"].as_u64().unwrap_or(0))
    };
    eventually(WAIT, "heartbeat lag on node2", || async { measured(&api_cluster(addr).await?) }).await;
    // 64 rows of former primaries (old timestamps), replicated.
    let values: Vec<String> = (100..164).map(|id| format!("({id}, '2020-01-01 00:00:00')")).collect();
    let insert = format!("INSERT INTO pivot.heartbeat (server_id, ts) VALUES {}", values.join(", "));
    exec(&sb, "node1", &[&insert]).await;
    eventually(WAIT, "the 65 rows on node2", || async {
        let n = one_value(&sb, "node2", "SELECT COUNT(*) AS v FROM pivot.heartbeat").await;
        (n == "65").then_some(()).ok_or(n)
    })
    .await;
    let c = api_cluster(addr).await.unwrap();
    let then = instance(&c, &n2).and_then(|i| i["observed_at"].as_u64()).unwrap_or(0);
    eventually(WAIT, "heartbeat lag on node2 read with the 65 rows", || async {
        let c = api_cluster(addr).await?;
        let at = measured(&c)?;
        (at > then + 500).then_some(()).ok_or(format!("observed at {at}"))
    })
    .await;
}
