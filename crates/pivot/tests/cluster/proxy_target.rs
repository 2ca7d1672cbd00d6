//! The target with pivot's own switchover: sysbench
//! `oltp_read_write`, 16 connections through the write port in protocol
//! mode, 20 switchovers back and forth by `pivot switchover` (through the
//! daemon, whose proxy lets its sessions finish their transactions before
//! the old primary becomes read-only): no sysbench error, sessions moved.

use crate::support::*;
use pivot_drill::http_get;
use std::time::{Duration, Instant};

const SWITCHOVERS: usize = 20;
const THREADS: u64 = 16;

fn sample(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn sysbench_sees_no_error_across_twenty_switchovers_by_pivot_through_the_protocol_mode() {
    let w = free_port();
    let toml = format!(
        "[cluster.proxy]\nwrite = \"127.0.0.1:{w}\"\nmode = \"mysql\"\nhold_timeout = \"30s\"\ntransaction_grace = \"2s\"\n"
    );
    let mut rig = Rig::start(2, false, |_| toml).await;
    with_api_token(&rig);
    rig.pivot.stop();
    restart_daemon(&mut rig);
    rig.wait_healthy_with_primary(&rig.key("node1")).await;
    // Commits do not wait for this machine's disk: the replica keeps up.
    for node in ["node1", "node2"] {
        let mut admin = rig.sb.admin(node).await.unwrap();
        for st in admin.dialect.commit_without_fsync() {
            admin.exec(&st).await.unwrap();
        }
    }
    let app = rig.sb.credentials("app").unwrap();
    let sysbench = |port: u16, args: &[&str]| Sysbench::oltp_read_write(&app, port, args);
    let node1 = rig.sb.key("node1").unwrap();
    let prepare = sysbench(node1.port, &["prepare"]).output().unwrap();
    assert!(prepare.status.success(), "sysbench prepare: {}", String::from_utf8_lossy(&prepare.stderr));
    let mut run = Sysbench(Some(
        sysbench(w, &[&format!("--threads={THREADS}"), "--time=900", "--report-interval=0", "run"]).spawn().unwrap(),
    ));
    let active = |m: &str, node: &str| {
        sample(m, "pivot_proxy_backend_active", &format!("port=\"write\",backend=\"{}\"", rig.key(node)))
    };
    let t0 = Instant::now();
    for i in 0..=SWITCHOVERS {
        let (old, new) = if i % 2 == 0 { ("node2", "node1") } else { ("node1", "node2") };
        let started = Instant::now();
        if i > 0 {
            // Refused, nothing changed, until pivot sees the last one's old
            // primary replicating from the new one: asked again.
            loop {
                let out = cli(&rig, &["switchover", "--cluster", "sandbox", "--to", &rig.key(new)]);
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                if out.status.success() {
                    break;
                }
                let refused = text.contains("nothing was changed");
                assert!(
                    refused && started.elapsed() < WAIT,
                    "switchover {i} to {new}: {text}\nsysbench: {}",
                    run.end()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // Every session on the new primary, or sysbench stopped (an error).
        loop {
            let m = http_get(rig.addr, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
            if active(&m, new) == THREADS && active(&m, old) == 0 {
                break;
            }
            if !run.running() {
                panic!("sysbench stopped at switchover {i}: {}", run.end());
            }
            assert!(started.elapsed() < WAIT, "switchover {i}: sessions not all on {new}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if i > 0 {
            eprintln!("switchover {i} to {new}: all sessions there after {} ms", started.elapsed().as_millis());
        }
    }
    let m = http_get(rig.addr, "/metrics").await.map(|(_, b)| b).unwrap_or_default();
    let migrated = sample(&m, "pivot_proxy_sessions_migrated_total", "sandbox");
    let ended: u64 = m
        .lines()
        .filter(|l| l.starts_with("pivot_proxy_sessions_ended_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    eprintln!(
        "{SWITCHOVERS} switchovers by pivot in {} ms: sessions migrated {migrated}, ended {ended}",
        t0.elapsed().as_millis()
    );
    // The switchover waited for the proxy's sessions before read-only.
    let h = rig.history();
    let r = last_recovery(&h).to_string();
    assert!(r.contains("the proxy's sessions left their transactions on it within"), "{r}");
    assert!(run.running(), "sysbench stopped (at an error?)");
    let out = run.end();
    assert!(!out.contains("FATAL") && !out.contains("error"), "sysbench reported an error:\n{out}");
    assert_eq!(ended, 0, "no session had to be ended");
    assert_eq!(migrated, SWITCHOVERS as u64 * THREADS, "every session moved at every switchover");
}
