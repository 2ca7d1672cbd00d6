//! The switchover benchmark: a 3-node sandbox under two writers (one through
//! pivot's proxy write port, one that finds the writable server itself),
//! `--switchovers` planned switchovers back and forth between node1 and
//! node2 through the daemon's API. The write pause of each: the last write
//! the old primary acknowledged before it, to the first the new primary
//! acknowledged. Also counted: writes missing on the final primary, and
//! writes the old primary acknowledged after the new one's first (two
//! writers). Figures are printed, never asserted.

use crate::stats::{ms, summarize};
use crate::support::free_port;
use pivot_core::InstanceKey;
use pivot_drill::{http_request, missing_writes, Ack, PivotProcess, TestSandbox, Writer, WriterTarget};
use std::time::{Duration, Instant};

const TOKEN: &str = "pivot-bench-switchover-token-0123456789";

struct Window {
    from: InstanceKey,
    to: InstanceKey,
    asked: Instant,
    answered: Instant,
    ok: bool,
}

pub async fn run(switchovers: usize, semi_sync: bool) -> anyhow::Result<()> {
    let pivot_bin = crate::pivot_binary()?;
    let replication = if semi_sync { "semi-sync AFTER_SYNC" } else { "asynchronous replication" };
    println!(
        "\nswitchover benchmark: {switchovers} switchovers node1 <-> node2, 3-node MariaDB sandbox with {replication}, \
         pivot defaults; writers through pivot's proxy and following the writable server"
    );
    let sb = TestSandbox::up_with(|s| pivot_sandbox::SandboxSpec { nodes: 3, semi_sync, ..s }).await;
    let mut admin = sb.admin("node1").await?;
    Writer::create_table(&mut admin).await;
    drop(admin);
    let token = sb.dir.join("api.token");
    std::fs::write(&token, TOKEN)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
    }
    let port = free_port();
    let mut text = std::fs::read_to_string(sb.config_path())?;
    text = text.replacen("[pivot]\n", &format!("[pivot]\napi_token_file = \"{}\"\n", token.display()), 1);
    text.push_str(&format!("\n[cluster.proxy]\nwrite = \"127.0.0.1:{port}\"\n"));
    std::fs::write(sb.config_path(), text)?;
    let _pivot = PivotProcess::start(&pivot_bin, &sb.config_path(), &sb.dir.join("bench-pivot.log"));
    crate::support::wait_healthy(&sb).await?;
    let api: std::net::SocketAddr = ([127, 0, 0, 1], sb.manifest.http_port).into();

    let keys: Vec<InstanceKey> = sb.nodes().iter().map(|n| sb.key(&n.name).unwrap()).collect();
    let servers: Vec<(u32, InstanceKey)> = sb.nodes().iter().map(|n| (n.server_id, sb.key(&n.name).unwrap())).collect();
    let app = sb.credentials("app")?;
    let proxied = Writer::start(
        1,
        WriterTarget::Proxy { proxy: format!("127.0.0.1:{port}").parse()?, servers },
        app.clone(),
        Duration::from_secs(2),
        Duration::from_millis(1),
    );
    let direct = Writer::start(
        2,
        WriterTarget::FollowPrimary(keys.clone()),
        app,
        Duration::from_secs(2),
        Duration::from_millis(1),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let auth = format!("Bearer {TOKEN}");
    let mut windows = Vec::new();
    for i in 0..switchovers {
        let (from, to) = if i % 2 == 0 { (&keys[0], &keys[1]) } else { (&keys[1], &keys[0]) };
        let body = format!("{{\"to\": \"{to}\"}}");
        let asked = Instant::now();
        let r = http_request(api, "POST", "/api/clusters/sandbox/switchover", &[("Authorization", &auth)], &body).await;
        let answered = Instant::now();
        let ok = matches!(&r, Ok((200, _)));
        match &r {
            Ok((200, _)) => {
                println!("  switchover {:>2}: {from} -> {to} in {} ms", i + 1, (answered - asked).as_millis())
            }
            other => println!("  switchover {:>2}: {other:?}", i + 1),
        }
        windows.push(Window { from: from.clone(), to: to.clone(), asked, answered, ok });
        // Writes flow on the new primary before the next one.
        tokio::time::sleep(Duration::from_millis(700)).await;
        if let Err(e) = crate::support::wait_healthy(&sb).await {
            let (_, body) = pivot_drill::http_get(api, "/api/clusters/sandbox").await.unwrap_or_default();
            let log = std::fs::read_to_string(sb.dir.join("bench-pivot.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            anyhow::bail!(
                "{e}: {}\n{}",
                body.chars().take(600).collect::<String>(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let proxied = proxied.stop().await;
    let direct = direct.stop().await;

    let last = windows.last().map(|w| if w.ok { w.to.clone() } else { w.from.clone() }).unwrap_or(keys[0].clone());
    let node = sb.node_at(&last).map(|n| n.name.clone()).unwrap_or_else(|| "node1".into());
    let mut s = sb.admin(&node).await?;
    for (name, acks) in [("through pivot's proxy", &proxied), ("following the writable server", &direct)] {
        let pauses = pauses(&windows, acks);
        let missing = missing_writes(&mut s, acks).await.len();
        let late: usize =
            windows.iter().enumerate().map(|(i, w)| late_writes(w, windows.get(i + 1).map(|n| n.asked), acks)).sum();
        println!("writer {name}: {} writes acknowledged", acks.len());
        for (i, p) in pauses.iter().enumerate() {
            match p {
                Some(p) => println!("  switchover {:>2}: write pause {}", i + 1, ms(*p)),
                None => println!("  switchover {:>2}: no write on both sides of it", i + 1),
            }
        }
        let got: Vec<Duration> = pauses.iter().flatten().copied().collect();
        let sum = summarize(&got);
        println!(
            "  write pause over {} switchovers: median {}, worst {} (target: <= 100 ms median, <= 250 ms worst)",
            got.len(),
            ms(sum.median),
            ms(sum.worst)
        );
        println!("  acknowledged writes missing on the final primary: {missing}; acknowledged by an old primary after the new one's first: {late}");
    }
    // Where each switchover spent its time: its two slowest steps.
    let state = pivot_state::SqliteStore::open(&sb.dir.join("pivot.db"))?;
    let mut recs = pivot_state::StateStore::recoveries(&state, Some("sandbox"), switchovers + 10)?;
    recs.reverse();
    for (i, r) in recs.iter().filter(|r| r.kind == "switchover").enumerate() {
        let mut steps: Vec<(String, i64)> =
            r.steps.iter().filter_map(|s| Some((s.name.clone(), s.ended_at? - s.started_at))).collect();
        steps.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
        let total = r.ended_at.map(|e| e - r.started_at).unwrap_or(-1);
        let slow: Vec<String> = steps.iter().take(2).map(|(n, d)| format!("{n} {d} ms")).collect();
        println!("  switchover {:>2} ({}): {total} ms; slowest steps: {}", i + 1, r.status.as_str(), slow.join(", "));
    }
    let took: Vec<Duration> = windows.iter().filter(|w| w.ok).map(|w| w.answered - w.asked).collect();
    let sum = summarize(&took);
    println!(
        "API call (asked -> answered, the whole plan): median {}, worst {}; {} of {} succeeded",
        ms(sum.median),
        ms(sum.worst),
        took.len(),
        windows.len()
    );
    Ok(())
}

/// For each switchover: the last write the old primary acknowledged before
/// the new one's first, to that first write.
fn pauses(windows: &[Window], acks: &[Ack]) -> Vec<Option<Duration>> {
    windows
        .iter()
        .map(|w| {
            if !w.ok {
                return None;
            }
            let first_new = acks.iter().filter(|a| a.instance == w.to && a.at >= w.asked).map(|a| a.at).min()?;
            let last_old = acks.iter().filter(|a| a.instance == w.from && a.at <= first_new).map(|a| a.at).max()?;
            Some(first_new.saturating_duration_since(last_old))
        })
        .collect()
}

/// Writes the old primary acknowledged after the new one's first (and
/// before the next switchover, which may hand it the role back).
fn late_writes(w: &Window, next: Option<Instant>, acks: &[Ack]) -> usize {
    let Some(first_new) = acks.iter().filter(|a| a.instance == w.to && a.at >= w.asked).map(|a| a.at).min() else {
        return 0;
    };
    acks.iter().filter(|a| a.instance == w.from && a.at > first_new && next.is_none_or(|n| a.at < n)).count()
}
