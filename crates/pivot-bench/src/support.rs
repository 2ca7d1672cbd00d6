//! What the benchmarks share: processes they own, free ports, wall time,
//! waiting for pivot to see a healthy cluster.

use pivot_drill::TestSandbox;
use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A process this benchmark started, killed by PID on drop.
pub struct Owned(pub Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

pub fn unix_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Until pivot's API shows the sandbox's cluster healthy (bounded).
pub async fn wait_healthy(sb: &TestSandbox) -> anyhow::Result<()> {
    let api: std::net::SocketAddr = ([127, 0, 0, 1], sb.manifest.http_port).into();
    for _ in 0..2000 {
        if let Ok((_, body)) = pivot_drill::http_get(api, "/api/clusters/sandbox").await {
            if body.contains("\"code\":\"healthy\"") {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("cluster never healthy under pivot")
}

/// Until a connection to `127.0.0.1:port` is greeted by a server (bounded):
/// a proxy port that has a backend.
pub async fn wait_port(port: u16) -> anyhow::Result<()> {
    use tokio::io::AsyncReadExt;
    for _ in 0..200 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            let mut byte = [0u8; 1];
            if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), s.read(&mut byte)).await {
                if n > 0 {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("nothing answered on 127.0.0.1:{port}")
}
