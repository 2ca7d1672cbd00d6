//! The KV routes: the primary published to a real etcd (started here on
//! free ports, killed by PID on drop) by `pivot run` and by the failover's
//! `route_etcd` step, guarded by the epoch; and the Consul client against a
//! replay of Consul's HTTP answers.

use crate::support::*;
use etcd_client::{Client, GetOptions};
use pivot::config::{ConsulConfig, EtcdConfig};
use pivot::routes::kv::{KvPublisher, Published};
use pivot_drill::eventually;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A one-member etcd on 127.0.0.1, its data in a temporary directory.
struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    url: String,
}

impl Etcd {
    async fn start() -> Etcd {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}", free_port());
        let peer = format!("http://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new("etcd")
            .arg("--name=pivot-test")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=pivot-test={peer}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd (Debian package etcd-server, installed by scripts/deps.sh)");
        let etcd = Etcd { child: Some(child), dir, url };
        eventually(WAIT, "etcd answers", || async { etcd.keys("ready-check").await.map(|_| ()) }).await;
        etcd
    }

    /// Kill it by the PID it was started with, and reap it.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Every key under `mysql/master/<cluster>`, with the epoch key's
    /// `mod_revision` under `"#rev"`.
    async fn keys(&self, cluster: &str) -> Result<BTreeMap<String, String>, String> {
        let opts = etcd_client::ConnectOptions::new().with_timeout(Duration::from_secs(1));
        let mut c = Client::connect([self.url.as_str()], Some(opts)).await.map_err(|e| e.to_string())?;
        let base = format!("mysql/master/{cluster}");
        let resp = c.get(base.as_str(), Some(GetOptions::new().with_prefix())).await.map_err(|e| e.to_string())?;
        let mut out = BTreeMap::new();
        for kv in resp.kvs() {
            let k = kv.key_str().unwrap().to_string();
            if k == format!("{base}/epoch") {
                out.insert("#rev".to_string(), kv.mod_revision().to_string());
            }
            out.insert(k, kv.value_str().unwrap().to_string());
        }
        Ok(out)
    }

    fn config(&self, timeout: Duration) -> EtcdConfig {
        EtcdConfig { endpoints: vec![self.url.clone()], prefix: String::new(), timeout, required: true }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("---- etcd log (last 20 lines) ----\n{}", lines[lines.len().saturating_sub(20)..].join("\n"));
        }
        self.stop();
    }
}

/// The keys pivot writes for `primary` (a `127.0.0.1:port` key) at `epoch`.
fn expected(primary: &str, epoch: u64) -> BTreeMap<String, String> {
    let (host, port) = primary.rsplit_once(':').unwrap();
    [("", primary), ("/hostname", host), ("/port", port), ("/ipv4", host), ("/epoch", &epoch.to_string())]
        .iter()
        .map(|(k, v)| (format!("mysql/master/sandbox{k}"), v.to_string()))
        .collect()
}

fn without_rev(mut keys: BTreeMap<String, String>) -> BTreeMap<String, String> {
    keys.remove("#rev");
    keys
}

/// Wait until etcd names `primary` at an epoch of at least `min`; returns
/// the epoch.
async fn wait_keys(etcd: &Etcd, primary: &str, min: u64) -> u64 {
    eventually(WAIT, &format!("etcd names {primary} at epoch >= {min}"), || async {
        let keys = without_rev(etcd.keys("sandbox").await?);
        let epoch: u64 = keys.get("mysql/master/sandbox/epoch").and_then(|e| e.parse().ok()).unwrap_or(0);
        (epoch >= min && keys == expected(primary, epoch)).then_some(epoch).ok_or(format!("{keys:?}"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_names_the_primary_of_each_epoch_and_never_an_older_one() {
    let etcd = Etcd::start().await;
    let toml = format!("[cluster.etcd]\nendpoints = [\"{}\"]\nrequired = true\n", etcd.url);
    let mut rig = Rig::start(2, false, |_| toml).await;
    let old = rig.key("node1");
    // Adopted at start: nobody recovered to it, the follower publishes it.
    assert_eq!(wait_keys(&etcd, &old, 1).await, 1, "the first epoch");

    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let epoch = wait_keys(&etcd, &new, 2).await;
    let h = wait_recovery_status(&rig, "succeeded").await;
    let r = last_recovery(&h);
    let s = steps(r);
    let at = s.iter().position(|s| s == "promote=ok").unwrap_or_else(|| panic!("{s:?}"));
    assert_eq!(s[at..at + 4], ["promote=ok", "record_epoch=ok", "route_local=ok", "route_etcd=ok"], "{s:?}");
    let step = r["steps"].as_array().unwrap().iter().find(|s| s["name"] == "route_etcd").unwrap();
    let said = step["message"].as_str().unwrap_or_default();
    // The step and the follower race to write the new epoch; whichever is
    // second finds it there and writes nothing.
    assert!(
        said.contains(&format!("epoch {epoch}")) && said.contains(&new),
        "the step names the epoch and the primary: {said}"
    );

    // By hand, an older epoch is refused and changes nothing.
    let before = etcd.keys("sandbox").await.unwrap();
    let publisher = KvPublisher::etcd(&etcd.config(Duration::from_secs(2)), "sandbox");
    let old_key: pivot_core::InstanceKey = old.parse().unwrap();
    match publisher.publish(epoch - 1, &old_key).await {
        Ok(Published::Newer { epoch: there, primary }) => assert_eq!((there, primary.as_str()), (epoch, new.as_str())),
        other => panic!("an older epoch must be refused: {other:?}"),
    }
    assert_eq!(etcd.keys("sandbox").await.unwrap(), before, "untouched, revision included");
    // The same epoch again: nothing written (the revision stays).
    let new_key: pivot_core::InstanceKey = new.parse().unwrap();
    assert_eq!(publisher.publish(epoch, &new_key).await, Ok(Published::Unchanged));
    assert_eq!(etcd.keys("sandbox").await.unwrap(), before, "idempotent");
    // Keys deleted by hand come back with the next publication.
    let mut c = Client::connect([etcd.url.as_str()], None).await.unwrap();
    c.delete("mysql/master/sandbox/port", None).await.unwrap();
    assert_eq!(publisher.publish(epoch, &new_key).await, Ok(Published::Written { over: Some(epoch) }));
    assert_eq!(without_rev(etcd.keys("sandbox").await.unwrap()), expected(&new, epoch));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_required_etcd_route_that_cannot_be_updated_fails_the_recovery_but_the_promotion_stands() {
    let mut etcd = Etcd::start().await;
    let url = etcd.url.clone();
    let mut rig = Rig::start(2, false, |sb| {
        let alert = script(sb, "alert", &format!("echo \"$PIVOT_OUTCOME\" >> {}", sb.dir.join("alerts.out").display()));
        format!(
            "[cluster.etcd]\nendpoints = [\"{url}\"]\ntimeout = \"600ms\"\nrequired = true\n\
             [cluster.hooks]\nalert = [\"{}\"]\n",
            alert.display()
        )
    })
    .await;
    let old = rig.key("node1");
    wait_keys(&etcd, &old, 1).await;
    etcd.stop();

    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let h = wait_recovery_status(&rig, "failed").await;
    let r = last_recovery(&h);
    let s = steps(r);
    for want in ["promote=ok", "record_epoch=ok", "route_local=ok", "route_etcd=failed"] {
        assert!(s.contains(&want.to_string()), "{want} missing from {s:?}");
    }
    assert_eq!(r["new_primary"], new.as_str(), "the promotion stands");
    assert_eq!(rig.writable_nodes().await, vec![new.clone()], "and it is the one writer");
    let step = r["steps"].as_array().unwrap().iter().find(|s| s["name"] == "route_etcd").unwrap();
    let said = step["message"].as_str().unwrap_or_default();
    assert!(said.contains("not published within") && said.contains("3 attempts"), "{said}");
    let summary = r["summary"].as_str().unwrap_or_default();
    assert!(summary.contains("a required route was not updated"), "{summary}");
    // The API says "failed" too, not success.
    let (code, body) = pivot_drill::http_get(rig.addr, "/api/clusters/sandbox/recoveries?limit=1").await.unwrap();
    let api: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((code, api["recoveries"][0]["status"].as_str()), (200, Some("failed")), "{body}");
    let alerts = rig.sb.dir.join("alerts.out");
    eventually(WAIT, "an alert says so", || async {
        let text = std::fs::read_to_string(&alerts).unwrap_or_default();
        (text.contains("failed") && text.contains("a required route was not updated")).then_some(()).ok_or(text)
    })
    .await;
}

// ---- Consul -----------------------------------------------------------------

/// One request as the replaying server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    token: Option<String>,
    body: serde_json::Value,
}

/// A tiny HTTP server on 127.0.0.1 that answers each request with the next
/// recorded answer (status, body), and records the requests.
struct Replay {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Replay {
    fn start(answers: Vec<(u16, String)>) -> Replay {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let Ok((stream, _)) = listener.accept() else { return };
                let mut reader = BufReader::new(stream);
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut parts = request_line.split_whitespace();
                let (method, path) = (parts.next().unwrap().to_string(), parts.next().unwrap().to_string());
                let (mut length, mut token) = (0, None);
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    let (name, value) = line.split_once(':').unwrap();
                    match name.to_ascii_lowercase().as_str() {
                        "content-length" => length = value.trim().parse().unwrap(),
                        "x-consul-token" => token = Some(value.trim().to_string()),
                        _ => {}
                    }
                }
                let mut body_in = vec![0; length];
                reader.read_exact(&mut body_in).unwrap();
                let body_json = serde_json::from_slice(&body_in).unwrap_or(serde_json::Value::Null);
                log.lock().unwrap().push(Seen { method, path, token, body: body_json });
                let reason = match status {
                    200 => "OK",
                    404 => "Not Found",
                    409 => "Conflict",
                    _ => "Other",
                };
                let mut stream = reader.into_inner();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nVary: Accept-Encoding\r\n\
                     X-Consul-Default-Acl-Policy: deny\r\nX-Consul-Index: 41\r\nX-Consul-Knownleader: true\r\n\
                     X-Consul-Lastcontact: 0\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Replay { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Consul's answer to `GET /v1/kv/mysql/master/main?recurse=true` with
/// pivot's keys at `epoch` naming `primary`, the epoch key at `index`.
fn kv_listing(epoch: u64, primary: &str, index: u64) -> String {
    let (host, port) = primary.rsplit_once(':').unwrap();
    let entry = |k: &str, v: &str, i: u64| {
        format!(
            r#"{{"LockIndex":0,"Key":"mysql/master/main{k}","Flags":0,"Value":"{}","CreateIndex":12,"ModifyIndex":{i}}}"#,
            b64(v)
        )
    };
    format!(
        "[{},{},{},{},{}]",
        entry("", primary, index),
        entry("/epoch", &epoch.to_string(), index),
        entry("/hostname", host, index),
        entry("/ipv4", host, index),
        entry("/port", port, index)
    )
}

/// Consul's answer to a `/v1/txn` that applied: a result per `set` (values
/// blanked), none for the check.
fn txn_applied(index: u64) -> String {
    let results: Vec<String> = ["", "/hostname", "/port", "/ipv4", "/epoch"]
        .iter()
        .map(|k| {
            format!(
                r#"{{"KV":{{"LockIndex":0,"Key":"mysql/master/main{k}","Flags":0,"Value":null,"CreateIndex":12,"ModifyIndex":{index}}}}}"#
            )
        })
        .collect();
    format!(r#"{{"Results":[{}],"Errors":null}}"#, results.join(","))
}

/// The Consul client against a replay of Consul's HTTP answers, not a live
/// Consul: Consul cannot run on this machine (no package, no network to
/// fetch one). The answers are Consul's wire format as its HTTP API
/// documentation and source give it: `GET /v1/kv/...?recurse` lists entries
/// with base64 values and `ModifyIndex`, or 404 when there is none;
/// `PUT /v1/txn` answers 200 with `Results`, or 409 with `Errors` whose
/// `What` is the text of `agent/consul/state/kvs.go` ("failed index check
/// for key ..."). The test asserts what pivot sends: the paths, the token
/// header, the guard (`check-not-exists`, then `check-index` with the
/// `ModifyIndex` read) as operation 0 of one transaction with every `set`.
#[tokio::test]
async fn consul_client_against_a_replay_of_consul_answers() {
    let replay = Replay::start(vec![
        // 1. Nothing there: written under check-not-exists.
        (404, String::new()),
        (200, txn_applied(41)),
        // 2. The same epoch again: read only.
        (200, kv_listing(3, "127.0.0.1:3307", 41)),
        // 3. Epoch 4, but another writer moves the epoch key between the
        //    read and the transaction: refused by check-index, read again,
        //    and the newer epoch there wins.
        (200, kv_listing(3, "127.0.0.1:3307", 41)),
        (
            409,
            r#"{"Results":null,"Errors":[{"OpIndex":0,"What":"failed index check for key \"mysql/master/main/epoch\", current modify index 44 != 41"}]}"#.to_string(),
        ),
        (200, kv_listing(5, "127.0.0.1:3309", 44)),
        // 4. An older epoch: read only, left alone.
        (200, kv_listing(5, "127.0.0.1:3309", 44)),
    ]);
    let cfg = ConsulConfig {
        host: "127.0.0.1".into(),
        port: replay.addr.port(),
        prefix: String::new(),
        token: Some(pivot_server::Secret::new("acl-token-1234")),
        timeout: Duration::from_secs(2),
        required: false,
    };
    let publisher = KvPublisher::consul(&cfg, "main");
    let p3: pivot_core::InstanceKey = "127.0.0.1:3307".parse().unwrap();
    let p4: pivot_core::InstanceKey = "127.0.0.1:3308".parse().unwrap();
    assert_eq!(publisher.publish(3, &p3).await, Ok(Published::Written { over: None }));
    assert_eq!(publisher.publish(3, &p3).await, Ok(Published::Unchanged));
    assert_eq!(publisher.publish(4, &p4).await, Ok(Published::Newer { epoch: 5, primary: "127.0.0.1:3309".into() }));
    assert_eq!(publisher.publish(2, &p3).await, Ok(Published::Newer { epoch: 5, primary: "127.0.0.1:3309".into() }));

    let seen = replay.seen();
    let lines: Vec<String> = seen.iter().map(|s| format!("{} {}", s.method, s.path)).collect();
    let read = "GET /v1/kv/mysql/master/main?recurse=true";
    let txn = "PUT /v1/txn";
    assert_eq!(lines, [read, txn, read, read, txn, read, read], "{seen:#?}");
    assert!(seen.iter().all(|s| s.token.as_deref() == Some("acl-token-1234")), "the token on every request");
    let sets = |epoch: &str, primary: &str, port: &str| -> Vec<serde_json::Value> {
        [("", primary), ("/hostname", "127.0.0.1"), ("/port", port), ("/ipv4", "127.0.0.1"), ("/epoch", epoch)]
            .iter()
            .map(|(k, v)| serde_json::json!({"KV": {"Verb": "set", "Key": format!("mysql/master/main{k}"), "Value": b64(v)}}))
            .collect()
    };
    let mut first = vec![serde_json::json!({"KV": {"Verb": "check-not-exists", "Key": "mysql/master/main/epoch"}})];
    first.extend(sets("3", "127.0.0.1:3307", "3307"));
    assert_eq!(seen[1].body, serde_json::Value::Array(first), "one transaction: guard, then every key");
    let mut raced =
        vec![serde_json::json!({"KV": {"Verb": "check-index", "Key": "mysql/master/main/epoch", "Index": 41}})];
    raced.extend(sets("4", "127.0.0.1:3308", "3308"));
    assert_eq!(seen[4].body, serde_json::Value::Array(raced), "guarded by the ModifyIndex read");
}
