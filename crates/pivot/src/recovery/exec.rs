//! Performing one plan step against the servers, hooks or the state store.
//! What to perform, and what a result means, is the recovery machine's
//! business (`pivot_core::control`); this only does it.

use super::fanout::{failures, on_each};
use super::hooks::{self, HookData};
use super::{blocking, RecoveryEnv};
use crate::clock;
use pivot_core::control::{Ended, StepEnd};
use pivot_core::observation::IoThread;
use pivot_core::plan::{HookPoint, Step};
use pivot_core::InstanceKey;
use pivot_server::{actions, probe_all, Prober, Session};
use pivot_state::FencedInstance;
use std::collections::HashMap;
use std::time::Duration;

/// How a hook's process group is noted on its step record.
pub const HOOK_GROUP_NOTE: &str = "hook running as process group ";

/// How long the failed primary gets to greet, right before the promotion.
const CONFIRM_GONE_BOUND: Duration = Duration::from_millis(20);

pub struct Performer {
    pub env: RecoveryEnv,
    pub id: i64,
    /// The step being performed (for notes on its record).
    pub seq: i64,
    pub force: bool,
    pub data: HookData,
    sessions: HashMap<InstanceKey, Session>,
}

pub(super) fn end(how: Ended, message: impl Into<String>) -> StepEnd {
    StepEnd::new(how, message)
}

impl Performer {
    pub fn new(env: RecoveryEnv, id: i64, force: bool, data: HookData) -> Performer {
        Performer { env, id, seq: 0, force, data, sessions: HashMap::new() }
    }

    pub(super) fn step_timeout(&self) -> Duration {
        self.env.cluster.failover.step_timeout
    }

    pub(super) async fn session(&mut self, key: &InstanceKey) -> Result<&mut Session, String> {
        if !self.sessions.get(key).is_some_and(Session::is_usable) {
            let s = Session::connect(key, &self.env.cluster.credentials, self.step_timeout())
                .await
                .map_err(|e| format!("cannot connect to {key}: {e}"))?;
            self.sessions.insert(key.clone(), s);
        }
        Ok(self.sessions.get_mut(key).expect("just inserted"))
    }

    /// Perform `step`. `check_first`: it was interrupted by a restart; see
    /// whether its effect is already in place before doing it again.
    pub async fn perform(&mut self, step: &Step, check_first: bool) -> StepEnd {
        let creds = self.env.cluster.credentials.clone();
        let timeout = self.step_timeout();
        let relay_timeout = self.env.cluster.failover.relay_apply_timeout;
        match step {
            Step::FenceLivePrimary { instance } => match Session::connect(instance, &creds, timeout).await {
                Ok(mut s) => match actions::fence(&mut s, &creds).await {
                    Ok(killed) => end(Ended::Ok, format!("made read-only, {killed} client session(s) ended")),
                    Err(e) => end(Ended::Failed, format!("could not be fenced: {e}")),
                },
                Err(e) => end(Ended::Failed, format!("cannot connect: {e}")),
            },
            Step::StopReplicaIo { instances } => {
                let results = on_each(instances, &creds, timeout, |mut s| async move {
                    let t = std::time::Instant::now();
                    actions::stop_io_thread_keep_applying(&mut s)
                        .await
                        .map(|_| format!("{} in {} ms", s.key, t.elapsed().as_millis()))
                })
                .await;
                let failed = failures(&results);
                if failed.is_empty() {
                    let each: Vec<String> = results.iter().filter_map(|(_, r)| r.as_ref().ok().cloned()).collect();
                    end(Ended::Ok, format!("stopped: {}", each.join(", ")))
                } else {
                    // Not a failure: an instance that cannot be reached cannot receive either.
                    end(Ended::Ok, format!("not stopped (treated as unreachable): {}", list(&failed)))
                }
            }
            Step::Observe { instances, primary } => self.observe(instances, primary).await,
            Step::Hook { point } => self.hook(*point).await,
            Step::WaitRelayApplied { instance } => {
                let r = match self.session(instance).await {
                    Ok(s) => actions::wait_relay_applied(s, relay_timeout).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(applied) => end(Ended::Ok, format!("applied everything it received ({applied})")),
                    Err(e) if self.force => end(Ended::Ok, format!("forced past: {e}")),
                    Err(e) => end(Ended::Failed, format!("{e} (pivot failover --force goes on anyway)")),
                }
            }
            Step::CatchUp { instance, from, until } => {
                let force = self.force;
                let s = match self.session(instance).await {
                    Ok(s) => s,
                    Err(e) => return end(Ended::Failed, e),
                };
                if check_first {
                    if let Ok((executed, _)) = actions::executed_and_writable(s).await {
                        if executed.reaches(until) {
                            let stop = s.dialect.stop_replica();
                            let _ = s.exec(&stop).await;
                            return end(Ended::AlreadyDone, format!("already has {until}"));
                        }
                    }
                }
                match actions::catch_up(s, from, until, relay_timeout).await {
                    Ok(()) => end(Ended::Ok, format!("caught up from {from} to {until}")),
                    Err(e) if force => end(Ended::Ok, format!("forced past: {e}")),
                    Err(e) => end(Ended::Failed, e.to_string()),
                }
            }
            Step::RegisterFence { instance, live } => {
                let (status, detail) = if *live {
                    ("read_only", format!("old primary of switchover {}: made read-only by it", self.id))
                } else {
                    ("pending", format!("failed primary of recovery {}: made read-only the moment it answers", self.id))
                };
                let f = FencedInstance {
                    cluster: self.env.cluster.name.clone(),
                    instance: instance.to_string(),
                    recovery_id: Some(self.id),
                    since: clock::wall_ms(),
                    status: status.into(),
                    detail,
                };
                match blocking(&self.env, move |s| s.fence_register(&f)).await {
                    Ok(()) => end(Ended::Ok, ""),
                    Err(e) => end(Ended::Failed, e),
                }
            }
            Step::PrepareCandidate { instance } => match self.session(instance).await {
                Ok(s) => match actions::prepare_candidate(s).await {
                    Ok(()) => end(Ended::Ok, "replication stopped, semi-sync primary side on, still read-only"),
                    Err(e) => end(Ended::Failed, e.to_string()),
                },
                Err(e) => end(Ended::Failed, e),
            },
            Step::ClearFence { instance } => {
                let (cluster, key) = (self.env.cluster.name.clone(), instance.to_string());
                match blocking(&self.env, move |s| s.fence_remove(&cluster, &key)).await {
                    Ok(()) => end(Ended::Ok, ""),
                    Err(e) => end(Ended::Failed, e),
                }
            }
            Step::ConfirmPrimaryGone { instance } => self.confirm_primary_gone(instance).await,
            Step::Promote { instance, semi_sync } => {
                let s = match self.session(instance).await {
                    Ok(s) => s,
                    Err(e) => return end(Ended::Failed, e),
                };
                if check_first {
                    let replicating = actions::replication_status(s).await.map(|r| r.is_some());
                    let writable = actions::executed_and_writable(s).await.map(|(_, w)| w);
                    if let (Ok(false), Ok(true)) = (replicating, writable) {
                        return end(Ended::AlreadyDone, "already writable without replication");
                    }
                }
                match actions::promote(s, *semi_sync).await {
                    Ok(()) => end(Ended::Ok, format!("{instance} is the primary and writable")),
                    Err(e) => end(Ended::Failed, e.to_string()),
                }
            }
            Step::RecordEpoch { primary } => {
                let (cluster, p, id) = (self.env.cluster.name.clone(), primary.to_string(), self.id);
                match blocking(&self.env, move |s| s.epoch_advance(&cluster, &p, Some(id), None, clock::wall_ms()))
                    .await
                {
                    Ok(Some(e)) => end(Ended::Ok, format!("epoch {}", e.number)),
                    Ok(None) => end(Ended::Failed, "the epoch was not stored"),
                    Err(e) => end(Ended::Failed, e),
                }
            }
            Step::UpdateRoute { route, primary, .. } => super::route_step::perform(self, *route, primary).await,
            Step::Repoint { instances, to } => {
                let to2 = to.clone();
                let repl = self.env.cluster.replication.clone();
                let results = on_each(instances, &creds, timeout, move |mut s| {
                    let (to, repl) = (to2.clone(), repl.clone());
                    async move {
                        if check_first && actions::replication_status(&mut s).await?.is_some_and(|r| r.source == to) {
                            return Ok("already replicating from it".to_string());
                        }
                        actions::repoint(&mut s, &to, repl.as_ref()).await.map(|_| String::new())
                    }
                })
                .await;
                lost(&results, &format!("could not be repointed to {to}"))
            }
            Step::ConfirmReplicating { instances, source } => {
                let source2 = source.clone();
                let results = on_each(instances, &creds, timeout, move |mut s| {
                    let source = source2.clone();
                    async move { actions::confirm_replicating(&mut s, &source, timeout).await.map(|_| String::new()) }
                })
                .await;
                lost(&results, &format!("does not replicate from {source}"))
            }
            Step::FenceOldPrimary { instance } => self.fence_old_primary(instance).await,
            Step::CheckTransactions { .. }
            | Step::MakeReadOnly { .. }
            | Step::EndTransactions { .. }
            | Step::WaitCaughtUp { .. }
            | Step::ConfirmFrozen { .. }
            | Step::Demote { .. }
            | Step::ReleaseFence { .. } => self.handover_step(step, check_first).await,
            Step::RestoreReplication { replicas, source, candidate } => {
                let problems = restore_replication(&self.env, replicas, source, candidate.as_ref()).await;
                if problems.is_empty() {
                    end(Ended::Ok, format!("{} replica(s) replicate from {source} again", replicas.len()))
                } else {
                    end(Ended::Failed, problems.join("; "))
                }
            }
            Step::UnregisterFence { instance } => {
                let (cluster, key) = (self.env.cluster.name.clone(), instance.to_string());
                match blocking(&self.env, move |s| s.fence_remove(&cluster, &key)).await {
                    Ok(()) => end(Ended::Ok, ""),
                    Err(e) => end(Ended::Failed, e),
                }
            }
            Step::Unfence { instance } => match self.session(instance).await {
                Ok(s) => match actions::make_writable(s).await {
                    Ok(()) => end(Ended::Ok, format!("{instance} is writable again")),
                    Err(e) => end(Ended::Failed, e.to_string()),
                },
                Err(e) => end(Ended::Failed, e),
            },
        }
    }

    /// Probe the replicas again (in parallel). The failed primary is probed
    /// alongside, but only an answer that arrives by the time the replicas
    /// answered counts: a hung primary must not hold the failover for a
    /// whole probe timeout.
    async fn observe(&mut self, replicas: &[InstanceKey], primary: &InstanceKey) -> StepEnd {
        let (creds, timeout) = (self.env.cluster.credentials.clone(), self.env.cluster.probe_timeout);
        let key = primary.clone();
        let primary_probe = tokio::spawn(async move { Prober::new(key, creds, timeout).probe(clock::now()).await });
        let mut observations = probe_all(replicas, &self.env.cluster.credentials, timeout, clock::now).await;
        let answered = observations.iter().filter(|o| o.state().is_some()).count();
        let mut message = format!("{answered} of {} replica(s) answered", replicas.len());
        if let Ok(Ok(obs)) = tokio::time::timeout(Duration::from_millis(10), primary_probe).await {
            if obs.state().is_some() {
                message.push_str(&format!("; {primary} answers"));
            }
            observations.push(obs);
        }
        StepEnd { observations, ..end(Ended::Ok, message) }
    }

    /// The failed primary must not answer now. A hung one (its kernel still
    /// accepts connections) sends no greeting within the bound: gone. One
    /// that answers ends the failover, unless forced: then it is fenced.
    async fn confirm_primary_gone(&mut self, instance: &InstanceKey) -> StepEnd {
        let creds = self.env.cluster.credentials.clone();
        let bound = self.env.cluster.probe_timeout.min(CONFIRM_GONE_BOUND);
        match Session::connect(instance, &creds, bound).await {
            // A server that refuses the login (or any server error) is up.
            Err(e) if e.is_server_error() => {
                end(Ended::Failed, format!("{instance} answers again ({e}): failover abandoned"))
            }
            Err(e) => end(Ended::Ok, format!("does not answer ({e})")),
            Ok(mut s) if self.force => match actions::fence(&mut s, &creds).await {
                Ok(killed) => {
                    end(Ended::Ok, format!("answered again: made read-only, {killed} session(s) ended (forced)"))
                }
                Err(e) => end(Ended::Failed, format!("answered again and could not be fenced: {e}")),
            },
            Ok(_) => end(Ended::Failed, format!("{instance} answers again: failover abandoned")),
        }
    }

    async fn fence_old_primary(&mut self, instance: &InstanceKey) -> StepEnd {
        let creds = self.env.cluster.credentials.clone();
        // Brief: the fence watcher takes over as soon as the recovery ends.
        let quick = self.env.cluster.probe_timeout.min(Duration::from_millis(250));
        match Session::connect(instance, &creds, quick).await {
            Ok(mut s) => match actions::fence(&mut s, &creds).await {
                Ok(killed) => {
                    let detail = format!("made read-only, {killed} client session(s) ended");
                    let (cluster, key, d) = (self.env.cluster.name.clone(), instance.to_string(), detail.clone());
                    let _ = blocking(&self.env, move |s| s.fence_update(&cluster, &key, "read_only", &d)).await;
                    end(Ended::Ok, detail)
                }
                Err(e) => end(Ended::Failed, format!("reachable but could not be fenced: {e}")),
            },
            Err(e) => end(
                Ended::Skipped,
                format!("unreachable ({e}); kept in the fence list: made read-only the moment it answers"),
            ),
        }
    }

    async fn hook(&mut self, point: HookPoint) -> StepEnd {
        let Some(argv) = hooks::command_for_off_thread(&self.env.cluster.hooks, point, &self.data).await else {
            return end(Ended::Skipped, "not configured");
        };
        // The hook's process group goes on its step record at once: a pivot
        // killed meanwhile leaves it running, and the next one ends it.
        let (state, id, seq) = (self.env.state.clone(), self.id, self.seq);
        let note = move |pgid: u32| {
            tokio::task::spawn_blocking(move || {
                let _ = state.step_note(id, seq, &format!("{HOOK_GROUP_NOTE}{pgid}"));
            });
        };
        let result = hooks::run_noting(&argv, point, &self.data, self.env.cluster.hooks.timeout, note).await;
        let how = if result.ok() { Ended::Ok } else { Ended::Failed };
        end(how, result.describe())
    }
}

/// Point every reachable replica back at `source` and start replication; a
/// prepared or half-promoted `candidate` gets its semi-sync primary side off
/// and is made read-only first. Returns the problems met.
pub async fn restore_replication(
    env: &RecoveryEnv,
    replicas: &[InstanceKey],
    source: &InstanceKey,
    candidate: Option<&InstanceKey>,
) -> Vec<String> {
    let source2 = source.clone();
    let candidate = candidate.cloned();
    let repl = env.cluster.replication.clone();
    let results = on_each(replicas, &env.cluster.credentials, env.cluster.failover.step_timeout, move |mut s| {
        let source = source2.clone();
        let candidate = candidate.clone();
        let repl = repl.clone();
        async move {
            if candidate.as_ref() == Some(&s.key) {
                actions::make_read_only(&mut s).await?;
                let off = s.dialect.set_semi_sync_primary(false);
                s.exec(&off).await?;
            }
            match actions::replication_status(&mut s).await? {
                Some(r) if r.source == source && r.io_thread != IoThread::Stopped && r.sql_running => {
                    return Ok("replicating".into())
                }
                Some(r) if r.source != source => actions::repoint(&mut s, &source, repl.as_ref()).await?,
                Some(_) => actions::start_replica(&mut s).await?,
                None => actions::repoint(&mut s, &source, repl.as_ref()).await?,
            }
            Ok("restarted".into())
        }
    })
    .await;
    results.into_iter().filter_map(|(k, r)| r.err().map(|e| format!("{k}: {e}"))).collect()
}

fn lost(results: &[(InstanceKey, Result<String, String>)], what: &str) -> StepEnd {
    let failed = failures(results);
    if failed.is_empty() {
        return end(Ended::Ok, format!("{} replica(s)", results.len()));
    }
    let lost = failed.iter().map(|(k, e)| (k.clone(), format!("{what}: {e}"))).collect();
    StepEnd { lost, ..end(Ended::Failed, list(&failed)) }
}

fn list(items: &[(InstanceKey, String)]) -> String {
    items.iter().map(|(k, e)| format!("{k}: {e}")).collect::<Vec<_>>().join("; ")
}
