//! The proxy benchmark: sysbench against the primary directly, through
//! pivot's write port (plain TCP mode, and protocol mode `mode = "mysql"` of
//! a second pivot process on the same sandbox), and through HAProxy in TCP
//! mode with an equivalent configuration, in one run; then kill -9 of the primary under a writer
//! that only knows the write port.

use crate::stats::{ms, summarize};
use crate::support::{free_port, wait_healthy, Owned};
use pivot_drill::{PivotProcess, TestSandbox};
use std::process::{Command, Stdio};

const WORKLOADS: [&str; 2] = ["oltp_point_select", "oltp_read_write"];
const THREADS: [u32; 3] = [1, 4, 16];

#[derive(Clone, Copy, Debug)]
struct Figures {
    qps: f64,
    p95_ms: f64,
}

pub async fn run(
    seconds: u64,
    rounds: usize,
    trials: usize,
    skip_throughput: bool,
    threads: usize,
) -> anyhow::Result<()> {
    let pivot = crate::pivot_binary()?;
    if !skip_throughput {
        throughput(&pivot, seconds, rounds.max(1), threads).await?;
    }
    if trials > 0 {
        kill_under_proxy(&pivot, trials).await?;
    }
    Ok(())
}

/// Append a `[cluster.proxy]` table to the sandbox's configuration.
fn add_proxy(sb: &TestSandbox, write: u16, threads: usize) -> anyhow::Result<()> {
    let mut text = std::fs::read_to_string(sb.config_path())?;
    text.push_str(&format!("\n[cluster.proxy]\nwrite = \"127.0.0.1:{write}\"\nthreads = {threads}\n"));
    std::fs::write(sb.config_path(), text)?;
    Ok(())
}

async fn throughput(pivot_bin: &std::path::Path, seconds: u64, rounds: usize, threads: usize) -> anyhow::Result<()> {
    let sb = TestSandbox::up_with(|s| pivot_sandbox::SandboxSpec { nodes: 2, semi_sync: false, ..s }).await;
    let primary = sb.key("node1")?;
    // The proxies are measured, not the disk: commits do not wait for fsync
    // (with it, oltp_read_write measures this machine's disk and varies 2x).
    let mut admin = sb.admin("node1").await?;
    for st in admin.dialect.commit_without_fsync() {
        admin.exec(&st).await?;
    }
    drop(admin);
    let (pivot_port, haproxy_port) = (free_port(), free_port());
    add_proxy(&sb, pivot_port, threads)?;
    let mut pivot = PivotProcess::start(pivot_bin, &sb.config_path(), &sb.dir.join("bench-pivot.log"));
    wait_healthy(&sb).await?;
    // A second pivot whose write port runs the protocol mode.
    let mysql_port = free_port();
    let mysql_config = protocol_mode_config(&sb, mysql_port, threads)?;
    let mut pivot_mysql = PivotProcess::start(pivot_bin, &mysql_config, &sb.dir.join("bench-pivot-mysql.log"));
    crate::support::wait_port(mysql_port).await?;
    let cfg = sb.dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n    maxconn 4096\n\ndefaults\n    mode tcp\n    timeout connect 1s\n    timeout client 8h\n    \
             timeout server 8h\n\nfrontend write\n    bind 127.0.0.1:{haproxy_port}\n    default_backend primary\n\n\
             backend primary\n    server primary {primary}\n"
        ),
    )?;
    let log = std::fs::File::create(sb.dir.join("haproxy.log"))?;
    let _haproxy = Owned(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&cfg)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| anyhow::anyhow!("haproxy: {e} (Debian package haproxy)"))?,
    );
    let app = sb.credentials("app")?;
    let base = |port: u16| -> Vec<String> {
        vec![
            "--mysql-host=127.0.0.1".into(),
            format!("--mysql-port={port}"),
            format!("--mysql-user={}", app.user),
            "--mysql-db=test".into(),
            "--tables=4".into(),
            "--table-size=10000".into(),
            "--db-ps-mode=disable".into(),
        ]
    };
    // The password through the environment (libmariadb reads MYSQL_PWD), never in argv.
    let pwd = app.password.expose().to_string();
    let prepare = Command::new("sysbench")
        .env("MYSQL_PWD", &pwd)
        .arg("oltp_read_write")
        .args(base(primary.port))
        .arg("prepare")
        .output()?;
    anyhow::ensure!(prepare.status.success(), "sysbench prepare: {}", String::from_utf8_lossy(&prepare.stderr));
    println!(
        "\nproxy benchmark: sysbench {seconds} s per run, mean of {rounds} rounds in alternating order, 2-node MariaDB sandbox (commits without fsync); HAProxy {} in TCP mode \
         (one server, no checks) and pivot's write port ({threads} proxy thread(s)) in TCP mode and in protocol mode (pv mysql), all on this 2-core machine with client and server",
        haproxy_version()
    );
    println!(
        "{:<18} {:>3} | {:>10} {:>8} | {:>10} {:>8} | {:>10} {:>8} | {:>10} {:>8} | {:>7} {:>7} {:>7} {:>7}",
        "workload",
        "thr",
        "direct qps",
        "p95 ms",
        "pivot qps",
        "p95 ms",
        "haproxy",
        "p95 ms",
        "pv mysql",
        "p95 ms",
        "pv/hap",
        "pv/dir",
        "hap/dir",
        "my/pv"
    );
    for workload in WORKLOADS {
        for threads in THREADS {
            // Rounds in alternating order, so that neither target always
            // runs first (on a colder cache) or last (on a bigger table).
            let ports = [primary.port, pivot_port, haproxy_port, mysql_port];
            let mut runs: [Vec<Figures>; 4] = Default::default();
            for round in 0..rounds {
                let order: Vec<usize> = if round % 2 == 0 { vec![0, 1, 3, 2] } else { vec![2, 3, 1, 0] };
                for i in order {
                    runs[i].push(sysbench(workload, threads, seconds, &base(ports[i]), &pwd)?);
                }
            }
            let mean = |v: &[Figures]| Figures {
                qps: v.iter().map(|f| f.qps).sum::<f64>() / v.len() as f64,
                p95_ms: v.iter().map(|f| f.p95_ms).sum::<f64>() / v.len() as f64,
            };
            let (d, p, h, m) = (mean(&runs[0]), mean(&runs[1]), mean(&runs[2]), mean(&runs[3]));
            println!(
                "{workload:<18} {threads:>3} | {:>10.0} {:>8.2} | {:>10.0} {:>8.2} | {:>10.0} {:>8.2} | {:>10.0} {:>8.2} | {:>6.2}x {:>6.2}x {:>6.2}x {:>6.2}x{}",
                d.qps,
                d.p95_ms,
                p.qps,
                p.p95_ms,
                h.qps,
                h.p95_ms,
                m.qps,
                m.p95_ms,
                p.qps / h.qps,
                p.qps / d.qps,
                h.qps / d.qps,
                m.qps / p.qps,
                if p.p95_ms <= h.p95_ms { "" } else { "  (pivot's p95 higher)" }
            );
        }
    }
    pivot.stop();
    pivot_mysql.stop();
    Ok(())
}

/// A copy of the sandbox's configuration for a second pivot: its own state
/// file and HTTP port, its write port on `write` in protocol mode.
fn protocol_mode_config(sb: &TestSandbox, write: u16, threads: usize) -> anyhow::Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(sb.config_path())?;
    let mut out = String::new();
    let mut in_proxy = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            in_proxy = t == "[cluster.proxy]";
        }
        if in_proxy {
            continue;
        }
        if t.starts_with("state =") {
            out.push_str(&format!("state = \"{}\"\n", sb.dir.join("bench-pivot-mysql.db").display()));
        } else if t.starts_with("http =") {
            out.push_str(&format!("http = \"127.0.0.1:{}\"\n", free_port()));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!("\n[cluster.proxy]\nwrite = \"127.0.0.1:{write}\"\nthreads = {threads}\nmode = \"mysql\"\n"));
    let path = sb.dir.join("bench-pivot-mysql.toml");
    std::fs::write(&path, out)?;
    Ok(path)
}

fn haproxy_version() -> String {
    Command::new("haproxy")
        .arg("-v")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().nth(2).map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn sysbench(workload: &str, threads: u32, seconds: u64, base: &[String], pwd: &str) -> anyhow::Result<Figures> {
    let out = Command::new("sysbench")
        .env("MYSQL_PWD", pwd)
        .arg(workload)
        .args(base)
        .arg(format!("--threads={threads}"))
        .arg(format!("--time={seconds}"))
        .arg("--report-interval=0")
        .arg("run")
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "sysbench {workload}: {}", String::from_utf8_lossy(&out.stderr));
    let qps = text
        .lines()
        .find(|l| l.trim_start().starts_with("queries:"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no queries line in sysbench output:\n{text}"))?;
    let p95_ms = text
        .lines()
        .find(|l| l.trim_start().starts_with("95th percentile:"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no 95th percentile in sysbench output:\n{text}"))?;
    Ok(Figures { qps, p95_ms })
}

/// kill -9 of the primary under a writer that only knows the write port:
/// fault to its first acknowledged write through the proxy, against pivot's
/// own time to a writable new primary.
async fn kill_under_proxy(pivot_bin: &std::path::Path, trials: usize) -> anyhow::Result<()> {
    println!(
        "\nkill -9 of the primary under a writer connected only through pivot's write port (reconnects on error), \
         3-node semi-sync sandbox, {trials} trials"
    );
    let (mut through, mut writable, mut extra) = (Vec::new(), Vec::new(), Vec::new());
    let mut late_total = 0;
    for i in 1..=trials {
        match crate::routes::trial(pivot_bin, crate::routes::Route::Proxy).await {
            Ok(crate::routes::Trial { first: t, writable: w, late, .. }) => {
                println!(
                    "  trial {i:>2}: new primary writable {}, first write through the proxy {}, difference {}, \
                     writes acknowledged by the old primary after that: {late}",
                    ms(w),
                    ms(t),
                    ms(t.saturating_sub(w))
                );
                through.push(t);
                writable.push(w);
                extra.push(t.saturating_sub(w));
                late_total += late;
            }
            Err(e) => println!("  trial {i:>2}: FAILED: {e}"),
        }
    }
    if through.is_empty() {
        anyhow::bail!("no trial succeeded");
    }
    let (t, w, x) = (summarize(&through), summarize(&writable), summarize(&extra));
    println!(
        "  median / worst: new primary writable {} / {}; first write through the proxy {} / {}; \
         proxy's extra {} / {} (target: at most 50 ms more); late writes on the old primary: {late_total}",
        ms(w.median),
        ms(w.worst),
        ms(t.median),
        ms(t.worst),
        ms(x.median),
        ms(x.worst)
    );
    Ok(())
}
