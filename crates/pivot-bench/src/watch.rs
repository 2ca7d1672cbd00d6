//! The watchful side, timed on a 3-node sandbox (`pivot-bench watch`):
//!
//! - alert latency: a replica's SQL thread stopped by a real duplicate key
//!   (error 1062) to the webhook receiving the alert, and its fix to the
//!   resolve (the webhook is a small HTTP server in this process);
//! - heartbeat lag: a replica's IO thread stopped for a while, the lag
//!   pivot's API reports against the time really elapsed since the stop,
//!   next to `Seconds_Behind_Master`;
//! - `pivot check` and `pivot check --simulate dead`: wall time.
//!
//! Figures are printed, never asserted.

use crate::stats::{ms, summarize};
use pivot_dialect::Sql;
use pivot_drill::{PivotProcess, TestSandbox};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Each POST the webhook received: when, and its body.
type Received = Arc<Mutex<Vec<(Instant, String)>>>;

async fn webhook_server() -> anyhow::Result<(SocketAddr, Received, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let got: Received = Arc::default();
    let seen = got.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let Ok(n) = conn.read(&mut chunk).await else { break None };
                if n == 0 {
                    break None;
                }
                buf.extend_from_slice(&chunk[..n]);
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse().ok()))
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    break Some(String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string());
                }
            };
            if let Some(body) = body {
                seen.lock().unwrap().push((Instant::now(), body));
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        }
    });
    Ok((addr, got, task))
}

/// The first webhook body after `since` that contains every one of `parts`.
async fn wait_for(got: &Received, since: Instant, parts: &[&str]) -> anyhow::Result<Instant> {
    for _ in 0..3000 {
        let hit =
            got.lock().unwrap().iter().find(|(t, b)| *t >= since && parts.iter().all(|p| b.contains(p))).map(|x| x.0);
        if let Some(t) = hit {
            return Ok(t);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    anyhow::bail!("no webhook alert with {parts:?} within 15 s")
}

/// Statements on one admin session of `node`.
async fn exec(sb: &TestSandbox, node: &str, sql: &[&str]) -> anyhow::Result<()> {
    let mut s = sb.admin(node).await?;
    for q in sql {
        s.exec(&Sql::plain(*q)).await?;
    }
    Ok(())
}

/// A replica's lag as pivot's API reports it: (heartbeat, server's own).
async fn api_lag(api: SocketAddr, key: &str) -> Option<(Option<f64>, Option<u64>)> {
    let (_, body) = pivot_drill::http_get(api, "/api/clusters/sandbox").await.ok()?;
    let c: serde_json::Value = serde_json::from_str(&body).ok()?;
    let i = c["instances"].as_array()?.iter().find(|i| i["instance"] == key)?;
    let lag = &i["lag"];
    Some((lag["heartbeat_lag"].as_f64(), lag["seconds_behind_master"].as_u64()))
}

/// Until pivot reports `key`'s heartbeat lag under half a second (bounded).
async fn caught_up(api: SocketAddr, key: &str) -> anyhow::Result<()> {
    for _ in 0..300 {
        if matches!(api_lag(api, key).await, Some((Some(hb), _)) if hb < 0.5) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{key}'s heartbeat lag not back under 0.5 s within 15 s")
}

pub async fn run(trials: usize) -> anyhow::Result<()> {
    let pivot_bin = crate::pivot_binary()?;
    println!(
        "\nwatch benchmark: {trials} trials, 3-node MariaDB sandbox (semi-sync), poll 250ms, heartbeat every 250ms, \
         webhook on loopback"
    );
    let sb = TestSandbox::up_with(|s| pivot_sandbox::SandboxSpec { nodes: 3, semi_sync: true, ..s }).await;
    exec(&sb, "node1", &["CREATE TABLE test.bench_watch (id INT PRIMARY KEY)"]).await?;
    let (hook, got, server) = webhook_server().await?;
    let _server = Abort(server);
    // Every transition alerted (no rate limit), so each trial is timed.
    let mut text = std::fs::read_to_string(sb.config_path())?.replacen(
        "[[cluster]]\n",
        "[[cluster]]\nalert_interval = \"0s\"\n",
        1,
    );
    text.push_str(&format!(
        "\n[cluster.heartbeat]\nenabled = true\ninterval = \"250ms\"\n\n[pivot.webhook]\nurl = \"http://{hook}/hook\"\n"
    ));
    std::fs::write(sb.config_path(), text)?;
    // Checks first, on a quiet cluster, before the daemon runs.
    let mut check = Vec::new();
    let mut simulate = Vec::new();
    for _ in 0..trials {
        for (args, into) in [(&["check"][..], &mut check), (&["check", "--simulate", "dead"][..], &mut simulate)] {
            let t = Instant::now();
            let out =
                std::process::Command::new(&pivot_bin).args(args).arg("--config").arg(sb.config_path()).output()?;
            into.push(t.elapsed());
            anyhow::ensure!(out.status.code() != Some(1), "pivot {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let _pivot = PivotProcess::start(&pivot_bin, &sb.config_path(), &sb.dir.join("bench-pivot.log"));
    crate::support::wait_healthy(&sb).await?;
    let api: SocketAddr = ([127, 0, 0, 1], sb.manifest.http_port).into();
    let node2 = sb.key("node2")?.to_string();
    let node3 = sb.key("node3")?.to_string();

    let (mut alert, mut resolve) = (Vec::new(), Vec::new());
    for i in 0..trials {
        // The replica holds a row the primary then writes too: 1062.
        let id = 1000 + i;
        let row = format!("INSERT INTO test.bench_watch VALUES ({id})");
        exec(&sb, "node2", &["SET SESSION sql_log_bin = 0", &row]).await?;
        let t = Instant::now();
        exec(&sb, "node1", &[&row]).await?;
        alert.push(wait_for(&got, t, &[&node2, "\"sql\"", "1062", "\"problem\""]).await? - t);
        let delete = format!("DELETE FROM test.bench_watch WHERE id = {id}");
        exec(&sb, "node2", &["SET SESSION sql_log_bin = 0", &delete]).await?;
        let t = Instant::now();
        exec(&sb, "node2", &["START SLAVE SQL_THREAD"]).await?;
        resolve.push(wait_for(&got, t, &[&node2, "\"sql\"", "\"resolved\""]).await? - t);
    }

    // Heartbeat: node3's IO thread stopped for 5 s, sampled every 250 ms.
    let mut errors = Vec::new();
    let mut server_said = Vec::new();
    for _ in 0..trials.min(3) {
        exec(&sb, "node3", &["STOP SLAVE IO_THREAD"]).await?;
        let stopped = Instant::now();
        while stopped.elapsed() < Duration::from_secs(5) {
            // The sampling period (the heartbeat's interval), not a wait.
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Some((Some(hb), sbm)) = api_lag(api, &node3).await {
                let truth = stopped.elapsed().as_secs_f64();
                if truth > 1.0 {
                    errors.push(Duration::from_secs_f64((truth - hb).abs()));
                    server_said.push(sbm);
                }
            }
        }
        exec(&sb, "node3", &["START SLAVE IO_THREAD"]).await?;
        // The next trial starts from a caught-up replica.
        caught_up(api, &node3).await?;
    }

    let show = |name: &str, s: &[Duration]| {
        let x = summarize(s);
        println!("  {name:<44} n={:<3} median {:>12}  worst {:>12}", x.n, ms(x.median), ms(x.worst));
    };
    show("alert: 1062 on a replica -> webhook", &alert);
    show("resolve: START SLAVE -> webhook", &resolve);
    show("heartbeat lag vs time since IO thread stop", &errors);
    let nulls = server_said.iter().filter(|s| s.is_none_or(|v| v == 0)).count();
    println!(
        "  Seconds_Behind_Master meanwhile: NULL or 0 in {nulls} of {} samples (the heartbeat saw the lag in all)",
        server_said.len()
    );
    show("pivot check (wall time, process included)", &check);
    show("pivot check --simulate dead", &simulate);
    Ok(())
}

/// A task aborted when dropped.
struct Abort(tokio::task::JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}
