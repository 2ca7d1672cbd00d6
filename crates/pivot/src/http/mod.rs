//! The HTTP surface: JSON API, Prometheus metrics.

mod api;
mod health;
mod metrics;
mod mutations;
pub mod rebuild;
mod route_metrics;

use crate::render::ClusterSnapshot;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;
use tokio::sync::watch;

/// One cluster's latest snapshot, as published by its monitor.
#[derive(Clone)]
pub struct ClusterHandle {
    pub name: String,
    pub snapshots: watch::Receiver<Arc<ClusterSnapshot>>,
    /// The cluster's route table (health checks follow it).
    pub routes: crate::routes::RouteHub,
    /// The built-in proxy's counters, if it runs.
    pub proxy: Option<Arc<crate::proxy::stats::ProxyStats>>,
    /// Switchover requests to the cluster's monitor.
    pub switchover: crate::daemon::switchover::AskSender,
    /// The agents `GET /api/clusters/{name}/rebuild` asks.
    pub rebuild_agents: rebuild::RebuildAgents,
}

#[derive(Clone)]
pub struct AppState {
    pub clusters: Arc<Vec<ClusterHandle>>,
    /// The state file: recoveries for the API.
    pub state: Arc<dyn pivot_state::StateStore>,
    /// Mutations need it as a bearer token; `None`: the API is read-only.
    pub api_token: Option<pivot_server::Secret>,
    /// The webhook's counters, if one is configured.
    pub webhook: Option<Arc<crate::daemon::webhook::WebhookStats>>,
}

impl AppState {
    fn all(&self) -> Vec<Arc<ClusterSnapshot>> {
        self.clusters.iter().map(|c| c.snapshots.borrow().clone()).collect()
    }

    fn one(&self, name: &str) -> Option<Arc<ClusterSnapshot>> {
        self.clusters.iter().find(|c| c.name == name).map(|c| c.snapshots.borrow().clone())
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(mutations::router(state.clone()))
        .route("/api/clusters", get(clusters))
        .route("/api/clusters/{name}", get(cluster))
        .route("/api/clusters/{name}/recoveries", get(api::recoveries))
        .route("/api/clusters/{name}/routes", get(api::routes))
        .route("/api/clusters/{name}/rebuild", get(rebuild::status))
        .route("/metrics", get(metrics_text))
        .route("/haproxy/{cluster}/{server}", get(health::haproxy))
        .route("/{check}/{cluster}/{instance}", get(health::check))
        .fallback(not_found)
        .with_state(state)
}

/// A JSON error body: `{"error": "..."}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn clusters(State(s): State<AppState>) -> Json<Vec<Arc<ClusterSnapshot>>> {
    Json(s.all())
}

async fn cluster(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.one(&name) {
        Some(snap) => Json(snap).into_response(),
        None => {
            let known: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
            error(StatusCode::NOT_FOUND, format!("no cluster `{name}`; configured: {}", known.join(", ")))
        }
    }
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    let mut body = metrics::render(&s.all());
    body.push_str(&route_metrics::render(&s.clusters));
    if let Some(w) = &s.webhook {
        body.push_str(&metrics::webhook(w));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

async fn not_found(uri: Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no endpoint {}: see /api/clusters and /metrics", uri.path()))
}
