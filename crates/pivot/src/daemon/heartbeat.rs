//! The heartbeat writer of one cluster (`[cluster.heartbeat]`): a task of its
//! own that writes one heartbeat per interval on the instance the monitor
//! aims it at, or nowhere. The monitor aims it through
//! `pivot_core::heartbeat::write_target` (the routes' primary, agreed by the
//! analysis, writable, no semi-sync wait) and at nothing while a recovery
//! runs. Each write has its own connection and is abandoned after the probe
//! timeout, so a write that hangs never holds up probing or failure
//! detection; after a failed write the next waits longer (up to
//! [`MAX_BACKOFF`]), so abandoned writes cannot pile up on a stuck primary.

use super::alerts::Alerts;
use crate::config::{ClusterConfig, HeartbeatConfig};
use pivot_core::control::cluster::ClusterMachine;
use pivot_core::heartbeat::write_target;
use pivot_core::InstanceKey;
use pivot_server::{HeartbeatWriteError, HeartbeatWriter};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The longest wait between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The running writer; dropping it stops the task.
pub struct Heartbeat {
    aim: watch::Sender<Option<InstanceKey>>,
    task: JoinHandle<()>,
}

impl Heartbeat {
    /// Start the writer when the cluster has the heartbeat enabled.
    pub fn spawn(cfg: &ClusterConfig, alerts: Alerts) -> Option<Heartbeat> {
        let hb = cfg.heartbeat.clone()?;
        let (aim, rx) = watch::channel(None);
        let writer = HeartbeatWriter::new(cfg.credentials.clone(), cfg.probe_timeout, hb.table.clone());
        let task = tokio::spawn(run(cfg.name.clone(), hb, writer, rx, alerts));
        Some(Heartbeat { aim, task })
    }

    /// Aim the writer after the machine's latest decisions: at
    /// `write_target` (the routes' primary, which hold while a recovery runs
    /// in any process), and nowhere while this monitor runs a recovery.
    pub fn follow(&self, machine: &ClusterMachine, recovery_running: bool) {
        let target = (!recovery_running).then(|| {
            let routes = machine.route_table();
            write_target(routes.write_target(), machine.analysis().primary.as_ref(), machine.view())
        });
        self.aim(target.and_then(Result::ok));
    }

    /// Write on `target` from now on (`None`: nowhere).
    fn aim(&self, target: Option<InstanceKey>) {
        self.aim.send_if_modified(|t| {
            let changed = *t != target;
            *t = target;
            changed
        });
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    cluster: String,
    hb: HeartbeatConfig,
    mut writer: HeartbeatWriter,
    rx: watch::Receiver<Option<InstanceKey>>,
    alerts: Alerts,
) {
    let mut wait = hb.interval;
    // What was last reported, so each trouble is told once until a write succeeds.
    let mut told: Option<&'static str> = None;
    loop {
        let started = Instant::now();
        let target = rx.borrow().clone();
        if let Some(key) = target {
            let result = writer.write(&key).await;
            wait = match &result {
                Ok(()) | Err(HeartbeatWriteError::ReadOnly) => hb.interval,
                Err(_) => (wait * 2).clamp(hb.interval, MAX_BACKOFF.max(hb.interval)),
            };
            match result {
                Ok(()) => {
                    if told.take().is_some() {
                        tracing::info!(%cluster, instance = %key, "heartbeat written again");
                    }
                }
                Err(e @ (HeartbeatWriteError::MissingGrant { .. } | HeartbeatWriteError::StatementFormat)) => {
                    let what = if matches!(e, HeartbeatWriteError::StatementFormat) { "format" } else { "grant" };
                    if told.replace(what) != Some(what) {
                        // An alert, once: heartbeat lag is absent until the operator acts.
                        alerts.send(&format!("heartbeat on {key}: {e}; heartbeat lag is absent"), None, Some(key));
                    }
                }
                Err(HeartbeatWriteError::ReadOnly) => {
                    tracing::debug!(%cluster, instance = %key, "heartbeat not written: read-only")
                }
                Err(e) => {
                    if told.replace("write") != Some("write") {
                        tracing::warn!(%cluster, instance = %key, "heartbeat not written: {e}; next attempt in {} ms", wait.as_millis());
                    }
                }
            }
        } else {
            wait = hb.interval;
        }
        tokio::time::sleep_until(started + wait).await;
    }
}
