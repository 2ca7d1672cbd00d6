//! The failover benchmark: a 3-node semi-sync sandbox under write load, the
//! primary killed (SIGKILL) or hung (SIGSTOP, resumed later), `pivot run`
//! with its default settings doing the rest. Prints per-trial figures and the
//! median and worst of each.

use crate::stats::{ms, summarize};
use pivot_core::InstanceKey;
use pivot_drill::{missing_writes, PivotProcess, TestSandbox, Writer, WriterTarget};
use pivot_state::StateStore;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fault {
    Kill,
    Stop,
    /// Network namespaces: the primary cut off from pivot and the replicas,
    /// healed after `resume_after`.
    Isolate,
}

#[derive(Default)]
struct Trial {
    detection: Option<Duration>,
    decision: Option<Duration>,
    writable: Option<Duration>,
    first_write: Option<Duration>,
    repointed: Option<Duration>,
    split_brain: usize,
    split_brain_divergent: usize,
    lost: usize,
    acked: usize,
    /// SIGSTOP only: resume until pivot had the old primary read-only.
    two_writers: Option<Duration>,
    /// The recovery's slowest step and how long it took.
    slowest: Option<(String, i64)>,
    /// Isolate only: how long a client saw the old primary writable after
    /// it first answered again (zero: never seen writable).
    seen_writable: Option<Duration>,
    failed: Option<String>,
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn since(fault_ms: i64, t: Option<i64>) -> Option<Duration> {
    t.map(|t| Duration::from_millis((t - fault_ms).max(0) as u64))
}

/// How a trial is set up.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub resume_after: Duration,
    /// `pivot sandbox stonith` as the fence hook.
    pub stonith: bool,
    pub semi_sync: bool,
}

pub async fn run(trials: usize, faults: &[Fault], setup: Setup) -> anyhow::Result<()> {
    let pivot = crate::pivot_binary()?;
    for &fault in faults {
        let fence =
            if setup.stonith { "; fence hook: `pivot sandbox stonith` (SIGKILL of the old primary)" } else { "" };
        let replication = if setup.semi_sync { "semi-sync" } else { "asynchronous replication" };
        println!("\nfailover benchmark: {fault:?}, {trials} trial(s), 3-node MariaDB sandbox with {replication}, pivot defaults (poll 250ms, probe timeout 1s, confirm window 1s){fence}");
        let mut results = Vec::new();
        for i in 1..=trials {
            let t = trial(&pivot, fault, setup).await;
            print_trial(i, &t);
            results.push(t);
        }
        summary(fault, &results);
    }
    Ok(())
}

async fn trial(pivot_bin: &std::path::Path, fault: Fault, setup: Setup) -> Trial {
    match trial_inner(pivot_bin, fault, setup).await {
        Ok(t) => t,
        Err(e) => Trial { failed: Some(e.to_string()), ..Trial::default() },
    }
}

async fn trial_inner(pivot_bin: &std::path::Path, fault: Fault, setup: Setup) -> anyhow::Result<Trial> {
    let Setup { resume_after, stonith, semi_sync } = setup;
    let network =
        if fault == Fault::Isolate { pivot_sandbox::Network::Namespaces } else { pivot_sandbox::Network::Loopback };
    let mut sb = TestSandbox::up_with(|s| pivot_sandbox::SandboxSpec { nodes: 3, semi_sync, network, ..s }).await;
    let mut admin = sb.admin("node1").await?;
    Writer::create_table(&mut admin).await;
    drop(admin);
    if stonith {
        let hook = format!(
            "\n[cluster.hooks]\nfence = [\"{}\", \"sandbox\", \"stonith\", \"--dir\", \"{}\"]\n",
            pivot_bin.display(),
            sb.dir.display()
        );
        let mut text = std::fs::read_to_string(sb.config_path())?;
        text.push_str(&hook);
        std::fs::write(sb.config_path(), text)?;
    }
    let log = sb.dir.join("bench-pivot.log");
    let mut pivot = PivotProcess::start(pivot_bin, &sb.config_path(), &log);
    let api: std::net::SocketAddr = ([127, 0, 0, 1], sb.manifest.http_port).into();
    wait_until(Duration::from_secs(20), || async {
        let (_, body) = pivot_drill::http_get(api, "/api/clusters/sandbox").await.ok()?;
        body.contains("\"code\":\"healthy\"").then_some(())
    })
    .await
    .ok_or_else(|| anyhow::anyhow!("cluster never healthy under pivot"))?;

    let keys: Vec<InstanceKey> = sb.nodes().iter().map(|n| sb.key(&n.name).unwrap()).collect();
    let old = keys[0].clone();
    let app = sb.credentials("app")?;
    let writer = Writer::start(
        1,
        WriterTarget::FollowPrimary(keys.clone()),
        app.clone(),
        Duration::from_millis(250),
        Duration::from_millis(1),
    );
    let stubborn =
        Writer::start(2, WriterTarget::Fixed(old.clone()), app, Duration::from_secs(30), Duration::from_millis(2));
    // A random phase against pivot's 250 ms probe schedule: a fixed delay
    // would always strike at the same point of it.
    let phase = (SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) % 250) as u64;
    tokio::time::sleep(Duration::from_millis(1500 + phase)).await;

    let (fault_at, fault_ms) = (Instant::now(), unix_ms());
    match fault {
        Fault::Kill => sb.kill("node1")?,
        Fault::Stop => sb.pause("node1")?,
        Fault::Isolate => sb.isolate("node1")?,
    }
    let state = pivot_state::SqliteStore::open(&sb.dir.join("pivot.db"))?;
    let recovery = wait_until(Duration::from_secs(30), || async {
        state.recoveries(None, 1).ok()?.pop().filter(|r| r.ended_at.is_some())
    })
    .await
    .ok_or_else(|| anyhow::anyhow!("no recovery within 30 s"))?;
    let new: InstanceKey = recovery
        .new_primary
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(|_| anyhow::anyhow!("recovery without a new primary: {:?}", recovery.summary))?;
    let first_ack = wait_until(Duration::from_secs(10), || async { writer.first_ack_on(&new, fault_at) })
        .await
        .ok_or_else(|| anyhow::anyhow!("no write acknowledged by {new}"))?;
    let step_end = |name: &str| recovery.steps.iter().filter(|s| s.name == name).filter_map(|s| s.ended_at).max();
    let slowest = recovery
        .steps
        .iter()
        .filter_map(|s| Some((s.name.clone(), s.ended_at? - s.started_at)))
        .max_by_key(|(_, d)| *d);
    let mut t = Trial {
        detection: since(fault_ms, recovery.detected_at),
        decision: since(fault_ms, Some(recovery.started_at)),
        writable: since(fault_ms, step_end("promote")),
        first_write: Some(first_ack - fault_at),
        repointed: since(fault_ms, step_end("confirm_replicating").or(step_end("promote"))),
        slowest,
        ..Trial::default()
    };
    if fault == Fault::Stop && !stonith {
        let wait = resume_after.saturating_sub(fault_at.elapsed());
        tokio::time::sleep(wait).await;
        let resumed_ms = unix_ms();
        sb.resume("node1")?;
        let fenced = wait_until(Duration::from_secs(10), || async {
            state
                .events(Some("sandbox"), 20)
                .ok()?
                .into_iter()
                .find(|e| e.message.starts_with(&format!("former primary {old}")) && e.at >= resumed_ms)
        })
        .await;
        t.two_writers = fenced.map(|e| Duration::from_millis((e.at - resumed_ms).max(0) as u64));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if fault == Fault::Isolate {
        let wait = resume_after.saturating_sub(fault_at.elapsed());
        tokio::time::sleep(wait).await;
        let admin = sb.credentials("admin")?;
        sb.heal("node1")?;
        t.seen_writable = seen_writable(&old, &admin).await;
    }
    let follow = writer.stop().await;
    let fixed = stubborn.stop().await;
    let node = sb.node_at(&new).map(|n| n.name.clone()).unwrap_or_default();
    let mut new_admin = sb.admin(&node).await?;
    t.acked = follow.len();
    t.lost = missing_writes(&mut new_admin, &follow).await.len();
    let late: Vec<_> = fixed.into_iter().filter(|a| a.at > first_ack).collect();
    t.split_brain = late.len();
    t.split_brain_divergent = missing_writes(&mut new_admin, &late).await.len();
    pivot.stop();
    drop(new_admin);
    sb.down(true)?;
    Ok(t)
}

/// After a heal: connect to `old` again and again (a new connection each
/// time, as a client would) and read whether it is writable. Returns how long
/// it was seen writable after its first answer (zero if never).
async fn seen_writable(old: &InstanceKey, creds: &pivot_server::Credentials) -> Option<Duration> {
    let start = Instant::now();
    let mut first_writable: Option<Instant> = None;
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(mut s) = pivot_server::Session::connect(old, creds, Duration::from_millis(200)).await {
            if let Ok((_, writable)) = pivot_server::actions::executed_and_writable(&mut s).await {
                match (writable, first_writable) {
                    (true, None) => first_writable = Some(Instant::now()),
                    (false, Some(t)) => return Some(t.elapsed()),
                    (false, None) => return Some(Duration::ZERO),
                    (true, Some(_)) => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

async fn wait_until<T, F, Fut>(limit: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn opt(d: Option<Duration>) -> String {
    d.map_or("-".into(), ms)
}

fn print_trial(i: usize, t: &Trial) {
    if let Some(e) = &t.failed {
        println!("  trial {i:>2}: FAILED: {e}");
        return;
    }
    println!(
        "  trial {i:>2}: detection {}, decision {}, new primary writable {}, first acknowledged write {}, replicas repointed {}; \
         acknowledged writes {} (lost {}); split-brain writes {} ({} only on the old primary){}",
        opt(t.detection),
        opt(t.decision),
        opt(t.writable),
        opt(t.first_write),
        opt(t.repointed),
        t.acked,
        t.lost,
        t.split_brain,
        t.split_brain_divergent,
        t.two_writers
            .map(|d| format!("; old primary read-only {} after it resumed", ms(d)))
            .or(t.seen_writable.map(|d| format!("; old primary seen writable {} after it first answered", ms(d))))
            .unwrap_or_default()
    );
    if let Some((name, d)) = &t.slowest {
        println!("            slowest step: {name} {d} ms");
    }
}

fn summary(fault: Fault, results: &[Trial]) {
    let ok: Vec<&Trial> = results.iter().filter(|t| t.failed.is_none()).collect();
    println!("summary {fault:?}: {} of {} trials completed", ok.len(), results.len());
    let line = |name: &str, pick: &dyn Fn(&Trial) -> Option<Duration>| {
        let v: Vec<Duration> = ok.iter().filter_map(|t| pick(t)).collect();
        if v.is_empty() {
            return;
        }
        let s = summarize(&v);
        println!("  {name:<44} median {:>10}   worst {:>10}", ms(s.median), ms(s.worst));
    };
    line("fault -> detection", &|t| t.detection);
    line("fault -> decision", &|t| t.decision);
    line("fault -> new primary writable", &|t| t.writable);
    line("fault -> first acknowledged write", &|t| t.first_write);
    line("fault -> all replicas repointed", &|t| t.repointed);
    line("resume -> old primary read-only (two writers)", &|t| t.two_writers);
    line("heal: first answer -> read-only (seen writable)", &|t| t.seen_writable);
    let sum = |f: &dyn Fn(&Trial) -> usize| ok.iter().map(|t| f(t)).sum::<usize>();
    println!(
        "  acknowledged writes lost: {} of {}; split-brain writes: {} in all trials ({} of them exist only on the old primary)",
        sum(&|t| t.lost),
        sum(&|t| t.acked),
        sum(&|t| t.split_brain),
        sum(&|t| t.split_brain_divergent)
    );
}
