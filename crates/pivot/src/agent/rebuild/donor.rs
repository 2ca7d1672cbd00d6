//! The donor's side: `mariabackup --backup --stream=xbstream` of the local
//! instance, its output the HTTP answer's body. The donor keeps serving:
//! MariaDB's mariabackup takes `BACKUP STAGE` locks on the donor only
//! (commits are blocked for a moment at its end), never on the primary;
//! no `--safe-slave-backup` (the replication threads keep running).

use super::command::{backup_size, PrivateDir, Tail};
use super::protocol::{BackupCheck, BackupOutcome, TOTAL_HEADER};
use super::RebuildAgent;
use crate::config::AgentRebuild;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

/// Bytes read from mariabackup at a time.
const CHUNK: usize = 256 << 10;

/// `GET /v1/backup/check`: can this agent serve a backup?
pub async fn check(State(a): State<Arc<RebuildAgent>>) -> Response {
    let Some(r) = &a.cfg.rebuild else {
        return (StatusCode::CONFLICT, format!("{}\n", a.unconfigured())).into_response();
    };
    let d = r.datadir.clone();
    let estimate_bytes = tokio::task::spawn_blocking(move || backup_size(&d)).await.unwrap_or(0);
    (StatusCode::OK, Json(BackupCheck { estimate_bytes })).into_response()
}

/// `GET /v1/backup/last`.
pub async fn last(State(a): State<Arc<RebuildAgent>>) -> Response {
    Json(a.backup_outcome()).into_response()
}

/// A body fed by a channel; an `Err` aborts the answer (the client sees a
/// broken stream, never a complete one).
struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(hyper::body::Frame::data)))
    }
}

/// `POST /v1/backup/stream`.
pub async fn stream(State(a): State<Arc<RebuildAgent>>) -> Response {
    let Some(r) = a.cfg.rebuild.clone() else {
        return (StatusCode::CONFLICT, format!("{}\n", a.unconfigured())).into_response();
    };
    {
        let mut b = a.backup.lock().unwrap_or_else(|p| p.into_inner());
        if b.running {
            return (StatusCode::CONFLICT, "a backup is already streaming from this agent\n").into_response();
        }
        *b = BackupOutcome { running: true, ok: None, message: "streaming".into() };
    }
    let fail = |a: &RebuildAgent, msg: String| {
        a.set_backup(false, &msg);
        (StatusCode::INTERNAL_SERVER_ERROR, format!("{msg}\n")).into_response()
    };
    let dir = match PrivateDir::create("pivot-backup") {
        Ok(d) => d,
        Err(e) => return fail(&a, e),
    };
    let inst = &a.cfg.instance;
    let cnf = match dir.client_option_file(&r.backup_user, r.backup_password.expose(), &inst.host, inst.port) {
        Ok(c) => c,
        Err(e) => return fail(&a, e),
    };
    let work = dir.path.join("target");
    if let Err(e) = std::fs::create_dir(&work) {
        return fail(&a, format!("{}: {e}", work.display()));
    }
    // --defaults-extra-file must come first.
    let mut child = match tokio::process::Command::new(&r.mariabackup)
        .arg(format!("--defaults-extra-file={}", cnf.display()))
        .args(["--backup", "--stream=xbstream", "--slave-info"])
        .arg(format!("--datadir={}", r.datadir.display()))
        .arg(format!("--target-dir={}", work.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(&a, format!("mariabackup `{}` cannot be started: {e}", r.mariabackup.display())),
    };
    let total = {
        let d = r.datadir.clone();
        tokio::task::spawn_blocking(move || backup_size(&d)).await.unwrap_or(0)
    };
    let stderr = Tail::default();
    let stderr_done = child.stderr.take().map(|e| stderr.follow(e));
    let Some(stdout) = child.stdout.take() else { return fail(&a, "mariabackup has no stdout".into()) };
    let (tx, rx) = mpsc::channel(8);
    tracing::info!(datadir = %r.datadir.display(), total, "backup streaming to a rebuild");
    tokio::spawn(pump(a.clone(), r, child, stdout, stderr, stderr_done, tx, dir));
    let mut resp = Response::new(axum::body::Body::new(ChannelBody(rx)));
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/octet-stream"));
    if let Ok(v) = header::HeaderValue::from_str(&total.to_string()) {
        resp.headers_mut().insert(TOTAL_HEADER, v);
    }
    resp
}

/// Copy mariabackup's output into the answer, bounded by `max_duration`
/// overall and `stall_timeout` per chunk the target does not take; the
/// answer ends cleanly only if mariabackup exits 0.
#[allow(clippy::too_many_arguments)]
async fn pump(
    a: Arc<RebuildAgent>,
    r: AgentRebuild,
    mut child: tokio::process::Child,
    mut stdout: tokio::process::ChildStdout,
    stderr: Tail,
    stderr_done: Option<tokio::task::JoinHandle<()>>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    _dir: PrivateDir,
) {
    let copy = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = stdout.read(&mut buf).await.map_err(|e| format!("reading mariabackup's output: {e}"))?;
            if n == 0 {
                break;
            }
            let chunk = Bytes::copy_from_slice(&buf[..n]);
            match tokio::time::timeout(r.stall_timeout, tx.send(Ok(chunk))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err("the target stopped reading the stream".to_string()),
                Err(_) => {
                    return Err(format!("the target took no data for {}", humantime::format_duration(r.stall_timeout)))
                }
            }
        }
        child.wait().await.map_err(|e| format!("mariabackup: {e}"))
    };
    let outcome = match tokio::time::timeout(r.max_duration, copy).await {
        Ok(Ok(status)) => {
            if let Some(d) = stderr_done {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), d).await;
            }
            if status.success() {
                Ok(())
            } else {
                Err(format!("mariabackup --backup failed ({status}): {}", stderr.text()))
            }
        }
        Ok(Err(e)) => Err(format!("{e}; mariabackup said: {}", stderr.text())),
        Err(_) => {
            Err(format!("the backup took longer than max_duration {}", humantime::format_duration(r.max_duration)))
        }
    };
    let _ = child.kill().await;
    match outcome {
        Ok(()) => {
            tracing::info!("backup streamed");
            a.set_backup(true, "the backup streamed completely");
        }
        Err(e) => {
            tracing::error!("backup failed: {e}");
            a.set_backup(false, &e);
            let _ = tx.send(Err(std::io::Error::other(e))).await;
        }
    }
}
