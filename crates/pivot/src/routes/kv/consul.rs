//! Consul's KV store through its HTTP API: `GET /v1/kv/<base>?recurse=true`
//! to read, and one `PUT /v1/txn` (`check-index` or `check-not-exists` on
//! the epoch key, then a `set` per key) to write every key atomically. The
//! ACL token, if any, goes in the `X-Consul-Token` header and is never
//! printed. Plain HTTP (a local agent); each request on its own connection.

use super::{Layout, Snapshot};
use crate::config::ConsulConfig;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use pivot_server::Secret;
use serde_json::{json, Value};

/// Bound on a response body: our keys (and any sharing their prefix).
const MAX_BODY: usize = 1 << 20;

#[derive(Clone)]
pub struct ConsulStore {
    host: String,
    port: u16,
    address: String,
    token: Option<Secret>,
}

impl ConsulStore {
    pub fn new(cfg: &ConsulConfig) -> ConsulStore {
        ConsulStore { host: cfg.host.clone(), port: cfg.port, address: cfg.address(), token: cfg.token.clone() }
    }

    pub async fn read(&self, layout: &Layout) -> Result<Snapshot, String> {
        let (status, body) = self.request(Method::GET, &read_path(layout), None).await?;
        parse_read(status.as_u16(), &body, layout).map_err(|e| format!("consul {}: {e}", self.address))
    }

    /// One transaction: the epoch key still at `version` (missing: `None`),
    /// then every value. Returns whether it applied.
    pub async fn write_if(
        &self,
        epoch_key: &str,
        version: Option<u64>,
        values: &[(String, String)],
    ) -> Result<bool, String> {
        let body = txn_body(epoch_key, version, values).to_string();
        let (status, reply) = self.request(Method::PUT, "/v1/txn", Some(body.into_bytes())).await?;
        parse_txn(status.as_u16(), &reply).map_err(|e| format!("consul {}: {e}", self.address))
    }

    async fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<(StatusCode, Bytes), String> {
        let at = &self.address;
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("consul {at}: cannot connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("consul {at}: {e}"))?;
        let conn = tokio::spawn(conn);
        let authority = at.trim_start_matches("http://").to_string();
        let mut req = Request::builder().method(method).uri(path).header(HOST, authority);
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            let mut v = HeaderValue::from_str(token.expose())
                .map_err(|_| format!("consul {at}: the token in token_file is not a valid header value"))?;
            v.set_sensitive(true);
            req = req.header("X-Consul-Token", v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| format!("consul {at}: cannot build the request: {e}"))?;
        let result = async {
            let resp = sender.send_request(req).await.map_err(|e| format!("consul {at}: {e}"))?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| format!("consul {at}: reading the answer: {e}"))?
                .to_bytes();
            Ok((status, body))
        }
        .await;
        conn.abort();
        result
    }
}

/// Every key under the cluster's base (also other clusters whose names
/// start with it: [`parse_read`] keeps only ours).
pub fn read_path(layout: &Layout) -> String {
    format!("/v1/kv/{}?recurse=true", layout.base())
}

/// The answer of [`read_path`]: 404 means no key at all.
pub fn parse_read(status: u16, body: &[u8], layout: &Layout) -> Result<Snapshot, String> {
    let mut snap = Snapshot::default();
    match status {
        404 => return Ok(snap),
        200 => {}
        other => return Err(http_error(other, body)),
    }
    let entries: Vec<Value> =
        serde_json::from_slice(body).map_err(|e| format!("the KV answer is not a list of entries: {e}"))?;
    let keys = layout.keys();
    let epoch_key = layout.epoch_key();
    for e in entries {
        let Some(key) = e["Key"].as_str().filter(|k| keys.iter().any(|ours| ours == k)) else { continue };
        let value = match e["Value"].as_str() {
            None => String::new(),
            Some(b64) => {
                let raw = BASE64.decode(b64).map_err(|err| format!("`{key}`: the value is not base64: {err}"))?;
                String::from_utf8(raw).map_err(|_| format!("`{key}` does not hold UTF-8 text"))?
            }
        };
        if key == epoch_key {
            let index = e["ModifyIndex"].as_u64().ok_or_else(|| format!("`{key}` has no ModifyIndex"))?;
            snap.epoch_version = Some(index);
        }
        snap.values.insert(key.to_string(), value);
    }
    Ok(snap)
}

/// The `/v1/txn` body: the guard on the epoch key first (operation 0), then
/// a `set` of every value.
pub fn txn_body(epoch_key: &str, version: Option<u64>, values: &[(String, String)]) -> Value {
    let guard = match version {
        None => json!({"KV": {"Verb": "check-not-exists", "Key": epoch_key}}),
        Some(index) => json!({"KV": {"Verb": "check-index", "Key": epoch_key, "Index": index}}),
    };
    let sets = values.iter().map(|(k, v)| json!({"KV": {"Verb": "set", "Key": k, "Value": BASE64.encode(v)}}));
    Value::Array(std::iter::once(guard).chain(sets).collect())
}

/// 200: applied. 409 with the guard (operation 0) failed: the epoch key
/// changed since it was read (not applied, read again). Anything else is
/// an error.
pub fn parse_txn(status: u16, body: &[u8]) -> Result<bool, String> {
    match status {
        200 => Ok(true),
        409 => {
            let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let errors = v["Errors"].as_array().cloned().unwrap_or_default();
            let guard_failed = !errors.is_empty() && errors.iter().all(|e| e["OpIndex"].as_u64() == Some(0));
            if guard_failed {
                Ok(false)
            } else {
                let what: Vec<String> = errors.iter().map(|e| e["What"].as_str().unwrap_or("?").to_string()).collect();
                Err(format!("the transaction was rolled back: {}", what.join("; ")))
            }
        }
        other => Err(http_error(other, body)),
    }
}

fn http_error(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
    let hint = match status {
        401 | 403 => " (check the ACL token in token_file: it needs key write on the prefix)",
        _ => "",
    };
    format!("HTTP {status}: {text}{hint}")
}
