//! The webhook (`[pivot.webhook]`): replication-health alerts and the
//! control plane's alerts POSTed as JSON
//! (pivot's own fields, or `{"text": ...}` for Slack and Mattermost).
//!
//! One sender task per process drains a bounded queue (full: the oldest
//! alert is dropped and counted); each alert gets at most `1 + retries`
//! attempts, each bounded by `timeout`, with a doubling backoff. Nothing
//! here blocks a monitor: `push` only queues. The URL's path may hold a
//! secret: logs show `http://host:port` only.

use crate::config::{WebhookConfig, WebhookFormat};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use pivot_core::control::health_alerts::HealthAlert;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// First wait between attempts; doubled each time, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Bound on an answer's body (read and discarded).
const MAX_ANSWER: usize = 64 * 1024;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    pub dropped: AtomicU64,
}

struct Inner {
    cfg: WebhookConfig,
    queue: Mutex<VecDeque<Value>>,
    wake: Notify,
    stats: Arc<WebhookStats>,
}

#[derive(Clone)]
pub struct Webhook {
    inner: Arc<Inner>,
}

impl Webhook {
    /// Start the sender task (it ends with the runtime).
    pub fn start(cfg: WebhookConfig) -> Webhook {
        let inner = Arc::new(Inner {
            cfg,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            stats: Arc::new(WebhookStats::default()),
        });
        tracing::info!(webhook = %inner.cfg.url.shown(), "replication alerts go to the webhook");
        tokio::spawn(sender(inner.clone()));
        Webhook { inner }
    }

    pub fn stats(&self) -> Arc<WebhookStats> {
        self.inner.stats.clone()
    }

    /// Queue `alert` (which happened at wall time `wall_ms`).
    pub fn push(&self, alert: &HealthAlert, wall_ms: i64) {
        self.push_body(body(self.inner.cfg.format, alert, wall_ms));
    }

    /// Queue a control-plane alert (a dead primary pivot will not fail over,
    /// a failover that could not run, pivot unable to act safely, ...).
    pub fn push_control(&self, c: &ControlAlert, wall_ms: i64) {
        self.push_body(control_body(self.inner.cfg.format, c, wall_ms));
    }

    fn push_body(&self, body: Value) {
        let dropped = {
            let mut q = self.inner.queue.lock().unwrap_or_else(|e| e.into_inner());
            push_bounded(&mut q, self.inner.cfg.queue, body)
        };
        if dropped {
            self.inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(webhook = %self.inner.cfg.url.shown(), "webhook queue full: the oldest alert was dropped");
        }
        self.inner.wake.notify_one();
    }
}

/// Queue `item`, dropping the oldest when `cap` are waiting; whether one was dropped.
fn push_bounded<T>(q: &mut VecDeque<T>, cap: usize, item: T) -> bool {
    let dropped = q.len() >= cap && q.pop_front().is_some();
    q.push_back(item);
    dropped
}

/// A control-plane alert, as the webhook carries it.
pub struct ControlAlert<'a> {
    pub cluster: &'a str,
    /// The analysis code (`dead_primary`, ...) or `control`.
    pub analysis: &'a str,
    /// The primary concerned, if any.
    pub primary: Option<&'a pivot_core::InstanceKey>,
    pub text: &'a str,
}

fn rfc3339(wall_ms: i64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(wall_ms).unwrap_or(0)))
        .to_string()
}

/// The POST body of a control-plane alert: the same fields as a
/// replication-health alert (`kind` is `control`, `analysis` its code,
/// `message` and `text` the alert in words).
pub fn control_body(format: WebhookFormat, c: &ControlAlert, wall_ms: i64) -> Value {
    let time = rfc3339(wall_ms);
    match format {
        WebhookFormat::Slack => {
            json!({ "text": format!(":rotating_light: pivot [{}] {} at {time}", c.cluster, slack_escape(c.text)) })
        }
        WebhookFormat::Json => json!({
            "cluster": c.cluster,
            "instance": c.primary.map(ToString::to_string),
            "kind": "control",
            "analysis": c.analysis,
            "status": "problem",
            "from": null,
            "to": null,
            "error_number": null,
            "error_text": null,
            "lag_seconds": null,
            "threshold_seconds": null,
            "message": c.text,
            "suppressed": 0,
            "time": time,
            "time_ms": wall_ms,
            "text": c.text,
        }),
    }
}

/// Slack reads `<...>` in a message's text as a link or a mention
/// (`<!channel>`, `<@U123>`): an error text quoting a row's value must not
/// ping anyone. Its three control characters are escaped as Slack asks.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The POST body of `alert` in `format`.
pub fn body(format: WebhookFormat, a: &HealthAlert, wall_ms: i64) -> Value {
    let time = rfc3339(wall_ms);
    match format {
        WebhookFormat::Slack => {
            let icon = if a.resolved { ":white_check_mark:" } else { ":rotating_light:" };
            json!({ "text": format!("{icon} pivot [{}] {} at {time}", a.cluster, slack_escape(&a.line())) })
        }
        WebhookFormat::Json => json!({
            "cluster": a.cluster,
            "instance": a.instance.to_string(),
            "kind": a.kind.as_str(),
            "status": if a.resolved { "resolved" } else { "problem" },
            "from": a.from,
            "to": a.to,
            "error_number": a.error.as_ref().map(|e| e.number),
            "error_text": a.error.as_ref().map(|e| e.message.clone()),
            "lag_seconds": a.lag_s,
            "threshold_seconds": a.threshold_s,
            "message": a.message,
            "suppressed": a.suppressed,
            "time": time,
            "time_ms": wall_ms,
            "text": a.line(),
        }),
    }
}

async fn sender(inner: Arc<Inner>) {
    loop {
        let next = inner.queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        let Some(body) = next else {
            inner.wake.notified().await;
            continue;
        };
        deliver(&inner, body.to_string()).await;
    }
}

async fn deliver(inner: &Inner, body: String) {
    let cfg = &inner.cfg;
    let mut backoff = FIRST_BACKOFF;
    for attempt in 0..=cfg.retries {
        if attempt > 0 {
            inner.stats.retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        let result = match tokio::time::timeout(cfg.timeout, post(cfg, body.clone())).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {}", humantime::format_duration(cfg.timeout))),
        };
        match result {
            Ok(()) => {
                inner.stats.sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(e) => tracing::warn!(
                webhook = %cfg.url.shown(),
                "webhook attempt {} of {} failed: {e}",
                attempt + 1,
                cfg.retries + 1
            ),
        }
    }
    inner.stats.failed.fetch_add(1, Ordering::Relaxed);
    tracing::error!(webhook = %cfg.url.shown(), "webhook: alert not delivered after {} attempts", cfg.retries + 1);
}

/// One POST on its own connection; `Ok` on a 2xx answer. Errors never
/// name the path.
async fn post(cfg: &WebhookConfig, body: String) -> Result<(), String> {
    let u = &cfg.url;
    let stream =
        tokio::net::TcpStream::connect((u.host.as_str(), u.port)).await.map_err(|e| format!("cannot connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
    let conn = tokio::spawn(conn);
    let authority =
        if u.host.contains(':') { format!("[{}]:{}", u.host, u.port) } else { format!("{}:{}", u.host, u.port) };
    let req = Request::builder()
        .method(Method::POST)
        .uri(u.path.expose())
        .header(HOST, authority)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| "cannot build the request (check the URL's path)".to_string())?;
    let result = async {
        let resp = sender.send_request(req).await.map_err(|e| format!("HTTP: {e}"))?;
        let status = resp.status();
        let _ = Limited::new(resp.into_body(), MAX_ANSWER).collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {}", status.as_u16()))
        }
    }
    .await;
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use pivot_core::control::health_alerts::HealthKind;
    use pivot_core::observation::ReplicationError;

    fn alert(resolved: bool) -> HealthAlert {
        HealthAlert {
            cluster: "main".into(),
            instance: "10.0.0.2:3306".parse().unwrap(),
            kind: HealthKind::Sql,
            resolved,
            from: if resolved { "error" } else { "running" }.into(),
            to: if resolved { "running" } else { "error" }.into(),
            error: Some(ReplicationError { number: 1062, message: "Duplicate entry '1' for key 'PRIMARY'".into() }),
            lag_s: None,
            threshold_s: None,
            message: None,
            suppressed: 2,
            at: pivot_core::Millis(1),
        }
    }

    #[test]
    fn bodies() {
        let wall = 1_795_395_723_456;
        let j = body(WebhookFormat::Json, &alert(false), wall);
        assert_eq!(j["instance"], "10.0.0.2:3306");
        assert_eq!((j["kind"].as_str(), j["status"].as_str()), (Some("sql"), Some("problem")));
        assert_eq!((j["error_number"].as_u64(), j["suppressed"].as_u64()), (Some(1062), Some(2)));
        assert_eq!(j["time"], "2026-11-23T01:02:03.456Z");
        assert!(j["text"].as_str().unwrap().starts_with("PROBLEM 10.0.0.2:3306 sql: running -> error (error 1062"));
        let s = body(WebhookFormat::Slack, &alert(true), wall);
        let obj = s.as_object().unwrap();
        assert_eq!(obj.keys().collect::<Vec<_>>(), vec!["text"], "Slack and Mattermost read `text`");
        let text = s["text"].as_str().unwrap();
        assert!(text.starts_with(":white_check_mark: pivot [main] RESOLVED 10.0.0.2:3306 sql"), "{text}");
    }

    /// Found by a hostile review: a duplicate-key error quoting a row's
    /// value `<!channel>` pinged the whole Slack channel.
    #[test]
    fn slack_text_cannot_mention_or_link() {
        let mut a = alert(false);
        a.error =
            Some(ReplicationError { number: 1062, message: "Duplicate entry '<!channel>' for key 'PRIMARY'".into() });
        let s = body(WebhookFormat::Slack, &a, 1_795_395_723_456);
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("'&lt;!channel&gt;'") && !text.contains('<'), "{text}");
        assert!(text.contains("running -&gt; error"), "{text}");
        let j = body(WebhookFormat::Json, &a, 1_795_395_723_456);
        assert!(j["error_text"].as_str().unwrap().contains("<!channel>"), "JSON carries the text as is");
    }

    #[test]
    fn control_bodies() {
        let primary: pivot_core::InstanceKey = "10.0.0.1:3306".parse().unwrap();
        let c = ControlAlert { cluster: "main", analysis: "dead_primary", primary: Some(&primary), text: "blocked" };
        let j = control_body(WebhookFormat::Json, &c, 1_795_395_723_456);
        assert_eq!((j["kind"].as_str(), j["analysis"].as_str()), (Some("control"), Some("dead_primary")));
        assert_eq!((j["instance"].as_str(), j["text"].as_str()), (Some("10.0.0.1:3306"), Some("blocked")));
        let s = control_body(WebhookFormat::Slack, &c, 1_795_395_723_456);
        assert_eq!(s["text"], ":rotating_light: pivot [main] blocked at 2026-11-23T01:02:03.456Z");
    }

    #[test]
    fn a_full_queue_drops_the_oldest() {
        let mut q = VecDeque::new();
        assert!(!push_bounded(&mut q, 2, 1));
        assert!(!push_bounded(&mut q, 2, 2));
        assert!(push_bounded(&mut q, 2, 3));
        assert_eq!(q, VecDeque::from([2, 3]));
    }
}
