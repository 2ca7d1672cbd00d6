//! Hearing a crash at once instead of at the next probe.
//!
//! A crashed server's kernel closes its TCP connections immediately. pivot
//! keeps one connection to the primary busy with a long server-side wait
//! (`Dialect::wait_on_server`); when that connection ends early, the
//! monitor probes the primary at once, and the usual confirmation by the
//! replicas follows. The end of the connection is only a reason to look
//! sooner, never a verdict: a hung or partitioned primary sends nothing and
//! is found by the probes as before.

use pivot_core::InstanceKey;
use pivot_server::{Credentials, Session};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Seconds each server-side wait lasts; the connection is reused for the next.
const WAIT_S: u32 = 30;

/// Watch `primary` until its connection ends; then report it on `ended`.
pub fn spawn(
    primary: InstanceKey,
    creds: Credentials,
    connect_timeout: Duration,
    ended: mpsc::Sender<InstanceKey>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let Ok(mut s) = Session::connect(&primary, &creds, connect_timeout).await else {
            // Cannot connect: the probes already see that.
            return;
        };
        let wait = s.dialect.wait_on_server(WAIT_S);
        let bound = Duration::from_secs(u64::from(WAIT_S) + 5);
        loop {
            let started = Instant::now();
            match s.exec_within(&wait, bound).await {
                Ok(()) => continue,
                Err(e) => {
                    tracing::debug!(instance = %primary, "watch connection ended after {} ms: {e}", started.elapsed().as_millis());
                    let _ = ended.send(primary).await;
                    return;
                }
            }
        }
    })
}
