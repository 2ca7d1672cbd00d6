//! One task per instance: probe on its own schedule, or at once when woken.

use crate::clock;
use pivot_core::control::cluster::Speed;
use pivot_core::{InstanceKey, Observation};
use pivot_server::{Credentials, HeartbeatProbe, Prober};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub interval: Duration,
    /// Used while the cluster's primary is suspect, so replicas' confirmation
    /// is never older than this.
    pub fast_interval: Duration,
    /// Used for instances that never answered (bogus or gone seeds).
    pub slow_interval: Duration,
    pub timeout: Duration,
}

/// Handle on a running probe task; dropping it stops the task.
pub struct ProberHandle {
    wake: Arc<Notify>,
    speed: Arc<AtomicU8>,
    task: JoinHandle<()>,
}

impl ProberHandle {
    /// Probe now instead of waiting for the schedule.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn set_speed(&self, speed: Speed) {
        self.speed.store(speed as u8, Ordering::Relaxed);
    }
}

impl Drop for ProberHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start probing `key`. Observations go to `tx`; at most `limit`'s permits
/// worth of probes run at once across pivot. With `heartbeat`, each probe
/// reads the heartbeat table too.
pub fn spawn(
    key: InstanceKey,
    creds: Credentials,
    schedule: Schedule,
    limit: Arc<Semaphore>,
    tx: mpsc::Sender<Observation>,
    heartbeat: Option<HeartbeatProbe>,
) -> ProberHandle {
    let wake = Arc::new(Notify::new());
    let speed = Arc::new(AtomicU8::new(Speed::Normal as u8));
    let (w, f) = (wake.clone(), speed.clone());
    let task = tokio::spawn(async move {
        let mut prober = Prober::new(key, creds, schedule.timeout).with_heartbeat(heartbeat);
        loop {
            let started = Instant::now();
            let obs = {
                let Ok(_permit) = limit.acquire().await else { return };
                prober.probe(clock::now()).await
            };
            if tx.send(obs).await.is_err() {
                return;
            }
            let interval = match f.load(Ordering::Relaxed) {
                s if s == Speed::Fast as u8 => schedule.fast_interval,
                s if s == Speed::Slow as u8 => schedule.slow_interval,
                _ => schedule.interval,
            };
            tokio::select! {
                _ = tokio::time::sleep_until(started + interval) => {}
                _ = w.notified() => {}
            }
        }
    });
    ProberHandle { wake, speed, task }
}
