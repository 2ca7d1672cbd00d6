//! A failover from start to end: record, freeze, re-observe, choose, plan,
//! execute; or abort and leave the cluster as it was.

use super::audit::{Audit, Ended};
use super::exec::Exec;
use super::fanout::on_each;
use super::hooks::HookData;
use super::{Outcome, RecoveryEnv, RecoveryError, Trigger};
use crate::clock;
use crate::config::SemiSyncPolicy;
use pivot_core::candidate::{choose, ChoiceRequest, PromotionRules};
use pivot_core::observation::IoThread;
use pivot_core::plan::{failover_plan, freeze_step, FailoverPlan, HookPoint, HookSet, Step};
use pivot_core::{ClusterAnalysis, ClusterView, InstanceKey, Topology};
use pivot_server::{actions, probe_all, Prober};
use pivot_state::{NewRecovery, RecoveryStatus};
use serde::{Deserialize, Serialize};

/// The plan as stored with the recovery: steps are numbered from `first_seq`.
#[derive(Serialize, Deserialize)]
pub struct PlanRecord {
    pub first_seq: i64,
    /// The failover was forced: a resume keeps overriding what was overridden.
    pub force: bool,
    pub plan: FailoverPlan,
}

pub async fn run(
    env: &RecoveryEnv,
    view: &ClusterView,
    analysis: &ClusterAnalysis,
    trigger: &Trigger,
) -> Result<Outcome, RecoveryError> {
    let failed = analysis.primary.clone().ok_or_else(|| RecoveryError::NoPrimary(analysis.signal.clone()))?;
    let cluster = &env.cluster;
    let id = env.state.begin_recovery(&NewRecovery {
        cluster: cluster.name.clone(),
        kind: trigger.kind().into(),
        failed_primary: Some(failed.to_string()),
        analysis: format!("{}: {}", analysis.code, analysis.signal),
        owner: env.owner.clone(),
        at: clock::now().0 as i64,
        detected_at: view.get(&failed).and_then(|r| r.failure_seen_at).map(|t| t.0 as i64),
    })?;
    tracing::warn!(cluster = %cluster.name, recovery = id, "{} of {failed} started: {}", trigger.kind(), analysis.signal);
    let data = HookData {
        cluster: cluster.name.clone(),
        failed_primary: Some(failed.clone()),
        recovery_id: Some(id),
        analysis: analysis.code.to_string(),
        signal: analysis.signal.clone(),
        new_primary_user: Some(cluster.credentials.user.clone()),
        new_primary_password: Some(cluster.credentials.password.clone()),
        ..HookData::default()
    };
    let mut exec = Exec::new(env, Audit { state: &env.state, id }, trigger.force, data);
    let mut seq = 1;
    let mut view = view.clone();
    let replicas: Vec<InstanceKey> = Topology::derive(&view).replicas(&failed).to_vec();

    // A primary that still answers is fenced first (only a forced failover gets here).
    if view.get(&failed).is_some_and(|r| r.reachable()) {
        if let Err(why) = fence_first(&mut exec, &failed, seq, trigger.force).await {
            return Ok(abort(&mut exec, &failed, &replicas, seq + 1, &why).await);
        }
        seq += 1;
    }

    let reachable: Vec<InstanceKey> =
        replicas.iter().filter(|r| view.get(r).is_some_and(|rec| rec.reachable())).cloned().collect();
    let (frozen, message) = exec.run_recorded(seq, &freeze_step(reachable), false).await;
    seq += 1;
    if !frozen.succeeded() {
        return Ok(abort(&mut exec, &failed, &replicas, seq, &message).await);
    }
    reobserve(env, &mut view, &replicas, &failed).await;
    if view.get(&failed).is_some_and(|r| r.reachable()) {
        // It answers again: abandon, unless forced (then it is fenced first).
        if let Err(why) = fence_first(&mut exec, &failed, seq, trigger.force).await {
            return Ok(abort(&mut exec, &failed, &replicas, seq + 1, &why).await);
        }
        seq += 1;
    }
    let topology = Topology::derive(&view);
    let rules = PromotionRules {
        preferred: cluster.failover.preferred.clone(),
        never_promote: cluster.failover.never_promote.clone(),
        max_lag_s: cluster.failover.max_candidate_lag.as_secs(),
    };
    let request = ChoiceRequest {
        view: &view,
        topology: &topology,
        failed_primary: &failed,
        rules: &rules,
        target: trigger.target.as_ref(),
        force: trigger.force,
    };
    let choice = match choose(&request) {
        Ok(c) => c,
        Err(refusal) => return Ok(abort(&mut exec, &failed, &replicas, seq, &format!("refused: {refusal}")).await),
    };
    for o in &choice.overridden {
        tracing::warn!(cluster = %cluster.name, recovery = id, "forced: {o}");
    }
    let semi_sync = match cluster.failover.semi_sync {
        SemiSyncPolicy::On => true,
        SemiSyncPolicy::Off => false,
        SemiSyncPolicy::Auto => {
            view.get(&failed).and_then(|r| r.last_state()).is_some_and(|s| s.semi_sync.primary_enabled)
        }
    };
    let hooks = HookSet {
        pre_failover: cluster.hooks.pre_failover.is_some(),
        fence: cluster.hooks.fence.is_some(),
        mha: cluster.hooks.mha_master_ip_failover.is_some(),
        post_failover: cluster.hooks.post_failover.is_some(),
    };
    let plan = failover_plan(&failed, choice, semi_sync, hooks);
    exec.data.new_primary = Some(plan.candidate.clone());
    exec.data.lost_replicas = plan.choice.lost.iter().map(|(k, _)| k.clone()).collect();
    let record = PlanRecord { first_seq: seq, force: trigger.force, plan };
    let json = serde_json::to_string(&record).expect("plans serialize");
    if let Err(e) = env.state.set_plan(id, &record.plan.candidate.to_string(), &json) {
        return Ok(abort(&mut exec, &failed, &replicas, seq, &format!("cannot record the plan: {e}")).await);
    }
    tracing::info!(cluster = %cluster.name, recovery = id, "candidate {}{}", record.plan.candidate,
        record.plan.choice.catch_up_from.as_ref().map(|f| format!(", catching up from {f} first")).unwrap_or_default());
    Ok(finish_plan(&mut exec, &record, &[], &replicas).await)
}

/// Fence a primary that answers, as step `seq`. Without `force`, or if it
/// cannot be fenced, the failover must not go on: the reason is returned.
async fn fence_first(exec: &mut Exec<'_>, failed: &InstanceKey, seq: i64, force: bool) -> Result<(), String> {
    if !force {
        return Err(format!("the primary {failed} answers again: failover abandoned"));
    }
    let (how, message) = exec.run_recorded(seq, &Step::FenceOldPrimary { instance: failed.clone() }, false).await;
    if how == Ended::Ok {
        Ok(())
    } else {
        Err(format!("the primary {failed} answers and could not be fenced: {message}"))
    }
}

/// Run a recorded plan (fresh, or resumed with `previous` steps) and close the recovery.
pub async fn finish_plan(
    exec: &mut Exec<'_>,
    record: &PlanRecord,
    previous: &[pivot_state::StepRecord],
    replicas: &[InstanceKey],
) -> Outcome {
    let plan = &record.plan;
    let result = exec.run_plan(plan, record.first_seq, previous).await;
    let next_seq = record.first_seq + plan.steps.len() as i64;
    if let Some(why) = result.vetoed {
        return abort(exec, &plan.failed_primary, replicas, next_seq, &why).await;
    }
    let env = exec.env;
    let id = exec.audit.id;
    let mut lost: Vec<(InstanceKey, String)> = plan.choice.lost.clone();
    lost.extend(result.lost.into_iter().filter(|(k, _)| !plan.choice.lost.iter().any(|(l, _)| l == k)));
    let status = if result.errors.is_empty() { RecoveryStatus::Succeeded } else { RecoveryStatus::SucceededWithErrors };
    let mut summary = format!("promoted {} (was {})", plan.candidate, plan.failed_primary);
    if !plan.choice.followers.is_empty() {
        let ok: Vec<String> = plan
            .choice
            .followers
            .iter()
            .filter(|f| !lost.iter().any(|(l, _)| l == *f))
            .map(ToString::to_string)
            .collect();
        summary.push_str(&format!(
            "; replicas following it: {}",
            if ok.is_empty() { "none".into() } else { ok.join(", ") }
        ));
    }
    for (k, why) in &lost {
        summary.push_str(&format!("; lost {k}: {why}"));
    }
    for e in &result.errors {
        summary.push_str(&format!("; {e}"));
    }
    let now = clock::now().0 as i64;
    let until = now + env.cluster.failover.block_period.as_millis() as i64;
    if let Err(e) = env.state.block(&env.cluster.name, id, until) {
        tracing::error!(cluster = %env.cluster.name, recovery = id, "cannot record the anti-flapping block: {e}");
    }
    let lost_keys: Vec<String> = lost.iter().map(|(k, _)| k.to_string()).collect();
    if let Err(e) = env.state.finish_recovery(id, status, &summary, &lost_keys, now) {
        tracing::error!(cluster = %env.cluster.name, recovery = id, "cannot record the end of the recovery: {e}");
    }
    tracing::warn!(cluster = %env.cluster.name, recovery = id, "{}: {summary}", status.as_str());
    Outcome {
        id,
        status,
        failed_primary: plan.failed_primary.clone(),
        new_primary: Some(plan.candidate.clone()),
        lost: lost.into_iter().map(|(k, _)| k).collect(),
        summary,
    }
}

/// Leave the cluster as it was: every replica of the failed primary
/// replicates from it again, the fence registration is dropped, the
/// post-unsuccessful hook runs, and the recovery is recorded as aborted.
pub async fn abort(
    exec: &mut Exec<'_>,
    failed: &InstanceKey,
    replicas: &[InstanceKey],
    seq: i64,
    why: &str,
) -> Outcome {
    let env = exec.env;
    let id = exec.audit.id;
    tracing::error!(cluster = %env.cluster.name, recovery = id, "failover of {failed} aborted: {why}");
    let candidate = exec.data.new_primary.clone();
    let restore = restore_replication(env, replicas, failed, candidate.as_ref()).await;
    let _ = exec.audit.started(seq, "restore_replication", &format!("replicas replicate from {failed} again"));
    let _ = exec.audit.ended(seq, if restore.is_empty() { Ended::Ok } else { Ended::Failed }, &restore.join("; "));
    if let Err(e) = env.state.fence_remove(&env.cluster.name, &failed.to_string()) {
        tracing::error!(recovery = id, "cannot drop the fence registration of {failed}: {e}");
    }
    exec.data.outcome = format!("aborted: {why}");
    exec.run_recorded(seq + 1, &Step::Hook { point: HookPoint::PostUnsuccessfulFailover }, false).await;
    let summary = if restore.is_empty() {
        why.to_string()
    } else {
        format!("{why}; restoring replication: {}", restore.join("; "))
    };
    if let Err(e) =
        env.state.finish_recovery(id, pivot_state::RecoveryStatus::Aborted, &summary, &[], clock::now().0 as i64)
    {
        tracing::error!(recovery = id, "cannot record the end of the recovery: {e}");
    }
    Outcome {
        id,
        status: RecoveryStatus::Aborted,
        failed_primary: failed.clone(),
        new_primary: None,
        lost: vec![],
        summary,
    }
}

/// Point every reachable replica back at `failed` and start replication.
/// Returns the problems met.
pub async fn restore_replication(
    env: &RecoveryEnv,
    replicas: &[InstanceKey],
    failed: &InstanceKey,
    candidate: Option<&InstanceKey>,
) -> Vec<String> {
    let failed2 = failed.clone();
    let candidate = candidate.cloned();
    let results = on_each(replicas, &env.cluster.credentials, env.cluster.failover.step_timeout, move |mut s| {
        let failed = failed2.clone();
        let candidate = candidate.clone();
        async move {
            if candidate.as_ref() == Some(&s.key) {
                // A prepared candidate had its semi-sync primary side switched on.
                let off = s.dialect.set_semi_sync_primary(false);
                s.exec(&off).await?;
            }
            match actions::replication_status(&mut s).await? {
                Some(r) if r.source == failed && r.io_thread != IoThread::Stopped && r.sql_running => {
                    return Ok("replicating".into())
                }
                Some(r) if r.source != failed => actions::repoint(&mut s, &failed).await?,
                Some(_) => actions::start_replica(&mut s).await?,
                None => return Ok("has no replication configured: left alone".into()),
            }
            Ok("restarted".into())
        }
    })
    .await;
    results.into_iter().filter_map(|(k, r)| r.err().map(|e| format!("{k}: {e}"))).collect()
}

/// Probe the replicas again (in parallel) and fold the results into `view`.
/// The failed primary is probed alongside, but only an answer that arrives
/// by the time the replicas answered counts: a hung primary must not hold the
/// failover for a whole probe timeout.
pub async fn reobserve(env: &RecoveryEnv, view: &mut ClusterView, replicas: &[InstanceKey], failed: &InstanceKey) {
    let (creds, timeout) = (env.cluster.credentials.clone(), env.cluster.probe_timeout);
    let key = failed.clone();
    let primary = tokio::spawn(async move { Prober::new(key, creds, timeout).probe(clock::now()).await });
    let lag = env.cluster.detection.lag_threshold_s;
    for obs in probe_all(replicas, &env.cluster.credentials, timeout, clock::now).await {
        view.apply(obs, lag);
    }
    // Still not answering: the abandoned probe is dropped.
    if let Ok(Ok(obs)) = tokio::time::timeout(std::time::Duration::from_millis(10), primary).await {
        view.apply(obs, lag);
    }
}
