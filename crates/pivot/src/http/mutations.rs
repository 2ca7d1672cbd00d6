//! API calls that change a cluster: `POST /api/clusters/<c>/switchover`.
//! They need `Authorization: Bearer <token>` with the token of
//! `[pivot] api_token_file`; without one configured the API stays read-only
//! (403). The answer comes when the switchover ended (or was refused).

use super::{error, AppState};
use crate::daemon::switchover::{SwitchoverAsk, SwitchoverReply};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pivot_core::InstanceKey;
use std::time::Duration;

/// How long a request waits for its switchover (every step is bounded; this
/// bounds the wait on top).
const ANSWER_WAIT: Duration = Duration::from_secs(300);
/// Request bodies are small JSON objects.
const MAX_BODY: usize = 4096;

pub fn router(state: AppState) -> Router<AppState> {
    let token = state.api_token.clone();
    Router::new().route("/api/clusters/{name}/switchover", post(switchover)).layer(middleware::from_fn(
        move |req: Request, next: Next| {
            let token = token.clone();
            async move {
                match token {
                    None => error(
                        StatusCode::FORBIDDEN,
                        "the API is read-only: set api_token_file in [pivot] to allow changes over HTTP",
                    ),
                    Some(t) => crate::agent::server::authenticate(&t, req, next).await,
                }
            }
        },
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchoverBody {
    to: Option<String>,
}

async fn switchover(State(s): State<AppState>, Path(name): Path<String>, body: Bytes) -> Response {
    let Some(cluster) = s.clusters.iter().find(|c| c.name == name) else {
        let known: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
        return error(StatusCode::NOT_FOUND, format!("no cluster `{name}`; configured: {}", known.join(", ")));
    };
    let to = match parse_body(&body) {
        Ok(to) => to,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if cluster.switchover.try_send(SwitchoverAsk { to, reply }).is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "switchover requests are queued already: try again later");
    }
    match tokio::time::timeout(ANSWER_WAIT, answer).await {
        Ok(Ok(reply)) => {
            let status = match &reply {
                SwitchoverReply::Ended { outcome } if outcome.status.promoted() => StatusCode::OK,
                SwitchoverReply::Ended { .. } | SwitchoverReply::Refused { .. } => StatusCode::CONFLICT,
                SwitchoverReply::Failed { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            };
            (status, Json(reply)).into_response()
        }
        Ok(Err(_)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "pivot is shutting down: the switchover's outcome is unknown: see `pivot history --cluster {name}`"
            ),
        ),
        Err(_) => error(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "no answer within {} s: the switchover's outcome is unknown: see `pivot history --cluster {name}`",
                ANSWER_WAIT.as_secs()
            ),
        ),
    }
}

/// `{}`, `{"to": "host:port"}`, or an empty body.
fn parse_body(body: &[u8]) -> Result<Option<InstanceKey>, String> {
    if body.len() > MAX_BODY {
        return Err(format!("the body is {} bytes; a switchover request is at most {MAX_BODY}", body.len()));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let b: SwitchoverBody = serde_json::from_slice(body)
        .map_err(|e| format!("the body must be JSON like {{\"to\": \"10.0.0.2:3306\"}} (or empty): {e}"))?;
    b.to.map(|t| t.parse::<InstanceKey>().map_err(|e| format!("`to`: {e}"))).transpose()
}

#[cfg(test)]
mod tests {
    use super::parse_body;

    #[test]
    fn bodies() {
        assert_eq!(parse_body(b"").unwrap(), None);
        assert_eq!(parse_body(b" {} ").unwrap(), None);
        assert_eq!(parse_body(br#"{"to":"127.0.0.1:3307"}"#).unwrap().unwrap().to_string(), "127.0.0.1:3307");
        assert!(parse_body(br#"{"to":"nowhere"}"#).unwrap_err().contains("`to`"));
        assert!(parse_body(br#"{"too":"x"}"#).unwrap_err().contains("unknown field"));
        assert!(parse_body(b"[1,").unwrap_err().contains("must be JSON"));
        assert!(parse_body(&vec![b' '; 5000]).unwrap_err().contains("at most"));
    }
}
