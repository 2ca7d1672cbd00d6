//! Keeping former primaries read-only.
//!
//! A former primary that pivot could not reach at the failover is watched:
//! connection attempts start every 20 ms, up to 64 pending, each given 1 s
//! (so a fresh attempt is never more than 20 ms away once a path heals). A
//! hung server's kernel still completes TCP handshakes, so attempts sit
//! waiting for its greeting and go through the moment it wakes; behind a cut
//! network, attempts stuck in SYN retransmission are replaced by fresh ones
//! that go through as soon as the path heals. The first attempt that gets
//! through makes it read-only and ends its client sessions before anything
//! else. The result goes back to the cluster's monitor, which judges
//! whether the instance can rejoin or must be quarantined.

use pivot_core::{GtidSet, InstanceKey};
use pivot_server::{actions, Credentials, Session};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Connection attempts kept waiting at once.
const PENDING_ATTEMPTS: usize = 64;
/// Bound on one attempt; a fresh one replaces it.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);
/// Bound on the fence itself once connected.
const FENCE_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPT_SPACING: Duration = Duration::from_millis(20);

#[derive(Debug)]
pub struct Fenced {
    pub instance: InstanceKey,
    pub result: Result<FenceReport, String>,
}

#[derive(Debug)]
pub struct FenceReport {
    pub sessions_ended: usize,
    /// What it holds, read after it was made read-only.
    pub executed: GtidSet,
    pub took: Duration,
}

/// Watch `instance` until it answers, then fence it and report on `done`.
pub fn spawn(instance: InstanceKey, creds: Credentials, done: mpsc::Sender<Fenced>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let result = watch(&instance, &creds).await;
        let _ = done.send(Fenced { instance, result }).await;
    })
}

async fn watch(instance: &InstanceKey, creds: &Credentials) -> Result<FenceReport, String> {
    let mut attempts: JoinSet<Result<Session, String>> = JoinSet::new();
    let mut last_start: Option<Instant> = None;
    loop {
        if attempts.len() < PENDING_ATTEMPTS && last_start.is_none_or(|t| t.elapsed() >= ATTEMPT_SPACING) {
            let (k, c) = (instance.clone(), creds.clone());
            attempts.spawn(async move { Session::connect(&k, &c, ATTEMPT_TIMEOUT).await.map_err(|e| e.to_string()) });
            last_start = Some(Instant::now());
        }
        tokio::select! {
            Some(joined) = attempts.join_next() => {
                if let Ok(Ok(mut session)) = joined {
                    attempts.abort_all();
                    session.set_timeout(FENCE_TIMEOUT);
                    return fence(&mut session, creds).await;
                }
            }
            _ = tokio::time::sleep(ATTEMPT_SPACING) => {}
        }
    }
}

/// Make the instance behind `session` read-only, end its client sessions and
/// read what it holds.
pub async fn fence(session: &mut Session, creds: &Credentials) -> Result<FenceReport, String> {
    let start = Instant::now();
    let sessions_ended =
        actions::fence(session, creds).await.map_err(|e| format!("could not fence {}: {e}", session.key))?;
    let took = start.elapsed();
    let (executed, _) = actions::executed_and_writable(session).await.map_err(|e| e.to_string())?;
    Ok(FenceReport { sessions_ended, executed, took })
}

/// Fence an instance that answers now (found writable by a probe).
pub fn fence_now(
    instance: InstanceKey,
    creds: Credentials,
    timeout: Duration,
    done: mpsc::Sender<Fenced>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let result = match Session::connect(&instance, &creds, timeout).await {
            Ok(mut s) => fence(&mut s, &creds).await,
            Err(e) => Err(format!("cannot connect: {e}")),
        };
        let _ = done.send(Fenced { instance, result }).await;
    })
}
