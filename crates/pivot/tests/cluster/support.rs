//! Helpers shared by the integration tests.

#![allow(dead_code)]

use pivot_drill::{http_get, PivotProcess, TestSandbox};
use serde_json::Value;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

pub fn pivot_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pivot"))
}

pub fn run_pivot(args: &[&str]) -> Output {
    std::process::Command::new(pivot_bin()).args(args).env_remove("PIVOT_CONFIG").output().expect("run pivot")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Extra settings for a test configuration.
pub struct ConfigOptions<'a> {
    pub seeds: Vec<String>,
    pub poll_interval: &'a str,
    /// TOML appended inside the cluster (e.g. `[cluster.failover]` tables).
    pub extra: String,
}

impl Default for ConfigOptions<'_> {
    fn default() -> Self {
        ConfigOptions { seeds: Vec::new(), poll_interval: "100ms", extra: String::new() }
    }
}

/// Write a pivot configuration for `sb` (its own state file, a free HTTP
/// port) and return its path and HTTP address.
pub fn write_config(sb: &TestSandbox, opts: ConfigOptions) -> (PathBuf, SocketAddr) {
    let port = free_port();
    let dir = &sb.dir;
    let seeds = if opts.seeds.is_empty() {
        sb.nodes().iter().map(|n| format!("{}:{}", n.host, n.port)).collect()
    } else {
        opts.seeds
    };
    let seeds = seeds.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    // Lines of `extra` before its first table go to the cluster itself. Tests
    // written before rejoin existed expect a former primary to stay fenced:
    // automatic rejoin is off unless a test sets it.
    let first_table = if opts.extra.starts_with('[') { Some(0) } else { opts.extra.find("\n[").map(|i| i + 1) };
    let (mut root, tables) = match first_table {
        Some(i) => (opts.extra[..i].to_string(), opts.extra[i..].to_string()),
        None => (opts.extra.clone(), String::new()),
    };
    if !root.contains("auto_rejoin") {
        root.push_str("auto_rejoin = false");
    }
    // In place of the blank line before [cluster.credentials]: line numbers
    // other tests assert on stay what they were.
    let root = root.trim_end();
    let text = format!(
        "[pivot]\nstate = \"{d}/test-pivot.db\"\nhttp = \"127.0.0.1:{port}\"\n\n\
         [[cluster]]\nname = \"sandbox\"\nseeds = [{seeds}]\npoll_interval = \"{poll}\"\nprobe_timeout = \"1s\"\n{root}\n\
         [cluster.credentials]\nuser = \"pivot\"\npassword_file = \"{d}/secrets/pivot.password\"\n\n\
         [cluster.replication]\nuser = \"repl\"\npassword_file = \"{d}/secrets/repl.password\"\n\n{extra}\n",
        d = dir.display(),
        poll = opts.poll_interval,
        extra = tables,
    );
    let path = dir.join(format!("test-{port}.toml"));
    std::fs::write(&path, text).unwrap();
    (path, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A configuration watching several sandboxes, one cluster each.
pub fn write_multi_config(clusters: &[(&str, &TestSandbox)], poll: &str) -> (PathBuf, SocketAddr) {
    let port = free_port();
    let dir = &clusters[0].1.dir;
    let mut text = format!("[pivot]\nstate = \"{}/multi.db\"\nhttp = \"127.0.0.1:{port}\"\n", dir.display());
    for (name, sb) in clusters {
        text.push_str(&format!(
            "\n[[cluster]]\nname = \"{name}\"\nseeds = [\"{}\"]\npoll_interval = \"{poll}\"\n\
             [cluster.credentials]\nuser = \"pivot\"\npassword_file = \"{}/secrets/pivot.password\"\n",
            key_of(sb, "node1"),
            sb.dir.display()
        ));
    }
    let path = dir.join(format!("multi-{port}.toml"));
    std::fs::write(&path, text).unwrap();
    (path, SocketAddr::from(([127, 0, 0, 1], port)))
}

pub fn start_daemon(sb: &TestSandbox, config: &Path) -> PivotProcess {
    let log = sb.dir.join(format!("pivot-{}.log", free_port()));
    PivotProcess::start(pivot_bin(), config, &log)
}

/// The cluster as `GET /api/clusters/sandbox` shows it.
pub async fn api_cluster(addr: SocketAddr) -> Result<Value, String> {
    let (status, body) = http_get(addr, "/api/clusters/sandbox").await?;
    if status != 200 {
        return Err(format!("HTTP {status}: {body}"));
    }
    serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))
}

/// The instance `key` in a cluster snapshot.
pub fn instance<'a>(cluster: &'a Value, key: &str) -> Option<&'a Value> {
    cluster["instances"].as_array()?.iter().find(|i| i["instance"] == key)
}

pub fn key_of(sb: &TestSandbox, node: &str) -> String {
    sb.key(node).unwrap().to_string()
}

pub async fn exec(sb: &TestSandbox, node: &str, statements: &[&str]) {
    let mut s = sb.admin(node).await.unwrap();
    for st in statements {
        s.exec(&pivot_dialect::Sql::plain(*st)).await.unwrap_or_else(|e| panic!("{node}: {st}: {e}"));
    }
}

pub const WAIT: Duration = Duration::from_secs(20);

// ---- failover rigs ----------------------------------------------------------

use pivot_drill::{eventually, Writer, WriterTarget};

/// A sandbox with the drill table, a configuration and a running daemon.
pub struct Rig {
    pub pivot: PivotProcess,
    pub config: PathBuf,
    pub addr: SocketAddr,
    pub sb: TestSandbox,
}

impl Rig {
    /// `extra` returns TOML appended to the cluster (e.g. a `[cluster.failover]`
    /// table); it may write files (hook scripts) into the sandbox directory.
    pub async fn start(nodes: u16, semi_sync: bool, extra: impl FnOnce(&TestSandbox) -> String) -> Rig {
        Rig::start_in(pivot_sandbox::Network::Loopback, nodes, semi_sync, extra).await
    }

    /// As [`Rig::start`], with the nodes on `network`.
    pub async fn start_in(
        network: pivot_sandbox::Network,
        nodes: u16,
        semi_sync: bool,
        extra: impl FnOnce(&TestSandbox) -> String,
    ) -> Rig {
        let sb = TestSandbox::up_with(|s| pivot_sandbox::SandboxSpec { nodes, semi_sync, network, ..s }).await;
        let mut admin = sb.admin("node1").await.unwrap();
        Writer::create_table(&mut admin).await;
        let extra = extra(&sb);
        let (config, addr) = write_config(&sb, ConfigOptions { extra, ..Default::default() });
        let pivot = start_daemon(&sb, &config);
        let rig = Rig { pivot, config, addr, sb };
        rig.wait_healthy_with_primary(&rig.key("node1")).await;
        rig
    }

    pub fn key(&self, node: &str) -> String {
        key_of(&self.sb, node)
    }

    pub fn node_keys(&self) -> Vec<pivot_core::InstanceKey> {
        self.sb.nodes().iter().map(|n| self.sb.key(&n.name).unwrap()).collect()
    }

    /// Wait until the API shows a healthy cluster whose primary is `primary`.
    pub async fn wait_healthy_with_primary(&self, primary: &str) -> Value {
        let addr = self.addr;
        eventually(WAIT, &format!("healthy with primary {primary}"), || async {
            let c = api_cluster(addr).await?;
            (c["code"] == "healthy" && c["primary"] == primary)
                .then(|| c.clone())
                .ok_or(format!("{} {} {}", c["code"], c["primary"], c["signal"]))
        })
        .await
    }

    /// Wait until the primary is someone other than `old`; returns the new one.
    pub async fn wait_new_primary(&self, old: &str) -> String {
        let addr = self.addr;
        eventually(WAIT, "a new primary", || async {
            let c = api_cluster(addr).await?;
            let p = c["primary"].as_str().unwrap_or_default().to_string();
            (c["code"] == "healthy" && !p.is_empty() && p != old)
                .then_some(p)
                .ok_or(format!("{} {}", c["code"], c["signal"]))
        })
        .await
    }

    pub fn writer(&self, id: u32) -> Writer {
        let creds = self.sb.credentials("app").unwrap();
        Writer::start(
            id,
            WriterTarget::FollowPrimary(self.node_keys()),
            creds,
            Duration::from_secs(2),
            Duration::from_millis(2),
        )
    }

    /// `pivot history --json` for this rig's cluster.
    pub fn history(&self) -> Value {
        let out = run_pivot(&["history", "--json", "--config", self.config.to_str().unwrap()]);
        assert!(out.status.success(), "history: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Instances that answer and are writable.
    pub async fn writable_nodes(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in self.sb.nodes() {
            if let Some(false) = read_only(&self.sb, &n.name).await {
                out.push(self.key(&n.name));
            }
        }
        out
    }
}

/// `@@read_only` of a node, `None` if it does not answer within a second.
pub async fn read_only(sb: &TestSandbox, node: &str) -> Option<bool> {
    let key = sb.key(node).ok()?;
    let creds = sb.credentials("admin").ok()?;
    let mut s = pivot_server::Session::connect(&key, &creds, Duration::from_secs(1)).await.ok()?;
    let rows = s.rows(&pivot_dialect::Sql::plain("SELECT @@read_only AS ro")).await.ok()?;
    rows.first()?.get("ro").cloned().flatten().map(|v| v == "1")
}

/// The first recovery in a history document (the newest).
/// Run a pivot command on the rig's configuration.
pub fn cli(rig: &Rig, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--config", rig.config.to_str().unwrap()]);
    run_pivot(&all)
}

/// Start a fresh daemon on the same configuration (after the old one died).
pub fn restart_daemon(rig: &mut Rig) {
    rig.pivot = start_daemon(&rig.sb, &rig.config);
}

/// Write an executable shell script into the sandbox directory.
pub fn script(sb: &TestSandbox, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = sb.dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Wait until a hook wrote its process id into `file` (in the sandbox
/// directory); returns it.
pub async fn wait_pid_file(rig: &Rig, file: &str) -> i32 {
    eventually(WAIT, &format!("a pid in {file}"), || async {
        std::fs::read_to_string(rig.sb.dir.join(file))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .ok_or("not yet".to_string())
    })
    .await
}

/// Wait until the newest recovery has a step `name` that started and has not ended.
pub async fn wait_step_running(rig: &Rig, name: &str) {
    eventually(WAIT, &format!("step {name} running"), || async {
        let h = rig.history();
        let r = last_recovery(&h);
        let running =
            r["steps"].as_array().is_some_and(|s| s.iter().any(|s| s["name"] == name && s["outcome"].is_null()));
        running.then_some(()).ok_or(format!("{:?}", steps(r)))
    })
    .await;
}

/// Wait until the newest recovery has `status`; returns the history.
pub async fn wait_recovery_status(rig: &Rig, status: &str) -> Value {
    eventually(WAIT, &format!("a recovery {status}"), || async {
        let h = rig.history();
        (last_recovery(&h)["status"] == status).then_some(h.clone()).ok_or(format!("{}", last_recovery(&h)["status"]))
    })
    .await
}

/// Keys of the sandbox nodes as TOML strings: `"127.0.0.1:1234"`.
pub fn toml_key(sb: &TestSandbox, node: &str) -> String {
    format!("\"{}\"", key_of(sb, node))
}

pub fn last_recovery(history: &Value) -> &Value {
    &history["recoveries"][0]
}

/// Names of the steps of a recovery with their outcomes: `promote=ok`.
pub fn steps(recovery: &Value) -> Vec<String> {
    recovery["steps"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|s| format!("{}={}", s["name"].as_str().unwrap_or(""), s["outcome"].as_str().unwrap_or("none")))
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.pivot.log_text();
            let tail: Vec<&str> = log.lines().filter(|l| !l.contains("DEBUG")).collect();
            eprintln!("---- pivot log (last 60 lines) ----\n{}", tail[tail.len().saturating_sub(60)..].join("\n"));
        }
    }
}

/// A 1 MiB tmpfs mounted for one test (root only), unmounted on drop.
pub struct TinyDisk {
    pub dir: std::path::PathBuf,
}

impl TinyDisk {
    pub fn mount(dir: &std::path::Path) -> TinyDisk {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount a tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr));
        TinyDisk { dir: dir.to_path_buf() }
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The `@@server_id` of the server a session reached (through a proxy, a
/// DNS name, a virtual IP).
pub async fn session_server_id(s: &mut pivot_server::Session) -> Result<u32, String> {
    let rows = s.rows(&pivot_dialect::Sql::plain("SELECT @@server_id AS id")).await.map_err(|e| e.to_string())?;
    rows.first().and_then(|r| r.get("id").cloned().flatten()).and_then(|v| v.parse().ok()).ok_or("no id".into())
}

/// A fresh connection to `via`, and the `@@server_id` of the server behind it.
pub async fn connect_server_id(
    via: &pivot_core::InstanceKey,
    creds: &pivot_server::Credentials,
    timeout: Duration,
) -> Result<(u32, pivot_server::Session), String> {
    let mut s = pivot_server::Session::connect(via, creds, timeout).await.map_err(|e| e.to_string())?;
    Ok((session_server_id(&mut s).await?, s))
}

// ---- switchover and sysbench helpers ---------------------------------------------

/// The API token tests put in `[pivot] api_token_file`.
pub const API_TOKEN: &str = "pivot-test-api-token-0123456789abcdef";

/// `[pivot] api_token_file` added to the rig's configuration (a 0600 file
/// holding [`API_TOKEN`]); the daemon reads it at its next start.
pub fn with_api_token(rig: &Rig) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let token = rig.sb.dir.join("api.token");
    std::fs::write(&token, format!("{API_TOKEN}\n")).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(&rig.config).unwrap();
    let text = text.replacen("[pivot]\n", &format!("[pivot]\napi_token_file = \"{}\"\n", token.display()), 1);
    std::fs::write(&rig.config, text).unwrap();
    token
}

/// A sysbench run, killed (by its PID) when the test ends, even on failure.
pub struct Sysbench(pub Option<std::process::Child>);

impl Sysbench {
    /// `sysbench oltp_read_write` as `app` on 127.0.0.1:`port` (4 tables of
    /// 2000 rows in `test`, no prepared statements: the proxy's protocol
    /// mode does not move them), with `args` (`prepare`, or `run` and its
    /// options); output captured.
    pub fn oltp_read_write(app: &pivot_server::Credentials, port: u16, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new("sysbench");
        c.arg("oltp_read_write")
            .arg("--mysql-host=127.0.0.1")
            .arg(format!("--mysql-port={port}"))
            .arg(format!("--mysql-user={}", app.user))
            .env("MYSQL_PWD", app.password.expose())
            .args(["--mysql-db=test", "--tables=4", "--table-size=2000", "--db-ps-mode=disable"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    }

    pub fn running(&mut self) -> bool {
        self.0.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kill it; its output so far.
    pub fn end(&mut self) -> String {
        let Some(mut c) = self.0.take() else { return String::new() };
        let _ = c.kill();
        let out = c.wait_with_output().expect("sysbench's output");
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }
}

impl Drop for Sysbench {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Wait until `writer` has `n` writes acknowledged by `instance` (bounded).
pub async fn wait_acks(writer: &Writer, instance: &str, n: usize) {
    eventually(WAIT, &format!("{n} writes acknowledged by {instance}"), || async {
        let got = writer.acks().iter().filter(|a| a.instance.to_string() == instance).count();
        (got >= n).then_some(()).ok_or(format!("{got}"))
    })
    .await
}
