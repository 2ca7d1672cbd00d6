//! Convergence per route: kill -9 of the primary under a client that finds
//! the primary only through that route (pivot's proxy write port; DNS, asked
//! again at every reconnect; an etcd watch on the published key). Time from
//! the fault to the client's first acknowledged write on the new primary,
//! and writes the old primary acknowledged after that one (must be 0).

use crate::stats::{ms, summarize};
use pivot_core::InstanceKey;
use pivot_drill::{Lookup, PivotProcess, TestSandbox, Writer, WriterTarget};
use pivot_state::StateStore;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Proxy,
    Dns,
    Etcd,
}

impl Route {
    pub fn parse(s: &str) -> anyhow::Result<Route> {
        Ok(match s {
            "proxy" => Route::Proxy,
            "dns" => Route::Dns,
            "etcd" => Route::Etcd,
            other => anyhow::bail!("route `{other}`: use proxy, dns or etcd"),
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Route::Proxy => "pivot's proxy write port; the client reconnects there on error",
            Route::Dns => {
                "pivot's DNS (TTL 1 s); the client asks `dig` for the SRV and A records again at every reconnect"
            }
            Route::Etcd => "etcd: the client watches mysql/master/<cluster> and reconnects to what it names",
        }
    }
}

/// A process this benchmark started, killed by PID on drop.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

pub async fn run(routes: &[Route], trials: usize) -> anyhow::Result<()> {
    let pivot = crate::pivot_binary()?;
    for &route in routes {
        println!(
            "\nroute {route:?}: {}; kill -9 of the primary, 3-node semi-sync sandbox, {trials} trials",
            route.describe()
        );
        let (mut first, mut writable, mut late_total, mut failed) = (Vec::new(), Vec::new(), 0, 0);
        for i in 1..=trials {
            match trial(&pivot, route).await {
                Ok(t) => {
                    println!(
                        "  trial {i:>2}: new primary writable {}, client's first write on it {}, late writes on the old primary {}",
                        ms(t.writable),
                        ms(t.first),
                        t.late
                    );
                    first.push(t.first);
                    writable.push(t.writable);
                    late_total += t.late;
                }
                Err(e) => {
                    failed += 1;
                    println!("  trial {i:>2}: FAILED: {e}");
                }
            }
        }
        if first.is_empty() {
            continue;
        }
        let (f, w) = (summarize(&first), summarize(&writable));
        println!(
            "  {route:?}: first write on the new primary median {} worst {} (new primary writable median {} worst {}); \
             late writes on the old primary: {late_total}; failed trials: {failed}",
            ms(f.median),
            ms(f.worst),
            ms(w.median),
            ms(w.worst)
        );
    }
    Ok(())
}

struct Trial {
    first: Duration,
    writable: Duration,
    late: usize,
}

/// A one-member etcd on free loopback ports, its data in `dir`.
fn start_etcd(dir: &std::path::Path) -> anyhow::Result<(Owned, String)> {
    let url = format!("http://127.0.0.1:{}", free_port());
    let peer = format!("http://127.0.0.1:{}", free_port());
    let log = std::fs::File::create(dir.join("etcd.log"))?;
    let child = Command::new("etcd")
        .arg("--name=bench")
        .arg(format!("--data-dir={}", dir.join("etcd-data").display()))
        .arg(format!("--listen-client-urls={url}"))
        .arg(format!("--advertise-client-urls={url}"))
        .arg(format!("--listen-peer-urls={peer}"))
        .arg(format!("--initial-advertise-peer-urls={peer}"))
        .arg(format!("--initial-cluster=bench={peer}"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| anyhow::anyhow!("etcd: {e} (Debian package etcd-server)"))?;
    Ok((Owned(child), url))
}

/// `dig` for the SRV of the primary, then the A record of its target.
async fn dig_primary(port: u16) -> Option<InstanceKey> {
    let dig = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("dig").args(args).output().await.ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines().next().map(str::to_string)
    };
    let base = vec![format!("@127.0.0.1"), format!("-p{port}"), "+short".into(), "+tries=1".into(), "+time=1".into()];
    let mut srv = base.clone();
    srv.extend(["SRV".to_string(), "_mysql._tcp.primary.sandbox.bench.pivot".to_string()]);
    let line = dig(srv).await?;
    let mut f = line.split_whitespace();
    let (_, _, db_port, target) = (f.next()?, f.next()?, f.next()?.parse::<u16>().ok()?, f.next()?);
    let mut a = base;
    a.extend(["A".to_string(), target.to_string()]);
    let ip = dig(a).await?;
    format!("{ip}:{db_port}").parse().ok()
}

/// Keep `latest` on the value of the key, through an etcd watch.
async fn watch_etcd(url: String, latest: Arc<Mutex<Option<InstanceKey>>>) {
    use etcd_client::{Client, EventType};
    loop {
        let Ok(mut c) = Client::connect([url.as_str()], None).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if let Ok(r) = c.get("mysql/master/sandbox", None).await {
            if let Some(kv) = r.kvs().first() {
                *latest.lock().unwrap() = kv.value_str().ok().and_then(|v| v.parse().ok());
            }
        }
        let Ok(mut stream) = c.watch("mysql/master/sandbox", None).await else { continue };
        while let Ok(Some(resp)) = stream.message().await {
            for ev in resp.events() {
                if ev.event_type() == EventType::Put {
                    if let Some(kv) = ev.kv() {
                        *latest.lock().unwrap() = kv.value_str().ok().and_then(|v| v.parse().ok());
                    }
                }
            }
        }
    }
}

async fn wait_healthy(sb: &TestSandbox) -> anyhow::Result<()> {
    let api: std::net::SocketAddr = ([127, 0, 0, 1], sb.manifest.http_port).into();
    for _ in 0..2000 {
        if let Ok((_, body)) = pivot_drill::http_get(api, "/api/clusters/sandbox").await {
            if body.contains("\"code\":\"healthy\"") {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("cluster never healthy under pivot")
}

async fn trial(pivot_bin: &std::path::Path, route: Route) -> anyhow::Result<Trial> {
    let mut sb = TestSandbox::up_with(|s| pivot_sandbox::SandboxSpec { nodes: 3, semi_sync: true, ..s }).await;
    let mut admin = sb.admin("node1").await?;
    Writer::create_table(&mut admin).await;
    drop(admin);
    let mut text = std::fs::read_to_string(sb.config_path())?;
    let mut keep: Vec<Owned> = Vec::new();
    let port = free_port();
    let target = match route {
        Route::Proxy => {
            // `[pivot.dns]` must come before the first `[[cluster]]`; the proxy is a cluster table.
            text.push_str(&format!("\n[cluster.proxy]\nwrite = \"127.0.0.1:{port}\"\n"));
            let servers = sb.nodes().iter().map(|n| (n.server_id, sb.key(&n.name).unwrap())).collect();
            WriterTarget::Proxy { proxy: format!("127.0.0.1:{port}").parse()?, servers }
        }
        Route::Dns => {
            text = text.replacen(
                "[[cluster]]",
                &format!(
                    "[pivot.dns]\nlisten = \"127.0.0.1:{port}\"\ndomain = \"bench.pivot\"\nttl = \"1s\"\n\n[[cluster]]"
                ),
                1,
            );
            let lookup: Lookup = Arc::new(move || Box::pin(dig_primary(port)));
            WriterTarget::Lookup(lookup)
        }
        Route::Etcd => {
            let (etcd, url) = start_etcd(&sb.dir)?;
            keep.push(etcd);
            text.push_str(&format!("\n[cluster.etcd]\nendpoints = [\"{url}\"]\n"));
            let latest = Arc::new(Mutex::new(None));
            tokio::spawn(watch_etcd(url, latest.clone()));
            let lookup: Lookup = Arc::new(move || {
                let v = latest.lock().unwrap().clone();
                Box::pin(async move { v })
            });
            WriterTarget::Lookup(lookup)
        }
    };
    std::fs::write(sb.config_path(), text)?;
    let mut pivot = PivotProcess::start(pivot_bin, &sb.config_path(), &sb.dir.join("bench-pivot.log"));
    wait_healthy(&sb).await?;
    let old = sb.key("node1")?;
    let writer = Writer::start(1, target, sb.credentials("app")?, Duration::from_secs(5), Duration::from_millis(1));
    let phase = (SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) % 250) as u64;
    tokio::time::sleep(Duration::from_millis(1500 + phase)).await;
    anyhow::ensure!(writer.acks().iter().any(|a| a.instance == old), "no write through the route before the fault");
    let (fault_at, fault_ms) = (Instant::now(), unix_ms());
    sb.kill("node1")?;
    let state = pivot_state::SqliteStore::open(&sb.dir.join("pivot.db"))?;
    let mut recovery = None;
    for _ in 0..3000 {
        recovery = state.recoveries(None, 1)?.pop().filter(|r| r.ended_at.is_some());
        if recovery.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovery = recovery.ok_or_else(|| anyhow::anyhow!("no recovery within 30 s"))?;
    let new: InstanceKey = recovery.new_primary.as_deref().unwrap_or_default().parse()?;
    let promoted = recovery
        .steps
        .iter()
        .filter(|s| s.name == "promote")
        .filter_map(|s| s.ended_at)
        .max()
        .ok_or_else(|| anyhow::anyhow!("no promotion"))?;
    let mut first = None;
    for _ in 0..1000 {
        first = writer.first_ack_on(&new, fault_at);
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first = first.ok_or_else(|| anyhow::anyhow!("no write through the route on {new}"))?;
    let acks = writer.stop().await;
    let late = acks.iter().filter(|a| a.instance == old && a.at > first).count();
    pivot.stop();
    drop(keep);
    sb.down(true)?;
    Ok(Trial { first: first - fault_at, writable: Duration::from_millis((promoted - fault_ms).max(0) as u64), late })
}
