//! Taking over a recovery that a stopped pivot left running.
//!
//! Nothing is repeated blindly: steps that had ended are not run again, the
//! step that was running is checked before it is run, a hook that was
//! running is not run again. Before the promotion, a primary that answers
//! again ends the recovery (replication restored); without a chosen
//! candidate, the frozen replicas are simply started again.

use super::audit::{Audit, Ended};
use super::exec::Exec;
use super::failover::{abort, finish_plan, restore_replication, PlanRecord};
use super::hooks::HookData;
use super::{Outcome, RecoveryEnv};
use crate::clock;
use pivot_core::{ClusterView, InstanceKey, Topology};
use pivot_state::{RecoveryRecord, RecoveryStatus};

pub async fn resume(env: &RecoveryEnv, record: RecoveryRecord, view: &ClusterView) -> Outcome {
    let id = record.id;
    let cluster = &env.cluster.name;
    tracing::warn!(%cluster, recovery = id, "resuming recovery {id} left running by {}", record.owner);
    if let Err(e) = env.state.adopt(id, &env.owner) {
        tracing::error!(%cluster, recovery = id, "cannot record the new owner: {e}");
    }
    let failed: InstanceKey = match record.failed_primary.as_deref().map(str::parse) {
        Some(Ok(k)) => k,
        _ => return interrupted(env, &record, "the recovery names no failed primary".into()),
    };
    let plan: Option<PlanRecord> = record.plan.as_deref().and_then(|p| serde_json::from_str(p).ok());
    let mut replicas: Vec<InstanceKey> = Topology::derive(view).replicas(&failed).to_vec();
    if let Some(p) = &plan {
        for k in p.plan.choice.followers.iter().chain([&p.plan.candidate]).chain(&p.plan.choice.catch_up_from) {
            if !replicas.contains(k) {
                replicas.push(k.clone());
            }
        }
    }
    let data = HookData {
        cluster: cluster.clone(),
        failed_primary: Some(failed.clone()),
        new_primary: plan.as_ref().map(|p| p.plan.candidate.clone()),
        lost_replicas: plan
            .as_ref()
            .map(|p| p.plan.choice.lost.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default(),
        recovery_id: Some(id),
        analysis: record.analysis.clone(),
        signal: format!("resumed after a pivot restart: {}", record.analysis),
        new_primary_user: Some(env.cluster.credentials.user.clone()),
        new_primary_password: Some(env.cluster.credentials.password.clone()),
        ..HookData::default()
    };
    let force = plan.as_ref().is_some_and(|p| p.force);
    let mut exec = Exec::new(env, Audit { state: &env.state, id }, force, data);
    let next_seq = record.steps.iter().map(|s| s.seq).max().unwrap_or(0) + 1;
    let Some(plan) = plan else {
        // Stopped before a candidate was chosen: nothing changed but frozen IO threads.
        let problems = restore_replication(env, &replicas, &failed, None).await;
        let _ = exec.audit.started(next_seq, "restore_replication", &format!("replicas replicate from {failed} again"));
        let how = if problems.is_empty() { Ended::Ok } else { Ended::Failed };
        let _ = exec.audit.ended(next_seq, how, &problems.join("; "));
        let mut why =
            "pivot stopped before it chose a candidate; replication restarted, the cluster is as it was".to_string();
        if !problems.is_empty() {
            why.push_str(&format!(" except: {}", problems.join("; ")));
        }
        return interrupted(env, &record, why);
    };
    let promote_seq = plan.first_seq + plan.plan.promote_index() as i64;
    let promoted = record
        .steps
        .iter()
        .any(|s| s.seq == promote_seq && matches!(s.outcome.as_deref(), Some("ok" | "already_done")));
    if !promoted && view.get(&failed).is_some_and(|r| r.reachable()) {
        let why = format!("pivot restarted before the promotion and {failed} answers again: failover abandoned");
        return abort(&mut exec, &failed, &replicas, next_seq, &why).await;
    }
    let mut outcome = finish_plan(&mut exec, &plan, &record.steps, &replicas).await;
    outcome.summary = format!("resumed after a pivot restart; {}", outcome.summary);
    let _ = env.state.finish_recovery(
        id,
        outcome.status,
        &outcome.summary,
        &outcome.lost.iter().map(ToString::to_string).collect::<Vec<_>>(),
        clock::now().0 as i64,
    );
    outcome
}

fn interrupted(env: &RecoveryEnv, record: &RecoveryRecord, why: String) -> Outcome {
    tracing::error!(cluster = %env.cluster.name, recovery = record.id, "recovery {} ended as interrupted: {why}", record.id);
    if let Err(e) = env.state.finish_recovery(record.id, RecoveryStatus::Interrupted, &why, &[], clock::now().0 as i64)
    {
        tracing::error!(recovery = record.id, "cannot record the end of the recovery: {e}");
    }
    Outcome {
        id: record.id,
        status: RecoveryStatus::Interrupted,
        failed_primary: record
            .failed_primary
            .as_deref()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| InstanceKey::new("unknown", 1)),
        new_primary: None,
        lost: vec![],
        summary: why,
    }
}
