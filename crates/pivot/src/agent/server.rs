//! The agent's HTTP port: pivot's commands and the health checks, every
//! request authenticated by the bearer token, commands one at a time.

use super::core::AgentCore;
use super::net::{self, Placed};
use crate::config::{AgentConfig, VipAddress};
use crate::routes::vip::protocol::{LeaseRequest, ReleaseRequest, Reply, TableRequest, VipSpec};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pivot_core::routes::HealthCheck;
use pivot_server::Secret;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

/// Between two looks at the lease's end.
pub const EXPIRY_CHECK: Duration = Duration::from_millis(100);

pub struct Agent {
    pub cfg: AgentConfig,
    pub inner: Mutex<Inner>,
}

pub struct Inner {
    pub core: AgentCore,
    /// The address this agent put up (and holds until released or its
    /// lease ends).
    pub placed: Option<Placed>,
}

/// The agent's clock: `CLOCK_BOOTTIME` in ms (it goes on while the host
/// sleeps, unlike `CLOCK_MONOTONIC`).
pub fn clock_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

pub fn router(agent: Arc<Agent>) -> Router {
    let token = agent.cfg.token.clone();
    Router::new()
        .route("/v1/state", get(state))
        .route("/v1/lease", post(lease))
        .route("/v1/release", post(release))
        .route("/v1/table", post(table))
        .route("/{check}", get(health))
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let token = token.clone();
            async move { authenticate(&token, req, next).await }
        }))
        .with_state(agent)
}

/// Compare without leaking where the first difference is.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

pub(crate) async fn authenticate(token: &Secret, req: Request, next: Next) -> Response {
    let given =
        req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if same(t.trim().as_bytes(), token.expose().as_bytes()) => next.run(req).await,
        other => {
            let why = if other.is_some() { "wrong token" } else { "no `Authorization: Bearer` token" };
            tracing::warn!("refused {} {}: {why}", req.method(), req.uri().path());
            let mut r = (StatusCode::UNAUTHORIZED, format!("unauthorized: {why}\n")).into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            r
        }
    }
}

fn reply(status: u16, message: impl Into<String>, inner: &Inner, now: u64) -> Response {
    let ok = status == 200;
    let r =
        Reply { ok, message: message.into(), state: inner.core.state(now, inner.placed.as_ref().map(Placed::cidr)) };
    (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), Json(r)).into_response()
}

impl Agent {
    /// Where `spec` goes on this host: the agent's interface wins.
    fn placement(&self, spec: &VipSpec) -> Result<Placed, String> {
        let a: VipAddress = spec.address.parse()?;
        let interface = self.cfg.interface.clone().unwrap_or_else(|| spec.interface.clone());
        crate::config::interface_name(&interface)?;
        Ok(Placed { ip: a.ip, prefix: a.prefix, interface })
    }

    /// Take down what this agent put up (and `also`, if it is there).
    pub async fn take_down(&self, inner: &mut Inner, also: Option<Placed>) -> Result<Vec<String>, String> {
        let mut done = Vec::new();
        let mut all: Vec<Placed> = inner.placed.take().into_iter().collect();
        all.extend(also.filter(|p| !all.contains(p)));
        let mut failed = None;
        for p in all {
            match net::take_down(&p).await {
                Ok(true) => done.push(format!("{p} taken down")),
                Ok(false) => {}
                Err(e) => {
                    // Still there as far as we know: keep it in mind.
                    inner.placed.get_or_insert(p);
                    failed = Some(e);
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }
}

async fn state(State(a): State<Arc<Agent>>) -> Response {
    let inner = a.inner.lock().await;
    let now = clock_ms();
    let r = inner.core.state(now, inner.placed.as_ref().map(Placed::cidr));
    Json(r).into_response()
}

async fn lease(State(a): State<Arc<Agent>>, Json(req): Json<LeaseRequest>) -> Response {
    let mut inner = a.inner.lock().await;
    let now = clock_ms();
    if let Err((status, why)) = inner.core.judge_lease(&req, now) {
        return reply(status, why, &inner, now);
    }
    let target = match req.vip.as_ref().map(|s| a.placement(s)).transpose() {
        Ok(t) => t,
        Err(e) => return reply(400, e, &inner, now),
    };
    // Another address (the configuration changed), or keepalived's mode:
    // nothing else of ours stays up.
    if inner.placed.is_some() && inner.placed != target {
        if let Err(e) = a.take_down(&mut inner, None).await {
            return reply(500, format!("cannot take the old address down: {e}"), &inner, now);
        }
    }
    let mut said = format!("primary of epoch {} for {} ms", req.epoch, req.lease_ms);
    if let Some(t) = target {
        let was_up = net::present(&t).await.unwrap_or(false);
        let life = req.lease_ms.div_ceil(1000);
        if let Err(e) = net::put_up(&t, life).await {
            return reply(500, e, &inner, now);
        }
        inner.placed = Some(t.clone());
        // `ip` took so long that the lease is late by this agent's clock:
        // pivot may already count it as over. Take the address down.
        let after = clock_ms();
        if after > req.valid_until_ms {
            let _ = a.take_down(&mut inner, None).await;
            inner.core.lease = None;
            let late = after - req.valid_until_ms;
            return reply(
                409,
                format!("the lease was {late} ms late once the address was up: taken down"),
                &inner,
                after,
            );
        }
        if !was_up {
            tracing::info!("{t} up: the primary of epoch {} is here", req.epoch);
            announce(a.clone(), t.clone());
            said = format!("{t} up, announced; {said}");
        }
    }
    inner.core.take_lease(&req, now);
    reply(200, said, &inner, now)
}

/// Two gratuitous ARPs now and one half a second later, if the address is
/// still ours then (an announcement of an address we gave up would send
/// clients to the wrong host).
fn announce(a: Arc<Agent>, t: Placed) {
    if let Err(e) = net::announce(&t.interface, t.ip, 2) {
        tracing::warn!("gratuitous ARP for {t}: {e}");
    }
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let inner = a.inner.lock().await;
        if inner.placed.as_ref() == Some(&t) {
            if let Err(e) = net::announce(&t.interface, t.ip, 1) {
                tracing::warn!("gratuitous ARP for {t}: {e}");
            }
        }
    });
}

async fn release(State(a): State<Arc<Agent>>, Json(req): Json<ReleaseRequest>) -> Response {
    let mut inner = a.inner.lock().await;
    let now = clock_ms();
    if let Err((status, why)) = inner.core.judge_release(req.epoch) {
        return reply(status, why, &inner, now);
    }
    let also = match req.vip.as_ref().map(|s| a.placement(s)).transpose() {
        Ok(t) => t,
        Err(e) => return reply(400, e, &inner, now),
    };
    let had = inner.core.lease.clone();
    // The lease ends first: even if the address cannot be taken down, this
    // agent no longer answers as the primary.
    inner.core.take_release(req.epoch, &req.table, req.lease_ms, now);
    let done = match a.take_down(&mut inner, also).await {
        Ok(done) => done,
        Err(e) => return reply(500, format!("cannot take the address down: {e}"), &inner, now),
    };
    if let Some(h) = had {
        tracing::info!("released (epoch {}): the lease of epoch {} ended; {}", req.epoch, h.epoch, done.join(", "));
    } else if !done.is_empty() {
        tracing::info!("released (epoch {}): {}", req.epoch, done.join(", "));
    }
    let said = if done.is_empty() { "not the primary; nothing held".to_string() } else { done.join(", ") };
    reply(200, said, &inner, now)
}

async fn table(State(a): State<Arc<Agent>>, Json(req): Json<TableRequest>) -> Response {
    let mut inner = a.inner.lock().await;
    let now = clock_ms();
    if let Err((status, why)) = inner.core.judge_table(&req.table) {
        return reply(status, why, &inner, now);
    }
    inner.core.take_table(&req.table, req.lease_ms, now);
    reply(200, format!("table of epoch {} kept", req.table.epoch), &inner, now)
}

async fn health(State(a): State<Arc<Agent>>, Path(check): Path<String>, RawQuery(query): RawQuery) -> Response {
    let check = match HealthCheck::parse(&check, query.as_deref()) {
        Ok(c) => c,
        Err(e) => return (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
    };
    let inner = a.inner.lock().await;
    let ans = inner.core.health(check, clock_ms());
    let status = StatusCode::from_u16(ans.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    (status, format!("{}\n", ans.body)).into_response()
}

/// Take the address down when the lease ends without a renewal.
pub async fn expire(a: Arc<Agent>) {
    loop {
        tokio::time::sleep(EXPIRY_CHECK).await;
        let mut inner = a.inner.lock().await;
        let now = clock_ms();
        // Also an address still up without a lease (taking it down failed).
        let orphan = inner.core.lease.is_none() && inner.placed.is_some();
        if !inner.core.expired(now) && !orphan {
            continue;
        }
        let epoch = inner.core.lease.as_ref().map_or(0, |l| l.epoch);
        inner.core.lease = None;
        match a.take_down(&mut inner, None).await {
            Ok(done) if done.is_empty() => {
                tracing::warn!("the lease of epoch {epoch} ended without a renewal from pivot: no longer the primary")
            }
            Ok(done) => tracing::warn!(
                "the lease of epoch {epoch} ended without a renewal from pivot: {} (self-fencing)",
                done.join(", ")
            ),
            Err(e) => tracing::error!("the lease of epoch {epoch} ended, but the address could not be taken down: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        use super::same;
        assert!(same(b"abcdef0123456789", b"abcdef0123456789"));
        for other in [&b"abcdef012345678"[..], b"abcdef0123456789x", b"Abcdef0123456789", b""] {
            assert!(!same(other, b"abcdef0123456789"), "{other:?}");
        }
    }
}
