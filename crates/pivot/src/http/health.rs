//! Health checks for HAProxy's `option httpchk`, in Patroni's paths, one
//! URL per instance: `GET /<check>/<cluster>/<host:port>[?lag=10s]` where
//! check is `primary` (also `master`, `leader`, `read-write`), `replica`,
//! `read-only` or `health`. 200 when the instance is what the check asks
//! for under pivot's current route table, 503 otherwise, the reason in the
//! body; 404 for an unknown cluster or instance, 400 for a bad request.
//!
//! HAProxy sends the same request to every server of a backend; a
//! per-server URL comes from `http-check send meth GET uri-lf
//! /primary/<cluster>/%[srv_name]` with each server named by its
//! `host:port` (`pivot haproxy-config` writes this), so every server gets
//! its own answer from one pivot port, no agent or per-instance port
//! needed.

use super::{error, AppState};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pivot_core::routes::{answer, HealthCheck};
use pivot_core::InstanceKey;

pub async fn check(
    State(s): State<AppState>,
    Path((check, cluster, instance)): Path<(String, String, String)>,
    query: RawQuery,
) -> Response {
    check_of(s, check, cluster, instance, query).await
}

async fn check_of(
    s: AppState,
    check: String,
    cluster: String,
    instance: String,
    RawQuery(query): RawQuery,
) -> Response {
    let check = match HealthCheck::parse(&check, query.as_deref()) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let Some(handle) = s.clusters.iter().find(|c| c.name == cluster) else {
        let known: Vec<&str> = s.clusters.iter().map(|c| c.name.as_str()).collect();
        return error(StatusCode::NOT_FOUND, format!("no cluster `{cluster}`; configured: {}", known.join(", ")));
    };
    let key: InstanceKey = match instance.parse() {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("instance `{instance}`: {e} (write it as host:port)")),
    };
    let a = answer(&handle.routes.current(), &key, check);
    let status = StatusCode::from_u16(a.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, format!("{}\n", a.body)).into_response()
}

/// `GET /haproxy/<cluster>/<check>_<host:port>`: the same checks, for the
/// server names `pivot haproxy-config` writes (HAProxy fills in the name).
pub async fn haproxy(
    State(s): State<AppState>,
    Path((cluster, server)): Path<(String, String)>,
    query: RawQuery,
) -> Response {
    match crate::cli::haproxy_config::parse_server(&server) {
        Some((check, instance)) => check_of(s, check.to_string(), cluster, instance.to_string(), query).await,
        None => error(StatusCode::BAD_REQUEST, format!("server name `{server}` is not <check>_<host:port>")),
    }
}
