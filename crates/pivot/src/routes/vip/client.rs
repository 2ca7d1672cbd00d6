//! HTTP to one agent: plain HTTP/1.1, one connection per request, the token
//! in `Authorization: Bearer` (a sensitive header, never printed), every
//! request bounded by a timeout.

use super::protocol::{AgentState, Reply};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use pivot_core::InstanceKey;
use pivot_server::Secret;
use serde::Serialize;
use std::time::Duration;

/// Bound on an answer's body (a route table of many instances fits).
const MAX_BODY: usize = 4 << 20;

#[derive(Clone)]
pub struct AgentClient {
    pub addr: InstanceKey,
    token: Secret,
    timeout: Duration,
}

/// How a command ended.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200: done.
    Done(Reply),
    /// 409: refused, with the agent's state (its boot and clock).
    Refused(Reply),
    /// Anything else: no answer, 401, 400, 500.
    Failed(String),
}

impl AgentClient {
    pub fn new(addr: InstanceKey, token: Secret, timeout: Duration) -> AgentClient {
        AgentClient { addr, token, timeout }
    }

    /// `GET /v1/state`.
    pub async fn state(&self) -> Result<AgentState, String> {
        let (status, body) = self.request(Method::GET, "/v1/state", None).await?;
        if status != 200 {
            return Err(format!("agent {}: HTTP {status}: {}", self.addr, text(&body)));
        }
        serde_json::from_slice(&body).map_err(|e| format!("agent {}: not an agent's state: {e}", self.addr))
    }

    /// `POST path` with `body` as JSON.
    pub async fn command(&self, path: &str, body: &impl Serialize) -> Answer {
        let json = match serde_json::to_vec(body) {
            Ok(j) => j,
            Err(e) => return Answer::Failed(format!("cannot encode the command: {e}")),
        };
        let (status, body) = match self.request(Method::POST, path, Some(json)).await {
            Ok(r) => r,
            Err(e) => return Answer::Failed(e),
        };
        let reply = || serde_json::from_slice::<Reply>(&body);
        match (status, reply()) {
            (200, Ok(r)) => Answer::Done(r),
            (409, Ok(r)) => Answer::Refused(r),
            (_, Ok(r)) => Answer::Failed(format!("agent {}: HTTP {status}: {}", self.addr, r.message)),
            (_, Err(_)) => Answer::Failed(format!("agent {}: HTTP {status}: {}", self.addr, text(&body))),
        }
    }

    /// One request within the timeout; the status and the body.
    pub async fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<(u16, Bytes), String> {
        let at = &self.addr;
        match tokio::time::timeout(self.timeout, request(at, &self.token, method, path, body)).await {
            Ok(r) => r.map_err(|e| format!("agent {at}: {e}")),
            Err(_) => Err(format!("agent {at}: no answer within {}", humantime::format_duration(self.timeout))),
        }
    }
}

fn text(body: &[u8]) -> String {
    let t = String::from_utf8_lossy(body);
    t.trim().chars().take(300).collect()
}

/// One HTTP request to `addr` with the bearer token (no timeout of its own).
pub async fn request(
    addr: &InstanceKey,
    token: &Secret,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<(u16, Bytes), String> {
    let stream = tokio::net::TcpStream::connect((addr.host.as_str(), addr.port))
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let mut bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| "the token is not a valid header value".to_string())?;
    bearer.set_sensitive(true);
    let mut req =
        Request::builder().method(method).uri(path).header(HOST, addr.to_string()).header(AUTHORIZATION, bearer);
    if body.is_some() {
        req = req.header(CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
    .await;
    conn.abort();
    result
}
