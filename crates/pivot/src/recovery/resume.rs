//! Taking over a recovery that a stopped, killed or panicked pivot left
//! running: the recovery machine decides from the stored plan and step
//! records what runs next (`RecoveryMachine::resume`).

use super::driver::{self, StopFlag};
use super::exec::Performer;
use super::hooks::HookData;
use super::owner::LEASE;
use super::{blocking, settings, Outcome, RecoveryEnv};
use crate::clock;
use pivot_core::control::{Ended, FailoverRequest, RecordedStep, RecoveryMachine};
use pivot_core::{ClusterView, InstanceKey};
use pivot_state::RecoveryRecord;

/// Resume `record`, if this process can take it over (its lease ended, or
/// it is ours). `None`: another process holds it.
pub async fn resume(env: &RecoveryEnv, record: RecoveryRecord, view: &ClusterView, stop: StopFlag) -> Option<Outcome> {
    let id = record.id;
    let cluster = &env.cluster.name;
    let (owner, now) = (env.owner.clone(), clock::wall_ms());
    let previous = record.owner.clone();
    let gone = super::owner::certainly_gone(&previous, &owner);
    let adopted = blocking(env, move |s| {
        if gone {
            // Its owner is gone: its lease means nothing any more.
            s.renew_lease(id, &previous, 0)?;
        }
        s.adopt(id, &owner, now, now + LEASE.as_millis() as i64)
    })
    .await;
    match adopted {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            tracing::error!(%cluster, recovery = id, "cannot take recovery {id} over: {e}");
            return None;
        }
    }
    tracing::warn!(%cluster, recovery = id, "resuming recovery {id} left running by {}", record.owner);
    let failed: InstanceKey =
        record.failed_primary.as_deref().and_then(|p| p.parse().ok()).unwrap_or_else(|| InstanceKey::new("unknown", 1));
    let steps: Vec<RecordedStep> = record
        .steps
        .iter()
        .map(|s| RecordedStep { seq: s.seq, ended: s.outcome.as_deref().map(Ended::parse) })
        .collect();
    let request = FailoverRequest { automatic: record.kind == "automatic_failover", target: None, force: false };
    let (machine, first) = RecoveryMachine::resume(
        failed.clone(),
        record.plan.as_deref(),
        &steps,
        view.clone(),
        settings(&env.cluster),
        request,
    );
    let data = HookData {
        cluster: cluster.clone(),
        failed_primary: Some(failed.clone()),
        recovery_id: Some(id),
        analysis: record.analysis.clone(),
        signal: format!("resumed after a pivot restart: {}", record.analysis),
        new_primary_user: Some(env.cluster.credentials.user.clone()),
        new_primary_password: Some(env.cluster.credentials.password.clone()),
        ..HookData::default()
    };
    let Some(machine) = machine else {
        // Nothing pivot can follow: record why, change nothing.
        let pivot_core::control::Command::Finish(f) = first else { unreachable!("resume without a machine finishes") };
        return Some(driver::finish(env, id, &failed, f).await);
    };
    let force = machine.doc().force;
    let perf = Performer::new(env.clone(), id, force, data);
    Some(driver::drive(machine, first, perf, stop).await)
}
