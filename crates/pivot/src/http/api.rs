//! `GET /api/clusters/<name>/recoveries[?limit=N]`: the recoveries with
//! every step and outcome (as `pivot history --json`), newest first: a
//! failover whose required route failed says `failed` here too.
//! `GET /api/clusters/<name>/routes`: the route table every route follows
//! (epoch, write target, hold, each instance's role and health).

use super::{error, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;

/// Most recoveries one request returns.
const MAX_LIMIT: usize = 1_000;

fn unknown(s: &AppState, name: &str) -> Response {
    let known: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
    error(StatusCode::NOT_FOUND, format!("no cluster `{name}`; configured: {}", known.join(", ")))
}

pub async fn recoveries(
    State(s): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if !s.clusters.iter().any(|c| c.name == name) {
        return unknown(&s, &name);
    }
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            return error(StatusCode::BAD_REQUEST, format!("limit must be a number from 1 to {MAX_LIMIT}"));
        }
    };
    if let Some(other) = q.keys().find(|k| *k != "limit") {
        return error(StatusCode::BAD_REQUEST, format!("unknown parameter `{other}`: the only one is limit"));
    }
    let state = s.state.clone();
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, pivot_state::StateError>((state.recoveries(Some(&name), limit)?, state.events(Some(&name), limit)?))
    })
    .await;
    match read {
        Ok(Ok((recoveries, events))) => {
            Json(serde_json::json!({ "recoveries": recoveries, "events": events })).into_response()
        }
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, format!("cannot read the state file: {e}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the state file failed: {e}")),
    }
}

pub async fn routes(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.clusters.iter().find(|c| c.name == name) {
        Some(c) => Json(c.routes.current()).into_response(),
        None => unknown(&s, &name),
    }
}
