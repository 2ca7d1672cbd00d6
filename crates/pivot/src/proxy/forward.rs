//! Moving bytes between a client and its backend: one 64 KiB buffer per
//! direction, allocated once per connection, never one per packet; bytes
//! counted as they pass; an idle timeout; the connection cut the moment its
//! backend leaves the route.
//!
//! Each direction reads once and writes what it read. A read that did not
//! fill the buffer emptied the socket, so the socket is marked not ready at
//! once instead of being read again only to learn it is empty: one read and
//! one write per message, the way HAProxy moves small packets.

use super::stats::BackendStats;
use pivot_core::routes::RouteTable;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

const BUFFER: usize = 64 * 1024;

/// How a forwarded connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Either side closed (or failed).
    Closed {
        error: bool,
    },
    /// The backend left the route.
    Cut,
    Idle,
    Stopped,
}

/// Bytes and the time of the last one, shared by both directions.
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms.store(self.base.elapsed().as_millis() as u64, Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.base.elapsed().saturating_sub(Duration::from_millis(self.last_ms.load(Relaxed)))
    }
}

/// Move bytes from `src` to `dst` until `src` ends (then `dst`'s write side
/// is shut down) or either fails.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    buf: &mut [u8],
    bytes: &AtomicU64,
    local: &AtomicU64,
    activity: &Activity,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = src.as_raw_fd();
    loop {
        src.readable().await?;
        let mut got: Option<usize> = None;
        let read = src.try_io(Interest::READABLE, || {
            // SAFETY: `buf` is valid for `buf.len()` bytes and `fd` is open
            // for as long as `src` is borrowed.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            got = Some(n);
            if n > 0 && n < buf.len() {
                // The socket is drained: mark it not ready now (a byte that
                // arrived meanwhile raises a new readiness event).
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        match (read, got) {
            (_, Some(0)) => {
                let _ = socket2::SockRef::from(dst).shutdown(std::net::Shutdown::Write);
                return Ok(());
            }
            (_, Some(n)) => {
                bytes.fetch_add(n as u64, Relaxed);
                local.fetch_add(n as u64, Relaxed);
                activity.touch();
                write_all(dst, &buf[..n]).await?;
            }
            (Err(e), None) if e.kind() == io::ErrorKind::WouldBlock => continue,
            (Err(e), None) => return Err(e),
            (Ok(()), None) => unreachable!("a successful read sets the count"),
        }
    }
}

async fn write_all(dst: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match dst.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => dst.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What one connection's forwarding moved, for the caller's decisions.
#[derive(Debug, Default)]
pub struct Moved {
    pub to_backend: u64,
    pub to_client: u64,
}

/// Forward until either side closes, the backend leaves the route
/// (`keeps` says no on a new table), the connection idles for `idle`, or
/// the proxy stops.
pub async fn forward(
    client: &mut TcpStream,
    backend: &mut TcpStream,
    stats: &BackendStats,
    mut routes: watch::Receiver<Arc<RouteTable>>,
    keeps: impl Fn(&RouteTable) -> bool,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) -> (End, Moved) {
    let activity = Activity { base: Instant::now(), last_ms: AtomicU64::new(0) };
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let end = {
        let (client, backend) = (&*client, &*backend);
        let (mut up_buf, mut down_buf) = (vec![0u8; BUFFER], vec![0u8; BUFFER]);
        let copy = async {
            tokio::try_join!(
                pump(client, backend, &mut up_buf, &stats.bytes_to_backend, &up, &activity),
                pump(backend, client, &mut down_buf, &stats.bytes_to_client, &down, &activity),
            )
        };
        tokio::pin!(copy);
        let idle_watch = async {
            loop {
                let wait = idle.saturating_sub(activity.idle_for());
                if wait.is_zero() {
                    return;
                }
                tokio::time::sleep(wait).await;
            }
        };
        let cut = async {
            // The table may have changed between the choice of this backend
            // and the subscription (while connecting): that change is
            // already marked seen, so judge the current table first.
            if !keeps(&routes.borrow_and_update()) {
                return;
            }
            loop {
                if routes.changed().await.is_err() {
                    return std::future::pending::<()>().await;
                }
                if !keeps(&routes.borrow_and_update()) {
                    return;
                }
            }
        };
        tokio::select! {
            biased;
            r = &mut copy => End::Closed { error: r.is_err() },
            _ = cut => End::Cut,
            _ = stop.wait_for(|s| *s) => End::Stopped,
            _ = idle_watch => End::Idle,
        }
    };
    (end, Moved { to_backend: up.load(Relaxed), to_client: down.load(Relaxed) })
}
