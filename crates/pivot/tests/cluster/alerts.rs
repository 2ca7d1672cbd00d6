//! Replication-health alerts on real servers: a conflicting row stops a
//! replica's SQL thread with error 1062; the alert reaches the webhook (a
//! small HTTP server run by the test records the POSTs) and the alert
//! hook, the replica leaves the read routes (health check, built-in
//! proxy's read port), and both clear once the row is fixed. A webhook that
//! hangs or answers 500 gets a bounded number of attempts, pivot keeps
//! working, and the URL's secret path never reaches the log.

use crate::support::*;
use pivot_core::InstanceKey;
use pivot_drill::{eventually, http_get};
use serde_json::Value;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The secret part of the webhook URL: it must never be logged.
const SECRET_PATH: &str = "/hooks/T0001/B0001/s3cr3t-webhook-path";

/// How the test's webhook server answers.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Answer {
    Ok,
    /// The first request gets no answer at all (the connection stays open),
    /// every later one HTTP 500.
    HangThen500,
}

/// A small HTTP/1.1 server recording each request's path and body; stopped
/// when dropped (its task is aborted).
pub(crate) struct WebhookServer {
    pub(crate) addr: SocketAddr,
    requests: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookServer {
    pub(crate) async fn start(answer: Answer) -> WebhookServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let Some((path, body)) = read_request(&mut conn).await else { continue };
                let n = {
                    let mut r = seen.lock().unwrap();
                    r.push((path, body));
                    r.len()
                };
                if answer == Answer::HangThen500 && n == 1 {
                    held.push(conn); // never answered
                    continue;
                }
                let status = if answer == Answer::Ok { "200 OK" } else { "500 Internal Server Error" };
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                let _ = conn.write_all(reply.as_bytes()).await;
            }
        });
        WebhookServer { addr, requests, task }
    }

    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.requests.lock().unwrap().iter().filter_map(|(_, b)| serde_json::from_str(b).ok()).collect()
    }

    /// The URL, with its secret path, in a 0600 file.
    fn url_file(&self, dir: &std::path::Path) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("webhook.url");
        std::fs::write(&path, format!("http://{}{SECRET_PATH}\n", self.addr)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One request: its path and body (by content-length), bounded in size and time.
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
                    return Some((path, String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string()));
                }
            }
            let n = conn.read(&mut chunk).await.ok()?;
            if n == 0 || buf.len() > 1 << 20 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await.ok().flatten()
}

/// The built-in proxy's read port, the webhook, the alert hook writing its
/// environment to `alert-env.txt`.
fn extra(sb: &pivot_drill::TestSandbox, webhook: &std::path::Path, read: u16, more: &str) -> String {
    let env_file = sb.dir.join("alert-env.txt");
    let hook = script(
        sb,
        "alert-hook.sh",
        &format!("env | grep '^PIVOT_ALERT_' | sort >> {0}\necho ---- >> {0}", env_file.display()),
    );
    format!(
        "[cluster.hooks]\nalert = [\"{}\"]\n\n[cluster.proxy]\nwrite = \"127.0.0.1:{}\"\nread = \"127.0.0.1:{read}\"\n\n\
         [pivot.webhook]\nurl_file = \"{}\"\n{more}\n",
        hook.display(),
        free_port(),
        webhook.display()
    )
}

/// The ports of the `_mysql._tcp.replicas.sandbox.db.example` SRV records
/// (`dig`, Debian package dnsutils).
async fn dns_replicas(dns: u16) -> Result<BTreeSet<u16>, String> {
    let out = tokio::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &dns.to_string(), "+time=2", "+tries=1", "+short"])
        .args(["_mysql._tcp.replicas.sandbox.db.example", "SRV"])
        .output()
        .await
        .map_err(|e| format!("dig (Debian package dnsutils; scripts/deps.sh installs it): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| l.split_whitespace().nth(2).and_then(|p| p.parse().ok()).ok_or(format!("not an SRV record: {l}")))
        .collect()
}

fn port_of(rig: &Rig, node: &str) -> u16 {
    rig.key(node).parse::<InstanceKey>().unwrap().port
}

/// The server ids behind `n` fresh connections to the proxy's read port.
async fn reads(rig: &Rig, read: &InstanceKey, n: usize) -> Result<BTreeSet<u32>, String> {
    let creds = rig.sb.credentials("app").map_err(|e| e.to_string())?;
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let (id, _s) = connect_server_id(read, &creds, Duration::from_secs(2)).await?;
        seen.insert(id);
    }
    Ok(seen)
}

async fn replica_check(rig: &Rig, node: &str) -> Result<u16, String> {
    http_get(rig.addr, &format!("/replica/sandbox/{}", rig.key(node))).await.map(|(s, _)| s)
}

/// The webhook body of the alert `status` about `instance`'s `kind`.
fn find<'a>(bodies: &'a [Value], instance: &str, kind: &str, status: &str) -> Option<&'a Value> {
    bodies.iter().find(|b| b["instance"] == instance && b["kind"] == kind && b["status"] == status)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_key_stops_a_replica_alerts_with_1062_and_takes_it_out_of_the_read_routes_until_fixed() {
    let hook = WebhookServer::start(Answer::Ok).await;
    let (read_port, dns) = (free_port(), free_port());
    let rig = Rig::start(3, false, |sb| {
        let url = hook.url_file(&sb.dir);
        let more = format!("\n[pivot.dns]\nlisten = \"127.0.0.1:{dns}\"\ndomain = \"db.example\"\nttl = \"1s\"\n");
        extra(sb, &url, read_port, &more)
    })
    .await;
    let (p2, p3) = (port_of(&rig, "node2"), port_of(&rig, "node3"));
    let read: InstanceKey = format!("127.0.0.1:{read_port}").parse().unwrap();
    let node2 = rig.key("node2");
    eventually(WAIT, "reads on both replicas", || async {
        let r = reads(&rig, &read, 6).await?;
        (r == BTreeSet::from([2, 3])).then_some(()).ok_or(format!("reads {r:?}"))
    })
    .await;
    let sql: Vec<Value> = hook.bodies().into_iter().filter(|b| b["kind"] == "sql").collect();
    assert!(sql.is_empty(), "running SQL threads raise nothing: {sql:?}");
    assert_eq!(dns_replicas(dns).await.unwrap(), BTreeSet::from([p2, p3]));

    // The same key on the replica (not binlogged) and then on the primary.
    exec(&rig.sb, "node1", &["CREATE TABLE test.alert_conflict (id INT PRIMARY KEY)"]).await;
    eventually(WAIT, "the table on node2", || async {
        let mut s = rig.sb.admin("node2").await.map_err(|e| e.to_string())?;
        s.rows(&pivot_dialect::Sql::plain("SELECT COUNT(*) AS n FROM test.alert_conflict"))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    exec(&rig.sb, "node2", &["SET SESSION sql_log_bin = 0", "INSERT INTO test.alert_conflict VALUES (1)"]).await;
    exec(&rig.sb, "node1", &["INSERT INTO test.alert_conflict VALUES (1)"]).await;

    let problem = eventually(WAIT, "the webhook's 1062 alert about node2", || async {
        let bodies = hook.bodies();
        find(&bodies, &node2, "sql", "problem").cloned().ok_or(format!("{bodies:?}"))
    })
    .await;
    assert_eq!(problem["error_number"], 1062, "{problem}");
    assert_eq!(problem["cluster"], "sandbox");
    assert!(problem["error_text"].as_str().unwrap().contains("Duplicate entry"), "{problem}");
    assert!(problem["text"].as_str().unwrap().contains(&node2), "{problem}");
    assert_eq!(hook.requests.lock().unwrap()[0].0, SECRET_PATH, "POSTed to the URL's path");

    let env_file = rig.sb.dir.join("alert-env.txt");
    eventually(WAIT, "the alert hook's environment", || async {
        let env = std::fs::read_to_string(&env_file).unwrap_or_default();
        (env.contains(&format!("PIVOT_ALERT_INSTANCE={node2}"))
            && env.contains("PIVOT_ALERT_ERROR_NUMBER=1062")
            && env.contains("PIVOT_ALERT_KIND=sql")
            && env.contains("PIVOT_ALERT_STATUS=problem"))
        .then_some(())
        .ok_or(env)
    })
    .await;

    // Out of the read routes: the health check (HAProxy's), the proxy's
    // read port, DNS.
    eventually(WAIT, "node2 out of the read routes", || async {
        let status = replica_check(&rig, "node2").await?;
        let r = reads(&rig, &read, 6).await?;
        let d = dns_replicas(dns).await?;
        (status == 503 && r == BTreeSet::from([3]) && d == BTreeSet::from([p3]))
            .then_some(())
            .ok_or(format!("check {status}, reads {r:?}, dns {d:?}"))
    })
    .await;
    assert_eq!(replica_check(&rig, "node3").await.unwrap(), 200, "the healthy replica stays");

    // Kept in the history and the API.
    let h = rig.history();
    let events = h["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["level"] == "alert"
            && e["message"].as_str().is_some_and(|m| m.contains(&node2) && m.contains("sql") && m.contains("1062"))),
        "{events:?}"
    );
    let (_, api) = http_get(rig.addr, "/api/clusters/sandbox/recoveries").await.unwrap();
    assert!(api.contains("1062") && api.contains(&node2), "{api}");

    // Fixed: the row goes, replication restarts; the resolve arrives once
    // and node2 is back in the read routes.
    exec(
        &rig.sb,
        "node2",
        &["SET SESSION sql_log_bin = 0", "DELETE FROM test.alert_conflict WHERE id = 1", "START SLAVE"],
    )
    .await;
    let resolved = eventually(WAIT, "the resolve alert", || async {
        let bodies = hook.bodies();
        find(&bodies, &node2, "sql", "resolved").cloned().ok_or(format!("{bodies:?}"))
    })
    .await;
    assert_eq!(resolved["to"], "running", "{resolved}");
    eventually(WAIT, "node2 back in the read routes", || async {
        let status = replica_check(&rig, "node2").await?;
        let r = reads(&rig, &read, 6).await?;
        let d = dns_replicas(dns).await?;
        (status == 200 && r == BTreeSet::from([2, 3]) && d == BTreeSet::from([p2, p3]))
            .then_some(())
            .ok_or(format!("check {status}, reads {r:?}, dns {d:?}"))
    })
    .await;
    let sql_alerts: Vec<Value> =
        hook.bodies().into_iter().filter(|b| b["instance"] == node2 && b["kind"] == "sql").collect();
    assert_eq!(sql_alerts.len(), 2, "one problem, one resolve: {sql_alerts:?}");
    let log = rig.pivot.log_text();
    assert!(log.contains("ALERT: PROBLEM") && log.contains("1062"), "the alert is logged");
    assert!(!log.contains("s3cr3t"), "the webhook's secret path is in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_that_hangs_or_fails_gets_bounded_retries_and_pivot_keeps_working() {
    let hook = WebhookServer::start(Answer::HangThen500).await;
    let read_port = free_port();
    let rig = Rig::start(3, false, |sb| {
        let url = hook.url_file(&sb.dir);
        extra(sb, &url, read_port, "timeout = \"300ms\"\nretries = 2")
    })
    .await;
    let node2 = rig.key("node2");

    exec(&rig.sb, "node2", &["STOP SLAVE SQL_THREAD"]).await;
    // The first attempt hangs (bounded by the timeout), the others get 500.
    // Every alert (the test's, and any other the start-up may have raised)
    // is given up after exactly three attempts: a fourth never lets this hold.
    let addr = rig.addr;
    eventually(WAIT, "the alert given up after three attempts", || async {
        let (_, m) = http_get(addr, "/metrics").await?;
        let failed: usize = m
            .lines()
            .find_map(|l| l.strip_prefix("pivot_webhook_failed_total "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(format!("no failed counter in {m}"))?;
        let mut attempts = std::collections::BTreeMap::new();
        for b in hook.bodies() {
            *attempts.entry(b["text"].to_string()).or_insert(0) += 1;
        }
        let ours =
            hook.bodies().iter().any(|b| b["instance"] == node2 && b["kind"] == "sql" && b["error_number"].is_null());
        (ours && failed == attempts.len() && attempts.values().all(|n| *n == 3))
            .then_some(())
            .ok_or(format!("failed {failed}, attempts {attempts:?}"))
    })
    .await;

    // pivot kept working meanwhile: node2 is out of the read routes and
    // comes back when its SQL thread runs again.
    assert_eq!(replica_check(&rig, "node2").await.unwrap(), 503);
    exec(&rig.sb, "node2", &["START SLAVE SQL_THREAD"]).await;
    eventually(WAIT, "node2 back", || async {
        let s = replica_check(&rig, "node2").await?;
        (s == 200).then_some(()).ok_or(format!("check {s}"))
    })
    .await;
    rig.wait_healthy_with_primary(&rig.key("node1")).await;
    let log = rig.pivot.log_text();
    assert!(log.contains("webhook attempt 1 of 3 failed: no answer within 300ms"), "the hang is logged");
    assert!(log.contains("HTTP 500"), "the 500 is logged");
    assert!(log.contains(&format!("http://{}", hook.addr)), "the log names the webhook's host");
    assert!(!log.contains("s3cr3t"), "the webhook's secret path is in the log");
}

/// A failover is not a flood: the dead primary's `reachability` alert, and
/// nothing about the replicas that lost their source and were repointed.
/// Absence is proven without sleeping: a problem made on purpose after the
/// failover arrives only once the quiet time after a recovery is over, so
/// everything held back before it would have arrived first.
#[tokio::test(flavor = "multi_thread")]
async fn a_failover_raises_one_alert_not_one_per_repointed_replica() {
    let hook = WebhookServer::start(Answer::Ok).await;
    let read_port = free_port();
    let mut rig = Rig::start(3, false, |sb| {
        let url = hook.url_file(&sb.dir);
        extra(sb, &url, read_port, "")
    })
    .await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    wait_recovery_status(&rig, "succeeded").await;
    let replica = rig.sb.nodes().iter().map(|n| n.name.clone()).find(|n| rig.key(n) != new && rig.key(n) != old);
    let replica = replica.expect("a third node");
    eventually(WAIT, "the remaining replica follows the new primary", || async {
        let c = api_cluster(rig.addr).await?;
        (c["code"] == "healthy").then_some(()).ok_or(c["signal"].to_string())
    })
    .await;
    exec(&rig.sb, &replica, &["STOP SLAVE SQL_THREAD"]).await;
    let replica_key = rig.key(&replica);
    eventually(WAIT, "the alert made on purpose, after the quiet time", || async {
        let bodies = hook.bodies();
        find(&bodies, &replica_key, "sql", "problem").map(|_| ()).ok_or(format!("{bodies:?}"))
    })
    .await;
    // The control plane's alerts go to the webhook too (`kind: control`):
    // here the new primary's only replica is the one stopped on purpose;
    // each of its texts at most once.
    let control: Vec<String> =
        hook.bodies().iter().filter(|b| b["kind"] == "control").map(|b| b["text"].to_string()).collect();
    let distinct: BTreeSet<&String> = control.iter().collect();
    assert_eq!(distinct.len(), control.len(), "a control alert POSTed twice: {control:#?}");
    let seen: Vec<String> = hook
        .bodies()
        .iter()
        .filter(|b| b["kind"] != "control")
        .map(|b| {
            format!(
                "{} {} {}",
                b["instance"].as_str().unwrap(),
                b["kind"].as_str().unwrap(),
                b["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![format!("{old} reachability problem"), format!("{replica_key} sql problem")],
        "the dead primary once, then only the problem made on purpose"
    );
}
