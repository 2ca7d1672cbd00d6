//! Drives a recovery machine: performs each command it gives and feeds the
//! result back, until it finishes or parks.
//!
//! Between steps it asks the gate whether this process may still act: the
//! lease on the recovery must still be ours (a heartbeat renews it while the
//! recovery runs) and no stop must have been asked for. If not, the machine
//! parks: the recovery stays `running` with its lease released, for the next
//! process that may act to resume.

use super::audit;
use super::exec::Performer;
use super::owner::{LEASE, RENEW_EVERY};
use super::{blocking, Outcome, RecoveryEnv};
use crate::clock;
use pivot_core::control::{Command, Ended, Finish, RecoveryMachine, Status, StepEnd};
use pivot_core::plan::Step;
use pivot_state::RecoveryStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Asked to stop acting (a graceful shutdown): the machine parks at the next
/// step boundary.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Tries to record the end of a recovery before reporting it unrecorded.
const FINISH_ATTEMPTS: u32 = 3;

pub async fn drive(mut m: RecoveryMachine, mut cmd: Command, mut perf: Performer, stop: StopFlag) -> Outcome {
    let env = perf.env.clone();
    let id = perf.id;
    let lease_ok = Arc::new(AtomicBool::new(true));
    // Aborted when this function ends, however it ends (a panic included).
    let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(env.clone(), id, lease_ok.clone())));
    let may_act = || lease_ok.load(Ordering::SeqCst);
    let outcome = loop {
        cmd = match cmd {
            Command::RecordPlan(doc) => {
                let json = doc.to_json();
                let candidate = doc.candidate().map(ToString::to_string).unwrap_or_default();
                let r = blocking(&env, move |s| s.set_plan(id, &candidate, &json)).await;
                m.set_may_act(may_act());
                m.set_stopping(stop.stopped());
                m.plan_recorded(r)
            }
            Command::RunStep { seq, step, check_first, needs_record } => {
                perf.data.new_primary = m.candidate().cloned();
                perf.data.lost_replicas = m.lost().cloned().collect();
                if let Some(why) = m.abandoned() {
                    perf.data.outcome = format!("aborted: {why}");
                }
                if crate::failpoint::fires(&format!("panic_before_step:{}", step.name())) {
                    panic!("failpoint panic_before_step:{} (PIVOT_FAILPOINTS)", step.name());
                }
                if crate::failpoint::fires(&format!("kill_before_step:{}", step.name())) {
                    crate::failpoint::kill_self();
                }
                if crate::failpoint::fires(&format!("sleep_before_step:{}", step.name())) {
                    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                }
                let end = run_recorded(&mut perf, seq, &step, check_first, needs_record).await;
                m.set_may_act(may_act());
                m.set_stopping(stop.stopped());
                m.step_ended(seq, end)
            }
            Command::Finish(f) => break finish(&env, id, m.failed_primary(), f).await,
            Command::Park { next_seq, reason } => break park(&env, id, &m, next_seq, &reason, &stop).await,
        };
    };
    drop(heartbeat);
    outcome
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Record the step, perform it, record its end.
async fn run_recorded(perf: &mut Performer, seq: i64, step: &Step, check_first: bool, needs_record: bool) -> StepEnd {
    let (env, id) = (perf.env.clone(), perf.id);
    let cluster = env.cluster.name.clone();
    if let Err(e) = audit::started(&env, id, seq, step.name(), step.detail()).await {
        if needs_record {
            // Without the record a restart could not resume safely: do not act.
            return StepEnd::new(Ended::Failed, format!("cannot record the step in the state file: {e}"));
        }
        tracing::error!(%cluster, recovery = id, step = seq, "cannot record {} (run anyway: it undoes): {e}", step.name());
    }
    perf.seq = seq;
    let mut end = perf.perform(step, check_first).await;
    if crate::failpoint::fires(&format!("fail_after_step:{}", step.name())) {
        // Its effect is in place, yet it reports a failure: the hardest case to undo.
        end = StepEnd::new(Ended::Failed, format!("failpoint fail_after_step (it ran: {})", end.message));
    }
    if let Err(e) = audit::ended(&env, id, seq, end.how, end.message.clone()).await {
        tracing::error!(%cluster, recovery = id, "cannot record the end of step {seq}: {e}");
    }
    let name = step.name();
    if end.how.succeeded() {
        tracing::info!(%cluster, recovery = id, step = seq, "{name}: {} ({})", end.how.as_str(), end.message);
    } else {
        tracing::warn!(%cluster, recovery = id, step = seq, "{name}: {} ({})", end.how.as_str(), end.message);
    }
    end
}

/// Renew the lease until aborted; clear `ok` once another process holds it.
async fn heartbeat(env: RecoveryEnv, id: i64, ok: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let owner = env.owner.clone();
        let until = clock::wall_ms() + LEASE.as_millis() as i64;
        match blocking(&env, move |s| s.renew_lease(id, &owner, until)).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(cluster = %env.cluster.name, recovery = id, "lost the lease on recovery {id}: another pivot process took it over; stopping at the next step");
                ok.store(false, Ordering::SeqCst);
                return;
            }
            // An unwritable store cannot be written by another process
            // either: keep acting, loudly.
            Err(e) => tracing::error!(cluster = %env.cluster.name, recovery = id, "cannot renew the lease: {e}"),
        }
    }
}

pub fn status_of(s: Status) -> RecoveryStatus {
    match s {
        Status::Succeeded => RecoveryStatus::Succeeded,
        Status::SucceededWithErrors => RecoveryStatus::SucceededWithErrors,
        Status::Failed => RecoveryStatus::Failed,
        Status::Aborted => RecoveryStatus::Aborted,
        Status::Interrupted => RecoveryStatus::Interrupted,
    }
}

/// Record the end (retried, bounded) and the anti-flapping block.
pub async fn finish(env: &RecoveryEnv, id: i64, failed: &pivot_core::InstanceKey, f: Finish) -> Outcome {
    let cluster = &env.cluster.name;
    let status = status_of(f.status);
    let block_until = f.block.then(|| clock::wall_ms() + env.cluster.failover.block_period.as_millis() as i64);
    let mut unrecorded = None;
    for attempt in 1..=FINISH_ATTEMPTS {
        match record_end(env, id, status, &f.summary, &f.lost, block_until).await {
            Ok(()) => {
                unrecorded = None;
                break;
            }
            Err(e) => {
                tracing::error!(%cluster, recovery = id, attempt, "cannot record the end of the recovery: {e}");
                unrecorded = Some(e);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    if f.status.promoted() {
        tracing::warn!(%cluster, recovery = id, "{}: {}", status.as_str(), f.summary);
    } else {
        tracing::error!(%cluster, recovery = id, "{}: {}", status.as_str(), f.summary);
    }
    Outcome {
        id,
        status,
        failed_primary: failed.clone(),
        new_primary: f.new_primary,
        lost: f.lost,
        summary: f.summary,
        alert: f.alert,
        block_until,
        unrecorded,
        parked: false,
    }
}

/// Write the end of a recovery: the anti-flapping block first, then the
/// status (so a recovery never looks ended without its block).
pub async fn record_end(
    env: &RecoveryEnv,
    id: i64,
    status: RecoveryStatus,
    summary: &str,
    lost: &[pivot_core::InstanceKey],
    block_until: Option<i64>,
) -> Result<(), String> {
    let cluster = env.cluster.name.clone();
    let lost: Vec<String> = lost.iter().map(ToString::to_string).collect();
    let summary = summary.to_string();
    blocking(env, move |s| {
        if let Some(until) = block_until {
            s.block(&cluster, id, until)?;
        }
        s.finish_recovery(id, status, &summary, &lost, clock::wall_ms())
    })
    .await
}

async fn park(
    env: &RecoveryEnv,
    id: i64,
    m: &RecoveryMachine,
    next_seq: i64,
    reason: &str,
    stop: &StopFlag,
) -> Outcome {
    let cluster = env.cluster.name.clone();
    let why = if stop.stopped() { "pivot is stopping" } else { reason };
    let summary = format!("parked before step {next_seq}: {why}; the next pivot that may act resumes it");
    tracing::warn!(%cluster, recovery = id, "{summary}");
    let (owner, msg) = (env.owner.clone(), summary.clone());
    let c2 = cluster.clone();
    let _ = blocking(env, move |s| {
        // Release the lease so the next process resumes at once.
        s.renew_lease(id, &owner, 0)?;
        s.event(&c2, clock::wall_ms(), "warn", &msg)
    })
    .await;
    Outcome {
        id,
        status: RecoveryStatus::Running,
        failed_primary: m.failed_primary().clone(),
        new_primary: None,
        lost: vec![],
        summary,
        alert: true,
        block_until: None,
        unrecorded: None,
        parked: true,
    }
}
