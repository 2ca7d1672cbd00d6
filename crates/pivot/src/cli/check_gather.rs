//! What `pivot check` reads before it judges: the cluster as `observe` sees
//! it, each instance's extra readings, the hooks on disk, and where the
//! routes point (the stored epoch, the running daemon, etcd/Consul keys).

use crate::config::{ClusterConfig, Config};
use pivot_core::check::{HookFact, InstanceExtra, RouteFact};
use pivot_core::{ClusterAnalysis, ClusterView, InstanceKey};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// How long the running daemon gets to answer for its route table.
const DAEMON_WAIT: Duration = Duration::from_secs(2);

pub struct Gathered {
    pub view: ClusterView,
    pub analysis: ClusterAnalysis,
    pub extra: BTreeMap<InstanceKey, InstanceExtra>,
    pub hooks: Vec<HookFact>,
    pub routes: Vec<RouteFact>,
    /// What could not be read (never a finding by itself).
    pub notes: Vec<String>,
    /// Why the daemon would not start a failover by itself now: automatic
    /// recovery off, a block after a recent recovery, a recovery running.
    pub not_automatic: Vec<String>,
}

/// Read everything about cluster `c`. Fails ("could not check") when no
/// instance answers at all.
pub async fn gather(config: &Config, c: &ClusterConfig) -> anyhow::Result<Gathered> {
    let state = match pivot_state::open_existing(&config.pivot.state) {
        Ok(s) => Some(s),
        Err(pivot_state::StateError::Missing { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let (view, analysis) = super::observe(c, state.as_deref()).await;
    if view.records.values().all(|r| !r.reachable()) {
        let why: Vec<String> = view
            .records
            .iter()
            .map(|(k, r)| format!("{k}: {}", r.latest.failure().map_or("not probed", |f| f.message.as_str())))
            .collect();
        anyhow::bail!(
            "could not check cluster `{}`: no instance answers ({}); check `seeds` and [cluster.credentials] in {}",
            c.name,
            why.join("; "),
            config.path.display()
        );
    }
    let mut notes = Vec::new();
    let mut reads = tokio::task::JoinSet::new();
    for (key, _) in view.records.iter().filter(|(_, r)| r.reachable()) {
        let (key, creds, timeout) = (key.clone(), c.credentials.clone(), c.probe_timeout);
        let heartbeat = c.heartbeat.as_ref().map(|h| h.table.clone());
        reads.spawn(async move {
            let wall = crate::clock::wall_ms;
            let r = pivot_server::read_check_extra(&key, &creds, timeout, wall, heartbeat.as_ref()).await;
            (key, r)
        });
    }
    let mut extra = BTreeMap::new();
    while let Some(done) = reads.join_next().await {
        match done {
            Ok((key, Ok(e))) => {
                extra.insert(key, e);
            }
            Ok((key, Err(e))) => notes.push(format!("{key}: variables, privileges and clock not read: {e}")),
            Err(e) => notes.push(format!("a reading task failed: {e}")),
        }
    }
    let routes = routes(config, c, state.as_deref(), &mut notes).await;
    let not_automatic = not_automatic(c, state.as_deref(), &mut notes);
    Ok(Gathered { view, analysis, extra, hooks: hooks(c), routes, notes, not_automatic })
}

/// What keeps the daemon from failing over by itself now (the gate's
/// reasons that live in the configuration and the state file).
fn not_automatic(
    c: &ClusterConfig,
    state: Option<&dyn pivot_state::StateStore>,
    notes: &mut Vec<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    if !c.failover.automatic {
        out.push("[cluster.failover] automatic = false: an operator must run `pivot failover`".to_string());
    }
    let Some(state) = state else { return out };
    let now = crate::clock::wall_ms();
    match state.block_of(&c.name) {
        Ok(Some(b)) if b.active(now) => out.push(format!(
            "automatic recovery is blocked until {} after recovery {} (block_period): `pivot ack` allows it again",
            crate::render::time_text(b.blocked_until),
            b.recovery_id.map_or("-".to_string(), |id| id.to_string())
        )),
        Ok(_) => {}
        Err(e) => notes.push(format!("the recovery block was not read: {e}")),
    }
    match state.running_recovery(&c.name) {
        Ok(Some(r)) => out.push(format!("recovery {} is running: no other starts until it ends", r.id)),
        Ok(None) => {}
        Err(e) => notes.push(format!("the running recovery was not read: {e}")),
    }
    out
}

/// Every configured hook, with why it would not run (if so).
fn hooks(c: &ClusterConfig) -> Vec<HookFact> {
    let h = &c.hooks;
    let argv = [
        ("pre_failover", &h.pre_failover),
        ("post_failover", &h.post_failover),
        ("post_unsuccessful_failover", &h.post_unsuccessful_failover),
        ("pre_switchover", &h.pre_switchover),
        ("post_switchover", &h.post_switchover),
        ("fence", &h.fence),
        ("alert", &h.alert),
    ];
    let mut programs: Vec<(&str, String)> =
        argv.iter().filter_map(|(n, v)| v.as_ref().and_then(|v| v.first()).map(|p| (*n, p.clone()))).collect();
    programs.extend(h.mha_master_ip_failover.iter().map(|p| ("mha_master_ip_failover", p.clone())));
    programs
        .into_iter()
        .map(|(name, program)| HookFact { name: name.to_string(), problem: program_problem(&program), program })
        .collect()
}

fn executable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(format!("{} is not an executable file", path.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Why `program` would not start: missing, not executable, or its `#!`
/// interpreter (or the program `env` is asked for) missing.
fn program_problem(program: &str) -> Option<String> {
    if let Err(e) = executable(Path::new(program)) {
        return Some(e);
    }
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
    let first = String::from_utf8_lossy(&head[..n]);
    let line = first.lines().next()?.strip_prefix("#!")?;
    let mut words = line.split_whitespace();
    let interpreter = words.next()?;
    if let Err(e) = executable(Path::new(interpreter)) {
        return Some(format!("its interpreter: {e}"));
    }
    if interpreter.ends_with("/env") {
        let wanted = words.find(|w| !w.starts_with('-') && !w.contains('='))?;
        let path = std::env::var_os("PATH").unwrap_or_default();
        if !std::env::split_paths(&path).any(|dir| executable(&dir.join(wanted)).is_ok()) {
            return Some(format!("its interpreter `{wanted}` (through env) is not in PATH"));
        }
    }
    None
}

/// Where the routes point: the stored epoch (which every route follows),
/// the running daemon's route table, the etcd/Consul keys.
async fn routes(
    config: &Config,
    c: &ClusterConfig,
    state: Option<&dyn pivot_state::StateStore>,
    notes: &mut Vec<String>,
) -> Vec<RouteFact> {
    let mut out = Vec::new();
    match state.map(|s| s.epoch(&c.name)) {
        Some(Ok(Some(e))) => out.push(RouteFact {
            route: format!("epoch {} in the state file (every route follows it)", e.number),
            points_to: e.primary.parse().ok(),
        }),
        Some(Err(e)) => notes.push(format!("the stored epoch was not read: {e}")),
        _ => {}
    }
    if let Some(addr) = config.pivot.http {
        match daemon_routes(addr, &c.name).await {
            Ok(table) if table.hold => notes.push(format!("the daemon at {addr} holds writes: a recovery is running")),
            Ok(table) => out.push(RouteFact {
                route: format!("the route table of the pivot daemon at {addr} (proxy, DNS, health checks, VIP)"),
                points_to: table.primary,
            }),
            Err(e) => notes.push(format!("no pivot daemon answers at {addr} ({e}): its routes were not compared")),
        }
    }
    for kv in crate::routes::kv::KvPublisher::all(c) {
        let what = format!("{} key {}", kv.kind().as_str(), kv.layout().base());
        match kv.read_primary().await {
            Ok(value) => {
                out.push(RouteFact { route: what, points_to: value.and_then(|v| v.parse().ok()) });
            }
            Err(e) => notes.push(format!("{what} was not read: {e}")),
        }
    }
    out
}

async fn daemon_routes(addr: std::net::SocketAddr, cluster: &str) -> Result<pivot_core::routes::RouteTable, String> {
    let at: InstanceKey = addr.to_string().parse().map_err(|e| format!("{e}"))?;
    let path = format!("/api/clusters/{cluster}/routes");
    let token = pivot_server::Secret::default();
    let request = crate::routes::vip::client::request(&at, &token, hyper::Method::GET, &path, None);
    let (status, body) = tokio::time::timeout(DAEMON_WAIT, request).await.map_err(|_| "no answer in time")??;
    if status != 200 {
        return Err(format!("HTTP {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| format!("unexpected answer: {e}"))
}
