//! The virtual IP route on a sandbox in network namespaces
//! (`Network::Namespaces`, root only): `pivot agent` in each node's
//! namespace, a client namespace of its own on the lab's bridge, and a tokio
//! runtime inside that namespace, so that a [`crate::Writer`] reaches the
//! servers only through the address. Shared by the integration tests and
//! `pivot-bench routes`.

use crate::{http_request, TestSandbox};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where each agent listens, inside its node's namespace.
pub const AGENT_PORT: u16 = 9190;
/// The agents' token (in `agent.token` of the sandbox directory, mode 0600).
pub const AGENT_TOKEN: &str = "test-agent-token-0123456789abcdef";

/// Network namespaces and addresses need root.
pub fn require_root(what: &str) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err(format!("{what} needs root (network namespaces)"))
    }
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The sandbox's network lab.
pub struct VipLab {
    pub namespaces: Vec<String>,
    pub subnet: (u8, u8),
    pub bridge: String,
}

impl VipLab {
    /// Panics on a sandbox on loopback.
    pub fn of(sb: &TestSandbox) -> VipLab {
        let lab = sb.manifest.lab.clone().expect("a sandbox in network namespaces");
        VipLab { namespaces: lab.namespaces, subnet: lab.subnet, bridge: lab.bridge }
    }

    /// `.100` of the lab's /24.
    pub fn vip(&self) -> String {
        format!("198.{}.{}.100", self.subnet.0, self.subnet.1)
    }
}

pub fn agent_config_path(sb: &TestSandbox, node: &str) -> PathBuf {
    sb.dir.join(format!("agent-{node}.toml"))
}

pub fn agent_addr(sb: &TestSandbox, i: usize) -> std::net::SocketAddr {
    format!("{}:{AGENT_PORT}", sb.nodes()[i].host).parse().expect("a node address")
}

/// The token file and one agent configuration per node in the sandbox
/// directory; returns the `[cluster.vip]` table (lease 3 s, timeout 1 s,
/// the address `.100/24` on `eth0`).
pub fn vip_table(sb: &TestSandbox, keepalived: bool) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let token = sb.dir.join("agent.token");
    std::fs::write(&token, format!("{AGENT_TOKEN}\n"))?;
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600))?;
    let mut agents = Vec::new();
    for n in sb.nodes() {
        let text = format!(
            "listen = \"{h}:{AGENT_PORT}\"\ntoken_file = \"{t}\"\ninstance = \"{h}:{p}\"\n",
            h = n.host,
            p = n.port,
            t = token.display()
        );
        std::fs::write(agent_config_path(sb, &n.name), text)?;
        agents.push(format!("\"{h}:{p}\" = \"{h}:{AGENT_PORT}\"", h = n.host, p = n.port));
    }
    let lab = VipLab::of(sb);
    Ok(format!(
        "[cluster.vip]\naddress = \"{}/24\"\ninterface = \"eth0\"\nagents = {{ {} }}\ntoken_file = \"{}\"\n\
         lease = \"3s\"\ntimeout = \"1s\"\nkeepalived = {keepalived}\n",
        lab.vip(),
        agents.join(", "),
        token.display()
    ))
}

/// `pivot agent` in each node's namespace, killed by PID on drop.
pub struct Agents {
    children: Vec<Child>,
    pub logs: Vec<PathBuf>,
}

impl Agents {
    /// Start `pivot_bin agent` in each node's namespace (configurations from
    /// [`vip_table`]) and wait up to 20 s until each answers.
    pub async fn start(pivot_bin: &Path, sb: &TestSandbox) -> Result<Agents, String> {
        let lab = VipLab::of(sb);
        let mut agents = Agents { children: Vec::new(), logs: Vec::new() };
        for (i, n) in sb.nodes().iter().enumerate() {
            let log_path = sb.dir.join(format!("agent-{}.log", n.name));
            let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
            let log2 = log.try_clone().map_err(|e| e.to_string())?;
            // `ip netns exec` execs in place: the child's PID is the agent's.
            let child = Command::new("ip")
                .args(["netns", "exec", &lab.namespaces[i]])
                .arg(pivot_bin)
                .args(["agent", "--config"])
                .arg(agent_config_path(sb, &n.name))
                .env("RUST_LOG", "info,pivot=debug")
                .stdin(Stdio::null())
                .stdout(log2)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("start pivot agent: {e}"))?;
            agents.children.push(child);
            agents.logs.push(log_path);
        }
        for i in 0..sb.nodes().len() {
            let addr = agent_addr(sb, i);
            let started = Instant::now();
            loop {
                let last = match agent_get(addr, "/v1/state").await {
                    Ok((200, _)) => break,
                    Ok((status, body)) => format!("{status} {body}"),
                    Err(e) => e,
                };
                if started.elapsed() > Duration::from_secs(20) {
                    return Err(format!("agent {addr} does not answer after 20 s: {last}; log: {}", agents.tail(i, 5)));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(agents)
    }

    pub fn pid(&self, i: usize) -> i32 {
        self.children[i].id() as i32
    }

    pub fn signal(&self, i: usize, sig: i32) {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.pid(i), sig) };
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }

    fn tail(&self, i: usize, n: usize) -> String {
        let log = self.log(i);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.logs.len() {
                eprintln!("---- agent {i} log (last 30 lines) ----\n{}", self.tail(i, 30));
            }
        }
        for c in &mut self.children {
            // SAFETY: a stopped child is continued first so that it can die.
            unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A request to an agent with the token.
pub async fn agent_get(addr: std::net::SocketAddr, path: &str) -> Result<(u16, String), String> {
    let bearer = format!("Bearer {AGENT_TOKEN}");
    http_request(addr, "GET", path, &[("Authorization", &bearer)], "").await
}

/// A namespace of our own on the lab's bridge (`.200`): the client.
/// Removed on drop.
pub struct ClientNs {
    pub ns: String,
    host_link: String,
}

impl ClientNs {
    pub fn create(lab: &VipLab) -> Result<ClientNs, String> {
        let (a, b) = lab.subnet;
        let ns = format!("pivot-{a}x{b}-cl");
        let host_link = format!("pv{a}x{b}cl");
        let peer = format!("pv{a}x{b}cp");
        ip(&["netns", "add", &ns])?;
        // From here on, a failure removes what was made.
        let c = ClientNs { ns: ns.clone(), host_link: host_link.clone() };
        ip(&["link", "add", &host_link, "type", "veth", "peer", "name", &peer])?;
        ip(&["link", "set", &peer, "netns", &ns])?;
        ip(&["link", "set", &host_link, "master", &lab.bridge, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &ns, "link", "set", &peer, "name", "eth0"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{}/24", Self::address(lab)), "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        Ok(c)
    }

    /// The client's address: `.200` of the lab's /24.
    pub fn address(lab: &VipLab) -> String {
        format!("198.{}.{}.200", lab.subnet.0, lab.subnet.1)
    }

    /// `@@server_id` of whoever answers on `host:port` from the client's
    /// namespace (a new connection each time, as a reconnecting client).
    pub fn server_id(&self, host: &str, port: u16, defaults: &Path) -> Result<u32, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "timeout", "5", "mariadb"])
            .arg(format!("--defaults-file={}", defaults.display()))
            .args(["--protocol=TCP", "-h", host, "-P", &port.to_string(), "--connect-timeout=2", "-N", "-B"])
            .args(["-e", "SELECT @@server_id"])
            .output()
            .map_err(|e| format!("mariadb: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim().parse().map_err(|_| format!("not a server id: {text}"))
    }

    /// A `TcpExt` counter of the client's namespace (`/proc/net/netstat`
    /// there), e.g. `TCPSynRetrans`: connects whose SYN went unanswered.
    pub fn tcp_ext(&self, field: &str) -> Result<u64, String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "cat", "/proc/net/netstat"])
            .output()
            .map_err(|e| format!("ip netns exec: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
        let (names, values) = (rows.next().unwrap_or_default(), rows.next().unwrap_or_default());
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == field)
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| format!("no TcpExt {field} in {}'s /proc/net/netstat", self.ns))
    }
}

impl Drop for ClientNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.host_link]);
    }
}

/// A single-threaded tokio runtime on a thread of its own that entered the
/// network namespace `ns` (`/run/netns/<ns>`, as `ip netns add` makes it)
/// before building the runtime: every socket its tasks open is in that
/// namespace (threads it starts inherit it). Spawn onto it with
/// [`NetnsRuntime::enter`] (e.g. around [`crate::Writer::start`]); its
/// [`tokio::task::JoinHandle`]s can be awaited from any runtime. Dropping it
/// stops the runtime, cancelling what still runs there.
pub struct NetnsRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NetnsRuntime {
    pub fn start(ns: &str) -> Result<NetnsRuntime, String> {
        let path = PathBuf::from("/run/netns").join(ns);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<tokio::runtime::Handle, String>>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("netns {ns}"))
            .spawn(move || {
                let entered =
                    std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display())).and_then(|f| {
                        // SAFETY: setns on an fd we hold open; only this thread
                        // changes namespace (net namespaces allow that in a
                        // multi-threaded process).
                        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } == 0 {
                            Ok(())
                        } else {
                            Err(format!("setns {}: {}", path.display(), std::io::Error::last_os_error()))
                        }
                    });
                if let Err(e) = entered {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
                let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(rt.handle().clone()));
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| format!("thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(handle)) => Ok(NetnsRuntime { handle, stop: Some(stop), thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(format!("the thread for namespace {ns} ended before its runtime started"))
            }
        }
    }

    /// Within the guard, `tokio::spawn` spawns onto this runtime.
    pub fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.handle.enter()
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }
}

impl Drop for NetnsRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
