//! The built-in proxy on a real sandbox: writes follow the failover, reads
//! follow replication health, connections made during a recovery wait for
//! the new primary, and nothing reaches the fenced old primary.

use crate::support::*;
use pivot_core::InstanceKey;
use pivot_drill::{eventually, http_get, missing_writes, Writer, WriterTarget};
use pivot_server::Session;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

struct Ports {
    write: InstanceKey,
    read: InstanceKey,
}

fn proxy_toml(extra: &str) -> (Ports, String) {
    let (w, r) = (free_port(), free_port());
    let ports =
        Ports { write: format!("127.0.0.1:{w}").parse().unwrap(), read: format!("127.0.0.1:{r}").parse().unwrap() };
    let toml = format!("[cluster.proxy]\nwrite = \"127.0.0.1:{w}\"\nread = \"127.0.0.1:{r}\"\n{extra}\n");
    (ports, toml)
}

/// The `@@server_id` of the server behind a fresh connection to `via`.
async fn server_behind(rig: &Rig, via: &InstanceKey) -> Result<(u32, Session), String> {
    let creds = rig.sb.credentials("app").map_err(|e| e.to_string())?;
    connect_server_id(via, &creds, Duration::from_secs(2)).await
}

fn servers(rig: &Rig) -> Vec<(u32, InstanceKey)> {
    rig.sb.nodes().iter().map(|n| (n.server_id, rig.sb.key(&n.name).unwrap())).collect()
}

fn id_of(rig: &Rig, key: &str) -> u32 {
    servers(rig).into_iter().find(|(_, k)| k.to_string() == key).map(|(id, _)| id).unwrap()
}

async fn metrics(rig: &Rig) -> String {
    http_get(rig.addr, "/metrics").await.map(|(_, b)| b).unwrap_or_default()
}

/// The value of the first sample of `name` whose labels contain `label`.
fn sample(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_follow_the_failover_through_the_proxy_and_nothing_reaches_the_fenced_old_primary() {
    let (ports, toml) = proxy_toml("hold_timeout = \"20s\"");
    let mut rig = Rig::start(3, true, |_| toml).await;
    let old = rig.key("node1");
    eventually(WAIT, "the write port on node1", || async {
        let (id, _) = server_behind(&rig, &ports.write).await?;
        (id == 1).then_some(()).ok_or(format!("server {id}"))
    })
    .await;
    // Reads spread over both replicas (least connections), never the primary.
    let (a, _keep_a) = server_behind(&rig, &ports.read).await.unwrap();
    let (b, _keep_b) = server_behind(&rig, &ports.read).await.unwrap();
    assert_eq!(BTreeSet::from([a, b]), BTreeSet::from([2, 3]), "two connections, one on each replica");

    let creds = rig.sb.credentials("app").unwrap();
    let via = WriterTarget::Proxy { proxy: ports.write.clone(), servers: servers(&rig) };
    let writer = Writer::start(1, via, creds, Duration::from_secs(5), Duration::from_millis(2));
    eventually(WAIT, "writes through the proxy", || async {
        (writer.acks().len() > 20).then_some(()).ok_or("not yet".to_string())
    })
    .await;
    let killed_at = Instant::now();
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    let new_key: InstanceKey = new.parse().unwrap();
    let first = eventually(WAIT, "a write through the proxy on the new primary", || async {
        writer.first_ack_on(&new_key, killed_at).ok_or("none yet".to_string())
    })
    .await;
    eprintln!("fault to first write through the proxy: {} ms", (first - killed_at).as_millis());
    let acks = writer.stop().await;
    let old_key: InstanceKey = old.parse().unwrap();
    let late: Vec<_> = acks.iter().filter(|a| a.instance == old_key && a.at > first).collect();
    assert!(late.is_empty(), "writes acknowledged by the old primary after the new one's first: {late:?}");
    let mut s = rig.sb.admin(&rig.sb.nodes().iter().find(|n| rig.key(&n.name) == new).unwrap().name).await.unwrap();
    assert_eq!(missing_writes(&mut s, &acks).await, Vec::<u64>::new(), "no acknowledged write lost");

    // The old primary comes back: pivot fences it, and no route leads to it.
    rig.sb.start("node1").await.unwrap();
    eventually(WAIT, "node1 fenced", || async {
        match read_only(&rig.sb, "node1").await {
            Some(true) => Ok(()),
            other => Err(format!("read_only {other:?}")),
        }
    })
    .await;
    let new_id = id_of(&rig, &new);
    for _ in 0..6 {
        let (w, _) = server_behind(&rig, &ports.write).await.unwrap();
        assert_eq!(w, new_id, "writes go to the new primary only");
        let (r, _) = server_behind(&rig, &ports.read).await.unwrap();
        assert_ne!(r, 1, "no read reaches the fenced old primary");
    }
    let m = metrics(&rig).await;
    assert_eq!(sample(&m, "pivot_route_epoch", "sandbox"), Some(2.0), "{m}");
    let cut = sample(&m, "pivot_proxy_backend_cut_total", &format!("port=\"write\",backend=\"{old}\"")).unwrap_or(0.0);
    let held = sample(&m, "pivot_proxy_held_total", "sandbox").unwrap_or(0.0);
    assert!(cut + held >= 1.0, "the writer's connection to the old primary was cut or a connection was held: {m}");
    let (_, body) = http_get(rig.addr, "/api/clusters/sandbox/routes").await.unwrap();
    let routes: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (routes["epoch"].as_u64(), routes["primary"].as_str(), routes["hold"].as_bool()),
        (Some(2), Some(new.as_str()), Some(false)),
        "{body}"
    );
    let (code, body) = http_get(rig.addr, "/api/clusters/sandbox/recoveries?limit=x").await.unwrap();
    assert!(code == 400 && body.contains("limit must be a number"), "{code} {body}");
    let h = rig.history();
    let names = steps(last_recovery(&h));
    assert!(
        names.contains(&"record_epoch=ok".to_string()) && names.contains(&"route_local=ok".to_string()),
        "{names:?}"
    );
    rig.pivot.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_whose_replication_stops_leaves_the_read_port_and_comes_back() {
    let (ports, toml) = proxy_toml("");
    let rig = Rig::start(3, false, |_| toml).await;
    eventually(WAIT, "both replicas readable", || async {
        let (a, _ka) = server_behind(&rig, &ports.read).await?;
        let (b, _kb) = server_behind(&rig, &ports.read).await?;
        (BTreeSet::from([a, b]) == BTreeSet::from([2, 3])).then_some(()).ok_or(format!("{a} {b}"))
    })
    .await;
    let (on2, mut kept) = loop {
        let (id, s) = server_behind(&rig, &ports.read).await.unwrap();
        if id == 2 {
            break (id, s);
        }
    };
    assert_eq!(on2, 2);
    exec(&rig.sb, "node2", &["STOP SLAVE SQL_THREAD"]).await;
    // The open read connection to node2 is cut; new ones go to node3 only.
    let deadline = Instant::now() + WAIT;
    while session_server_id(&mut kept).await.is_ok() {
        assert!(Instant::now() < deadline, "the read connection to node2 is still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..4 {
        let (id, _) = server_behind(&rig, &ports.read).await.unwrap();
        assert_eq!(id, 3, "node2 is out of the read port while its SQL thread is stopped");
    }
    exec(&rig.sb, "node2", &["START SLAVE SQL_THREAD"]).await;
    eventually(WAIT, "node2 back in the read port", || async {
        let (a, _ka) = server_behind(&rig, &ports.read).await?;
        let (b, _kb) = server_behind(&rig, &ports.read).await?;
        (BTreeSet::from([a, b]) == BTreeSet::from([2, 3])).then_some(()).ok_or(format!("{a} {b}"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_held_without_a_new_primary_is_closed_after_the_hold_timeout() {
    let (ports, toml) = proxy_toml("hold_timeout = \"500ms\"\nhold_queue = 1");
    let mut rig = Rig::start(2, false, |_| format!("{toml}\n[cluster.failover]\nautomatic = false\n")).await;
    eventually(WAIT, "the write port on node1", || async {
        let (id, _) = server_behind(&rig, &ports.write).await?;
        (id == 1).then_some(()).ok_or(format!("server {id}"))
    })
    .await;
    rig.sb.kill("node1").unwrap();
    let (addr, node1) = (rig.addr, rig.key("node1"));
    eventually(WAIT, "pivot sees node1 down", || async {
        let c = api_cluster(addr).await?;
        let up = instance(&c, &node1).map(|i| i["reachable"].clone());
        (up == Some(serde_json::Value::Bool(false))).then_some(()).ok_or(format!("{up:?}"))
    })
    .await;
    // Automatic failover is off: nobody promotes. The first connection is
    // held (the queue holds one) and closed at the hold timeout without a
    // byte; the second finds the queue full and is closed at once.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], ports.write.port));
    let t0 = Instant::now();
    let mut first = tokio::net::TcpStream::connect(addr).await.unwrap();
    eventually(WAIT, "the first connection held", || async {
        let m = metrics(&rig).await;
        (sample(&m, "pivot_proxy_held", "sandbox") == Some(1.0)).then_some(()).ok_or(m)
    })
    .await;
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_eq!(read_to_close(&mut second).await, 0, "refused: closed without a byte");
    let refused_after = t0.elapsed();
    assert_eq!(read_to_close(&mut first).await, 0, "held, then closed without a byte");
    assert!(t0.elapsed() >= Duration::from_millis(500), "held for the hold timeout");
    assert!(refused_after < Duration::from_millis(500), "the second was not held: {refused_after:?}");
    eventually(WAIT, "nobody held any more", || async {
        let m = metrics(&rig).await;
        (sample(&m, "pivot_proxy_held", "sandbox") == Some(0.0)).then_some(()).ok_or(m)
    })
    .await;
    let m = metrics(&rig).await;
    assert!(sample(&m, "pivot_proxy_hold_timeouts_total", "sandbox").unwrap_or(0.0) >= 1.0, "{m}");
    assert!(sample(&m, "pivot_proxy_refused_total", "sandbox").unwrap_or(0.0) >= 1.0, "the queue holds one: {m}");
}

/// Read until the other side closes (bounded); the bytes received.
async fn read_to_close(s: &mut tokio::net::TcpStream) -> usize {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .expect("closed within 10 s")
        .map(|_| buf.len())
        .unwrap_or(buf.len())
}
