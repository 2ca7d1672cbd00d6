//! `GET /api/clusters/{name}/rebuild`: each configured agent's rebuild
//! (the running or the last one: phase, bytes, rate, error), asked at
//! request time, each agent within a short bound.

use super::AppState;
use crate::agent::rebuild::protocol::RebuildStatus;
use crate::routes::vip::client::AgentClient;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use std::time::Duration;

/// Bound on one agent's answer here.
const ASK_BOUND: Duration = Duration::from_secs(2);

/// The agents of one cluster, for this endpoint.
#[derive(Clone, Default)]
pub struct RebuildAgents(pub Vec<AgentClient>);

impl RebuildAgents {
    pub fn of(c: &crate::config::ClusterConfig) -> RebuildAgents {
        let (agents, token) = crate::config::rebuild_agents(c);
        let Some(token) = token else { return RebuildAgents::default() };
        let bound = c.rebuild.timeout.min(ASK_BOUND);
        RebuildAgents(agents.into_iter().map(|(_, a)| AgentClient::new(a, token.clone(), bound)).collect())
    }
}

#[derive(Serialize)]
struct AgentRebuild {
    agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<RebuildStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn status(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    let Some(c) = s.clusters.iter().find(|c| c.name == name) else {
        return super::error(StatusCode::NOT_FOUND, format!("no cluster `{name}`"));
    };
    let mut asks = tokio::task::JoinSet::new();
    for (i, agent) in c.rebuild_agents.0.iter().cloned().enumerate() {
        asks.spawn(async move {
            let answer = match agent.request(hyper::Method::GET, "/v1/rebuild/status", None).await {
                Ok((200, body)) => serde_json::from_slice::<RebuildStatus>(&body).map_err(|e| e.to_string()),
                Ok((code, body)) => Err(format!("HTTP {code}: {}", String::from_utf8_lossy(&body).trim())),
                Err(e) => Err(e),
            };
            let (status, error) = match answer {
                Ok(st) => (Some(st), None),
                Err(e) => (None, Some(e)),
            };
            (i, AgentRebuild { agent: agent.addr.to_string(), status, error })
        });
    }
    let mut out: Vec<(usize, AgentRebuild)> = asks.join_all().await;
    out.sort_by_key(|(i, _)| *i);
    let agents: Vec<AgentRebuild> = out.into_iter().map(|(_, a)| a).collect();
    Json(serde_json::json!({ "cluster": name, "agents": agents })).into_response()
}
