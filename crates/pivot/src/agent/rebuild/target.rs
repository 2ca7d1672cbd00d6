//! The target's side: stop the local server, move its datadir aside (kept:
//! `<datadir>.pivot-old-<unix seconds>`), pull the donor's stream into
//! `mbstream -x`, `mariabackup --prepare`, give the files the old datadir's
//! owner, start the server. Any failure after the stop puts the old datadir
//! back and starts the server on it. Progress at `GET /v1/rebuild/status`.

use super::command::{self, Tail};
use super::protocol::{BackupCheck, BackupOutcome, Job, Phase, RebuildRequest, RebuildStatus, TOTAL_HEADER};
use super::RebuildAgent;
use crate::config::AgentRebuild;
use crate::routes::vip::client::AgentClient;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;
use pivot_core::InstanceKey;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// Bound on the donor agent's answers other than the stream.
const DONOR_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /v1/rebuild/status`.
pub async fn status(State(a): State<Arc<RebuildAgent>>) -> Response {
    let job = a.job.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let unconfigured = a.cfg.rebuild.is_none().then(|| a.unconfigured());
    Json(RebuildStatus { instance: a.cfg.instance.to_string(), unconfigured, job }).into_response()
}

fn refuse(status: StatusCode, why: String) -> Response {
    tracing::warn!("rebuild refused: {why}");
    (status, format!("{why}\n")).into_response()
}

/// `POST /v1/rebuild`: checks, then runs the job in the background.
pub async fn start(State(a): State<Arc<RebuildAgent>>, Json(req): Json<RebuildRequest>) -> Response {
    let Some(r) = a.cfg.rebuild.clone() else { return refuse(StatusCode::CONFLICT, a.unconfigured()) };
    let donor_agent: InstanceKey = match req.donor_agent.parse() {
        Ok(k) => k,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("donor_agent `{}`: {e}", req.donor_agent)),
    };
    let donor = AgentClient::new(donor_agent.clone(), a.cfg.token.clone(), DONOR_TIMEOUT);
    // Nothing changes unless the donor's agent can serve the backup.
    let estimate = match donor.request(hyper::Method::GET, "/v1/backup/check", None).await {
        Ok((200, body)) => serde_json::from_slice::<BackupCheck>(&body).map_or(0, |c| c.estimate_bytes),
        Ok((401, _)) => {
            return refuse(
                StatusCode::CONFLICT,
                format!(
                "the donor's agent {donor_agent} refused this agent's token: the agents of a cluster share one token"
            ),
            )
        }
        Ok((s, body)) => {
            let why = String::from_utf8_lossy(&body).trim().to_string();
            return refuse(StatusCode::CONFLICT, format!("the donor's agent {donor_agent} refused (HTTP {s}): {why}"));
        }
        Err(e) => return refuse(StatusCode::CONFLICT, format!("the donor's agent is unreachable: {e}")),
    };
    if let Err(why) = room_for(&r.datadir, estimate) {
        return refuse(StatusCode::CONFLICT, why);
    }
    if let Err(why) = not_writable(&a, &r).await {
        return refuse(StatusCode::CONFLICT, why);
    }
    {
        let mut job = a.job.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(j) = job.as_ref().filter(|j| !j.phase.ended()) {
            return refuse(StatusCode::CONFLICT, format!("a rebuild from {} is running ({:?})", j.donor, j.phase));
        }
        *job = Some(Job {
            donor: req.donor.clone(),
            phase: Phase::Stopping,
            bytes: 0,
            total_bytes: None,
            rate_bps: 0,
            elapsed_ms: 0,
            old_datadir: None,
            error: None,
            restored: false,
            slave_info: None,
            binlog_info: None,
        });
    }
    tracing::info!(donor = %req.donor, "rebuild of {} from {} starts", a.cfg.instance, req.donor);
    let job = a.job.lock().unwrap_or_else(|p| p.into_inner()).clone();
    tokio::spawn(run(a.clone(), r, donor));
    (StatusCode::OK, Json(job)).into_response()
}

/// The new datadir goes beside the old one (kept): its filesystem must have
/// room for the backup, with a tenth more for what prepare adds.
fn room_for(datadir: &Path, estimate: u64) -> Result<(), String> {
    let parent = datadir.parent().unwrap_or(Path::new("/"));
    let free = free_bytes(parent).map_err(|e| format!("cannot read the free space of {}: {e}", parent.display()))?;
    let need = estimate.saturating_add(estimate / 10);
    if free < need {
        return Err(format!(
            "not enough room beside {}: the backup needs about {} MiB (with a tenth more for prepare), {} MiB are \
             free, and the old datadir is kept; free some space first",
            datadir.display(),
            need >> 20,
            free >> 20
        ));
    }
    Ok(())
}

/// Bytes an unprivileged writer may still use on `dir`'s filesystem.
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: statvfs reads a NUL-terminated path and writes the struct we pass.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// A second guard beside pivot's own decision: a local server that answers
/// and is writable may be a primary, and a primary is never rebuilt. A
/// server that does not answer takes no writes.
async fn not_writable(a: &RebuildAgent, r: &AgentRebuild) -> Result<(), String> {
    let creds = pivot_server::Credentials { user: r.backup_user.clone(), password: r.backup_password.clone() };
    let inst = &a.cfg.instance;
    let mut s = match pivot_server::Session::connect(inst, &creds, Duration::from_secs(2)).await {
        Ok(s) => s,
        Err(_) if !wait_port(inst, true, Duration::ZERO).await => return Ok(()),
        Err(e) => {
            return Err(format!(
                "{inst} answers, but the backup account cannot log in to check that it is read-only: {e}"
            ))
        }
    };
    match pivot_server::actions::executed_and_writable(&mut s).await {
        Ok((_, true)) => Err(format!(
            "{inst} is writable (read_only is OFF): it may be a primary, and a primary is never rebuilt; make it \
             read-only first if it is not"
        )),
        Ok((_, false)) => Ok(()),
        Err(e) => Err(format!("{inst} answers, but whether it is writable cannot be read: {e}")),
    }
}

/// How far the job got: what a failure has to undo.
#[derive(Default)]
struct Undo {
    stop_attempted: bool,
    /// The server answered before the stop: only then is it started again.
    was_running: bool,
    moved_aside: Option<PathBuf>,
}

async fn run(a: Arc<RebuildAgent>, r: AgentRebuild, donor: AgentClient) {
    let began = Instant::now();
    let mut undo = Undo::default();
    let steps = steps(&a, &r, &donor, &mut undo, began);
    let result = match tokio::time::timeout(r.max_duration, steps).await {
        Ok(res) => res,
        Err(_) => {
            Err(format!("the rebuild took longer than max_duration {}", humantime::format_duration(r.max_duration)))
        }
    };
    let elapsed = began.elapsed().as_millis() as u64;
    match result {
        Ok(()) => {
            tracing::info!("rebuild done in {elapsed} ms");
            a.update(|j| {
                j.phase = Phase::Done;
                j.elapsed_ms = elapsed;
            });
        }
        Err(e) => {
            tracing::error!("rebuild failed: {e}; restoring");
            a.update(|j| {
                j.phase = Phase::Restoring;
                j.error = Some(e.clone());
            });
            let restored = restore(&a, &r, &undo).await;
            let elapsed = began.elapsed().as_millis() as u64;
            a.update(|j| {
                j.phase = Phase::Failed;
                j.elapsed_ms = elapsed;
                match &restored {
                    Ok(said) => {
                        j.restored = true;
                        j.error = Some(format!("{e}; {said}"));
                    }
                    Err(re) => j.error = Some(format!("{e}; restoring failed too: {re}")),
                }
            });
        }
    }
}

async fn steps(
    a: &RebuildAgent,
    r: &AgentRebuild,
    donor: &AgentClient,
    undo: &mut Undo,
    began: Instant,
) -> Result<(), String> {
    let inst = &a.cfg.instance;
    undo.was_running = wait_port(inst, true, Duration::ZERO).await;
    undo.stop_attempted = true;
    command::run("stop_command", &r.stop_command, r.command_timeout).await?;
    if !wait_port(inst, false, r.command_timeout).await {
        return Err(format!("{inst} still accepts connections after stop_command: the datadir was not touched"));
    }
    let old = aside_name(&r.datadir);
    std::fs::rename(&r.datadir, &old)
        .map_err(|e| format!("cannot move {} aside to {}: {e}", r.datadir.display(), old.display()))?;
    undo.moved_aside = Some(old.clone());
    a.update(|j| j.old_datadir = Some(old.display().to_string()));
    tracing::info!("old datadir kept at {}", old.display());
    let meta = std::fs::metadata(&old).map_err(|e| format!("{}: {e}", old.display()))?;
    std::fs::create_dir(&r.datadir).map_err(|e| format!("cannot create {}: {e}", r.datadir.display()))?;
    std::fs::set_permissions(&r.datadir, meta.permissions()).map_err(|e| format!("{}: {e}", r.datadir.display()))?;

    a.update(|j| j.phase = Phase::Streaming);
    pull(a, r, donor, began).await?;
    let checkpoints = ["xtrabackup_checkpoints", "mariadb_backup_checkpoints"];
    if !checkpoints.iter().any(|f| r.datadir.join(f).exists()) {
        return Err("the stream ended but the backup has no xtrabackup_checkpoints: it is incomplete".into());
    }

    a.update(|j| j.phase = Phase::Preparing);
    let prepare = vec![
        r.mariabackup.display().to_string(),
        "--prepare".to_string(),
        format!("--target-dir={}", r.datadir.display()),
    ];
    command::run("mariabackup --prepare", &prepare, r.max_duration).await?;
    let read = |names: [&str; 2]| names.iter().find_map(|n| std::fs::read_to_string(r.datadir.join(n)).ok());
    let slave_info = read(["xtrabackup_slave_info", "mariadb_backup_slave_info"]);
    let binlog_info = read(["xtrabackup_binlog_info", "mariadb_backup_binlog_info"]);
    a.update(|j| {
        j.slave_info = slave_info;
        j.binlog_info = binlog_info;
    });
    {
        use std::os::unix::fs::MetadataExt;
        let (uid, gid) = (meta.uid(), meta.gid());
        let dir = r.datadir.clone();
        tokio::task::spawn_blocking(move || chown_tree(&dir, uid, gid)).await.map_err(|e| format!("chown: {e}"))??;
    }

    a.update(|j| j.phase = Phase::Starting);
    command::run("start_command", &r.start_command, r.command_timeout).await?;
    if !wait_port(inst, true, r.command_timeout).await {
        return Err(format!(
            "{inst} does not accept connections {} after start_command on the rebuilt datadir",
            humantime::format_duration(r.command_timeout)
        ));
    }
    Ok(())
}

/// `<datadir>.pivot-old-<unix seconds>` (a free name).
fn aside_name(datadir: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut n = 0;
    loop {
        let suffix = if n == 0 { String::new() } else { format!("-{n}") };
        let p = PathBuf::from(format!("{}.pivot-old-{secs}{suffix}", datadir.display()));
        if !p.exists() {
            return p;
        }
        n += 1;
    }
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), String> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        std::os::unix::fs::lchown(&d, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", d.display()))?;
        for e in std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            } else {
                std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", p.display()))?;
            }
        }
    }
    Ok(())
}

/// Wait until the instance's port accepts connections (`open`) or refuses them.
async fn wait_port(inst: &InstanceKey, open: bool, bound: Duration) -> bool {
    let began = Instant::now();
    loop {
        let connect = tokio::net::TcpStream::connect((inst.host.as_str(), inst.port));
        let is_open = matches!(tokio::time::timeout(Duration::from_secs(1), connect).await, Ok(Ok(_)));
        if is_open == open {
            return true;
        }
        if began.elapsed() > bound {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The donor's stream into `mbstream -x -C <datadir>`.
async fn pull(a: &RebuildAgent, r: &AgentRebuild, donor: &AgentClient, began: Instant) -> Result<(), String> {
    let at = &donor.addr;
    let stream = tokio::net::TcpStream::connect((at.host.as_str(), at.port))
        .await
        .map_err(|e| format!("the donor's agent {at} is unreachable: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("donor {at}: {e}"))?;
    let conn = tokio::spawn(conn);
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", a.cfg.token.expose()))
        .map_err(|_| "the token is not a valid header value".to_string())?;
    bearer.set_sensitive(true);
    let req = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri("/v1/backup/stream")
        .header(HOST, at.to_string())
        .header(AUTHORIZATION, bearer)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(DONOR_TIMEOUT, sender.send_request(req))
        .await
        .map_err(|_| format!("the donor's agent {at} did not answer within {DONOR_TIMEOUT:?}"))?
        .map_err(|e| format!("the donor's agent {at}: {e}"))?;
    if resp.status() != 200 {
        let status = resp.status();
        let body = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        conn.abort();
        return Err(format!(
            "the donor's agent {at} refused the backup (HTTP {status}): {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    let total = resp.headers().get(TOTAL_HEADER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    a.update(|j| j.total_bytes = total);
    let mut mbstream = tokio::process::Command::new(&r.mbstream)
        .arg("-x")
        .arg("-C")
        .arg(&r.datadir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("mbstream `{}` cannot be started: {e}", r.mbstream.display()))?;
    let tail = Tail::default();
    let readers: Vec<_> =
        [mbstream.stdout.take().map(|o| tail.follow(o)), mbstream.stderr.take().map(|e| tail.follow(e))]
            .into_iter()
            .flatten()
            .collect();
    // mbstream's own words once it ended (they say why: a full disk...).
    let said = |readers: Vec<tokio::task::JoinHandle<()>>| async move {
        for r in readers {
            let _ = tokio::time::timeout(Duration::from_secs(1), r).await;
        }
    };
    let mut stdin = mbstream.stdin.take().ok_or("mbstream has no stdin")?;
    let mut body = resp.into_body();
    let stream_began = Instant::now();
    let mut bytes = 0u64;
    loop {
        let frame = match tokio::time::timeout(r.stall_timeout, body.frame()).await {
            Err(_) => {
                conn.abort();
                return Err(format!(
                    "no data from the donor for {}: the stream stalled",
                    humantime::format_duration(r.stall_timeout)
                ));
            }
            Ok(None) => break,
            Ok(Some(Ok(f))) => f,
            Ok(Some(Err(e))) => {
                conn.abort();
                return Err(donor_failure(donor, &e.to_string()).await);
            }
        };
        let Ok(data) = frame.into_data() else { continue };
        if let Err(e) = stdin.write_all(&data).await {
            conn.abort();
            let _ = tokio::time::timeout(Duration::from_secs(2), mbstream.wait()).await;
            said(readers).await;
            return Err(format!("mbstream -x into {} failed: {e}: {}", r.datadir.display(), tail.text()));
        }
        bytes += data.len() as u64;
        let secs = stream_began.elapsed().as_secs_f64().max(0.001);
        let elapsed = began.elapsed().as_millis() as u64;
        a.update(|j| {
            j.bytes = bytes;
            j.rate_bps = (bytes as f64 / secs) as u64;
            j.elapsed_ms = elapsed;
        });
    }
    conn.abort();
    drop(stdin);
    let status = tokio::time::timeout(r.command_timeout, mbstream.wait())
        .await
        .map_err(|_| "mbstream did not end after the stream".to_string())?
        .map_err(|e| format!("mbstream: {e}"))?;
    if !status.success() {
        said(readers).await;
        return Err(format!("mbstream -x into {} failed ({status}): {}", r.datadir.display(), tail.text()));
    }
    tracing::info!(bytes, "backup received");
    Ok(())
}

/// Why the stream broke: the donor's own account if it has one.
async fn donor_failure(donor: &AgentClient, broke: &str) -> String {
    match donor.request(hyper::Method::GET, "/v1/backup/last", None).await {
        Ok((200, body)) => match serde_json::from_slice::<BackupOutcome>(&body) {
            Ok(o) if o.ok == Some(false) => format!("the donor's backup failed: {}", o.message),
            _ => format!("the stream from the donor broke: {broke}"),
        },
        _ => format!("the stream from the donor broke: {broke} (and its agent does not answer)"),
    }
}

/// After a failure: stop whatever runs on the new datadir, remove what was
/// pulled (never the old datadir), put the old datadir back, start the server.
async fn restore(a: &RebuildAgent, r: &AgentRebuild, undo: &Undo) -> Result<String, String> {
    if !undo.stop_attempted {
        return Ok("nothing was changed".into());
    }
    let inst = &a.cfg.instance;
    if let Some(old) = &undo.moved_aside {
        if wait_port(inst, true, Duration::ZERO).await {
            command::run("stop_command", &r.stop_command, r.command_timeout).await?;
            if !wait_port(inst, false, r.command_timeout).await {
                return Err(format!("{inst} still runs on the new datadir; the old one is kept at {}", old.display()));
            }
        }
        if r.datadir.exists() {
            std::fs::remove_dir_all(&r.datadir).map_err(|e| {
                format!(
                    "cannot remove the partial {}: {e}; the old datadir is kept at {}",
                    r.datadir.display(),
                    old.display()
                )
            })?;
        }
        std::fs::rename(old, &r.datadir)
            .map_err(|e| format!("cannot move {} back to {}: {e}", old.display(), r.datadir.display()))?;
        a.update(|j| j.old_datadir = None);
    }
    if !undo.was_running {
        // A server that was down (a crashed former primary) is not brought
        // up by a failed rebuild: it may start writable.
        return Ok("the server was not running before and is left stopped, on its old datadir".into());
    }
    if !wait_port(inst, true, Duration::ZERO).await {
        command::run("start_command", &r.start_command, r.command_timeout).await?;
        if !wait_port(inst, true, r.command_timeout).await {
            return Err(format!("{inst} does not accept connections after start_command on its old datadir"));
        }
    }
    Ok("the server runs on its old datadir again".into())
}
