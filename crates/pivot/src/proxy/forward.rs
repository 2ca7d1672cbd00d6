//! Moving bytes between a client and its backend: two 64 KiB buffers per
//! connection, allocated once (`copy_bidirectional_with_sizes`), never one
//! per packet; bytes counted as they pass; an idle timeout; the connection
//! cut the moment its backend leaves the route.

use super::stats::BackendStats;
use pivot_core::routes::RouteTable;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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

/// A stream whose reads are counted.
struct Counted<'a> {
    inner: &'a mut TcpStream,
    bytes: &'a AtomicU64,
    local: &'a AtomicU64,
    activity: &'a Activity,
}

impl AsyncRead for Counted<'_> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut *self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.bytes.fetch_add(n, Relaxed);
            self.local.fetch_add(n, Relaxed);
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Counted<'_> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
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
        let mut c = Counted { inner: client, bytes: &stats.bytes_to_backend, local: &up, activity: &activity };
        let mut b = Counted { inner: backend, bytes: &stats.bytes_to_client, local: &down, activity: &activity };
        let copy = tokio::io::copy_bidirectional_with_sizes(&mut c, &mut b, BUFFER, BUFFER);
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
            r = &mut copy => End::Closed { error: r.is_err() },
            _ = cut => End::Cut,
            _ = idle_watch => End::Idle,
            _ = stop.wait_for(|s| *s) => End::Stopped,
        }
    };
    (end, Moved { to_backend: up.load(Relaxed), to_client: down.load(Relaxed) })
}
