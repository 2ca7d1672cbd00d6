//! The protocol mode against a scripted server on 127.0.0.1 (greeting, OK
//! to the login and to each query; `BEGIN` opens a transaction): what a
//! route change does to a session in a transaction, and to an idle one.

use super::handshake::{caps, tests::MARIADB_GREETING};
use super::packet::{frame, header};
use super::session::Reason;
use crate::config::{ProxyConfig, ProxyMode};
use crate::proxy::stats::ProxyStats;
use crate::routes::RouteHub;
use pivot_core::routes::{EpochRecord, RouteTable};
use pivot_core::{ClusterView, InstanceKey};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

fn table(epoch: u64, primary: SocketAddr, hold: bool) -> RouteTable {
    let key: InstanceKey = primary.to_string().parse().unwrap();
    let e = EpochRecord { number: epoch, primary: key, recovery_id: None, since_ms: 0 };
    RouteTable::derive(Some(&e), &ClusterView::default(), hold, 10)
}

async fn read_packet(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await.ok()?;
    let hd = header(&h)?;
    let mut p = vec![0u8; hd.len];
    s.read_exact(&mut p).await.ok()?;
    Some((hd.seq, p))
}

async fn write_packet(s: &mut TcpStream, seq: u8, payload: &[u8]) {
    let mut out = Vec::new();
    frame(seq, payload, &mut out);
    let _ = s.write_all(&out).await;
}

/// A server that greets, accepts any login, and answers every query with
/// an OK whose status says whether a transaction is open.
async fn scripted_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                write_packet(&mut s, 0, MARIADB_GREETING).await;
                let Some((seq, _)) = read_packet(&mut s).await else { return };
                write_packet(&mut s, seq + 1, &[0, 0, 0, 2, 0, 0, 0]).await;
                let mut in_trans = false;
                while let Some((_, q)) = read_packet(&mut s).await {
                    let text = String::from_utf8_lossy(&q[1..]).to_ascii_uppercase();
                    in_trans = (in_trans || text == "BEGIN") && text != "COMMIT";
                    let status = if in_trans { 3u8 } else { 2 };
                    write_packet(&mut s, 1, &[0, 0, 0, status, 0, 0, 0]).await;
                }
            });
        }
    });
    addr
}

/// A client logged in through `proxy` (native password, session tracking).
async fn client(proxy: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(proxy).await.unwrap();
    let (seq, _greeting) = read_packet(&mut c).await.unwrap();
    let caps = caps::PROTOCOL_41 | caps::SECURE_CONNECTION | caps::PLUGIN_AUTH | caps::SESSION_TRACK;
    let mut r = Vec::new();
    r.extend_from_slice(&caps.to_le_bytes());
    r.extend_from_slice(&(16u32 << 20).to_le_bytes());
    r.push(45);
    r.extend_from_slice(&[0u8; 23]);
    r.extend_from_slice(b"app\0");
    r.push(20);
    r.extend_from_slice(&[7u8; 20]);
    r.extend_from_slice(b"mysql_native_password\0");
    write_packet(&mut c, seq + 1, &r).await;
    let (_, ok) = read_packet(&mut c).await.unwrap();
    assert_eq!(ok[0], 0, "logged in");
    c
}

async fn query(c: &mut TcpStream, q: &str) -> Option<Vec<u8>> {
    let mut p = vec![0x03];
    p.extend_from_slice(q.as_bytes());
    write_packet(c, 0, &p).await;
    read_packet(c).await.map(|(_, p)| p)
}

struct Running {
    hub: RouteHub,
    stats: Arc<ProxyStats>,
    write: SocketAddr,
    handle: Option<crate::proxy::ProxyHandle>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
    }
}

fn start(server: SocketAddr, grace: Duration) -> Running {
    let write: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = ProxyConfig {
        write: Some(write),
        read: None,
        max_connections: 16,
        hold_queue: 4,
        hold_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        required: true,
        threads: 1,
        mode: ProxyMode::Mysql,
        transaction_grace: grace,
    };
    let hub = RouteHub::new();
    assert!(hub.offer(table(1, server, false)));
    let handle =
        crate::proxy::start("test", pivot_server::Credentials::new("pivot", "unused"), cfg, hub.clone()).unwrap();
    Running { hub, stats: handle.stats.clone(), write, handle: Some(handle) }
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A session in a transaction when the route moves goes on with its server
/// (busy there) until `transaction_grace`, then is ended and counted; an
/// idle one is parked, not cut.
#[tokio::test]
async fn a_transaction_goes_on_until_the_grace_then_ends_and_an_idle_session_is_parked() {
    let server = scripted_server().await;
    let p = start(server, Duration::from_millis(600));
    let key: InstanceKey = server.to_string().parse().unwrap();
    let mut in_trans = client(p.write).await;
    let mut idle = client(p.write).await;
    assert_eq!(query(&mut in_trans, "BEGIN").await.unwrap()[3], 3);
    assert_eq!(p.stats.busy("write", &key), 1, "the open transaction keeps its session busy");
    assert!(query(&mut idle, "SELECT 1").await.is_some());
    // A switchover's hold.
    assert!(p.hub.offer(table(1, server, true)));
    until("the idle session parked", || p.stats.parked.load(Relaxed) == 1).await;
    // The transaction goes on with its server within the grace, and ends.
    assert_eq!(query(&mut in_trans, "UPDATE t SET a = 1").await.unwrap()[3], 3);
    assert_eq!(query(&mut in_trans, "COMMIT").await.unwrap()[3], 2);
    until("parked after its commit", || p.stats.parked.load(Relaxed) == 2).await;
    assert_eq!(p.stats.busy("write", &key), 0, "nothing busy on the old server: a switchover may go on");
    // The route comes back to the same server: the parked session goes on.
    assert!(p.hub.offer(table(1, server, false)), "back to the same primary");
    assert_eq!(query(&mut in_trans, "SELECT 2").await.unwrap()[3], 2, "the parked session goes on where it was");
    // A transaction still open at the grace deadline is ended and counted.
    assert_eq!(query(&mut in_trans, "BEGIN").await.unwrap()[3], 3);
    assert!(p.hub.offer(table(1, server, true)));
    let held_at = Instant::now();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(3), in_trans.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "ended at the grace deadline: {closed:?}");
    assert!(held_at.elapsed() >= Duration::from_millis(500), "not before the grace: {:?}", held_at.elapsed());
    until("counted", || p.stats.ended(Reason::Transaction) == 1).await;
    assert_eq!(p.stats.migrated.load(Relaxed), 0);
}
