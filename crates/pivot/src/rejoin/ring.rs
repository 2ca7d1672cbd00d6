//! Closing an active/passive dual-primary ring again (`dual_primary = true`):
//! the active made a replica of its read-only passive, the way a DBA runs
//! active/passive, after a failover or switchover left the new active
//! without replication (its promotion ended it).
//!
//! The cluster machine asks (`Command::RestoreRing`, decided by
//! `pivot_core::control::ring::restore_due`); this re-checks on fresh
//! readings: no recovery running, the passive read-only and replicating
//! from the active, the active replicating from nobody (or from the passive
//! with both threads stopped without an error). It waits (bounded by the
//! step timeout) until the passive applied everything the active had
//! executed, checks the passive read-only again, points the active at the
//! passive from the active's own binary log position (set by the server,
//! `actions::point_after_own_binlog`), waits until the passive holds that
//! position (a source asked for a GTID it lacks stops the IO thread with
//! 1236), and only then starts and confirms replication. The passive holds
//! nothing of its own (read-only), so the active receives only its own
//! writes back, which it skips. Nothing here changes `read_only`.

use crate::recovery::{blocking, RecoveryEnv};
use pivot_core::InstanceKey;
use pivot_server::{actions, Session};

/// Make `active` replicate from `passive`; what was done, or why not.
pub async fn restore(env: &RecoveryEnv, active: &InstanceKey, passive: &InstanceKey) -> Result<String, String> {
    let cfg = &env.cluster;
    let name = cfg.name.clone();
    let running = blocking(env, move |s| s.running_recovery(&name))
        .await
        .map_err(|e| format!("cannot read the state file: {e}"))?;
    if let Some(r) = running {
        return Err(format!("recovery {} of `{}` is running (run by {}): the ring waits", r.id, cfg.name, r.owner));
    }
    let account = cfg.replication.as_ref().ok_or("no [cluster.replication] account to replicate with")?;
    let timeout = cfg.failover.step_timeout;
    let mut a = Session::connect(active, &cfg.credentials, timeout)
        .await
        .map_err(|e| format!("cannot connect to the active {active}: {e}"))?;
    let mut p = Session::connect(passive, &cfg.credentials, timeout)
        .await
        .map_err(|e| format!("cannot connect to the passive {passive}: {e}"))?;
    let read = |what: &str, e: pivot_server::SessionError| format!("reading {what}: {e}");
    match actions::replication_status(&mut a).await.map_err(|e| read("the active", e))? {
        None => {}
        Some(r) if &r.source == passive && r.replicating() => return Ok("already closed".to_string()),
        // Pointed at the passive once, stopped without an error: started again below.
        Some(r) if &r.source == passive && r.io_error.is_none() && r.sql_error.is_none() => {}
        Some(r) => {
            return Err(format!("the active {active} replicates from {} ({r:?}): left as it is", r.source));
        }
    }
    let (executed, active_writable) =
        actions::executed_and_writable(&mut a).await.map_err(|e| read("the active", e))?;
    if !active_writable {
        return Err(format!("the active {active} is read-only: not the primary any more"));
    }
    let passive_ok = |p_writable: bool, r: &Option<pivot_core::observation::ReplicationStatus>| {
        if p_writable {
            return Err(format!("the passive {passive} is writable: pivot fences it; no ring meanwhile"));
        }
        match r {
            Some(r) if &r.source == active && r.replicating() => Ok(()),
            other => Err(format!("the passive {passive} does not replicate from {active}: {other:?}")),
        }
    };
    let (_, p_writable) = actions::executed_and_writable(&mut p).await.map_err(|e| read("the passive", e))?;
    let r = actions::replication_status(&mut p).await.map_err(|e| read("the passive", e))?;
    passive_ok(p_writable, &r)?;
    // Everything the active executed is applied on the passive (and so in
    // its binary log): the active resumes from there and misses nothing.
    actions::wait_for_gtid(&mut p, &executed, timeout)
        .await
        .map_err(|e| format!("the passive {passive} did not apply {executed}: {e}"))?;
    let (_, p_writable) = actions::executed_and_writable(&mut p).await.map_err(|e| read("the passive", e))?;
    passive_ok(p_writable, &r)?;
    // The active resumes after its own binary log, and the passive must
    // hold that position before the active asks for it (else error 1236).
    let position = actions::point_after_own_binlog(&mut a, passive, account)
        .await
        .map_err(|e| format!("could not point {active} at {passive}: {e}"))?;
    if let Some(position) = &position {
        actions::wait_for_gtid(&mut p, position, timeout)
            .await
            .map_err(|e| format!("the passive {passive} did not apply {position}: {e}"))?;
    }
    actions::start_replica(&mut a).await.map_err(|e| format!("could not start {active}'s replication: {e}"))?;
    actions::confirm_replicating(&mut a, passive, super::CONFIRM_TIMEOUT)
        .await
        .map_err(|e| format!("{active} was pointed at {passive} but does not replicate: {e}"))?;
    let position = position.map_or_else(|| "GTID auto-positioning".to_string(), |p| format!("GTID position {p}"));
    Ok(format!("from {position}, IO and SQL threads running; {passive} read-only"))
}

/// Run [`restore`] as a task; its end goes back to the monitor.
pub fn spawn_restore(
    env: RecoveryEnv,
    active: InstanceKey,
    passive: InstanceKey,
    done: tokio::sync::mpsc::Sender<pivot_core::control::cluster::Event>,
) {
    tokio::spawn(async move {
        let result = restore(&env, &active, &passive).await;
        let _ = done.send(pivot_core::control::cluster::Event::RingRestored { active, passive, result }).await;
    });
}
