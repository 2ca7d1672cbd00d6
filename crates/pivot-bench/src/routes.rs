//! Convergence per route: kill -9 of the primary under a client that finds
//! the primary only through that route (pivot's proxy write port; DNS, asked
//! again at every reconnect; an etcd watch on the published key; the virtual
//! IP `pivot agent` moves, from a client in a network namespace of its own).
//! Time from the fault to the client's first acknowledged write on the new
//! primary, and writes the old primary acknowledged after that one (must be 0).

use crate::stats::{ms, summarize};
use crate::support::{free_port, unix_ms, wait_healthy, Owned};
use pivot_core::InstanceKey;
use pivot_drill::{Agents, ClientNs, Lookup, NetnsRuntime, PivotProcess, TestSandbox, VipLab, Writer, WriterTarget};
use pivot_state::StateStore;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Proxy,
    Dns,
    Etcd,
    Vip,
}

impl Route {
    pub fn parse(s: &str) -> anyhow::Result<Route> {
        Ok(match s {
            "proxy" => Route::Proxy,
            "dns" => Route::Dns,
            "etcd" => Route::Etcd,
            "vip" => Route::Vip,
            other => anyhow::bail!("route `{other}`: use proxy, dns, etcd or vip"),
        })
    }

    fn describe(self) -> &'static str {
        match self {
            Route::Proxy => "pivot's proxy write port; the client reconnects there on error",
            Route::Dns => {
                "pivot's DNS (TTL 1 s); the client asks `dig` for the SRV and A records again at every reconnect"
            }
            Route::Etcd => "etcd: the client watches mysql/master/<cluster> and reconnects to what it names",
            Route::Vip => {
                "a virtual IP moved by `pivot agent` in each node's network namespace (lease 3 s); the client, in a \
                 namespace of its own, reconnects to the address on error"
            }
        }
    }
}

pub async fn run(routes: &[Route], trials: usize) -> anyhow::Result<()> {
    let pivot = crate::pivot_binary()?;
    if routes.contains(&Route::Vip) {
        pivot_drill::require_root("route vip").map_err(|e| anyhow::anyhow!(e))?;
    }
    for &route in routes {
        println!(
            "\nroute {route:?}: {}; kill -9 of the primary, 3-node semi-sync sandbox, {trials} trials",
            route.describe()
        );
        let (mut first, mut writable, mut late_total, mut failed) = (Vec::new(), Vec::new(), 0, 0);
        for i in 1..=trials {
            match trial(&pivot, route).await {
                Ok(t) => {
                    let moved = match &t.moved {
                        Some((at, outcome)) => format!(", route_vip {outcome} at {}", ms(*at)),
                        None => String::new(),
                    };
                    let syn = match t.syn_retrans {
                        Some(n) => format!(" (client's SYN retransmits {n})"),
                        None => String::new(),
                    };
                    println!(
                        "  trial {i:>2}: new primary writable {}{moved}, client's first write on it {}{syn}, late writes on the old primary {}",
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

pub(crate) struct Trial {
    pub(crate) first: Duration,
    pub(crate) writable: Duration,
    pub(crate) late: usize,
    /// The vip route: when its `route_vip` step ended (the address on the
    /// new primary's host), and how.
    pub(crate) moved: Option<(Duration, String)>,
    /// The vip route: SYNs the client retransmitted between the fault and
    /// its first write on the new primary (a connect whose SYN goes
    /// unanswered waits TCP's 1 s initial retransmission timeout).
    pub(crate) syn_retrans: Option<u64>,
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
    use etcd_client::{Client, EventType, WatchOptions};
    let key = "mysql/master/sandbox";
    loop {
        // The value now, then every change after that revision (none missed
        // between the read and the watch).
        let watched = async {
            let mut c = Client::connect([url.as_str()], None).await.ok()?;
            let r = c.get(key, None).await.ok()?;
            if let Some(kv) = r.kvs().first() {
                *latest.lock().unwrap() = kv.value_str().ok().and_then(|v| v.parse().ok());
            }
            let from = r.header().map_or(0, |h| h.revision()) + 1;
            let mut stream = c.watch(key, Some(WatchOptions::new().with_start_revision(from))).await.ok()?;
            while let Ok(Some(resp)) = stream.message().await {
                for ev in resp.events().iter().filter(|e| e.event_type() == EventType::Put) {
                    if let Some(kv) = ev.kv() {
                        *latest.lock().unwrap() = kv.value_str().ok().and_then(|v| v.parse().ok());
                    }
                }
            }
            Some(())
        };
        let _ = watched.await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The virtual IP route's parts, stopped in this order on drop: the
/// client's runtime, its namespace, the agents.
struct VipClient {
    rt: NetnsRuntime,
    client: ClientNs,
    _agents: Agents,
    /// The address and the servers' port.
    address: InstanceKey,
    client_ip: String,
}

/// From inside the client's namespace: wait until a new connection to
/// `address` reaches server `want` and the server sees the client's own
/// address (`USER()`), i.e. the client is in its namespace and the address
/// is up on the primary.
async fn reach_through(
    address: InstanceKey,
    creds: pivot_server::Credentials,
    want: u32,
    client_ip: String,
) -> anyhow::Result<()> {
    let sql = pivot_dialect::Sql::plain("SELECT @@server_id AS id, USER() AS who");
    let started = Instant::now();
    let mut last = String::from("never connected");
    while started.elapsed() < Duration::from_secs(20) {
        match pivot_server::Session::connect(&address, &creds, Duration::from_secs(2)).await {
            Ok(mut s) => match s.rows(&sql).await {
                Ok(rows) => {
                    let get = |c: &str| rows.first().and_then(|r| r.get(c).cloned().flatten()).unwrap_or_default();
                    let (id, who) = (get("id"), get("who"));
                    anyhow::ensure!(
                        who.ends_with(&format!("@{client_ip}")),
                        "the server sees the client as {who}, not from {client_ip}: not in its namespace"
                    );
                    if id == want.to_string() {
                        return Ok(());
                    }
                    last = format!("server {id}");
                }
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the client never reached server {want} through {address}: {last}")
}

pub(crate) async fn trial(pivot_bin: &std::path::Path, route: Route) -> anyhow::Result<Trial> {
    let network =
        if route == Route::Vip { pivot_sandbox::Network::Namespaces } else { pivot_sandbox::Network::Loopback };
    let mut sb = TestSandbox::up_with(|s| pivot_sandbox::SandboxSpec { nodes: 3, semi_sync: true, network, ..s }).await;
    let mut admin = sb.admin("node1").await?;
    Writer::create_table(&mut admin).await;
    drop(admin);
    let mut text = std::fs::read_to_string(sb.config_path())?;
    let mut keep: Vec<Owned> = Vec::new();
    // Declared after `sb`: gone before the sandbox is, even on an error.
    let mut vip: Option<VipClient> = None;
    let port = free_port();
    let servers: Vec<(u32, InstanceKey)> = sb.nodes().iter().map(|n| (n.server_id, sb.key(&n.name).unwrap())).collect();
    let target = match route {
        Route::Proxy => {
            // `[pivot.dns]` must come before the first `[[cluster]]`; the proxy is a cluster table.
            text.push_str(&format!("\n[cluster.proxy]\nwrite = \"127.0.0.1:{port}\"\n"));
            WriterTarget::Proxy { proxy: format!("127.0.0.1:{port}").parse()?, servers }
        }
        Route::Vip => {
            text.push_str(&format!("\n{}", pivot_drill::vip_table(&sb, false)?));
            let lab = VipLab::of(&sb);
            let agents = Agents::start(pivot_bin, &sb).await.map_err(anyhow::Error::msg)?;
            let client = ClientNs::create(&lab).map_err(anyhow::Error::msg)?;
            let rt = NetnsRuntime::start(&client.ns).map_err(anyhow::Error::msg)?;
            let address: InstanceKey = format!("{}:{}", lab.vip(), sb.nodes()[0].port).parse()?;
            let client_ip = ClientNs::address(&lab);
            vip = Some(VipClient { rt, client, _agents: agents, address: address.clone(), client_ip });
            // Reconnects to the address on error; each acknowledgement is
            // credited to the server behind it (`@@server_id`).
            WriterTarget::Proxy { proxy: address, servers }
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
    if let Some(v) = &vip {
        let want = sb.nodes()[0].server_id;
        let check = reach_through(v.address.clone(), sb.credentials("app")?, want, v.client_ip.clone());
        v.rt.handle().spawn(check).await?.map_err(|e| anyhow::anyhow!("from namespace {}: {e}", v.client.ns))?;
    }
    let writer = {
        // The VIP's client writes from inside its namespace.
        let _in_ns = vip.as_ref().map(|v| v.rt.enter());
        Writer::start(1, target, sb.credentials("app")?, Duration::from_secs(5), Duration::from_millis(1))
    };
    // Writes flowing through the route (an etcd watch or a DNS answer may
    // take a moment after start), then a random phase against pivot's probe
    // schedule.
    let mut flowing = false;
    for _ in 0..1000 {
        flowing = writer.acks().iter().any(|a| a.instance == old);
        if flowing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::ensure!(flowing, "no write through the route within 10 s");
    let phase = (SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) % 250) as u64;
    tokio::time::sleep(Duration::from_millis(1000 + phase)).await;
    let syn_retrans = || vip.as_ref().and_then(|v| v.client.tcp_ext("TCPSynRetrans").ok());
    let syn_before = syn_retrans();
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
    let moved =
        (route == Route::Vip).then(|| recovery.steps.iter().find(|s| s.name == "route_vip")).flatten().map(|s| {
            let at = Duration::from_millis(s.ended_at.map_or(0, |t| (t - fault_ms).max(0)) as u64);
            (at, s.outcome.clone().unwrap_or_else(|| "unfinished".into()))
        });
    let mut first = None;
    for _ in 0..1000 {
        first = writer.first_ack_on(&new, fault_at);
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first = first.ok_or_else(|| anyhow::anyhow!("no write through the route on {new}"))?;
    let syn_retrans = syn_before.zip(syn_retrans()).map(|(b, a)| a.saturating_sub(b));
    let acks = writer.stop().await;
    let late = acks.iter().filter(|a| a.instance == old && a.at > first).count();
    pivot.stop();
    drop(keep);
    drop(vip);
    sb.down(true)?;
    Ok(Trial {
        first: first - fault_at,
        writable: Duration::from_millis((promoted - fault_ms).max(0) as u64),
        late,
        moved,
        syn_retrans,
    })
}
