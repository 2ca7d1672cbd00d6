//! Rejoin performed: a fenced former primary made a replica of the current
//! primary, and a quarantined one's extra transactions saved to a file.
//!
//! The daemon's monitor runs [`perform`] when the cluster machine asks
//! (`Command::Rejoin`), `pivot rejoin` runs the same function by hand. Every
//! decision is `pivot_core::control::rejoin::check`'s, on what is read here
//! at that moment: both servers' GTID sets and `read_only`, and the newest
//! epoch from the state store. The instance stays read-only throughout: it
//! is checked read-only before, nothing here changes `read_only`, and it is
//! checked again after replication is confirmed.

pub mod extra_file;
pub mod ring;

use crate::config::ClusterConfig;
use crate::recovery::{blocking, RecoveryEnv};
use pivot_core::control::rejoin::{self, Facts};
use pivot_core::InstanceKey;
use pivot_server::{actions, Session};
use std::time::Duration;

/// Bound on replication being confirmed running after the rejoin.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts when a session to the instance is cut meanwhile (pivot's own
/// fence ends a former primary's client sessions, a rejoin's too).
pub const ATTEMPTS: u32 = 3;

/// Make `instance` a replica of the newest epoch's primary (which must be
/// `expected` when given). Returns what was done, or why not (nothing
/// changed then, unless replication was started and did not run: said so).
/// Every step is safe to run again: a cut session means judging and
/// rejoining again from the start, at most [`ATTEMPTS`] times.
pub async fn perform(
    env: &RecoveryEnv,
    instance: &InstanceKey,
    expected: Option<&InstanceKey>,
) -> Result<String, String> {
    let mut attempt = 1;
    loop {
        match attempt_once(env, instance, expected).await {
            Err(Failed::Cut(e)) if attempt < ATTEMPTS => {
                tracing::info!("rejoin of {instance}: {e}; judging again (attempt {})", attempt + 1);
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(Failed::Cut(e) | Failed::No(e)) => return Err(e),
            Ok(done) => return Ok(done),
        }
    }
}

enum Failed {
    /// Refused, or failed for good.
    No(String),
    /// A session was cut: worth trying again.
    Cut(String),
}

impl From<String> for Failed {
    fn from(e: String) -> Failed {
        Failed::No(e)
    }
}

impl From<&str> for Failed {
    fn from(e: &str) -> Failed {
        Failed::No(e.to_string())
    }
}

/// A session error, worded; a cut connection is worth trying again.
fn failed(e: pivot_server::SessionError, what: String) -> Failed {
    let cut = e.failure().kind == pivot_core::observation::FailureKind::Network || e.server_code() == Some(1927);
    let text = format!("{what}: {e}");
    if cut {
        Failed::Cut(text)
    } else {
        Failed::No(text)
    }
}

async fn attempt_once(
    env: &RecoveryEnv,
    instance: &InstanceKey,
    expected: Option<&InstanceKey>,
) -> Result<String, Failed> {
    let cfg: &ClusterConfig = &env.cluster;
    let name = cfg.name.clone();
    // A recovery (failover, switchover) of this cluster, here or in another
    // process, changes its shape: no rejoin meanwhile.
    let running = blocking(env, move |s| s.running_recovery(&name))
        .await
        .map_err(|e| format!("cannot read the state file: {e}"))?;
    if let Some(r) = running {
        return Err(format!(
            "recovery {} of `{}` is running (run by {}): no rejoin meanwhile",
            r.id, cfg.name, r.owner
        )
        .into());
    }
    let name = cfg.name.clone();
    let epoch = blocking(env, move |s| s.epoch(&name)).await.map_err(|e| format!("cannot read the epoch: {e}"))?;
    let epoch_primary: Option<InstanceKey> = epoch.and_then(|e| e.primary.parse().ok());
    let primary = expected
        .cloned()
        .or_else(|| epoch_primary.clone())
        .ok_or("no epoch is recorded: pivot cannot tell which instance is the current primary")?;
    let timeout = cfg.failover.step_timeout;
    let mut s = Session::connect(instance, &cfg.credentials, timeout)
        .await
        .map_err(|e| failed(e, format!("cannot connect to {instance}")))?;
    // A former primary that restarted with replication configured (the old
    // active of a dual-primary ring replicated from the passive) starts it
    // by itself: stopped first, so that what is judged below is exactly
    // where it resumes (else the position set would lag behind what it
    // applied meanwhile, and replication stop on an out-of-order GTID), and
    // the primary is read after that (else it holds the primary's newest
    // writes the reading of the primary lacks: "not contained").
    let running = actions::replication_status(&mut s).await.map_err(|e| failed(e, format!("reading {instance}")))?;
    if running.is_some_and(|r| r.io_thread != pivot_core::observation::IoThread::Stopped || r.sql_running) {
        let sql = s.dialect.stop_replica();
        s.exec(&sql).await.map_err(|e| failed(e, format!("stopping {instance}'s replication")))?;
    }
    let mut p = Session::connect(&primary, &cfg.credentials, timeout)
        .await
        .map_err(|e| failed(e, format!("cannot connect to the primary {primary}")))?;
    let (theirs, primary_writable) =
        actions::executed_and_writable(&mut p).await.map_err(|e| failed(e, format!("reading {primary}")))?;
    let (mine, writable) =
        actions::executed_and_writable(&mut s).await.map_err(|e| failed(e, format!("reading {instance}")))?;
    let current = actions::replication_status(&mut s).await.map_err(|e| failed(e, format!("reading {instance}")))?;
    let facts = Facts {
        instance,
        writable,
        executed: &mine,
        primary: &primary,
        primary_writable,
        primary_executed: &theirs,
        epoch_primary: epoch_primary.as_ref(),
        has_replication_account: cfg.replication.is_some() || current.is_some(),
    };
    let plan = rejoin::check(&facts)?;
    actions::rejoin_replica(&mut s, &plan.source, &plan.position, cfg.replication.as_ref())
        .await
        .map_err(|e| failed(e, format!("could not make {instance} a replica of {primary}")))?;
    actions::confirm_replicating(&mut s, &plan.source, CONFIRM_TIMEOUT)
        .await
        .map_err(|e| failed(e, format!("replication of {instance} from {primary} was started but does not run")))?;
    let (_, writable) =
        actions::executed_and_writable(&mut s).await.map_err(|e| failed(e, format!("reading {instance}")))?;
    if writable {
        return Err(
            format!("{instance} replicates from {primary} but became writable meanwhile: pivot fences it").into()
        );
    }
    Ok(format!("replicates from {primary} (GTID position {}), IO and SQL threads running, read-only", plan.position))
}

/// Run [`perform`] as a task; its end goes back to the monitor.
pub fn spawn_rejoin(
    env: RecoveryEnv,
    instance: InstanceKey,
    primary: InstanceKey,
    done: tokio::sync::mpsc::Sender<pivot_core::control::cluster::Event>,
) {
    tokio::spawn(async move {
        let result = perform(&env, &instance, Some(&primary)).await;
        let _ = done.send(pivot_core::control::cluster::Event::Rejoined { instance, result }).await;
    });
}

/// Run [`extra_file::save`] as a task; its end goes back to the monitor.
pub fn spawn_save_extra(
    env: RecoveryEnv,
    instance: InstanceKey,
    extra: pivot_core::GtidSet,
    start: pivot_core::GtidSet,
    done: tokio::sync::mpsc::Sender<pivot_core::control::cluster::Event>,
) {
    tokio::spawn(async move {
        let state_file = env.state.path().to_path_buf();
        let result = extra_file::save(&env.cluster, &state_file, &instance, &extra, &start)
            .await
            .map(|p| p.display().to_string());
        let _ = done.send(pivot_core::control::cluster::Event::ExtraSaved { instance, result }).await;
    });
}
