//! The webhook (`[pivot.webhook]`): replication-health alerts and the
//! control plane's alerts POSTed as JSON
//! (pivot's own fields, or `{"text": ...}` for Slack and Mattermost).
//!
//! One sender task per process drains a bounded queue (full: the oldest
//! alert is dropped and counted); each alert gets at most `1 + retries`
//! attempts, each bounded by `timeout`, with a doubling backoff. Nothing
//! here blocks a monitor: `push` only queues. The URL's path may hold a
//! secret: logs show `http[s]://host:port` only. An `https://` URL is
//! reached over TLS (rustls), the server's certificate checked against the
//! system's roots or the `ca_file`'s.

use crate::config::{WebhookConfig, WebhookFormat, WebhookRoots};
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
    /// For an `https://` URL: the TLS client, or why there is none.
    tls: Option<Result<tokio_rustls::TlsConnector, String>>,
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
        let tls = cfg.url.tls.then(|| tls_connector(&cfg.roots));
        if let Some(Err(e)) = &tls {
            tracing::error!(webhook = %cfg.url.shown(), "webhook: {e}");
        }
        let inner = Arc::new(Inner {
            cfg,
            tls,
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
        let result = match tokio::time::timeout(cfg.timeout, post(cfg, inner.tls.as_ref(), body.clone())).await {
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

/// The TLS client for an `https://` webhook: the roots it trusts.
fn tls_connector(roots: &WebhookRoots) -> Result<tokio_rustls::TlsConnector, String> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore};
    let mut store = RootCertStore::empty();
    let certs = match roots {
        WebhookRoots::File(certs) => certs.clone(),
        WebhookRoots::System => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(match roots {
            WebhookRoots::System => "no trusted root certificate found on this system: install the Debian package \
                                     ca-certificates, or set [pivot.webhook] ca_file"
                .into(),
            WebhookRoots::File(_) => "[pivot.webhook] ca_file holds no certificate rustls can use".into(),
        });
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// One POST on its own connection (over TLS for `https://`); `Ok` on a 2xx
/// answer. Errors never name the path.
async fn post(
    cfg: &WebhookConfig,
    tls: Option<&Result<tokio_rustls::TlsConnector, String>>,
    body: String,
) -> Result<(), String> {
    let u = &cfg.url;
    let stream =
        tokio::net::TcpStream::connect((u.host.as_str(), u.port)).await.map_err(|e| format!("cannot connect: {e}"))?;
    match tls {
        None => exchange(cfg, stream, body).await,
        Some(Err(e)) => Err(e.clone()),
        Some(Ok(connector)) => {
            use tokio_rustls::rustls::pki_types::ServerName;
            let name = ServerName::try_from(u.host.clone())
                .map_err(|_| "the url's host is not a valid TLS server name".to_string())?;
            let stream = connector.connect(name, stream).await.map_err(|e| format!("TLS: {e}"))?;
            exchange(cfg, stream, body).await
        }
    }
}

/// The request and its answer on a connection set up by [`post`].
async fn exchange<S>(cfg: &WebhookConfig, stream: S, body: String) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let u = &cfg.url;
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

    /// A private CA and a server certificate for 127.0.0.1 it signed, made
    /// by `openssl` (Debian package openssl): (CA PEM, server certificate
    /// PEM, server key PEM).
    fn private_ca(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
        let p = |n: &str| dir.join(n);
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl (scripts/deps.sh installs it)");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let days = ["-days", "2"];
        run(&[
            &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=pivot test CA"][..],
            &days,
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat());
        run(&[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "req.csr",
        ]);
        std::fs::write(p("ext.cnf"), "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
        run(&[
            &["x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"][..],
            &days,
            &["-extfile", "ext.cnf", "-out", "cert.pem"],
        ]
        .concat());
        (p("ca.pem"), p("cert.pem"), p("key.pem"))
    }

    /// A TLS server answering 200 to every request; the paths it saw.
    async fn tls_server(cert: &std::path::Path, key: &std::path::Path) -> (u16, Arc<Mutex<Vec<String>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls::ServerConfig;
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(cert).unwrap().collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let paths = seen.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, paths) = (acceptor.clone(), paths.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    paths.lock().unwrap().push(head.split_whitespace().nth(1).unwrap_or_default().to_string());
                    let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, seen)
    }

    fn config(url: &str, roots: WebhookRoots) -> WebhookConfig {
        WebhookConfig {
            url: crate::config::parse_webhook_url(url).unwrap(),
            format: WebhookFormat::Json,
            timeout: Duration::from_secs(5),
            retries: 0,
            queue: 1,
            roots,
        }
    }

    #[tokio::test]
    async fn https_checks_the_servers_certificate_against_the_ca_file_or_the_system_roots() {
        use tokio_rustls::rustls::pki_types::{pem::PemObject, CertificateDer};
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = private_ca(dir.path());
        let (port, paths) = tls_server(&cert, &key).await;
        let url = format!("https://127.0.0.1:{port}/hooks/s3cret");
        let post_to = |cfg: WebhookConfig| async move {
            let tls = cfg.url.tls.then(|| tls_connector(&cfg.roots));
            post(&cfg, tls.as_ref(), "{}".into()).await
        };

        // Its own CA (ca_file): delivered, over TLS, to the secret path.
        let ca: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(&ca).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(post_to(config(&url, WebhookRoots::File(ca))).await, Ok(()));
        assert_eq!(*paths.lock().unwrap(), vec!["/hooks/s3cret".to_string()]);

        // The system's roots do not know a private CA: refused
        // before anything is sent, the reason given, the secret not.
        let e = post_to(config(&url, WebhookRoots::System)).await.unwrap_err();
        assert!(e.starts_with("TLS: ") && e.contains("certificate"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
        // Plain HTTP to a TLS port: an error, not a hang (bounded anyway).
        let e = post_to(config(&format!("http://127.0.0.1:{port}/hooks/s3cret"), WebhookRoots::System)).await;
        assert!(e.is_err(), "{e:?}");
        assert_eq!(paths.lock().unwrap().len(), 1, "nothing else reached the server");
    }
}
