//! `pivot switchover`: a planned switchover. With a running `pivot run` whose
//! API takes changes (`[pivot] api_token_file`), the daemon runs it, so its
//! routes (the proxy's hold, DNS, KV, VIP) move at once; otherwise this
//! process runs it through the same recovery machine.

use super::out::emit_outcome;
use super::{EXIT_ATTENTION, EXIT_FAILURE, EXIT_OK};
use crate::config::Config;
use crate::daemon::switchover::SwitchoverReply;
use crate::recovery::{self, driver::StopFlag, owner, Outcome, RecoveryEnv};
use pivot_core::{Code, InstanceKey};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long the CLI waits for the daemon's answer (its own bound is 300 s).
const DAEMON_WAIT: Duration = Duration::from_secs(310);

pub async fn run(config_path: &Path, cluster: &str, to: Option<InstanceKey>, local: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let c = super::cluster_of(&config, cluster)?;
    if !local {
        if let (Some(addr), Some(token)) = (config.pivot.http, config.pivot.api_token.clone()) {
            match through_daemon(addr, &token, cluster, to.as_ref()).await {
                Ok(reply) => return answer(config_path, cluster, reply),
                Err(e) => eprintln!("no pivot daemon answers at {addr} ({e}): running the switchover in this process"),
            }
        }
    }
    let state = pivot_state::open(&config.pivot.state)?;
    let (view, analysis) = super::observe(c, Some(state.as_ref())).await;
    let primary = match (&analysis.primary, analysis.code) {
        (Some(p), Code::Healthy) => p.clone(),
        _ => {
            eprintln!(
                "refused: the cluster is not healthy: {}: {}; nothing was changed",
                analysis.code, analysis.signal
            );
            return Ok(ExitCode::from(EXIT_ATTENTION));
        }
    };
    if let Some(rec) = state.running_recovery(cluster)? {
        eprintln!("refused: recovery {} of `{cluster}` is running ({}); see `pivot history`", rec.id, rec.owner);
        return Ok(ExitCode::from(EXIT_ATTENTION));
    }
    let env = RecoveryEnv {
        cluster: Arc::new(c.clone()),
        state,
        owner: owner::this_process("pivot switchover"),
        routes: None,
    };
    let stop = StopFlag::default();
    let on_signal = stop.clone();
    let signals = tokio::spawn(async move {
        super::shutdown_signal().await;
        eprintln!("stopping: the switchover parks at the next step; `pivot run` resumes it (rolling back before the promotion)");
        on_signal.stop();
    });
    let outcome = recovery::switchover::run(&env, &view, primary, to, stop).await;
    signals.abort();
    match outcome {
        Ok(o) => answer(config_path, cluster, SwitchoverReply::Ended { outcome: o }),
        Err(e) => answer(config_path, cluster, SwitchoverReply::Failed { reason: e.to_string() }),
    }
}

async fn through_daemon(
    addr: std::net::SocketAddr,
    token: &pivot_server::Secret,
    cluster: &str,
    to: Option<&InstanceKey>,
) -> Result<SwitchoverReply, String> {
    let at: InstanceKey = addr.to_string().parse().map_err(|e| format!("{e}"))?;
    let body = serde_json::json!({ "to": to.map(ToString::to_string) }).to_string().into_bytes();
    let path = format!("/api/clusters/{cluster}/switchover");
    let request = crate::routes::vip::client::request(&at, token, hyper::Method::POST, &path, Some(body));
    let (status, body) = tokio::time::timeout(DAEMON_WAIT, request)
        .await
        .map_err(|_| format!("no answer within {} s", DAEMON_WAIT.as_secs()))??;
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    if let Ok(reply) = serde_json::from_slice::<ReplyBody>(&body) {
        return Ok(reply.into());
    }
    // Any answer is the daemon's: never run the switchover here instead.
    let text = match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(&body).trim().chars().take(200).collect(),
    };
    Ok(match status {
        401 => SwitchoverReply::Refused {
            reason: format!("HTTP 401: {text} (is api_token_file the file the daemon read at its start?)"),
        },
        400 | 403 | 404 | 413 => SwitchoverReply::Refused { reason: format!("HTTP {status}: {text}") },
        503 if text.contains("queued") => SwitchoverReply::Refused { reason: format!("HTTP {status}: {text}") },
        _ => SwitchoverReply::Failed {
            reason: format!("HTTP {status}: {text}; the switchover's outcome is unknown: see `pivot history`"),
        },
    })
}

/// The daemon's reply, read back (the outcome as JSON).
#[derive(serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
enum ReplyBody {
    Refused { reason: String },
    Ended { outcome: serde_json::Value },
    Failed { reason: String },
}

impl From<ReplyBody> for SwitchoverReply {
    fn from(r: ReplyBody) -> Self {
        match r {
            ReplyBody::Refused { reason } => SwitchoverReply::Refused { reason },
            ReplyBody::Failed { reason } => SwitchoverReply::Failed { reason },
            ReplyBody::Ended { outcome } => match serde_json::from_value::<Outcome>(outcome.clone()) {
                Ok(o) => SwitchoverReply::Ended { outcome: o },
                Err(e) => SwitchoverReply::Failed { reason: format!("unreadable outcome {outcome}: {e}") },
            },
        }
    }
}

fn answer(config_path: &Path, cluster: &str, reply: SwitchoverReply) -> anyhow::Result<ExitCode> {
    match reply {
        SwitchoverReply::Refused { reason } => {
            eprintln!("refused: {reason}; nothing was changed");
            Ok(ExitCode::from(EXIT_ATTENTION))
        }
        SwitchoverReply::Failed { reason } => {
            eprintln!("failed: {reason}");
            Ok(ExitCode::from(EXIT_FAILURE))
        }
        SwitchoverReply::Ended { outcome } => {
            if outcome.parked {
                eprintln!("parked: {}", outcome.summary);
                return Ok(ExitCode::from(EXIT_FAILURE));
            }
            emit_outcome(&outcome, config_path, cluster)?;
            Ok(ExitCode::from(if outcome.status == pivot_state::RecoveryStatus::Succeeded {
                EXIT_OK
            } else {
                EXIT_ATTENTION
            }))
        }
    }
}
