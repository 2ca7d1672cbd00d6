//! keepalived (Debian's package) in each node's network namespace with the
//! configuration `pivot keepalived-config` prints, next to `pivot agent`:
//! VRRP only follows pivot. The address is on pivot's primary, moves to the
//! new primary after a kill -9, leaves every host when pivot stops
//! renewing, and is never on two hosts.

use crate::routes_vip::*;
use crate::support::*;
use pivot_drill::eventually;
use pivot_sandbox::Network;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// keepalived in a namespace, stopped by PID on drop (SIGTERM: it takes
/// its addresses down and ends its VRRP process; SIGKILL after 5 s).
struct Keepalived {
    child: Child,
    vrrp_pid: PathBuf,
    log: PathBuf,
}

impl Keepalived {
    fn start(ns: &str, config: &Path, dir: &Path, name: &str) -> Keepalived {
        let log = dir.join(format!("keepalived-{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let vrrp_pid = dir.join(format!("keepalived-{name}-vrrp.pid"));
        // `ip netns exec` execs in place: the child's PID is keepalived's.
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog"])
            .args(["--vrrp", "--use-file"])
            .arg(config)
            .arg("--pid")
            .arg(dir.join(format!("keepalived-{name}.pid")))
            .arg("--vrrp_pid")
            .arg(&vrrp_pid)
            .arg("--checkers_pid")
            .arg(dir.join(format!("keepalived-{name}-checkers.pid")))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("keepalived (Debian package keepalived; scripts/deps.sh installs it)");
        Keepalived { child, vrrp_pid, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Its VRRP process (it wrote the PID), if it outlived its parent.
        let vrrp = std::fs::read_to_string(&self.vrrp_pid).ok().and_then(|p| p.trim().parse::<i32>().ok());
        if let Some(v) = vrrp {
            let cmdline = std::fs::read(format!("/proc/{v}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains("keepalived") {
                // SAFETY: a process our keepalived started, checked by its command line.
                unsafe { libc::kill(v, libc::SIGKILL) };
            }
        }
    }
}

/// `pivot agent check-primary` in node `i`'s namespace: its exit code and
/// what it printed.
fn check_primary(rig: &Rig, lab: &VipLab, i: usize) -> (i32, String) {
    let node = &rig.sb.nodes()[i].name;
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.namespaces[i]])
        .arg(pivot_bin())
        .args(["agent", "check-primary", "--config"])
        .arg(agent_config_path(&rig.sb, node))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text.trim().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn keepalived_with_pivots_check_only_follows_pivots_primary() {
    let mut rig = Rig::start_in(Network::Namespaces, 3, false, |sb| vip_table(sb, true)).await;
    let lab = VipLab::of(&rig.sb);
    let vip = lab.vip();
    let watch = VipWatch::start(lab.namespaces.clone(), vip.clone());
    let _agents = start_agents(&rig.sb).await;
    let client = client_ns(&lab);

    // The check alone: it passes on the primary's host only.
    eventually(WAIT, "check-primary passes on node1 only", || async {
        let got: Vec<(i32, String)> = (0..3).map(|i| check_primary(&rig, &lab, i)).collect();
        let codes: Vec<i32> = got.iter().map(|(c, _)| *c).collect();
        (codes == vec![0, 1, 1]).then_some(got.clone()).ok_or(format!("{got:?}"))
    })
    .await;
    let (_, why) = check_primary(&rig, &lab, 1);
    assert!(why.starts_with("not primary: not the primary (epoch"), "{why}");
    assert_eq!(why.lines().count(), 1, "one line: {why}");

    // One configuration per node: here each agent has its own configuration
    // file (on real hosts the path is the same everywhere, and so is the file).
    let mut keepalived = Vec::new();
    for (i, n) in rig.sb.nodes().iter().enumerate() {
        let agent_cfg = agent_config_path(&rig.sb, &n.name);
        let out =
            cli(&rig, &["keepalived-config", "--cluster", "sandbox", "--agent-config", agent_cfg.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let cfg = rig.sb.dir.join(format!("keepalived-{}.conf", n.name));
        std::fs::write(&cfg, &out.stdout).unwrap();
        let check = Command::new("keepalived").arg("--config-test").arg("--use-file").arg(&cfg).output().unwrap();
        assert!(check.status.success(), "keepalived --config-test: {}", String::from_utf8_lossy(&check.stderr));
        keepalived.push(Keepalived::start(&lab.namespaces[i], &cfg, &rig.sb.dir, &n.name));
    }

    let on_first = watch.wait_holders(&[0], WAIT, "keepalived puts the address on node1").await;
    wait_client_reaches(&client, &rig, &vip, 1).await;

    // kill -9 of the primary: keepalived follows pivot's new primary.
    let old = rig.key("node1");
    let killed = Instant::now();
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let n = node_index(&rig, &new);
    let id = rig.sb.nodes()[n].server_id;
    watch.wait_holders(&[n], WAIT, "keepalived moves the address to the new primary").await;
    wait_client_reaches(&client, &rig, &vip, id).await;
    let reached = killed.elapsed();
    let step = ended_route_vip_step(&rig).await;
    assert_eq!(step["outcome"], "ok", "{step}");
    assert!(step["message"].as_str().unwrap_or_default().contains("answers keepalived's check"), "{step}");

    // pivot frozen: no host can confirm it is the primary; the address goes.
    let pid = rig.pivot.pid().unwrap() as i32;
    // SAFETY: signalling our own child by its PID.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let unrenewed = watch.wait_holders(&[], Duration::from_secs(10), "the address gone without pivot").await;
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGCONT) };
    watch.wait_holders(&[n], WAIT, "the address back with pivot").await;
    wait_client_reaches(&client, &rig, &vip, id).await;

    let w = watch.finish();
    eprintln!(
        "keepalived: address on node1 {:.2} s after start; client on the new primary {:.2} s after kill -9; gone {:.2} \
         s after pivot froze (lease 3 s); {} looks at every host; changes: {:?}",
        on_first.as_secs_f64(),
        reached.as_secs_f64(),
        unrenewed.as_secs_f64(),
        w.samples,
        w.changes
    );
    if !w.doubles.is_empty() {
        for (i, k) in keepalived.iter().enumerate() {
            eprintln!("---- keepalived {i} ----\n{}", k.log_text());
        }
    }
    assert!(w.doubles.is_empty(), "the address was on two hosts: {:?}", w.doubles);
    drop(keepalived);
    rig.pivot.stop();
}
