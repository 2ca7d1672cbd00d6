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
    let text = format!(
        "[pivot]\nstate = \"{d}/test-pivot.db\"\nhttp = \"127.0.0.1:{port}\"\n\n\
         [[cluster]]\nname = \"sandbox\"\nseeds = [{seeds}]\npoll_interval = \"{poll}\"\nprobe_timeout = \"1s\"\n\n\
         [cluster.credentials]\nuser = \"pivot\"\npassword_file = \"{d}/secrets/pivot.password\"\n\n\
         [cluster.replication]\nuser = \"repl\"\npassword_file = \"{d}/secrets/repl.password\"\n\n{extra}\n",
        d = dir.display(),
        poll = opts.poll_interval,
        extra = opts.extra,
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
