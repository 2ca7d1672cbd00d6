//! Executing plan steps against the servers.
//!
//! Each step is recorded before and after it runs. When a restarted pivot
//! resumes a recovery, steps that had ended are not run again; a step that was
//! running when pivot stopped is checked first (is its effect already in
//! place?) and only then run, and a hook that was running is not run again.

use super::audit::{Audit, Ended};
use super::fanout::{failures, on_each};
use super::hooks::{self, HookData};
use super::RecoveryEnv;
use pivot_core::plan::{FailoverPlan, HookPoint, Step};
use pivot_core::InstanceKey;
use pivot_server::{actions, Session};
use pivot_state::{FencedInstance, StepRecord};
use std::collections::HashMap;
use std::time::Duration;

/// What running a plan came to.
#[derive(Debug, Default)]
pub struct PlanResult {
    /// The candidate was promoted (now or before a restart).
    pub promoted: bool,
    /// A step before the promotion failed: the failover must be abandoned.
    pub vetoed: Option<String>,
    /// Failures after the promotion, in words.
    pub errors: Vec<String>,
    /// Replicas that could not be made to follow the new primary.
    pub lost: Vec<(InstanceKey, String)>,
}

pub struct Exec<'a> {
    pub env: &'a RecoveryEnv,
    pub audit: Audit<'a>,
    pub force: bool,
    pub data: HookData,
    sessions: HashMap<InstanceKey, Session>,
    lost: Vec<(InstanceKey, String)>,
}

impl<'a> Exec<'a> {
    pub fn new(env: &'a RecoveryEnv, audit: Audit<'a>, force: bool, data: HookData) -> Exec<'a> {
        Exec { env, audit, force, data, sessions: HashMap::new(), lost: Vec::new() }
    }

    fn step_timeout(&self) -> Duration {
        self.env.cluster.failover.step_timeout
    }

    async fn session(&mut self, key: &InstanceKey) -> Result<&mut Session, String> {
        if !self.sessions.get(key).is_some_and(Session::is_usable) {
            let s = Session::connect(key, &self.env.cluster.credentials, self.step_timeout())
                .await
                .map_err(|e| format!("cannot connect to {key}: {e}"))?;
            self.sessions.insert(key.clone(), s);
        }
        Ok(self.sessions.get_mut(key).expect("just inserted"))
    }

    /// Run one step with its audit records. `interrupted` says the step was
    /// running when a previous pivot stopped.
    pub async fn run_recorded(&mut self, seq: i64, step: &Step, interrupted: bool) -> (Ended, String) {
        if let Err(e) = self.audit.started(seq, &step.name(), &step.detail()) {
            // Without the record a restart could not resume safely: do not act.
            return (Ended::Failed, format!("cannot record the step in the state file: {e}"));
        }
        let (how, message) = if interrupted && matches!(step, Step::Hook { .. }) {
            (Ended::Skipped, "interrupted by a pivot restart; a hook is not run twice".to_string())
        } else {
            self.run(step, interrupted).await
        };
        if let Err(e) = self.audit.ended(seq, how, &message) {
            tracing::error!(recovery = self.audit.id, "cannot record the end of step {seq}: {e}");
        }
        let (cluster, id, name) = (&self.env.cluster.name, self.audit.id, step.name());
        if how.succeeded() {
            tracing::info!(%cluster, recovery = id, step = seq, "{name}: {} ({message})", how.as_str());
        } else {
            tracing::warn!(%cluster, recovery = id, step = seq, "{name}: {} ({message})", how.as_str());
        }
        (how, message)
    }

    async fn run(&mut self, step: &Step, resuming: bool) -> (Ended, String) {
        let creds = self.env.cluster.credentials.clone();
        let timeout = self.step_timeout();
        let relay_timeout = self.env.cluster.failover.relay_apply_timeout;
        match step {
            Step::StopReplicaIo { instances } => {
                let results = on_each(instances, &creds, timeout, |mut s| async move {
                    let t = std::time::Instant::now();
                    actions::stop_io_thread(&mut s)
                        .await
                        .map(|_| format!("{} in {} ms", s.key, t.elapsed().as_millis()))
                })
                .await;
                let failed = failures(&results);
                if failed.is_empty() {
                    let each: Vec<String> = results.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()).collect();
                    (Ended::Ok, format!("stopped: {}", each.join(", ")))
                } else {
                    // Not a veto: an instance that cannot be reached cannot receive either.
                    (Ended::Ok, format!("not stopped (treated as unreachable): {}", list(&failed)))
                }
            }
            Step::Hook { point } => self.hook(*point).await,
            Step::WaitRelayApplied { instance } => {
                let r = match self.session(instance).await {
                    Ok(s) => actions::wait_relay_applied(s, relay_timeout).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(applied) => (Ended::Ok, format!("applied everything it received ({applied})")),
                    Err(e) if self.force => (Ended::Ok, format!("forced past: {e}")),
                    Err(e) => (Ended::Failed, format!("{e} (pivot failover --force goes on anyway)")),
                }
            }
            Step::CatchUp { instance, from, until } => {
                let force = self.force;
                let s = match self.session(instance).await {
                    Ok(s) => s,
                    Err(e) => return (Ended::Failed, e),
                };
                if resuming {
                    if let Ok((executed, _)) = actions::executed_and_writable(s).await {
                        if executed.reaches(until) {
                            let stop = s.dialect.stop_replica();
                            let _ = s.exec(&stop).await;
                            return (Ended::AlreadyDone, format!("already has {until}"));
                        }
                    }
                }
                match actions::catch_up(s, from, until, relay_timeout).await {
                    Ok(()) => (Ended::Ok, format!("caught up from {from} to {until}")),
                    Err(e) if force => (Ended::Ok, format!("forced past: {e}")),
                    Err(e) => (Ended::Failed, e.to_string()),
                }
            }
            Step::RegisterFence { instance } => {
                let f = FencedInstance {
                    cluster: self.env.cluster.name.clone(),
                    instance: instance.to_string(),
                    recovery_id: Some(self.audit.id),
                    since: crate::clock::now().0 as i64,
                    status: "pending".into(),
                    detail: format!(
                        "failed primary of recovery {}: made read-only the moment it answers",
                        self.audit.id
                    ),
                };
                match self.env.state.fence_register(&f) {
                    Ok(()) => (Ended::Ok, String::new()),
                    Err(e) => (Ended::Failed, e.to_string()),
                }
            }
            Step::PrepareCandidate { instance } => match self.session(instance).await {
                Ok(s) => match actions::prepare_candidate(s).await {
                    Ok(()) => (Ended::Ok, "replication stopped, semi-sync primary side on, still read-only".into()),
                    Err(e) => (Ended::Failed, e.to_string()),
                },
                Err(e) => (Ended::Failed, e),
            },
            Step::Promote { instance, semi_sync } => {
                self.data.new_primary = Some(instance.clone());
                let s = match self.session(instance).await {
                    Ok(s) => s,
                    Err(e) => return (Ended::Failed, e),
                };
                if resuming {
                    let replicating = actions::replication_status(s).await.map(|r| r.is_some());
                    let writable = actions::executed_and_writable(s).await.map(|(_, w)| w);
                    if let (Ok(false), Ok(true)) = (replicating, writable) {
                        return (Ended::AlreadyDone, "already writable without replication".into());
                    }
                }
                match actions::promote(s, *semi_sync).await {
                    Ok(()) => (Ended::Ok, format!("{instance} is the primary and writable")),
                    Err(e) => (Ended::Failed, e.to_string()),
                }
            }
            Step::Repoint { instances, to } => {
                let to2 = to.clone();
                let results = on_each(instances, &creds, timeout, move |mut s| {
                    let to = to2.clone();
                    async move {
                        if resuming && actions::replication_status(&mut s).await?.is_some_and(|r| r.source == to) {
                            return Ok("already replicating from it".to_string());
                        }
                        actions::repoint(&mut s, &to).await.map(|_| String::new())
                    }
                })
                .await;
                self.note_lost(&results, &format!("could not be repointed to {to}"))
            }
            Step::ConfirmReplicating { instances, source } => {
                let source2 = source.clone();
                let results = on_each(instances, &creds, timeout, move |mut s| {
                    let source = source2.clone();
                    async move { actions::confirm_replicating(&mut s, &source, timeout).await.map(|_| String::new()) }
                })
                .await;
                self.note_lost(&results, &format!("does not replicate from {source}"))
            }
            Step::FenceOldPrimary { instance } => {
                // Brief: the fence watcher takes over as soon as the recovery ends.
                let quick = self.env.cluster.probe_timeout.min(Duration::from_millis(250));
                match Session::connect(instance, &creds, quick).await {
                    Ok(mut s) => match actions::fence(&mut s, &creds).await {
                        Ok(killed) => {
                            let detail = format!("made read-only, {killed} client session(s) ended");
                            let _ = self.env.state.fence_update(
                                &self.env.cluster.name,
                                &instance.to_string(),
                                "read_only",
                                &detail,
                            );
                            (Ended::Ok, detail)
                        }
                        Err(e) => (Ended::Failed, format!("reachable but could not be fenced: {e}")),
                    },
                    Err(e) => (
                        Ended::Skipped,
                        format!("unreachable ({e}); kept in the fence list: made read-only the moment it answers"),
                    ),
                }
            }
        }
    }

    fn note_lost(&mut self, results: &[(InstanceKey, Result<String, String>)], what: &str) -> (Ended, String) {
        let failed = failures(results);
        if failed.is_empty() {
            return (Ended::Ok, format!("{} replica(s)", results.len()));
        }
        for (k, e) in &failed {
            if !self.data.lost_replicas.contains(k) {
                self.data.lost_replicas.push(k.clone());
            }
            if !self.lost_contains(k) {
                self.lost.push((k.clone(), format!("{what}: {e}")));
            }
        }
        (Ended::Failed, list(&failed))
    }

    fn lost_contains(&self, k: &InstanceKey) -> bool {
        self.lost.iter().any(|(l, _)| l == k)
    }

    async fn hook(&mut self, point: HookPoint) -> (Ended, String) {
        let Some(argv) = hooks::command_for(&self.env.cluster.hooks, point, &self.data) else {
            return (Ended::Skipped, "not configured".into());
        };
        let result = hooks::run(&argv, point, &self.data, self.env.cluster.hooks.timeout).await;
        let how = if result.ok() { Ended::Ok } else { Ended::Failed };
        (how, result.describe())
    }

    /// Run the plan's steps numbered from `first_seq`. With `previous` (the
    /// steps a stopped pivot recorded), steps that had ended are not run again.
    pub async fn run_plan(&mut self, plan: &FailoverPlan, first_seq: i64, previous: &[StepRecord]) -> PlanResult {
        let mut out = PlanResult::default();
        let promote_at = plan.promote_index();
        for (i, step) in plan.steps.iter().enumerate() {
            let seq = first_seq + i as i64;
            let recorded = previous.iter().find(|r| r.seq == seq).map(|r| r.outcome.clone());
            let (how, message) = match recorded {
                Some(Some(done)) => {
                    tracing::info!(
                        recovery = self.audit.id,
                        step = seq,
                        "{}: {done} before the restart, not run again",
                        step.name()
                    );
                    let how = if done == "failed" { Ended::Failed } else { Ended::Ok };
                    (how, format!("{done} before pivot restarted"))
                }
                Some(None) => self.run_recorded(seq, step, true).await,
                None => self.run_recorded(seq, step, false).await,
            };
            // A failure up to and including the promotion abandons the failover.
            if !how.succeeded() && i <= promote_at && step.vetoes() {
                out.vetoed = Some(format!("{}: {message}", step.name()));
                return out;
            }
            if !how.succeeded() {
                out.errors.push(format!("{}: {message}", step.name()));
            }
            if i == promote_at {
                out.promoted = true;
            }
        }
        out.lost.append(&mut self.lost);
        out
    }
}

fn list(items: &[(InstanceKey, String)]) -> String {
    items.iter().map(|(k, e)| format!("{k}: {e}")).collect::<Vec<_>>().join("; ")
}
