//! Running hooks: external programs at points of a recovery.
//!
//! Data goes to a hook as extra arguments (`--name=value`, one argv element
//! each, so no value can become a flag or a shell word) and as `PIVOT_*`
//! environment variables; nothing is ever interpreted by a shell. Every hook
//! runs in its own process group and is killed with that group when it
//! outlives the timeout. Output is kept (bounded) for the audit log.

use crate::config::HooksConfig;
use pivot_core::plan::HookPoint;
use pivot_core::InstanceKey;
use pivot_server::Secret;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// What a hook is told.
#[derive(Clone, Debug, Default)]
pub struct HookData {
    pub cluster: String,
    pub failed_primary: Option<InstanceKey>,
    pub new_primary: Option<InstanceKey>,
    pub lost_replicas: Vec<InstanceKey>,
    pub recovery_id: Option<i64>,
    pub analysis: String,
    pub signal: String,
    /// For post hooks and alerts: what happened, in words.
    pub outcome: String,
    /// For MHA `--command=start`: the account the script may use on the new primary.
    pub new_primary_user: Option<String>,
    /// Passed to the MHA script (`--command=start`) in its environment only
    /// (`PIVOT_NEW_MASTER_PASSWORD`), never as an argument, never to other
    /// hooks. Every hook's output is scrubbed of it before it is stored.
    pub new_primary_password: Option<Secret>,
    /// For replication-health alerts: `PIVOT_ALERT_*` variables (instance,
    /// kind, states, error, lag); empty for every other hook.
    pub alert_env: Vec<(&'static str, String)>,
}

impl HookData {
    /// What the hooks of recovery `id` of `failed` start with; the machine's
    /// progress (new primary, lost replicas, outcome) is filled in as it goes.
    pub fn for_recovery(
        cluster: &crate::config::ClusterConfig,
        failed: InstanceKey,
        id: i64,
        analysis: String,
        signal: String,
    ) -> HookData {
        HookData {
            cluster: cluster.name.clone(),
            failed_primary: Some(failed),
            recovery_id: Some(id),
            analysis,
            signal,
            new_primary_user: Some(cluster.credentials.user.clone()),
            new_primary_password: Some(cluster.credentials.password.clone()),
            ..HookData::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookResult {
    Succeeded { output: String },
    Failed { code: Option<i32>, output: String },
    TimedOut { after_ms: u64, output: String },
    NotStarted { error: String },
}

impl HookResult {
    pub fn ok(&self) -> bool {
        matches!(self, HookResult::Succeeded { .. })
    }

    pub fn describe(&self) -> String {
        let tail = |o: &str| if o.trim().is_empty() { String::new() } else { format!("; output: {}", o.trim()) };
        match self {
            HookResult::Succeeded { output } => format!("exit 0{}", tail(output)),
            HookResult::Failed { code: Some(c), output } => format!("exit {c}{}", tail(output)),
            HookResult::Failed { code: None, output } => format!("killed by a signal{}", tail(output)),
            HookResult::TimedOut { after_ms, output } => {
                format!("killed after the {after_ms} ms timeout{}", tail(output))
            }
            HookResult::NotStarted { error } => format!("could not start: {error}"),
        }
    }
}

/// The argv configured for `point`, with pivot's data appended; `None` when
/// no hook is configured there.
pub fn command_for(hooks: &HooksConfig, point: HookPoint, data: &HookData) -> Option<Vec<String>> {
    let plain = |argv: &Option<Vec<String>>| {
        argv.as_ref().map(|a| {
            let mut v = a.clone();
            v.extend(pivot_args(point, data));
            v
        })
    };
    match point {
        HookPoint::PreFailover => plain(&hooks.pre_failover),
        HookPoint::PostFailover => plain(&hooks.post_failover),
        HookPoint::PostUnsuccessfulFailover => plain(&hooks.post_unsuccessful_failover),
        HookPoint::PreSwitchover => plain(&hooks.pre_switchover),
        HookPoint::PostSwitchover => plain(&hooks.post_switchover),
        HookPoint::Fence => plain(&hooks.fence),
        HookPoint::Alert => plain(&hooks.alert),
        HookPoint::MhaStop | HookPoint::MhaStart => hooks.mha_master_ip_failover.as_ref().map(|script| {
            let mut v = vec![script.clone()];
            v.extend(mha_args(point, data));
            v
        }),
    }
}

/// [`command_for`] off the runtime's threads: building the MHA arguments
/// resolves host names, which blocks.
pub async fn command_for_off_thread(hooks: &HooksConfig, point: HookPoint, data: &HookData) -> Option<Vec<String>> {
    let (hooks, data) = (hooks.clone(), data.clone());
    tokio::task::spawn_blocking(move || command_for(&hooks, point, &data)).await.ok().flatten()
}

fn pivot_args(point: HookPoint, d: &HookData) -> Vec<String> {
    let mut v = vec![format!("--hook={}", point.as_str()), format!("--cluster={}", d.cluster)];
    if let Some(k) = &d.failed_primary {
        v.push(format!("--failed-primary={k}"));
    }
    if let Some(k) = &d.new_primary {
        v.push(format!("--new-primary={k}"));
    }
    if let Some(id) = d.recovery_id {
        v.push(format!("--recovery-id={id}"));
    }
    v
}

/// The arguments MHA passes to `master_ip_failover_script`, so an existing
/// script works unchanged. The password is not among them (see `HookData`).
fn mha_args(point: HookPoint, d: &HookData) -> Vec<String> {
    let mut v = Vec::new();
    let command = if point == HookPoint::MhaStop { "stop" } else { "start" };
    v.push(format!("--command={command}"));
    if let Some(k) = &d.failed_primary {
        v.push(format!("--orig_master_host={}", k.host));
        v.push(format!("--orig_master_ip={}", ip_of(k)));
        v.push(format!("--orig_master_port={}", k.port));
    }
    if point == HookPoint::MhaStart {
        if let Some(k) = &d.new_primary {
            v.push(format!("--new_master_host={}", k.host));
            v.push(format!("--new_master_ip={}", ip_of(k)));
            v.push(format!("--new_master_port={}", k.port));
        }
        if let Some(u) = &d.new_primary_user {
            v.push(format!("--new_master_user={u}"));
        }
    }
    v
}

fn ip_of(k: &InstanceKey) -> String {
    use std::net::ToSocketAddrs;
    if k.host.parse::<std::net::IpAddr>().is_ok() {
        return k.host.clone();
    }
    (k.host.as_str(), k.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map_or_else(|| k.host.clone(), |a| a.ip().to_string())
}

fn environment(point: HookPoint, d: &HookData) -> Vec<(String, String)> {
    let key = |k: &Option<InstanceKey>| k.as_ref().map(ToString::to_string).unwrap_or_default();
    let host = |k: &Option<InstanceKey>| k.as_ref().map(|k| k.host.clone()).unwrap_or_default();
    let port = |k: &Option<InstanceKey>| k.as_ref().map(|k| k.port.to_string()).unwrap_or_default();
    let mut env = vec![
        ("PIVOT_HOOK", point.as_str().to_string()),
        ("PIVOT_CLUSTER", d.cluster.clone()),
        ("PIVOT_FAILED_PRIMARY", key(&d.failed_primary)),
        ("PIVOT_FAILED_PRIMARY_HOST", host(&d.failed_primary)),
        ("PIVOT_FAILED_PRIMARY_PORT", port(&d.failed_primary)),
        ("PIVOT_NEW_PRIMARY", key(&d.new_primary)),
        ("PIVOT_NEW_PRIMARY_HOST", host(&d.new_primary)),
        ("PIVOT_NEW_PRIMARY_PORT", port(&d.new_primary)),
        ("PIVOT_LOST_REPLICAS", d.lost_replicas.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
        ("PIVOT_RECOVERY_ID", d.recovery_id.map(|i| i.to_string()).unwrap_or_default()),
        ("PIVOT_ANALYSIS", d.analysis.clone()),
        ("PIVOT_SIGNAL", d.signal.clone()),
        ("PIVOT_OUTCOME", d.outcome.clone()),
    ];
    env.extend(d.alert_env.iter().cloned());
    // MHA's convention hands the script the account's password; no other
    // hook ever gets it.
    if point.gets_password() {
        if let Some(p) = &d.new_primary_password {
            env.push(("PIVOT_NEW_MASTER_PASSWORD", p.expose().to_string()));
        }
    }
    env.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Output kept per stream for the audit log.
const OUTPUT_LIMIT: usize = 4096;
/// Read past the limit so a secret cut by it is still recognised (and scrubbed).
const SCRUB_MARGIN: usize = 512;
/// After the hook exits, how long its output pipes may stay open (children
/// that outlive it may hold them); then they are closed.
const PIPE_GRACE: Duration = Duration::from_millis(200);

/// Kills the hook's process group if the hook is dropped before it exited
/// (pivot stopping, the recovery task aborted): nothing it started lingers.
struct GroupGuard(Option<libc::pid_t>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            // SAFETY: signalling the process group of a child we spawned.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// Run one hook to completion or until `timeout`.
pub async fn run(argv: &[String], point: HookPoint, data: &HookData, timeout: Duration) -> HookResult {
    run_noting(argv, point, data, timeout, |_| {}).await
}

/// As [`run`]; `started` is told the hook's process group as soon as it runs
/// (recorded, so that a restarted pivot can end a hook its predecessor left).
pub async fn run_noting(
    argv: &[String],
    point: HookPoint,
    data: &HookData,
    timeout: Duration,
    started: impl FnOnce(u32),
) -> HookResult {
    let Some((program, args)) = argv.split_first() else {
        return HookResult::NotStarted { error: "empty command".into() };
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(environment(point, data))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return HookResult::NotStarted { error: format!("{program}: {e}") },
    };
    let pgid = child.id();
    let mut guard = GroupGuard(pgid.map(|p| p as libc::pid_t));
    if let Some(p) = pgid {
        started(p);
    }
    let (mut out, mut err) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
    let (out_buf, err_buf) = (Captured::default(), Captured::default());
    let read_out = tokio::spawn({
        let b = out_buf.clone();
        async move { read_bounded(&mut out, b).await }
    });
    let read_err = tokio::spawn({
        let b = err_buf.clone();
        async move { read_bounded(&mut err, b).await }
    });
    let started = Instant::now();
    let status = tokio::time::timeout(timeout, child.wait()).await;
    if status.is_err() {
        // The hook and anything it started: the whole process group.
        if let Some(pgid) = pgid {
            // SAFETY: signalling the process group of a child we spawned.
            unsafe { libc::kill(-(pgid as libc::pid_t), libc::SIGKILL) };
        }
        let _ = child.wait().await;
    }
    // Exited (or killed): what it left running in the background is its own.
    guard.0 = None;
    let output = collect([(read_out, out_buf), (read_err, err_buf)], data.new_primary_password.as_ref()).await;
    match status {
        Err(_) => HookResult::TimedOut { after_ms: started.elapsed().as_millis() as u64, output },
        Ok(Err(e)) => HookResult::NotStarted { error: e.to_string() },
        Ok(Ok(s)) if s.success() => HookResult::Succeeded { output },
        Ok(Ok(s)) => HookResult::Failed { code: s.code(), output },
    }
}

/// Hook output goes to the audit log, `pivot history` and the log: known
/// secrets are replaced before it is kept.
pub fn scrub(output: &str, secret: Option<&Secret>) -> String {
    match secret.map(Secret::expose).filter(|p| !p.is_empty()) {
        Some(p) => output.replace(p, "<redacted>"),
        None => output.to_string(),
    }
}

type Captured = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// Read a stream into `kept` (bounded) until it closes.
async fn read_bounded(r: &mut (impl AsyncReadExt + Unpin), kept: Captured) {
    let mut buf = [0u8; 4096];
    // Keep reading (and discarding past the limit) so the hook never blocks on a full pipe.
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
        let room = (OUTPUT_LIMIT + SCRUB_MARGIN).saturating_sub(k.len());
        k.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// Both streams, each scrubbed of `secret` before it is cut to the limit.
/// Children that outlive the hook may hold the pipes open: after a short
/// bound, what was read so far is kept and the pipes are closed.
async fn collect(readers: [(tokio::task::JoinHandle<()>, Captured); 2], secret: Option<&Secret>) -> String {
    let [(out, out_buf), (err, err_buf)] = readers;
    let (abort_out, abort_err) = (out.abort_handle(), err.abort_handle());
    let _ = tokio::time::timeout(PIPE_GRACE, async { (out.await, err.await) }).await;
    abort_out.abort();
    abort_err.abort();
    let keep = |buf: &Captured| {
        let bytes = std::mem::take(&mut *buf.lock().unwrap_or_else(|p| p.into_inner()));
        let text = scrub(&String::from_utf8_lossy(&bytes), secret);
        let mut cut = text.len().min(OUTPUT_LIMIT);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text[..cut].trim().to_string()
    };
    [keep(&out_buf), keep(&err_buf)].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;
