//! A real HAProxy (Debian's package, started by the test) with the
//! configuration `pivot haproxy-config` prints, in front of the sandbox:
//! reads leave a replica whose replication stopped and come back when it is
//! fixed, writes move after a failover, nothing reaches the fenced old
//! primary.

use crate::support::*;
use pivot_core::InstanceKey;
use pivot_drill::eventually;
use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// HAProxy started by this test, killed by PID on drop (its log printed
/// if the test fails).
struct Haproxy {
    child: Child,
    log: std::path::PathBuf,
}

impl Haproxy {
    fn start(config: &std::path::Path, log_path: &std::path::Path) -> Haproxy {
        let log = std::fs::File::create(log_path).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("haproxy (Debian package haproxy; scripts/deps.sh installs it)");
        Haproxy { child, log: log_path.to_path_buf() }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- haproxy log ---\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

async fn server_behind(rig: &Rig, via: &InstanceKey) -> Result<u32, String> {
    let creds = rig.sb.credentials("app").map_err(|e| e.to_string())?;
    connect_server_id(via, &creds, Duration::from_secs(2)).await.map(|(id, _)| id)
}

/// The servers behind `n` fresh connections.
async fn spread(rig: &Rig, via: &InstanceKey, n: usize) -> Result<BTreeSet<u32>, String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        seen.insert(server_behind(rig, via).await?);
    }
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn haproxy_with_pivots_checks_follows_replication_health_and_the_failover() {
    let mut rig = Rig::start(3, true, |_| String::new()).await;
    let (w, r) = (free_port(), free_port());
    let out = cli(
        &rig,
        &[
            "haproxy-config",
            "--cluster",
            "sandbox",
            "--write-bind",
            &format!("127.0.0.1:{w}"),
            "--read-bind",
            &format!("127.0.0.1:{r}"),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = rig.sb.dir.join("haproxy.cfg");
    std::fs::write(&cfg, &out.stdout).unwrap();
    let check = Command::new("haproxy").arg("-c").arg("-f").arg(&cfg).output().unwrap();
    assert!(check.status.success(), "haproxy -c: {}", String::from_utf8_lossy(&check.stderr));
    let _haproxy = Haproxy::start(&cfg, &rig.sb.dir.join("haproxy.log"));
    let write: InstanceKey = format!("127.0.0.1:{w}").parse().unwrap();
    let read: InstanceKey = format!("127.0.0.1:{r}").parse().unwrap();

    eventually(WAIT, "writes on node1, reads on both replicas", || async {
        let wr = server_behind(&rig, &write).await?;
        let rd = spread(&rig, &read, 6).await?;
        (wr == 1 && rd == BTreeSet::from([2, 3])).then_some(()).ok_or(format!("write {wr}, reads {rd:?}"))
    })
    .await;

    // Replication stopped on node2: reads leave it; fixed: they come back.
    exec(&rig.sb, "node2", &["STOP SLAVE"]).await;
    eventually(WAIT, "reads only on node3", || async {
        let rd = spread(&rig, &read, 6).await?;
        (rd == BTreeSet::from([3])).then_some(()).ok_or(format!("reads {rd:?}"))
    })
    .await;
    exec(&rig.sb, "node2", &["START SLAVE"]).await;
    eventually(WAIT, "node2 back in rotation", || async {
        let rd = spread(&rig, &read, 6).await?;
        (rd == BTreeSet::from([2, 3])).then_some(()).ok_or(format!("reads {rd:?}"))
    })
    .await;

    // Failover: writes move to the new primary.
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let new_id = rig.sb.nodes().iter().find(|n| rig.key(&n.name) == new).unwrap().server_id;
    // Every write connection, not just one: HAProxy round-robins over the
    // servers it still thinks up, so a single lucky connection to the new
    // primary proves nothing until its next check (500 ms) marks node1 down.
    eventually(WAIT, "writes on the new primary", || async {
        let wr = spread(&rig, &write, 6).await?;
        (wr == BTreeSet::from([new_id])).then_some(()).ok_or(format!("writes {wr:?}"))
    })
    .await;
    // The old primary is back (fenced): nothing reaches it.
    rig.sb.start("node1").await.unwrap();
    eventually(WAIT, "node1 fenced", || async {
        (read_only(&rig.sb, "node1").await == Some(true)).then_some(()).ok_or("not yet".to_string())
    })
    .await;
    // Reads resume (the surviving replica was repointed, the new primary is
    // the backup meanwhile); then, long enough for HAProxy to have checked
    // the old primary several times, nothing reaches it.
    eventually(WAIT, "reads served again", || async {
        let rd = spread(&rig, &read, 2).await?;
        (!rd.contains(&1)).then_some(()).ok_or(format!("reads {rd:?}"))
    })
    .await;
    for _ in 0..10 {
        assert_eq!(server_behind(&rig, &write).await.unwrap(), new_id, "writes only on the new primary");
        let rd = spread(&rig, &read, 4).await.unwrap();
        assert!(!rd.contains(&1), "no read on the fenced old primary: {rd:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    rig.pivot.stop();
}
