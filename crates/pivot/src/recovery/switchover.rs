//! A planned switchover: recorded like a failover (kind `switchover`), then
//! driven step by step by the same recovery machine. What is checked before
//! anything changes, and the plan, are the machine's
//! (`RecoveryMachine::switchover`); this records it and drives it.

use super::driver::{self, StopFlag};
use super::exec::Performer;
use super::hooks::HookData;
use super::owner::LEASE;
use super::{blocking, settings, Outcome, RecoveryEnv, RecoveryError};
use crate::clock;
use pivot_core::control::{FailoverRequest, RecoveryMachine};
use pivot_core::{ClusterView, InstanceKey};
use pivot_state::NewRecovery;

/// The kind recorded in the state file and shown in history.
pub const KIND: &str = "switchover";

pub async fn run(
    env: &RecoveryEnv,
    view: &ClusterView,
    primary: InstanceKey,
    to: Option<InstanceKey>,
    stop: StopFlag,
) -> Result<Outcome, RecoveryError> {
    let cluster = &env.cluster;
    let now = clock::wall_ms();
    let asked = match &to {
        Some(t) => format!("switchover from {primary} to {t} asked"),
        None => format!("switchover from {primary} asked"),
    };
    let new = NewRecovery {
        cluster: cluster.name.clone(),
        kind: KIND.into(),
        failed_primary: Some(primary.to_string()),
        analysis: asked.clone(),
        owner: env.owner.clone(),
        lease_until: now + LEASE.as_millis() as i64,
        at: now,
        detected_at: None,
    };
    let id = blocking(env, move |s| s.begin_recovery(&new)).await.map_err(RecoveryError::State)?;
    tracing::warn!(cluster = %cluster.name, recovery = id, "{asked}");
    let request = FailoverRequest { automatic: false, target: to, force: false };
    let (machine, first) = RecoveryMachine::switchover(primary.clone(), view.clone(), settings(cluster), request);
    let data = HookData::for_recovery(cluster, primary, id, KIND.into(), asked);
    let perf = Performer::new(env.clone(), id, false, data);
    Ok(driver::drive(machine, first, perf, stop).await)
}
