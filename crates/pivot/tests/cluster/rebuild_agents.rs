//! `pivot agent` processes on loopback for the rebuild tests: one per
//! configuration (an instance may have several, each in its own pivot
//! configuration), each with its own `[rebuild]` section or none, whose
//! stop and start commands drive the sandbox. Killed by PID on drop; the
//! sandbox's servers are then stopped as its manifest on disk names them
//! (the agents started some of them).

use crate::support::*;
use pivot_drill::TestSandbox;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const TOKEN: &str = "rebuild-test-token-0123456789abcdef";

/// What one agent is given.
pub struct AgentSpec<'a> {
    /// A name for its files.
    pub name: &'a str,
    pub node: &'a str,
    /// `None`: no `[rebuild]` section.
    pub backup_password: Option<String>,
    /// A shell line the stop command runs once the server is stopped.
    pub after_stop: Option<&'a str>,
}

pub struct TestAgents {
    dir: PathBuf,
    children: Vec<Child>,
    pub addrs: Vec<(String, SocketAddr)>,
    logs: Vec<PathBuf>,
}

pub fn token_file(sb: &TestSandbox) -> PathBuf {
    let p = sb.dir.join("rebuild-agent.token");
    std::fs::write(&p, format!("{TOKEN}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A `[rebuild]` section for `node` whose commands are `pivot sandbox
/// stop/start` (a stop of a stopped node is fine, as with systemctl; the
/// start makes the node read-only in its option file first, as every
/// replica's should be).
fn rebuild_section(sb: &TestSandbox, spec: &AgentSpec, password: &str) -> String {
    let d = sb.dir.display();
    let pivot = pivot_bin().display();
    let node = spec.node;
    let stop = script(
        sb,
        &format!("stop-{}.sh", spec.name),
        &format!(
            "out=$(\"{pivot}\" sandbox stop --dir \"{d}\" {node} 2>&1) || case \"$out\" in *\"not running\"*) ;; \
             *) echo \"$out\" >&2; exit 1;; esac\n{}",
            spec.after_stop.unwrap_or("")
        ),
    );
    let start = script(
        sb,
        &format!("start-{}.sh", spec.name),
        &format!(
            "sed -i 's/^read_only = OFF/read_only = ON/' \"{d}/{node}/my.cnf\" && exec \"{pivot}\" sandbox start --dir \"{d}\" {node}"
        ),
    );
    let pw = sb.dir.join(format!("backup-{}.password", spec.name));
    std::fs::write(&pw, password).unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "\n[rebuild]\ndatadir = \"{d}/{node}/data\"\nstop_command = [\"{}\"]\nstart_command = [\"{}\"]\n\
         backup_user = \"admin\"\nbackup_password_file = \"{}\"\ncommand_timeout = \"60s\"\nmax_duration = \"5m\"\n\
         stall_timeout = \"30s\"\n",
        stop.display(),
        start.display(),
        pw.display()
    )
}

impl TestAgents {
    /// Start each agent on a free loopback port and wait until it answers.
    pub async fn start(sb: &TestSandbox, specs: &[AgentSpec<'_>]) -> TestAgents {
        let token = token_file(sb);
        let mut agents = TestAgents { dir: sb.dir.clone(), children: Vec::new(), addrs: Vec::new(), logs: Vec::new() };
        for spec in specs {
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut text = format!(
                "listen = \"{addr}\"\ntoken_file = \"{}\"\ninstance = \"{}\"\n",
                token.display(),
                key_of(sb, spec.node)
            );
            if let Some(pw) = &spec.backup_password {
                text.push_str(&rebuild_section(sb, spec, pw));
            }
            let cfg = sb.dir.join(format!("agent-{}.toml", spec.name));
            std::fs::write(&cfg, text).unwrap();
            let log = sb.dir.join(format!("agent-{}.log", spec.name));
            let out = std::fs::File::create(&log).unwrap();
            let child = Command::new(pivot_bin())
                .args(["agent", "--config"])
                .arg(&cfg)
                .env("RUST_LOG", "info,pivot=debug")
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("start pivot agent");
            agents.children.push(child);
            agents.logs.push(log);
            agents.addrs.push((spec.name.to_string(), addr));
        }
        for (name, addr) in agents.addrs.clone() {
            let auth = format!("Bearer {TOKEN}");
            pivot_drill::eventually(Duration::from_secs(20), &format!("agent {name} answering"), || async {
                let status =
                    pivot_drill::http_request(addr, "GET", "/v1/rebuild/status", &[("Authorization", &auth)], "").await;
                matches!(status, Ok((200, _)))
                    .then_some(())
                    .ok_or_else(|| format!("{status:?}; its log: {}", agents.log_of(&name)))
            })
            .await;
        }
        agents
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs.iter().find(|(n, _)| n == name).map(|(_, a)| *a).expect("an agent of that name")
    }

    pub fn log_of(&self, name: &str) -> String {
        let i = self.addrs.iter().position(|(n, _)| n == name).expect("agent");
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }
}

impl Drop for TestAgents {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (i, (name, _)) in self.addrs.iter().enumerate() {
                let log = std::fs::read_to_string(&self.logs[i]).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!("---- agent {name} ----\n{}", lines[lines.len().saturating_sub(30)..].join("\n"));
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Servers the agents started are in the manifest on disk only.
        let _ = Command::new(pivot_bin()).args(["sandbox", "down", "--dir"]).arg(&self.dir).output();
    }
}

/// `[cluster.rebuild]` mapping each instance to the named agent.
pub fn cluster_rebuild(sb: &TestSandbox, map: &[(&str, SocketAddr)]) -> String {
    let agents: Vec<String> = map.iter().map(|(node, a)| format!("\"{}\" = \"{a}\"", key_of(sb, node))).collect();
    format!(
        "[cluster.rebuild]\nagents = {{ {} }}\ntoken_file = \"{}\"\ntimeout = \"5s\"\nmax_duration = \"5m\"\n\
         replicate_timeout = \"60s\"\n",
        agents.join(", "),
        sb.dir.join("rebuild-agent.token").display()
    )
}

/// The directories the rebuild moved aside next to `node`'s datadir.
pub fn kept_datadirs(sb: &TestSandbox, node: &str) -> Vec<PathBuf> {
    let parent = sb.dir.join(node);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&parent)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("data.pivot-old-")))
        .collect();
    out.sort();
    out
}

/// Run `pivot` off the async workers (it takes a while).
pub async fn pivot_async(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run_pivot(&a)
    })
    .await
    .unwrap()
}

pub fn text(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
