//! The routes under hostile conditions, on real servers: pivot SIGKILLed
//! between the promotion and the route steps, an epoch that cannot be
//! stored (a full disk under the state file), `pivot failover` from the
//! command line while `pivot run` serves the proxy, and a DNS flood. While
//! pivot restarts, the proxy, DNS and health checks are watched without a
//! pause: none may ever lead to the old primary.

use crate::support::*;
use pivot_core::InstanceKey;
use pivot_drill::{eventually, http_get, PivotProcess};
use pivot_server::{Credentials, Session};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const DOMAIN: &str = "db.example";

struct Routes {
    write: InstanceKey,
    read: InstanceKey,
    dns: u16,
}

/// A proxy write port and DNS, as TOML for the cluster (DNS goes into
/// `[pivot]`, so it is returned apart).
fn routes_toml() -> (Routes, String, String) {
    let (w, r, dns) = (free_port(), free_port(), free_port());
    let routes = Routes {
        write: format!("127.0.0.1:{w}").parse().unwrap(),
        read: format!("127.0.0.1:{r}").parse().unwrap(),
        dns,
    };
    let cluster =
        format!("[cluster.proxy]\nwrite = \"127.0.0.1:{w}\"\nread = \"127.0.0.1:{r}\"\nhold_timeout = \"30s\"\n");
    let pivot = format!("[pivot.dns]\nlisten = \"127.0.0.1:{dns}\"\ndomain = \"{DOMAIN}\"\nttl = \"1s\"\n");
    (routes, cluster, pivot)
}

/// Put `[pivot.dns]` (a `[pivot]` table) into a configuration written by
/// `write_config`: right after its `[pivot]` table.
fn add_to_pivot_table(config: &std::path::Path, toml: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let at = text.find("\n[[cluster]]").expect("a cluster table");
    std::fs::write(config, format!("{}\n{toml}{}", &text[..at], &text[at..])).unwrap();
}

/// `@@server_id` of the server behind a new connection to `via`.
async fn server_behind(via: &InstanceKey, creds: &Credentials, timeout: Duration) -> Result<u32, String> {
    connect_server_id(via, creds, timeout).await.map(|(id, _)| id)
}

/// SRV ports of `_mysql._tcp.primary.sandbox.<domain>`, asked with dig.
async fn dns_primary_ports(dns: u16) -> Result<Vec<u16>, String> {
    let out = tokio::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &dns.to_string(), "+time=1", "+tries=1", "+short"])
        .arg(format!("_mysql._tcp.primary.sandbox.{DOMAIN}"))
        .arg("SRV")
        .output()
        .await
        .map_err(|e| format!("dig: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| l.split_whitespace().nth(2)?.parse().ok()).collect())
}

/// Watches the routes without a pause (pivot may be down meanwhile: then
/// nothing answers, which is fine) and notes every time one leads to `old`.
struct Watcher {
    stop: Arc<AtomicBool>,
    /// Rounds completed so far.
    done: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<(Vec<String>, usize)>,
}

impl Watcher {
    fn start(http: SocketAddr, routes: &Routes, old: &str, old_id: u32, creds: Credentials) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = done.clone();
        let (flag, write, dns, old) = (stop.clone(), routes.write.clone(), routes.dns, old.to_string());
        let old_port: u16 = old.parse::<InstanceKey>().unwrap().port;
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut rounds = 0;
            while !flag.load(Ordering::SeqCst) {
                rounds += 1;
                if let Ok(id) = server_behind(&write, &creds, Duration::from_millis(500)).await {
                    if id == old_id {
                        seen.push("the proxy's write port reached the old primary".to_string());
                    }
                }
                if let Ok(ports) = dns_primary_ports(dns).await {
                    if ports.contains(&old_port) {
                        seen.push(format!("DNS named the old primary: {ports:?}"));
                    }
                }
                if let Ok((200, body)) = http_get(http, &format!("/primary/sandbox/{old}")).await {
                    seen.push(format!("/primary said 200 for the old primary: {body}"));
                }
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            (seen, rounds)
        });
        Watcher { stop, done, task }
    }

    /// Wait (bounded) until it has looked `n` more times.
    async fn watch_more(&self, n: usize) {
        let target = self.done.load(Ordering::SeqCst) + n;
        eventually(WAIT, &format!("{n} more rounds of watching"), || async {
            (self.done.load(Ordering::SeqCst) >= target).then_some(()).ok_or("not yet".to_string())
        })
        .await;
    }

    /// Stop; the violations seen, after checking it did watch.
    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let (seen, rounds) = self.task.await.unwrap();
        assert!(rounds >= 5, "the watcher hardly ran: {rounds} rounds");
        seen
    }
}

fn server_id(rig: &Rig, node: &str) -> u32 {
    rig.sb.nodes().iter().find(|n| n.name == node).unwrap().server_id
}

/// pivot is SIGKILLed right before the step `step` of a failover (after
/// the promotion); the old primary comes back writable while pivot is down;
/// pivot restarts. From the restart on, the proxy, DNS and /primary lead
/// to the new primary only, and the resumed recovery finishes its routes.
async fn killed_before(step: &str) {
    let (routes, cluster_toml, pivot_toml) = routes_toml();
    let mut rig = Rig::start(3, false, |_| cluster_toml).await;
    add_to_pivot_table(&rig.config, &pivot_toml);
    rig.pivot.kill();
    let log = rig.sb.dir.join(format!("pivot-kill-{step}.log"));
    let failpoint = format!("kill_before_step:{step}");
    rig.pivot = PivotProcess::start_with_env(pivot_bin(), &rig.config, &log, &[("PIVOT_FAILPOINTS", &failpoint)]);
    let old = rig.key("node1");
    rig.wait_healthy_with_primary(&old).await;
    let creds = rig.sb.credentials("app").unwrap();
    eventually(WAIT, "the write port on node1", || async {
        let id = server_behind(&routes.write, &creds, Duration::from_secs(1)).await?;
        (id == 1).then_some(()).ok_or(format!("server {id}"))
    })
    .await;

    rig.sb.kill("node1").unwrap();
    let status = rig.pivot.wait_exit(WAIT).expect("pivot killed itself at the failpoint");
    assert!(!status.success(), "{status:?}");
    let h = rig.history();
    let s = steps(last_recovery(&h));
    assert!(s.contains(&"promote=ok".to_string()), "promoted before the kill: {s:?}");
    assert!(s.contains(&format!("{step}=none")) || !s.iter().any(|x| x.starts_with(step)), "{s:?}");
    let new = last_recovery(&h)["new_primary"].as_str().unwrap().to_string();
    let new_node = rig.sb.nodes().iter().find(|n| rig.key(&n.name) == new).unwrap().name.clone();

    // The old primary comes back while pivot is down (writable, as a
    // restarted primary whose configuration says so).
    rig.sb.start("node1").await.unwrap();
    exec(&rig.sb, "node1", &["SET GLOBAL read_only = OFF"]).await;
    let watcher = Watcher::start(rig.addr, &routes, &old, server_id(&rig, "node1"), creds.clone());
    // Watching while pivot is down, then across its restart.
    watcher.watch_more(3).await;
    restart_daemon(&mut rig);
    let new_id = server_id(&rig, &new_node);
    eventually(WAIT, "the write port on the new primary", || async {
        let id = server_behind(&routes.write, &creds, Duration::from_secs(1)).await?;
        (id == new_id).then_some(()).ok_or(format!("server {id}"))
    })
    .await;
    eventually(WAIT, "DNS names the new primary", || async {
        let ports = dns_primary_ports(routes.dns).await?;
        (ports == vec![new.parse::<InstanceKey>().unwrap().port]).then_some(()).ok_or(format!("{ports:?}"))
    })
    .await;
    let h = wait_recovery_status(&rig, "succeeded").await;
    let s = steps(last_recovery(&h));
    assert!(s.contains(&"route_local=ok".to_string()) && s.contains(&"record_epoch=ok".to_string()), "{s:?}");
    eventually(WAIT, "node1 fenced", || async {
        (read_only(&rig.sb, "node1").await == Some(true)).then_some(()).ok_or("writable".to_string())
    })
    .await;
    // A little more watching after everything settled.
    watcher.watch_more(10).await;
    let seen = watcher.finish().await;
    assert!(seen.is_empty(), "a route led to the old primary after the restart: {seen:?}");
    let (code, body) = http_get(rig.addr, &format!("/primary/sandbox/{new}")).await.unwrap();
    assert_eq!(code, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pivot_killed_before_route_local_restarts_onto_the_new_primary_only() {
    killed_before("route_local").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pivot_killed_before_record_epoch_restarts_onto_the_new_primary_only() {
    killed_before("record_epoch").await;
}

/// The state file cannot be written when the epoch is to be stored: the
/// disk under it fills up between the promotion and `record_epoch`. The
/// epoch step and the route steps fail; writes stay held (never the old
/// primary, back and writable meanwhile), and the routes follow the new
/// primary once there is room again (its end written, the primary adopted).
#[tokio::test(flavor = "multi_thread")]
async fn an_epoch_that_cannot_be_stored_holds_writes_until_it_can() {
    let (routes, cluster_toml, pivot_toml) = routes_toml();
    let mut rig = Rig::start(3, false, |_| cluster_toml).await;
    // Dropped before the rig: the sandbox directory holds its mount point.
    let small = TinyDisk::mount(&rig.sb.dir.join("small"));
    let text = std::fs::read_to_string(&rig.config).unwrap().replace(
        &format!("state = \"{}/test-pivot.db\"", rig.sb.dir.display()),
        &format!("state = \"{}/state.db\"", small.dir.display()),
    );
    std::fs::write(&rig.config, text).unwrap();
    add_to_pivot_table(&rig.config, &pivot_toml);
    rig.pivot.kill();
    let log = rig.sb.dir.join("pivot-full-disk.log");
    rig.pivot = PivotProcess::start_with_env(
        pivot_bin(),
        &rig.config,
        &log,
        &[("PIVOT_FAILPOINTS", "sleep_before_step:record_epoch")],
    );
    let old = rig.key("node1");
    rig.wait_healthy_with_primary(&old).await;
    let creds = rig.sb.credentials("app").unwrap();
    eventually(WAIT, "the write port on node1", || async {
        let id = server_behind(&routes.write, &creds, Duration::from_secs(1)).await?;
        (id == 1).then_some(()).ok_or(format!("server {id}"))
    })
    .await;
    let watcher = Watcher::start(rig.addr, &routes, &old, server_id(&rig, "node1"), creds.clone());
    rig.sb.kill("node1").unwrap();
    eventually(WAIT, "the promotion", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("promote: ok").then_some(()).ok_or("not yet".to_string())
    })
    .await;
    // The disk fills up while the recovery waits before record_epoch.
    let filler = small.dir.join("filler");
    let _ = std::process::Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", filler.display()))
        .arg("bs=4k")
        .stderr(std::process::Stdio::null())
        .status();
    let text = std::fs::read_to_string(&log).unwrap();
    let promoted = text.lines().find(|l| l.contains("promote: ok")).unwrap();
    let new = promoted.split(" (").nth(1).and_then(|s| s.split(' ').next()).unwrap().to_string();
    let new_node = rig.sb.nodes().iter().find(|n| rig.key(&n.name) == new).unwrap().name.clone();
    eventually(WAIT, "the epoch step failed", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let failed = text.contains("record_epoch: cannot record the step") || text.contains("record_epoch: failed");
        failed.then_some(()).ok_or("not yet".to_string())
    })
    .await;
    // The old primary comes back writable.
    rig.sb.start("node1").await.unwrap();
    // pivot fences it the moment it answers (ending sessions, ours too): try
    // until the statement got through once.
    eventually(WAIT, "node1 made writable by hand", || async {
        let mut s = rig.sb.admin("node1").await.map_err(|e| e.to_string())?;
        s.exec(&pivot_dialect::Sql::plain("SET GLOBAL read_only = OFF")).await.map_err(|e| e.to_string())
    })
    .await;
    // pivot has seen it back (and made it read-only again): whatever it
    // decides about routes, it decided with the old primary in view.
    let (addr, node1) = (rig.addr, old.clone());
    eventually(WAIT, "pivot sees node1 back, read-only", || async {
        let c = api_cluster(addr).await?;
        let seen = instance(&c, &node1).is_some_and(|i| i["reachable"] == true);
        (seen && read_only(&rig.sb, "node1").await == Some(true)).then_some(()).ok_or("not yet".to_string())
    })
    .await;
    assert!(
        server_behind(&routes.write, &creds, Duration::from_millis(500)).await.is_err(),
        "no write route without a stored epoch"
    );
    // Room again: the epoch is stored, the routes follow.
    std::fs::remove_file(&filler).unwrap();
    let new_id = server_id(&rig, &new_node);
    eventually(WAIT, "the write port on the new primary", || async {
        let id = server_behind(&routes.write, &creds, Duration::from_secs(1)).await?;
        (id == new_id).then_some(()).ok_or(format!("server {id}"))
    })
    .await;
    let seen = watcher.finish().await;
    assert!(seen.is_empty(), "a route led to the old primary: {seen:?}");
    // Waiting for room did not spin (a take-over tried at most every second).
    let text = std::fs::read_to_string(&log).unwrap();
    let tries = text.matches("cannot take recovery").count();
    assert!(tries < 30, "{tries} take-over attempts while the disk was full");
    rig.pivot.kill();
    drop(small);
}

/// `pivot failover --force` from the command line while `pivot run` serves
/// the proxy: a connection open to the old primary is cut, new ones reach
/// the new primary within seconds, nothing stays held.
#[tokio::test(flavor = "multi_thread")]
async fn a_command_line_failover_moves_the_running_proxy() {
    let (routes, cluster_toml, _) = routes_toml();
    let rig = Rig::start(3, false, |_| cluster_toml).await;
    let creds = rig.sb.credentials("app").unwrap();
    eventually(WAIT, "the write port on node1", || async {
        let id = server_behind(&routes.write, &creds, Duration::from_secs(1)).await?;
        (id == 1).then_some(()).ok_or(format!("server {id}"))
    })
    .await;
    let mut kept = Session::connect(&routes.write, &creds, Duration::from_secs(2)).await.unwrap();
    let out = cli(&rig, &["failover", "--cluster", "sandbox", "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let h = rig.history();
    let new = last_recovery(&h)["new_primary"].as_str().unwrap().to_string();
    let new_node = rig.sb.nodes().iter().find(|n| rig.key(&n.name) == new).unwrap().name.clone();
    let new_id = server_id(&rig, &new_node);
    let t0 = std::time::Instant::now();
    eventually(WAIT, "the write port on the new primary", || async {
        let id = server_behind(&routes.write, &creds, Duration::from_secs(1)).await?;
        (id == new_id).then_some(()).ok_or(format!("server {id}"))
    })
    .await;
    assert!(t0.elapsed() < Duration::from_secs(5), "followed the state file within seconds: {:?}", t0.elapsed());
    // The connection opened before the failover was cut.
    let deadline = std::time::Instant::now() + WAIT;
    while kept.rows(&pivot_dialect::Sql::plain("SELECT 1 AS one")).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the connection to the old primary is still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..5 {
        assert_eq!(server_behind(&routes.write, &creds, Duration::from_secs(1)).await, Ok(new_id));
    }
    let (_, m) = http_get(rig.addr, "/metrics").await.unwrap();
    assert!(m.lines().any(|l| l.starts_with("pivot_proxy_held{") && l.ends_with(" 0")), "nothing held: {m}");
}

/// A DNS query for every name in a tight loop: pivot answers them all and
/// does not write a log line per query at its default log level (a query
/// flood must not turn into a log flood).
#[tokio::test(flavor = "multi_thread")]
async fn a_dns_flood_is_answered_and_not_logged_line_by_line() {
    let sb = pivot_drill::TestSandbox::up(2, false).await;
    let (config, addr) = write_config(&sb, ConfigOptions::default());
    let dns = free_port();
    add_to_pivot_table(&config, &format!("[pivot.dns]\nlisten = \"127.0.0.1:{dns}\"\ndomain = \"{DOMAIN}\"\n"));
    let log = sb.dir.join("pivot-dns-flood.log");
    // Spawned here, not with PivotProcess: its RUST_LOG would hide the default.
    let child = std::process::Command::new(pivot_bin())
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(sb.dir.join("pivot-dns-flood.err")).unwrap())
        .spawn()
        .unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _child = Reap(child);
    let primary = key_of(&sb, "node1");
    eventually(WAIT, "the primary adopted", || async {
        let (code, _) = http_get(addr, &format!("/primary/sandbox/{primary}")).await?;
        (code == 200).then_some(()).ok_or(format!("{code}"))
    })
    .await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.connect(("127.0.0.1", dns)).await.unwrap();
    let mut answered = 0;
    for id in 0..2000u16 {
        sock.send(&query(id, &format!("primary.sandbox.{DOMAIN}"))).await.unwrap();
        let mut buf = [0u8; 512];
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
            if n >= 2 && buf[..2] == id.to_be_bytes() {
                answered += 1;
            }
        }
    }
    assert!(answered >= 1990, "answered {answered} of 2000");
    let text = std::fs::read_to_string(sb.dir.join("pivot-dns-flood.err")).unwrap_or_default();
    let lines = text.lines().filter(|l| l.contains("hickory")).count();
    assert!(lines < 20, "{lines} log lines from the DNS server for 2000 queries");
}

/// A DNS query for `name`, type A, class IN, recursion desired.
fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    q
}

/// pivot started with the soft descriptor limit most service managers give
/// (1024; systemd's default is 1024 soft, 524288 hard) while more than that
/// many connections are open to it (clients of its proxy, HTTP clients that
/// never finish a request): it must still fail over, which needs new
/// connections to every instance. pivot raises its soft limit to the hard
/// one at start.
#[tokio::test(flavor = "multi_thread")]
async fn a_failover_still_works_with_more_open_connections_than_the_default_descriptor_limit() {
    use std::os::unix::process::CommandExt;
    let (routes, cluster_toml, _) = routes_toml();
    let mut rig = Rig::start(3, false, |_| cluster_toml).await;
    rig.pivot.kill();
    let log = rig.sb.dir.join("pivot-nofile.log");
    let mut cmd = std::process::Command::new(pivot_bin());
    cmd.args(["run", "--config"])
        .arg(&rig.config)
        .env("RUST_LOG", "info,mysql_async=warn,hickory_server=warn")
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: only setrlimit(2), async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            l.rlim_cur = 1024.min(l.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Reap(cmd.spawn().unwrap());
    // This test process holds thousands of sockets itself.
    // SAFETY: getrlimit/setrlimit on this process with valid pointers.
    unsafe {
        let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max.min(1 << 16);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
    let old = rig.key("node1");
    rig.wait_healthy_with_primary(&old).await;
    let creds = rig.sb.credentials("app").unwrap();
    assert_eq!(server_behind(&routes.write, &creds, Duration::from_secs(1)).await, Ok(1));
    // 1100 HTTP connections that never finish their request.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(rig.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        idle.push(s);
    }
    // And clients that keep connecting to the proxy's read port (pivot
    // takes every descriptor that frees up for them).
    let write = std::net::SocketAddr::from(([127, 0, 0, 1], routes.read.port));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let clients = tokio::spawn(async move {
        let mut held = Vec::new();
        while !flag.load(Ordering::SeqCst) {
            if let Ok(Ok(s)) =
                tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(write)).await
            {
                held.push(s);
            }
            if held.len() > 1500 {
                held.remove(0);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let pid = child.0.id();
    let fd_count = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    // The flood holds descriptors beyond the 1024 a service manager gives.
    eventually(WAIT, "pivot holding more than 1300 descriptors", || async {
        let n = fd_count();
        (n > 1300).then_some(()).ok_or(format!("{n}"))
    })
    .await;
    let fds = fd_count();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap_or_default();
    eprintln!("pivot has {fds} descriptors open; {}", limits.lines().find(|l| l.contains("open files")).unwrap_or(""));
    rig.sb.kill("node1").unwrap();
    // The history is read from the state file, not through pivot's HTTP port.
    let h = eventually(Duration::from_secs(30), "a recovery that ended", || async {
        let h = rig.history();
        let status = last_recovery(&h)["status"].as_str().unwrap_or_default().to_string();
        (!status.is_empty() && status != "running").then_some(h.clone()).ok_or(status)
    })
    .await;
    let r = last_recovery(&h);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let emfile = text.matches("Too many open files").count();
    assert_eq!(r["status"], "succeeded", "{emfile} \"too many open files\" in the log; {:?}", steps(r));
    stop.store(true, Ordering::SeqCst);
    let _ = clients.await;
    drop(idle);
    drop(child);
}

/// A hung primary (SIGSTOP: its kernel still accepts connections, nothing
/// answers). A connection open through the proxy is cut when the failover
/// moves the route; a client that connects meanwhile (accepted, never
/// greeted) is moved to the new primary without an error; the old primary,
/// resumed after the failover, gets no connection from the proxy.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_primary_behind_the_proxy_loses_its_connections_and_new_ones_reach_the_new_primary() {
    let (routes, cluster_toml, _) = routes_toml();
    let rig = Rig::start(3, false, |_| cluster_toml).await;
    let creds = rig.sb.credentials("app").unwrap();
    eventually(WAIT, "the write port on node1", || async {
        let id = server_behind(&routes.write, &creds, Duration::from_secs(1)).await?;
        (id == 1).then_some(()).ok_or(format!("server {id}"))
    })
    .await;
    let mut open = Session::connect(&routes.write, &creds, Duration::from_secs(2)).await.unwrap();
    let old = rig.key("node1");
    rig.sb.pause("node1").unwrap();
    // A client connecting while node1 hangs: no error, it lands on the new primary.
    let (write, c2) = (routes.write.clone(), creds.clone());
    let during = tokio::spawn(async move { server_behind(&write, &c2, Duration::from_secs(25)).await });
    let new = rig.wait_new_primary(&old).await;
    let new_node = rig.sb.nodes().iter().find(|n| rig.key(&n.name) == new).unwrap().name.clone();
    let new_id = server_id(&rig, &new_node);
    assert_eq!(during.await.unwrap(), Ok(new_id), "the client that connected during the hang");
    let cut = tokio::time::timeout(
        Duration::from_secs(10),
        open.rows(&pivot_dialect::Sql::plain("SELECT @@server_id AS id")),
    )
    .await;
    assert!(matches!(cut, Ok(Err(_))), "the connection to the hung primary was cut: {cut:?}");
    rig.sb.resume("node1").unwrap();
    eventually(WAIT, "node1 fenced", || async {
        (read_only(&rig.sb, "node1").await == Some(true)).then_some(()).ok_or("writable".to_string())
    })
    .await;
    for _ in 0..5 {
        assert_eq!(server_behind(&routes.write, &creds, Duration::from_secs(2)).await, Ok(new_id));
    }
}
