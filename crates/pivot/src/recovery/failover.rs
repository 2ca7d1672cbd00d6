//! A new failover: recorded, then driven step by step by the recovery machine.

use super::driver::{self, StopFlag};
use super::exec::Performer;
use super::hooks::HookData;
use super::owner::LEASE;
use super::{blocking, settings, Outcome, RecoveryEnv, RecoveryError, Trigger};
use crate::clock;
use pivot_core::control::{FailoverRequest, RecoveryMachine};
use pivot_core::{ClusterAnalysis, ClusterView};
use pivot_state::NewRecovery;

pub async fn run(
    env: &RecoveryEnv,
    view: &ClusterView,
    analysis: &ClusterAnalysis,
    trigger: &Trigger,
    stop: StopFlag,
) -> Result<Outcome, RecoveryError> {
    let failed = analysis.primary.clone().ok_or_else(|| RecoveryError::NoPrimary(analysis.signal.clone()))?;
    let cluster = &env.cluster;
    let now = clock::wall_ms();
    let new = NewRecovery {
        cluster: cluster.name.clone(),
        kind: trigger.kind().into(),
        failed_primary: Some(failed.to_string()),
        analysis: format!("{}: {}", analysis.code, analysis.signal),
        owner: env.owner.clone(),
        lease_until: now + LEASE.as_millis() as i64,
        at: now,
        detected_at: view.get(&failed).and_then(|r| r.failure_seen_at).map(clock::wall_of),
    };
    let id = blocking(env, move |s| s.begin_recovery(&new)).await.map_err(RecoveryError::State)?;
    tracing::warn!(cluster = %cluster.name, recovery = id, "{} of {failed} started: {}", trigger.kind(), analysis.signal);
    let request =
        FailoverRequest { automatic: trigger.automatic, target: trigger.target.clone(), force: trigger.force };
    let (machine, first) = RecoveryMachine::start(failed.clone(), view.clone(), settings(cluster), request);
    let data = HookData::for_recovery(cluster, failed, id, analysis.code.to_string(), analysis.signal.clone());
    let perf = Performer::new(env.clone(), id, trigger.force, data);
    Ok(driver::drive(machine, first, perf, stop).await)
}
