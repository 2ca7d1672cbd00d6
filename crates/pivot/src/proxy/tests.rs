//! The proxy against fake backends on 127.0.0.1 (plain TCP listeners): the
//! limits, the hold, re-routing, cut-off, idle timeout and backpressure,
//! without a database.

use super::forward::{forward, End};
use super::listener::{serve, Port};
use super::stats::ProxyStats;
use crate::config::ProxyConfig;
use crate::routes::RouteHub;
use pivot_core::routes::{EpochRecord, InstanceRoute, Role, RouteTable};
use pivot_core::{ClusterView, InstanceKey};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

fn cfg() -> ProxyConfig {
    ProxyConfig {
        write: None,
        read: None,
        max_connections: 64,
        hold_queue: 16,
        hold_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        required: true,
        threads: 1,
        mode: crate::config::ProxyMode::Tcp,
        transaction_grace: Duration::from_secs(2),
    }
}

fn key_of(addr: SocketAddr) -> InstanceKey {
    addr.to_string().parse().unwrap()
}

/// A table of `epoch` whose primary is `primary` (nothing else observed).
fn table(epoch: u64, primary: SocketAddr, hold: bool) -> RouteTable {
    let e = EpochRecord { number: epoch, primary: key_of(primary), recovery_id: None, since_ms: 0 };
    RouteTable::derive(Some(&e), &ClusterView::default(), hold, 10)
}

/// `t` with `replicas` as healthy replicas that lag 0 s.
fn with_replicas(mut t: RouteTable, replicas: &[SocketAddr]) -> RouteTable {
    for r in replicas {
        t.instances.push(InstanceRoute {
            instance: key_of(*r),
            role: Role::Replica,
            reachable: true,
            healthy: true,
            lag_s: Some(0),
            reason: "a test replica".into(),
        });
    }
    t
}

/// A port nothing listens on (bound, then closed).
fn dead_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

struct Proxy {
    hub: RouteHub,
    stats: Arc<ProxyStats>,
    write: SocketAddr,
    read: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(cfg: ProxyConfig, first: RouteTable) -> Proxy {
        let hub = RouteHub::new();
        assert!(hub.offer(first));
        let stats = Arc::new(ProxyStats::default());
        let bind = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.set_nonblocking(true).unwrap();
            l
        };
        let (w, r) = (bind(), bind());
        let (write, read) = (w.local_addr().unwrap(), r.local_addr().unwrap());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(
            "test".into(),
            pivot_server::Credentials::new("pivot", "unused"),
            cfg,
            hub.clone(),
            stats.clone(),
            vec![(w, Port::Write), (r, Port::Read)],
            stopped,
        ));
        Proxy { hub, stats, write, read, stop, task }
    }

    async fn end(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

/// A backend that greets every connection with `hello` and echoes what it
/// is sent.
async fn greeting_backend(hello: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(serve_greeting(l, hello));
    addr
}

async fn serve_greeting(l: TcpListener, hello: &'static [u8]) {
    loop {
        let Ok((mut s, _)) = l.accept().await else { return };
        tokio::spawn(async move {
            if s.write_all(hello).await.is_err() {
                return;
            }
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// Read exactly `n` bytes within `within`.
/// Wait (bounded, 5 s) until `cond` holds; panics naming `what` if it never does.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn read_n(s: &mut TcpStream, n: usize, within: Duration) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; n];
    match tokio::time::timeout(within, s.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Ok(buf),
        Ok(Err(e)) => Err(format!("closed: {e}")),
        Err(_) => Err(format!("nothing within {within:?}")),
    }
}

/// Whether the peer closed `s` (EOF, no byte) within `within`.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(within, s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

/// A connection whose backend left the route between the choice of the
/// backend and the start of forwarding (the table changed while the proxy
/// connected) must be cut at once, not at the next, unrelated table change:
/// otherwise a write connection can stay on the old primary for as long as
/// the new epoch's table stays the same.
#[tokio::test]
async fn forwarding_cuts_at_once_when_the_table_already_excludes_the_backend() {
    let (old, new) = (dead_addr(), dead_addr());
    let hub = RouteHub::new();
    assert!(hub.offer(table(1, old, false)));
    // The client and its (already connected) backend connection.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
    let (_client_peer, _) = l.accept().await.unwrap();
    let bl = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut backend = TcpStream::connect(bl.local_addr().unwrap()).await.unwrap();
    let (_backend_peer, _) = bl.accept().await.unwrap();
    // A new epoch is published after the choice and before forwarding
    // subscribes: the subscriber starts with it as already seen.
    assert!(hub.offer(table(2, new, false)));
    let routes = hub.subscribe();
    let stats = super::stats::BackendStats::default();
    let old_key = key_of(old);
    let keeps = |t: &RouteTable| t.keeps_write(&old_key);
    let (_stop_tx, stop) = watch::channel(false);
    let ended = tokio::time::timeout(
        Duration::from_secs(2),
        forward(&mut client, &mut backend, &stats, routes, keeps, Duration::from_secs(60), stop),
    )
    .await;
    match ended {
        Ok((end, _)) => assert_eq!(end, End::Cut),
        Err(_) => panic!("a connection to a backend that is no longer the write target was kept open"),
    }
}

/// A held connection whose primary refused once (a connection storm that
/// overflowed its accept queue, a restart) is connected as soon as the
/// primary accepts again, even if pivot's table did not change meanwhile;
/// not closed at the hold timeout without another try.
#[tokio::test]
async fn a_held_connection_retries_a_primary_that_refused_without_waiting_for_a_new_table() {
    let backend = dead_addr();
    let mut c = cfg();
    c.hold_timeout = Duration::from_secs(4);
    let proxy = Proxy::start(c, table(1, backend, false)).await;
    let mut client = TcpStream::connect(proxy.write).await.unwrap();
    // The primary refuses for a moment, then listens again on its port.
    until("held while the primary refuses", || proxy.stats.held.load(Relaxed) == 1).await;
    let l = TcpListener::bind(backend).await.unwrap();
    tokio::spawn(serve_greeting(l, b"hello"));
    let t0 = Instant::now();
    let got = read_n(&mut client, 5, Duration::from_secs(6)).await;
    assert_eq!(got.as_deref(), Ok(&b"hello"[..]), "the held client reached the primary once it accepted");
    assert!(t0.elapsed() < Duration::from_secs(2), "retried well before the hold timeout: {:?}", t0.elapsed());
    proxy.end().await;
}

/// On the read port, a replica that refuses does not hold the client while
/// another readable replica accepts.
#[tokio::test]
async fn a_read_connection_goes_to_another_replica_when_the_least_loaded_one_refuses() {
    let primary = greeting_backend(b"prima").await;
    let good = greeting_backend(b"repli").await;
    let refusing = dead_addr();
    let t = with_replicas(table(1, primary, false), &[refusing, good]);
    let proxy = Proxy::start(cfg(), t).await;
    for _ in 0..4 {
        let mut client = TcpStream::connect(proxy.read).await.unwrap();
        let got = read_n(&mut client, 5, Duration::from_secs(2)).await;
        assert_eq!(got.as_deref(), Ok(&b"repli"[..]), "served by the replica that accepts");
    }
    proxy.end().await;
}

/// Hundreds of connections beyond the limits (thousands in a live run): at most `max_connections`
/// are served at once, at most `hold_queue` wait, the rest are closed at
/// once; those held are released to the primary when its epoch comes, and
/// every counter is back to zero when the clients leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_under_a_flood_and_held_connections_are_released_to_the_new_primary() {
    let primary = greeting_backend(b"hello").await;
    let mut c = cfg();
    c.max_connections = 20;
    c.hold_queue = 5;
    c.hold_timeout = Duration::from_secs(20);
    // A recovery runs: writes are held.
    let proxy = Proxy::start(c, table(1, dead_addr(), true)).await;
    let mut clients = Vec::new();
    for _ in 0..500 {
        clients.push(TcpStream::connect(proxy.write).await.unwrap());
    }
    // Settled only once every connection was decided: one still in the
    // accept backlog would otherwise reach the primary after the release.
    until("the flood settled: five held, the other 495 refused", || {
        proxy.stats.held.load(Relaxed) == 5 && proxy.stats.refused.load(Relaxed) == 495
    })
    .await;
    assert_eq!(proxy.stats.held.load(Relaxed), 5, "the hold queue is bounded");
    assert!(proxy.stats.clients.load(Relaxed) <= 20, "the connection limit holds");
    assert!(proxy.stats.refused.load(Relaxed) >= 490, "the others were closed at once");
    // The new primary's epoch: the held connections reach it.
    assert!(proxy.hub.offer(table(2, primary, false)));
    let mut greeted = 0;
    for s in clients.iter_mut() {
        if read_n(s, 5, Duration::from_millis(20)).await.is_ok() {
            greeted += 1;
        }
    }
    assert_eq!(greeted, 5, "the held connections, and only they, reached the new primary");
    drop(clients);
    until("no connection left open after its client closed", || {
        proxy.stats.clients.load(Relaxed) == 0 && proxy.stats.held.load(Relaxed) == 0
    })
    .await;
    proxy.end().await;
}

/// A backend that accepts but never greets (a hung primary whose kernel
/// still accepts): when a new epoch moves the route, the client, which has
/// seen nothing, is moved to the new primary without noticing.
#[tokio::test]
async fn a_connection_to_a_backend_that_never_greets_moves_to_the_new_primary() {
    let hung = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let accepted = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((s, _)) = hung.accept().await {
            kept.push(s);
        }
    });
    let proxy = Proxy::start(cfg(), table(1, hung_addr, false)).await;
    let mut client = TcpStream::connect(proxy.write).await.unwrap();
    assert!(read_n(&mut client, 1, Duration::from_millis(300)).await.is_err(), "the hung backend says nothing");
    let new = greeting_backend(b"hello").await;
    assert!(proxy.hub.offer(table(2, new, false)));
    assert_eq!(read_n(&mut client, 5, Duration::from_secs(2)).await.as_deref(), Ok(&b"hello"[..]));
    client.write_all(b"ping").await.unwrap();
    assert_eq!(read_n(&mut client, 4, Duration::from_secs(2)).await.as_deref(), Ok(&b"ping"[..]));
    proxy.end().await;
    accepted.abort();
}

/// A connection with no byte either way for `idle_timeout` is closed, and
/// one that talks is not.
#[tokio::test]
async fn idle_connections_are_closed_and_busy_ones_kept() {
    let backend = greeting_backend(b"hello").await;
    let mut c = cfg();
    c.idle_timeout = Duration::from_millis(400);
    let proxy = Proxy::start(c, table(1, backend, false)).await;
    let mut idle = TcpStream::connect(proxy.write).await.unwrap();
    let mut busy = TcpStream::connect(proxy.write).await.unwrap();
    read_n(&mut idle, 5, Duration::from_secs(1)).await.unwrap();
    read_n(&mut busy, 5, Duration::from_secs(1)).await.unwrap();
    for _ in 0..6 {
        // Time is the subject here: activity spaced under the idle timeout.
        tokio::time::sleep(Duration::from_millis(150)).await;
        busy.write_all(b"x").await.unwrap();
        read_n(&mut busy, 1, Duration::from_secs(1)).await.expect("the busy connection stays open");
    }
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await, "the idle connection was closed");
    proxy.end().await;
}

/// A client that half-closes (shuts down its write side) still gets what
/// the backend sends afterwards; the backend sees the end of the stream.
#[tokio::test]
async fn a_half_closed_client_still_receives_the_answer() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else { return };
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all).await; // until the client's FIN
        let _ = s.write_all(format!("got {}", all.len()).as_bytes()).await;
    });
    let proxy = Proxy::start(cfg(), table(1, addr, false)).await;
    let mut client = TcpStream::connect(proxy.write).await.unwrap();
    client.write_all(b"question").await.unwrap();
    client.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert_eq!(answer, b"got 8");
    proxy.end().await;
}

/// A huge answer to a client that does not read: the proxy stops reading
/// the backend (no unbounded buffering), and delivers everything once the
/// client reads.
#[tokio::test]
async fn a_slow_reader_pushes_back_on_the_backend() {
    const TOTAL: usize = 64 << 20;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let written = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = written.clone();
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else { return };
        let chunk = vec![7u8; 64 * 1024];
        while w.load(Relaxed) < TOTAL {
            if s.write_all(&chunk).await.is_err() {
                return;
            }
            w.fetch_add(chunk.len(), Relaxed);
        }
    });
    let proxy = Proxy::start(cfg(), table(1, addr, false)).await;
    let mut client = TcpStream::connect(proxy.write).await.unwrap();
    // The backend writes until the socket buffers fill: wait until it stops
    // making progress (bounded), then it must have written a bounded amount.
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(5);
    while written.load(Relaxed) != last && Instant::now() < deadline {
        last = written.load(Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stalled = written.load(Relaxed);
    assert!(stalled < 16 << 20, "the backend could write {stalled} bytes to a client that reads nothing");
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    while got < TOTAL {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed after {got} bytes");
        got += n;
    }
    assert_eq!(got, TOTAL);
    proxy.end().await;
}

/// A held client that gives up (closes its connection) leaves the hold
/// queue at once: clients that time out and reconnect during a long
/// failover must not fill the queue with connections nobody waits on, and
/// get refused themselves.
#[tokio::test]
async fn a_held_client_that_goes_away_frees_its_place_in_the_hold_queue() {
    let mut c = cfg();
    c.hold_queue = 3;
    c.hold_timeout = Duration::from_secs(20);
    let proxy = Proxy::start(c, table(1, dead_addr(), true)).await;
    let mut gone = Vec::new();
    for _ in 0..3 {
        gone.push(TcpStream::connect(proxy.write).await.unwrap());
    }
    until("three held", || proxy.stats.held.load(Relaxed) == 3).await;
    drop(gone);
    until("no place held for clients that are gone", || proxy.stats.held.load(Relaxed) == 0).await;
    // A client that stays is held, then released to the new primary.
    let mut stays = TcpStream::connect(proxy.write).await.unwrap();
    until("the one that stays is held", || proxy.stats.held.load(Relaxed) == 1).await;
    assert_eq!(proxy.stats.refused.load(Relaxed), 0, "the one that stays is held, not refused");
    let primary = greeting_backend(b"hello").await;
    assert!(proxy.hub.offer(table(2, primary, false)));
    assert_eq!(read_n(&mut stays, 5, Duration::from_secs(2)).await.as_deref(), Ok(&b"hello"[..]));
    proxy.end().await;
}
