//! Bringing a sandbox up and down, and the drills on its nodes.

use crate::binaries::Binaries;
use crate::files::{self, Passwords};
use crate::manifest::{Manifest, NodeRecord};
use crate::{ports, process, secrets, template, SandboxError};
use pivot_core::InstanceKey;
use pivot_dialect::ChangeSource;
use pivot_server::{actions, Credentials, Session};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

/// Where the nodes listen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    /// 127.0.0.1, one port per node.
    Loopback,
    /// One network namespace per node on a bridge in 198.18.0.0/15, port 3306
    /// each: network faults between pivot and a node can be made (root only).
    Namespaces,
}

/// What to start.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    pub dir: PathBuf,
    pub nodes: u16,
    /// First port; `None` picks free ones.
    pub base_port: Option<u16>,
    pub semi_sync: bool,
    pub host: IpAddr,
    /// Without `base_port`, try 23306 first (people like stable ports); tests
    /// turn this off so parallel runs do not race for the same ports.
    pub prefer_default_port: bool,
    pub network: Network,
}

impl SandboxSpec {
    pub fn new(dir: impl Into<PathBuf>) -> SandboxSpec {
        SandboxSpec {
            dir: dir.into(),
            nodes: 3,
            base_port: None,
            semi_sync: false,
            host: [127, 0, 0, 1].into(),
            prefer_default_port: true,
            network: Network::Loopback,
        }
    }
}

/// A running (or stopped) sandbox, as recorded in its directory.
pub struct Sandbox {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The port `pivot sandbox up` tries first when none is given.
const PREFERRED_BASE_PORT: u16 = 23306;

impl Sandbox {
    /// Start a new sandbox in `spec.dir` and wait until every replica
    /// replicates. On failure, every process it started is stopped again.
    /// Ports pivot picked itself are picked again if another process took
    /// them between the check and the server's bind.
    pub async fn up(spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::up_once(spec, attempt > 1).await {
                Err(SandboxError::Node { message, .. })
                    if spec.base_port.is_none() && attempt < 4 && message.contains("Address already in use") =>
                {
                    tracing::info!("sandbox ports were taken meanwhile; picking others");
                }
                other => return other,
            }
        }
    }

    async fn up_once(spec: &SandboxSpec, avoid_default_port: bool) -> Result<Sandbox, SandboxError> {
        if !(1..=9).contains(&spec.nodes) {
            return Err(SandboxError::Usage(format!("--nodes {} is out of range: use 1 to 9", spec.nodes)));
        }
        let binaries = Binaries::locate()?;
        prepare_dir(&spec.dir)?;
        let dir = std::fs::canonicalize(&spec.dir).map_err(|e| SandboxError::file(&spec.dir, e))?;
        let lab = match spec.network {
            Network::Namespaces => Some(crate::netns::NetnsLab::create(spec.nodes)?),
            Network::Loopback => None,
        };
        let result = Self::build(spec, avoid_default_port, &binaries, &dir, lab.clone()).await;
        if result.is_err() {
            if let Some(lab) = &lab {
                lab.destroy();
            }
        }
        result
    }

    async fn build(
        spec: &SandboxSpec,
        avoid_default_port: bool,
        binaries: &Binaries,
        dir: &Path,
        lab: Option<crate::netns::NetnsLab>,
    ) -> Result<Sandbox, SandboxError> {
        let dir = dir.to_path_buf();
        let loopback: IpAddr = [127, 0, 0, 1].into();
        let ports = match spec.base_port {
            _ if lab.is_some() => vec![3306; spec.nodes as usize],
            Some(base) => ports::check_range(spec.host, base, spec.nodes)?,
            None if spec.prefer_default_port && !avoid_default_port => {
                ports::pick(spec.host, spec.nodes, Some(PREFERRED_BASE_PORT))?
            }
            None => ports::pick(spec.host, spec.nodes, None)?,
        };
        let http_port = ports::pick(loopback, 1, None)?[0];
        let passwords = Passwords {
            repl: secrets::random_password()?,
            pivot: secrets::random_password()?,
            app: secrets::random_password()?,
            admin: secrets::random_password()?,
        };
        let secrets_dir = dir.join("secrets");
        mkdir(&secrets_dir)?;
        for name in Passwords::FILES {
            secrets::write_private(&secrets_dir.join(format!("{name}.password")), passwords.by_name(name))?;
        }
        let template = dir.join("template");
        template::make_template(binaries, &template, &passwords)?;

        let nodes: Vec<NodeRecord> = ports
            .iter()
            .enumerate()
            .map(|(i, port)| NodeRecord {
                name: format!("node{}", i + 1),
                host: lab.as_ref().map_or(spec.host.to_string(), |l| l.node_ip(i).to_string()),
                port: *port,
                server_id: i as u32 + 1,
                pid: None,
                netns: lab.as_ref().map(|l| l.namespaces[i].clone()),
            })
            .collect();
        let mut sandbox = Sandbox {
            dir: dir.clone(),
            manifest: Manifest {
                server: binaries.server.clone(),
                mariadb_version: format!("{}.{}.{}", binaries.version.0, binaries.version.1, binaries.version.2),
                semi_sync: spec.semi_sync,
                http_port,
                nodes,
                lab,
            },
        };
        for (i, node) in sandbox.manifest.nodes.iter().enumerate() {
            let node_dir = dir.join(&node.name);
            mkdir(&node_dir)?;
            mkdir(&node_dir.join("tmp"))?;
            template::copy_dir(&template, &node_dir.join("data"))?;
            let cnf = files::my_cnf(node, &node_dir, i == 0, spec.semi_sync);
            std::fs::write(node_dir.join("my.cnf"), cnf).map_err(|e| SandboxError::file(node_dir.join("my.cnf"), e))?;
        }
        std::fs::remove_dir_all(&template).map_err(|e| SandboxError::file(&template, e))?;

        if let Err(e) = sandbox.start_all().await {
            // Leave nothing running behind a failed start.
            let _ = sandbox.down(false);
            return Err(e);
        }
        let seeds: Vec<String> = sandbox.manifest.nodes.iter().map(|n| format!("{}:{}", n.host, n.port)).collect();
        let toml = files::pivot_toml(&dir, &seeds, http_port);
        std::fs::write(sandbox.config_path(), toml).map_err(|e| SandboxError::file(sandbox.config_path(), e))?;
        let primary = &sandbox.manifest.nodes[0];
        secrets::write_private(&dir.join("app.cnf"), &files::app_cnf(&primary.host, primary.port, &passwords.app))?;
        Ok(sandbox)
    }

    async fn start_all(&mut self) -> Result<(), SandboxError> {
        let names: Vec<String> = self.manifest.nodes.iter().map(|n| n.name.clone()).collect();
        for name in &names {
            self.spawn(name)?;
        }
        self.manifest.save(&self.dir)?;
        for name in &names {
            self.wait_ready(name).await?;
        }
        self.wire_replication().await
    }

    /// Open an existing sandbox from its directory.
    pub fn open(dir: &Path) -> Result<Sandbox, SandboxError> {
        let manifest = Manifest::load(dir)?;
        let dir = std::fs::canonicalize(dir).map_err(|e| SandboxError::file(dir, e))?;
        Ok(Sandbox { dir, manifest })
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("pivot.toml")
    }

    pub fn nodes(&self) -> &[NodeRecord] {
        &self.manifest.nodes
    }

    /// A node by name (`node2`) or number (`2`).
    pub fn node(&self, which: &str) -> Result<&NodeRecord, SandboxError> {
        let name = if which.chars().all(|c| c.is_ascii_digit()) { format!("node{which}") } else { which.to_string() };
        self.manifest.nodes.iter().find(|n| n.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.manifest.nodes.iter().map(|n| n.name.as_str()).collect();
            SandboxError::Usage(format!("no node `{which}` in this sandbox (it has {})", known.join(", ")))
        })
    }

    pub fn key(&self, which: &str) -> Result<InstanceKey, SandboxError> {
        let n = self.node(which)?;
        Ok(InstanceKey::new(n.host.clone(), n.port))
    }

    /// The node listening on `key`, if any.
    pub fn node_at(&self, key: &InstanceKey) -> Option<&NodeRecord> {
        self.manifest.nodes.iter().find(|n| InstanceKey::new(n.host.clone(), n.port) == *key)
    }

    fn password(&self, user: &str) -> Result<String, SandboxError> {
        let path = self.dir.join("secrets").join(format!("{user}.password"));
        std::fs::read_to_string(&path).map(|s| s.trim().to_string()).map_err(|e| SandboxError::file(path, e))
    }

    /// Credentials of a sandbox user: `admin`, `pivot`, `repl` or `app`.
    pub fn credentials(&self, user: &str) -> Result<Credentials, SandboxError> {
        Ok(Credentials::new(user, self.password(user)?))
    }

    /// An administrator session on a node, for drills and tests.
    pub async fn admin(&self, which: &str) -> Result<Session, SandboxError> {
        let key = self.key(which)?;
        let creds = self.credentials("admin")?;
        Session::connect(&key, &creds, Duration::from_secs(10))
            .await
            .map_err(|e| SandboxError::node(which, format!("cannot connect as admin: {e}")))
    }

    fn node_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn cnf(&self, name: &str) -> PathBuf {
        self.node_dir(name).join("my.cnf")
    }

    fn record_mut(&mut self, name: &str) -> &mut NodeRecord {
        self.manifest.nodes.iter_mut().find(|n| n.name == name).expect("node exists")
    }

    /// The recorded PID if it is alive and still ours.
    pub fn live_pid(&self, which: &str) -> Result<Option<u32>, SandboxError> {
        let node = self.node(which)?;
        let marker = self.cnf(&node.name).display().to_string();
        Ok(node.pid.filter(|p| process::alive(*p) && process::owned(*p, &marker)))
    }

    fn spawn(&mut self, name: &str) -> Result<u32, SandboxError> {
        let netns = self.node(name)?.netns.clone();
        let pid = process::spawn_server(&self.manifest.server, &self.cnf(name), netns.as_deref())?;
        self.record_mut(name).pid = Some(pid);
        Ok(pid)
    }

    async fn wait_ready(&self, name: &str) -> Result<(), SandboxError> {
        let start = Instant::now();
        let creds = self.credentials("admin")?;
        let key = self.key(name)?;
        let log = self.node_dir(name).join("error.log");
        loop {
            let pid = self.node(name)?.pid;
            if !pid.is_some_and(process::alive) {
                return Err(SandboxError::node(
                    name,
                    format!(
                        "mariadbd exited during start-up; end of {}:\n{}",
                        log.display(),
                        process::log_tail(&log, 15)
                    ),
                ));
            }
            if Session::connect(&key, &creds, Duration::from_secs(2)).await.is_ok() {
                return Ok(());
            }
            if start.elapsed() > READY_TIMEOUT {
                return Err(SandboxError::node(
                    name,
                    format!(
                        "not accepting connections after {}s; end of {}:\n{}",
                        READY_TIMEOUT.as_secs(),
                        log.display(),
                        process::log_tail(&log, 15)
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wire_replication(&self) -> Result<(), SandboxError> {
        let nodes = self.manifest.nodes.clone();
        let primary = &nodes[0];
        let primary_key = InstanceKey::new(primary.host.clone(), primary.port);
        let setup_err =
            |node: &str, what: &str, e: pivot_server::SessionError| SandboxError::node(node, format!("{what}: {e}"));
        if self.manifest.semi_sync {
            let mut s = self.admin(&primary.name).await?;
            let sql = s.dialect.set_semi_sync_primary(true);
            s.exec(&sql).await.map_err(|e| setup_err(&primary.name, "enabling semi-sync", e))?;
        }
        let repl = self.credentials("repl")?;
        for node in &nodes[1..] {
            let mut s = self.admin(&node.name).await?;
            let change = ChangeSource {
                source: Some(primary_key.clone()),
                user: Some(repl.user.clone()),
                password: Some(repl.password.expose().to_string()),
                heartbeat_ms: Some(250),
                connect_retry_s: Some(1),
            };
            let sql = s.dialect.change_source(&change);
            s.exec(&sql).await.map_err(|e| setup_err(&node.name, "CHANGE MASTER", e))?;
            actions::start_replica(&mut s).await.map_err(|e| setup_err(&node.name, "START SLAVE", e))?;
        }
        for node in &nodes[1..] {
            let mut s = self.admin(&node.name).await?;
            actions::confirm_replicating(&mut s, &primary_key, Duration::from_secs(30))
                .await
                .map_err(|e| setup_err(&node.name, "replication did not start", e))?;
        }
        if self.manifest.semi_sync && nodes.len() > 1 {
            self.wait_semi_sync_clients(&primary.name, nodes.len() - 1).await?;
        }
        Ok(())
    }

    async fn wait_semi_sync_clients(&self, primary: &str, want: usize) -> Result<(), SandboxError> {
        let mut s = self.admin(primary).await?;
        let start = Instant::now();
        loop {
            let sql = s.dialect.semi_sync_status_query();
            let rows = s.rows(&sql).await.map_err(|e| SandboxError::node(primary, e.to_string()))?;
            let clients = rows
                .iter()
                .find(|r| r.get("Variable_name").cloned().flatten().as_deref() == Some("Rpl_semi_sync_master_clients"))
                .and_then(|r| r.get("Value").cloned().flatten())
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if clients >= want {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(30) {
                return Err(SandboxError::node(
                    primary,
                    format!("only {clients} of {want} semi-sync replicas connected"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // ---- drills --------------------------------------------------------------

    fn require_pid(&self, which: &str) -> Result<u32, SandboxError> {
        self.live_pid(which)?.ok_or_else(|| SandboxError::node(which, "not running"))
    }

    /// SIGKILL: the process dies at once, as in a crash.
    pub fn kill(&mut self, which: &str) -> Result<(), SandboxError> {
        let pid = self.require_pid(which)?;
        process::signal(pid, libc::SIGKILL)?;
        process::wait_exit(pid, STOP_TIMEOUT);
        let name = self.node(which)?.name.clone();
        self.record_mut(&name).pid = None;
        self.manifest.save(&self.dir)
    }

    /// SIGTERM and wait: a clean shutdown.
    pub fn stop(&mut self, which: &str) -> Result<(), SandboxError> {
        let pid = self.require_pid(which)?;
        if process::paused(pid) {
            process::signal(pid, libc::SIGCONT)?;
        }
        process::signal(pid, libc::SIGTERM)?;
        if !process::wait_exit(pid, STOP_TIMEOUT) {
            process::signal(pid, libc::SIGKILL)?;
            process::wait_exit(pid, STOP_TIMEOUT);
        }
        let name = self.node(which)?.name.clone();
        self.record_mut(&name).pid = None;
        self.manifest.save(&self.dir)
    }

    /// Start a stopped node again and wait until it accepts connections.
    pub async fn start(&mut self, which: &str) -> Result<(), SandboxError> {
        if self.live_pid(which)?.is_some() {
            return Err(SandboxError::node(which, "already running"));
        }
        let name = self.node(which)?.name.clone();
        self.spawn(&name)?;
        self.manifest.save(&self.dir)?;
        self.wait_ready(&name).await
    }

    /// SIGSTOP: the process hangs with its sockets open.
    pub fn pause(&self, which: &str) -> Result<(), SandboxError> {
        process::signal(self.require_pid(which)?, libc::SIGSTOP)
    }

    /// SIGCONT after [`Sandbox::pause`].
    pub fn resume(&self, which: &str) -> Result<(), SandboxError> {
        process::signal(self.require_pid(which)?, libc::SIGCONT)
    }

    /// Stop every node (clean shutdown, SIGKILL after 30 s) and optionally
    /// remove the directory.
    pub fn down(&mut self, remove: bool) -> Result<(), SandboxError> {
        let names: Vec<String> = self.manifest.nodes.iter().map(|n| n.name.clone()).collect();
        let mut pids = Vec::new();
        for name in &names {
            if let Some(pid) = self.live_pid(name)? {
                if process::paused(pid) {
                    process::signal(pid, libc::SIGCONT)?;
                }
                process::signal(pid, libc::SIGTERM)?;
                pids.push(pid);
            }
        }
        for pid in pids {
            if !process::wait_exit(pid, STOP_TIMEOUT) {
                process::signal(pid, libc::SIGKILL)?;
                process::wait_exit(pid, STOP_TIMEOUT);
            }
        }
        for name in &names {
            self.record_mut(name).pid = None;
        }
        if let Some(lab) = self.manifest.lab.take() {
            lab.destroy();
        }
        if remove {
            std::fs::remove_dir_all(&self.dir).map_err(|e| SandboxError::file(&self.dir, e))
        } else {
            self.manifest.save(&self.dir)
        }
    }

    fn lab_index(&self, which: &str) -> Result<(&crate::netns::NetnsLab, usize), SandboxError> {
        let lab = self.manifest.lab.as_ref().ok_or_else(|| {
            SandboxError::Usage("this sandbox runs on loopback: network drills need `sandbox up --netns`".into())
        })?;
        let name = &self.node(which)?.name;
        let index = self.manifest.nodes.iter().position(|n| &n.name == name).expect("node exists");
        Ok((lab, index))
    }

    /// The node drops what it sends to pivot's side; other nodes still reach it.
    pub fn cut(&self, which: &str) -> Result<(), SandboxError> {
        let (lab, i) = self.lab_index(which)?;
        lab.cut(i)
    }

    /// Nobody reaches the node.
    pub fn isolate(&self, which: &str) -> Result<(), SandboxError> {
        let (lab, i) = self.lab_index(which)?;
        lab.isolate(i)
    }

    /// Undo `cut` and `isolate`.
    pub fn heal(&self, which: &str) -> Result<(), SandboxError> {
        let (lab, i) = self.lab_index(which)?;
        lab.heal(i)
    }
}

/// Accept an empty or missing directory, or one holding a sandbox that is no
/// longer running (its node directories are replaced).
fn prepare_dir(dir: &Path) -> Result<(), SandboxError> {
    if !dir.exists() {
        return mkdir(dir);
    }
    if Manifest::path(dir).exists() {
        let old = Sandbox::open(dir)?;
        let running: Vec<&str> = old
            .manifest
            .nodes
            .iter()
            .filter(|n| old.live_pid(&n.name).ok().flatten().is_some())
            .map(|n| n.name.as_str())
            .collect();
        if !running.is_empty() {
            return Err(SandboxError::Usage(format!(
                "a sandbox is already running in {} ({}): run `pivot sandbox down --dir {}` first",
                dir.display(),
                running.join(", "),
                dir.display()
            )));
        }
        if let Some(lab) = &old.manifest.lab {
            lab.destroy();
        }
        for entry in std::fs::read_dir(dir).map_err(|e| SandboxError::file(dir, e))?.flatten() {
            let p = entry.path();
            let r = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            r.map_err(|e| SandboxError::file(&p, e))?;
        }
        return Ok(());
    }
    let empty = std::fs::read_dir(dir).map_err(|e| SandboxError::file(dir, e))?.next().is_none();
    if !empty {
        return Err(SandboxError::Usage(format!(
            "{} is not empty and holds no sandbox: give an empty or new directory",
            dir.display()
        )));
    }
    Ok(())
}

pub(crate) fn mkdir(dir: &Path) -> Result<(), SandboxError> {
    std::fs::create_dir_all(dir).map_err(|e| SandboxError::file(dir, e))
}
