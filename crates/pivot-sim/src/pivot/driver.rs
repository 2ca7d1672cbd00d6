//! Driving a recovery machine, as `pivot::recovery::{failover, resume,
//! driver}` do: record the recovery, then perform each command the machine
//! gives and feed the result back (`RecordPlan` -> `plan_recorded`,
//! `RunStep` -> start record, perform, end record -> `step_ended`,
//! `Finish`, `Park`). A resumed recovery is rebuilt with
//! `RecoveryMachine::resume` from the stored plan and step records.

use super::steps::{Ctx, StepRun};
use crate::faults;
use crate::invariants;
use crate::world::World;
use pivot_core::control::{Command, Ended, FailoverRequest, Finish, RecordedStep, RecoveryMachine, Status, StepEnd};
use pivot_core::plan::{PlanDoc, Step};
use pivot_core::{ClusterAnalysis, ClusterView, InstanceKey};

/// Commands performed in one tick, at most (most take no simulated time).
const COMMANDS_PER_TICK: usize = 64;
/// Attempts to record the end of a recovery before reporting it unrecorded.
const FINISH_ATTEMPTS: u32 = 3;

pub struct Recovery {
    pub id: i64,
    machine: RecoveryMachine,
    next: Next,
    ctx: Ctx,
}

enum Next {
    Command(Command),
    Step { seq: i64, step: Step, run: StepRun },
}

/// How a recovery ended (or parked), as the monitor learns it.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub id: i64,
    /// `None`: parked, still running in the store.
    pub status: Option<Status>,
    pub alert: bool,
    pub summary: String,
    /// The end could not be written (why).
    pub unrecorded: Option<String>,
    /// The instance it promoted.
    pub new_primary: Option<InstanceKey>,
    /// The anti-flapping block it started (wall ms), if any: written again
    /// with the end when the end is retried.
    pub block_until: Option<i64>,
}

pub enum Poll {
    Running,
    Done(Outcome),
    /// A fault: pivot is killed at this command boundary.
    Kill,
}

pub enum Resumed {
    Running(Box<Recovery>),
    Ended(Outcome),
    /// It could not be taken over (the store refused the write).
    NotAdopted,
}

fn request() -> FailoverRequest {
    FailoverRequest { automatic: true, target: None, force: false }
}

/// A new automatic failover of the analysis' primary.
pub fn start(w: &mut World, incarnation: u32, view: &ClusterView, a: &ClusterAnalysis) -> Result<Recovery, String> {
    let failed = a.primary.clone().ok_or_else(|| format!("no primary to fail over: {}", a.signal))?;
    let (now, wall) = (w.now, w.wall());
    let id = w.store.begin_recovery(now, &failed, true, format!("{}: {}", a.code, a.signal), wall, incarnation)?;
    let failed_i = w.index_of(&failed).expect("a known primary");
    w.log(format!("recovery {id} of {failed} started: {}", a.signal));
    invariants::on_recovery_start(w, id, failed_i);
    let (machine, first) = RecoveryMachine::start(failed, view.clone(), w.cfg.failover_settings(), request());
    Ok(Recovery { id, machine, next: Next::Command(first), ctx: Ctx { recovery: id, incarnation, failed: failed_i } })
}

/// A planned switchover from the live primary `primary` (an operator asked).
pub fn start_switchover(
    w: &mut World,
    incarnation: u32,
    view: &ClusterView,
    primary: InstanceKey,
    to: Option<InstanceKey>,
) -> Result<Recovery, String> {
    let (now, wall) = (w.now, w.wall());
    let asked = format!("switchover from {primary} asked");
    let id = w.store.begin_recovery(now, &primary, false, asked, wall, incarnation)?;
    let old = w.index_of(&primary).expect("a known primary");
    w.log(format!("recovery {id}: switchover from {primary} started"));
    invariants::on_switchover_start(w, id, old);
    let request = FailoverRequest { automatic: false, target: to, force: false };
    let (machine, first) = RecoveryMachine::switchover(primary, view.clone(), w.cfg.failover_settings(), request);
    Ok(Recovery { id, machine, next: Next::Command(first), ctx: Ctx { recovery: id, incarnation, failed: old } })
}

/// Take over recovery `id`, left running by a pivot that is gone.
pub fn resume(w: &mut World, incarnation: u32, id: i64, view: &ClusterView) -> Resumed {
    let now = w.now;
    let previous = w.store.recovery(id).map_or(0, |r| r.owner);
    if let Err(e) = w.store.adopt(now, id, incarnation) {
        w.log(format!("cannot take recovery {id} over: {e}"));
        return Resumed::NotAdopted;
    }
    let rec = w.store.recovery(id).expect("a stored recovery").clone();
    w.log(format!("resuming recovery {id} left running by pivot #{previous}"));
    let steps: Vec<RecordedStep> = rec.steps.iter().map(|s| RecordedStep { seq: s.seq, ended: s.outcome }).collect();
    let failed_i = w.index_of(&rec.failed_primary).expect("a known primary");
    let (machine, first) = RecoveryMachine::resume(
        rec.failed_primary.clone(),
        rec.plan.as_deref(),
        &steps,
        view.clone(),
        w.cfg.failover_settings(),
        request(),
    );
    match machine {
        Some(machine) => Resumed::Running(Box::new(Recovery {
            id,
            machine,
            next: Next::Command(first),
            ctx: Ctx { recovery: id, incarnation, failed: failed_i },
        })),
        None => {
            let Command::Finish(f) = first else { unreachable!("resume without a machine finishes") };
            Resumed::Ended(finish(w, id, f))
        }
    }
}

/// Perform commands until one takes simulated time, the recovery ends, or a
/// fault kills pivot.
pub fn poll(rec: &mut Recovery, w: &mut World) -> Poll {
    for _ in 0..COMMANDS_PER_TICK {
        let next =
            std::mem::replace(&mut rec.next, Next::Command(Command::Park { next_seq: 0, reason: String::new() }));
        match next {
            Next::Step { seq, step, mut run } => {
                let Some(end) = run.poll(w) else {
                    rec.next = Next::Step { seq, step, run };
                    return Poll::Running;
                };
                step_ended(rec, w, seq, &step, end);
                if faults::boundary_kill(w) {
                    return Poll::Kill;
                }
            }
            Next::Command(Command::RecordPlan(doc)) => {
                if let Err(e) = doc.check() {
                    w.fail("plan rules", format!("recovery {} recorded a plan that breaks its rules: {e}", rec.id));
                }
                let (now, id) = (w.now, rec.id);
                let r = w.store.set_plan(now, id, doc.to_json());
                let steps: Vec<String> = doc.steps.iter().map(|s| s.step.name()).collect();
                w.log(format!("recovery {id}: record plan [{}] -> {}", steps.join(" "), result(&r)));
                rec.machine.set_may_act(true);
                rec.next = Next::Command(rec.machine.plan_recorded(r));
                if faults::boundary_kill(w) {
                    return Poll::Kill;
                }
            }
            Next::Command(Command::RunStep { seq, step, check_first, needs_record }) => {
                let has_choice = rec.machine.doc().choice.is_some();
                invariants::on_perform(w, rec.id, seq, &step, check_first, rec.ctx.incarnation, has_choice);
                let (now, wall, id) = (w.now, w.wall(), rec.id);
                let started = w.store.step_started(now, id, seq, &step.name(), &step.detail(), wall);
                w.log(format!(
                    "recovery {id}: step {seq} {}{} starts{}",
                    step.name(),
                    if check_first { " (check first)" } else { "" },
                    started.as_ref().err().map(|e| format!(" (start not recorded: {e})")).unwrap_or_default()
                ));
                match started {
                    Err(e) if needs_record => {
                        // Without the record a restart could not resume safely: do not act.
                        let end = StepEnd::new(Ended::Failed, format!("cannot record the step in the state file: {e}"));
                        w.log(format!("recovery {id}: step {seq} {} not performed: {}", step.name(), end.message));
                        invariants::on_step_end(w, id, &step, &end, vetoes(rec, seq));
                        rec.next = Next::Command(rec.machine.step_ended(seq, end));
                    }
                    _ => {
                        let run = StepRun::start(w, rec.ctx, &step, check_first);
                        rec.next = Next::Step { seq, step, run };
                    }
                }
            }
            Next::Command(Command::Finish(f)) => return Poll::Done(finish(w, rec.id, f)),
            Next::Command(Command::Park { next_seq, reason }) => {
                let summary = format!("parked before step {next_seq}: {reason}");
                w.log(format!("recovery {}: {summary}", rec.id));
                return Poll::Done(Outcome {
                    id: rec.id,
                    status: None,
                    alert: true,
                    summary,
                    unrecorded: None,
                    new_primary: None,
                    block_until: None,
                });
            }
        }
    }
    Poll::Running
}

fn vetoes(rec: &Recovery, seq: i64) -> bool {
    PlanDoc::index_of(seq).and_then(|i| rec.machine.doc().steps.get(i)).is_some_and(|s| s.vetoes)
}

fn step_ended(rec: &mut Recovery, w: &mut World, seq: i64, step: &Step, end: StepEnd) {
    let (now, wall, id) = (w.now, w.wall(), rec.id);
    let recorded = w.store.step_finished(now, id, seq, end.how, &end.message, wall);
    w.log(format!(
        "recovery {id}: step {seq} {} -> {} ({}){}",
        step.name(),
        end.how.as_str(),
        end.message,
        recorded.err().map(|e| format!(" (end not recorded: {e})")).unwrap_or_default()
    ));
    invariants::on_step_end(w, id, step, &end, vetoes(rec, seq));
    rec.next = Next::Command(rec.machine.step_ended(seq, end));
}

fn result(r: &Result<(), String>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => format!("failed: {e}"),
    }
}

/// Record the end (retried, bounded) and the anti-flapping block, as
/// `pivot::recovery::driver::finish` does.
pub fn finish(w: &mut World, id: i64, f: Finish) -> Outcome {
    let block_until = f.block.then(|| w.wall() + w.cfg.timing.block_period_ms as i64);
    let mut block_recorded = false;
    let mut unrecorded = None;
    for _ in 0..FINISH_ATTEMPTS {
        match record_end(w, id, f.status, &f.summary, block_until, &mut block_recorded) {
            Ok(()) => {
                unrecorded = None;
                break;
            }
            Err(e) => unrecorded = Some(e),
        }
    }
    w.log(format!(
        "recovery {id} {}: {}{}",
        f.status.as_str(),
        f.summary,
        unrecorded.as_ref().map(|e| format!(" (end not recorded: {e})")).unwrap_or_default()
    ));
    invariants::on_finish(w, id, &f, block_recorded);
    Outcome {
        id,
        status: Some(f.status),
        alert: f.alert,
        summary: f.summary,
        unrecorded,
        new_primary: f.new_primary,
        block_until,
    }
}

/// Write the end of a recovery, as `pivot::recovery::driver::record_end`:
/// the anti-flapping block first, then the status (so a recovery never
/// looks ended without its block). `block_recorded` is set once the block is written.
pub fn record_end(
    w: &mut World,
    id: i64,
    status: Status,
    summary: &str,
    block_until: Option<i64>,
    block_recorded: &mut bool,
) -> Result<(), String> {
    let now = w.now;
    if let Some(until) = block_until {
        w.store.set_block(now, id, until)?;
        *block_recorded = true;
    }
    let wall = w.wall();
    w.store.finish_recovery(now, id, status, summary, wall)
}
