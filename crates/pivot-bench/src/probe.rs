//! Probe round trip and the daemon's CPU and memory.

use crate::stats::{ms, summarize};
use pivot_core::Millis;
use pivot_drill::{PivotProcess, TestSandbox};
use pivot_server::Prober;
use std::time::{Duration, Instant};

pub async fn run(probes: usize, seconds: u64, poll_interval: &str) -> anyhow::Result<()> {
    let sb = TestSandbox::up(3, false).await;
    let creds = sb.credentials("pivot")?;
    println!("probe benchmark: 3-node MariaDB {} sandbox on loopback", sb.manifest.mariadb_version);
    for node in sb.nodes() {
        let key = sb.key(&node.name)?;
        let mut prober = Prober::new(key.clone(), creds.clone(), Duration::from_secs(1));
        let mut kept = Vec::with_capacity(probes);
        for _ in 0..probes {
            let t = Instant::now();
            let obs = prober.probe(Millis(0)).await;
            anyhow::ensure!(obs.state().is_some(), "probe of {key} failed: {:?}", obs.failure());
            kept.push(t.elapsed());
        }
        let mut fresh = Vec::with_capacity(probes / 10);
        for _ in 0..(probes / 10).max(1) {
            let mut p = Prober::new(key.clone(), creds.clone(), Duration::from_secs(1));
            let t = Instant::now();
            p.probe(Millis(0)).await;
            fresh.push(t.elapsed());
        }
        let (k, f) = (summarize(&kept), summarize(&fresh));
        println!(
            "  {} ({key}): probe on a kept connection: median {}, p99 {}, worst {} (n={}); with a new connection: median {}, p99 {} (n={})",
            node.name, ms(k.median), ms(k.p99), ms(k.worst), k.n, ms(f.median), ms(f.p99), f.n
        );
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = sb.dir.join("bench.toml");
    let text = std::fs::read_to_string(sb.config_path())?
        .replace("poll_interval = \"250ms\"", &format!("poll_interval = \"{poll_interval}\""))
        .replace(&format!("127.0.0.1:{}", sb.manifest.http_port), &format!("127.0.0.1:{port}"));
    std::fs::write(&config, text)?;
    let mut pivot = PivotProcess::start(&crate::pivot_binary()?, &config, &sb.dir.join("bench-pivot.log"));
    let pid = pivot.pid().expect("running");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, t0) = (cpu_ticks(pid)?, Instant::now());
    let mut latencies = Vec::new();
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (_, metrics) =
            pivot_drill::http_get(([127, 0, 0, 1], port).into(), "/metrics").await.map_err(anyhow::Error::msg)?;
        latencies.extend(
            metrics
                .lines()
                .filter(|l| l.starts_with("pivot_instance_probe_latency_seconds{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .map(Duration::from_secs_f64),
        );
    }
    let (cpu1, elapsed) = (cpu_ticks(pid)?, t0.elapsed());
    let cpu_pct = (cpu1 - cpu0) as f64 / CLOCK_TICKS_PER_SECOND / elapsed.as_secs_f64() * 100.0;
    let (rss, hwm) = memory_kib(pid)?;
    let l = summarize(&latencies);
    println!(
        "  pivot run, poll {poll_interval}, {}s: CPU {cpu_pct:.2}% of one core; RSS {} KiB (peak {} KiB); probe latency seen by the daemon: median {}, p99 {}, worst {} (n={})",
        elapsed.as_secs(), rss, hwm, ms(l.median), ms(l.p99), ms(l.worst), l.n
    );
    pivot.stop();
    Ok(())
}

fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("").split_whitespace().collect();
    // utime and stime are fields 14 and 15 of /proc/PID/stat (1-based), i.e. 11 and 12 after the name.
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// `USER_HZ`: the unit of utime/stime in /proc/PID/stat (100 on Linux).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((get("VmRSS:"), get("VmHWM:")))
}
