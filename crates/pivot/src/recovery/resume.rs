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
    end_orphaned_hooks(env, &record);
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
    let signal = format!("resumed after a pivot restart: {}", record.analysis);
    let data = HookData::for_recovery(&env.cluster, failed.clone(), id, record.analysis.clone(), signal);
    let Some(machine) = machine else {
        // Nothing pivot can follow: record why, change nothing.
        let pivot_core::control::Command::Finish(f) = first else { unreachable!("resume without a machine finishes") };
        return Some(driver::finish(env, id, &failed, f).await);
    };
    let force = machine.doc().force;
    let perf = Performer::new(env.clone(), id, force, data);
    Some(driver::drive(machine, first, perf, stop).await)
}

/// A hook the previous owner started and never saw end may still run (it has
/// its own process group, which a killed pivot cannot take down). It is ended
/// before the step runs again, so its late verdict or action cannot land
/// after the new run's. Only a process group whose leader still runs one of
/// this cluster's configured hook programs is signalled.
fn end_orphaned_hooks(env: &RecoveryEnv, record: &RecoveryRecord) {
    let h = &env.cluster.hooks;
    let programs: Vec<String> = [&h.pre_failover, &h.post_failover, &h.post_unsuccessful_failover, &h.fence, &h.alert]
        .into_iter()
        .flatten()
        .filter_map(|argv| argv.first().cloned())
        .chain(h.mha_master_ip_failover.clone())
        .collect();
    for step in record.steps.iter().filter(|s| s.outcome.is_none() && s.name.starts_with("hook_")) {
        let Some(pgid) = step
            .message
            .as_deref()
            .and_then(|m| m.split(super::exec::HOOK_GROUP_NOTE).nth(1))
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pgid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        if pgid > 1 && programs.iter().any(|p| cmdline.contains(p.as_str())) {
            tracing::warn!(cluster = %env.cluster.name, recovery = record.id, "ending hook process group {pgid} left by the previous owner ({})", step.name);
            // SAFETY: a process group whose leader runs a configured hook.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}
