//! The recovery state machine: runs a plan one step at a time.
//!
//! The shell asks for a [`Command`], performs it, and feeds the result back
//! ([`RecoveryMachine::plan_recorded`], [`RecoveryMachine::step_ended`]). The
//! machine decides everything: which step runs next, whether a failure
//! abandons the plan, which undo steps run, when it parks because this
//! process may no longer act, and how the recovery ends. The daemon, the CLI
//! and the simulator all drive this same machine.

use super::ended::Ended;
use crate::candidate::{choose, ChoiceRequest, PromotionRules};
use crate::instance::InstanceKey;
use crate::observation::Observation;
use crate::plan::{extend_failover_fenced, failover_prelude, undo_steps, HookSet, PlanDoc, Step};
use crate::topology::Topology;
use crate::view::ClusterView;
use serde::{Deserialize, Serialize};

/// How to tell whether the failed primary had semi-sync on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SemiSyncPolicy {
    /// As the failed primary was last seen.
    #[default]
    Auto,
    On,
    Off,
}

/// What a failover needs to know of the configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailoverSettings {
    pub rules: PromotionRules,
    pub semi_sync: SemiSyncPolicy,
    pub hooks: HookSet,
    pub lag_threshold_s: u64,
    /// Routes a promotion updates, in this order.
    pub routes: Vec<crate::routes::RouteSpec>,
    pub switchover: crate::plan::SwitchoverLimits,
    /// Replication credentials are configured: a switchover can make the
    /// old primary a replica.
    pub replication_credentials: bool,
}

/// Who asked for the failover.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailoverRequest {
    pub automatic: bool,
    /// Only this replica may become the primary.
    pub target: Option<InstanceKey>,
    /// Override the safety rules that can be overridden.
    pub force: bool,
}

/// How a recovery ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// A new primary was promoted and every step ended well.
    Succeeded,
    /// Promoted, but something after the promotion failed.
    SucceededWithErrors,
    /// Promoted, but a required route could not be updated: clients may
    /// not reach the new primary.
    Failed,
    /// Refused or abandoned before the promotion; what was done was undone.
    Aborted,
    /// Stopped without a plan pivot can follow: left for an operator.
    Interrupted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Succeeded => "succeeded",
            Status::SucceededWithErrors => "succeeded_with_errors",
            Status::Failed => "failed",
            Status::Aborted => "aborted",
            Status::Interrupted => "interrupted",
        }
    }

    pub fn promoted(self) -> bool {
        matches!(self, Status::Succeeded | Status::SucceededWithErrors | Status::Failed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    pub status: Status,
    pub summary: String,
    pub new_primary: Option<InstanceKey>,
    pub lost: Vec<InstanceKey>,
    /// Start the anti-flapping block (a new primary was put in place, or
    /// pivot cannot tell what state the cluster is in).
    pub block: bool,
    /// Operators must be told (beyond the usual log line).
    pub alert: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Store the plan (replacing the stored one) before anything else.
    RecordPlan(PlanDoc),
    /// Record the step's start, perform it, record its end, report.
    /// `check_first`: it was interrupted; see whether its effect is in place.
    /// `needs_record`: without the start record it must not run (undo
    /// steps run even when the state file cannot be written).
    RunStep { seq: i64, step: Step, check_first: bool, needs_record: bool },
    /// Record the end of the recovery.
    Finish(Finish),
    /// This process may not act now: stop here, leave the recovery running
    /// for whoever may act to resume.
    Park { next_seq: i64, reason: String },
}

/// What performing a step came to.
#[derive(Clone, Debug, PartialEq)]
pub struct StepEnd {
    pub how: Ended,
    pub message: String,
    /// Replicas that could not be made to follow.
    pub lost: Vec<(InstanceKey, String)>,
    /// Readings taken by an [`Step::Observe`] step.
    pub observations: Vec<Observation>,
}

impl StepEnd {
    pub fn new(how: Ended, message: impl Into<String>) -> StepEnd {
        StepEnd { how, message: message.into(), lost: vec![], observations: vec![] }
    }
}

#[derive(Clone, Debug)]
pub struct RecoveryMachine {
    settings: FailoverSettings,
    request: FailoverRequest,
    view: ClusterView,
    doc: PlanDoc,
    /// How each step ended, by index; `None`: not ended (maybe interrupted).
    ends: Vec<Option<Ended>>,
    /// Indices of the steps that started, in order.
    started: Vec<usize>,
    next: usize,
    /// Set at a restart: the step at `next` was interrupted.
    interrupted: Option<usize>,
    /// Why the plan was abandoned (undo steps run).
    abandoned: Option<String>,
    promoted: bool,
    errors: Vec<String>,
    lost: Vec<(InstanceKey, String)>,
    may_act: bool,
    /// A stop was asked for (graceful shutdown, Ctrl-C).
    stopping: bool,
    resumed: bool,
    finished: bool,
}

impl RecoveryMachine {
    /// A new failover of `failed`. Everything is validated first: if the
    /// failover cannot be made safe the first command finishes it as
    /// aborted, before anything changed.
    pub fn start(
        failed: InstanceKey,
        view: ClusterView,
        settings: FailoverSettings,
        request: FailoverRequest,
    ) -> (RecoveryMachine, Command) {
        let topology = Topology::derive(&view);
        let replicas: Vec<InstanceKey> = topology.replicas(&failed).to_vec();
        let reachable: Vec<InstanceKey> =
            replicas.iter().filter(|r| view.get(r).is_some_and(|rec| rec.reachable())).cloned().collect();
        let answers = view.get(&failed).is_some_and(|r| r.reachable());
        let doc = failover_prelude(&failed, &replicas, &reachable, answers, request.force);
        let mut m = RecoveryMachine::with_doc(doc, view, settings, request);
        if let Err(why) = m.validate(answers) {
            m.finished = true;
            let cmd = Command::Finish(Finish {
                status: Status::Aborted,
                summary: format!("{why}; nothing was changed"),
                new_primary: None,
                lost: vec![],
                block: false,
                alert: true,
            });
            m.abandoned = Some(why);
            return (m, cmd);
        }
        let cmd = Command::RecordPlan(m.doc.clone());
        (m, cmd)
    }

    fn with_doc(doc: PlanDoc, view: ClusterView, settings: FailoverSettings, request: FailoverRequest) -> Self {
        let n = doc.steps.len();
        RecoveryMachine {
            settings,
            request,
            view,
            doc,
            ends: vec![None; n],
            started: Vec::new(),
            next: 0,
            interrupted: None,
            abandoned: None,
            promoted: false,
            errors: Vec::new(),
            lost: Vec::new(),
            may_act: true,
            stopping: false,
            resumed: false,
            finished: false,
        }
    }

    /// Before anything changes: a live primary needs `force`, and a
    /// candidate must exist (the one requested, if any).
    fn validate(&self, answers: bool) -> Result<(), String> {
        let failed = &self.doc.failed_primary;
        if answers && !self.request.force {
            return Err(format!(
                "the primary {failed} answers; failing it over would cut off a live primary \
                 (--force fences it first and fails over anyway)"
            ));
        }
        self.choose().map(|_| ())
    }

    fn choose(&self) -> Result<crate::candidate::Choice, String> {
        self.choose_under(&self.settings.rules)
    }

    /// The candidate under `rules` (the configured ones, or stricter).
    fn choose_under(&self, rules: &PromotionRules) -> Result<crate::candidate::Choice, String> {
        let topology = Topology::derive(&self.view);
        let request = ChoiceRequest {
            view: &self.view,
            topology: &topology,
            failed_primary: &self.doc.failed_primary,
            rules,
            target: self.request.target.as_ref(),
            force: self.request.force,
        };
        choose(&request).map_err(|r| format!("refused: {r}"))
    }

    pub fn doc(&self) -> &PlanDoc {
        &self.doc
    }

    pub fn failed_primary(&self) -> &InstanceKey {
        &self.doc.failed_primary
    }

    pub fn candidate(&self) -> Option<&InstanceKey> {
        self.doc.candidate()
    }

    pub fn lost(&self) -> impl Iterator<Item = &InstanceKey> {
        self.doc.choice.iter().flat_map(|c| c.lost.iter().map(|(k, _)| k)).chain(self.lost.iter().map(|(k, _)| k))
    }

    /// Why the plan was abandoned, once it was.
    pub fn abandoned(&self) -> Option<&str> {
        self.abandoned.as_deref()
    }

    pub fn promoted(&self) -> bool {
        self.promoted
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Whether this process may act (the gate's slot: always with one pivot
    /// node; a lease with several). Checked before every step.
    pub fn set_may_act(&mut self, may: bool) {
        self.may_act = may;
    }

    /// A stop was asked for: a failover parks at the next step boundary (the
    /// next pivot resumes it); a switchover not promoted yet rolls back
    /// first, so the old primary is the writer again rather than nobody.
    pub fn set_stopping(&mut self, stopping: bool) {
        self.stopping = stopping;
    }

    /// The result of a [`Command::RecordPlan`].
    pub fn plan_recorded(&mut self, result: Result<(), String>) -> Command {
        match result {
            Ok(()) => self.advance(),
            Err(e) if self.abandoned.is_some() => {
                // Undo runs even when it cannot be recorded: the cluster comes first.
                self.errors.push(format!("cannot record the undo steps: {e}"));
                self.advance()
            }
            Err(e) if self.started.is_empty() => {
                self.finished = true;
                Command::Finish(Finish {
                    status: Status::Aborted,
                    summary: format!("cannot record the plan in the state file: {e}; nothing was changed"),
                    new_primary: None,
                    lost: vec![],
                    block: false,
                    alert: true,
                })
            }
            Err(e) => self.abandon(format!("cannot record the plan in the state file: {e}")),
        }
    }

    /// The result of a [`Command::RunStep`].
    pub fn step_ended(&mut self, seq: i64, end: StepEnd) -> Command {
        let i = PlanDoc::index_of(seq).expect("step numbers start at 1");
        assert_eq!(i, self.next, "step {seq} ended but step {} was running", PlanDoc::seq(self.next));
        assert!(self.ends[i].is_none(), "step {seq} ended twice");
        self.ends[i] = Some(end.how);
        self.interrupted = None;
        self.next = i + 1;
        let step = self.doc.steps[i].step.clone();
        for (k, why) in end.lost {
            if !self.lost.iter().any(|(l, _)| *l == k) {
                self.lost.push((k, why));
            }
        }
        let failed = !end.how.succeeded();
        if failed && self.doc.steps[i].vetoes && !self.promoted && self.abandoned.is_none() {
            return self.abandon(format!("{}: {}", step.name(), end.message));
        }
        if failed {
            self.errors.push(format!("{}: {}", step.name(), end.message));
        }
        match &step {
            Step::Promote { instance, .. } if !failed => {
                assert!(!self.promoted, "a recovery promotes at most one instance");
                self.promoted = true;
                assert_eq!(Some(instance), self.doc.candidate(), "only the chosen candidate is promoted");
            }
            Step::Observe { .. } => {
                for obs in end.observations {
                    self.view.apply(obs, self.settings.lag_threshold_s);
                }
                if self.abandoned.is_none() {
                    return self.after_observe();
                }
            }
            _ => {}
        }
        self.advance()
    }

    /// Fresh readings are in: abandon if the primary answers again (unless
    /// forced: then it is fenced first), else choose and extend the plan.
    fn after_observe(&mut self) -> Command {
        let failed = self.doc.failed_primary.clone();
        let answers = self.view.get(&failed).is_some_and(|r| r.reachable());
        let fenced = self.fenced_live_primary();
        if answers && !fenced {
            if !self.request.force {
                return self.abandon(format!("the primary {failed} answers again: failover abandoned"));
            }
            self.doc
                .push(Step::FenceLivePrimary { instance: failed.clone() }, vec![Step::Unfence { instance: failed }]);
            self.ends.push(None);
        }
        let choice = match self.choose() {
            Ok(c) => c,
            Err(why) => return self.abandon(why),
        };
        let semi_sync = match self.settings.semi_sync {
            SemiSyncPolicy::On => true,
            SemiSyncPolicy::Off => false,
            // As the failed primary was last seen; a pivot that never saw it
            // (started after it died) goes by the replicas' side.
            SemiSyncPolicy::Auto => match self.view.get(&self.doc.failed_primary).and_then(|r| r.last_state()) {
                Some(s) => s.semi_sync.primary_enabled,
                None => choice
                    .followers
                    .iter()
                    .chain([&choice.candidate])
                    .filter_map(|k| self.view.get(k).and_then(|r| r.last_state()))
                    .any(|s| s.semi_sync.replica_enabled),
            },
        };
        let fenced = self.view.fenced.contains(&choice.candidate);
        extend_failover_fenced(&mut self.doc, choice, semi_sync, self.settings.hooks, &self.settings.routes, fenced);
        self.ends.resize(self.doc.steps.len(), None);
        Command::RecordPlan(self.doc.clone())
    }

    fn fenced_live_primary(&self) -> bool {
        self.doc
            .steps
            .iter()
            .zip(&self.ends)
            .any(|(s, e)| matches!(s.step, Step::FenceLivePrimary { .. }) && e.is_some_and(Ended::succeeded))
    }

    /// Give up before the promotion: append the undo of every step that
    /// started, and the post-unsuccessful hook.
    fn abandon(&mut self, why: String) -> Command {
        assert!(!self.promoted, "nothing is abandoned after the promotion");
        self.abandoned = Some(why);
        // Steps not started are dropped from what runs; the undo follows the
        // last step that started.
        let undo = undo_steps(&self.doc, &self.started);
        let keep = self.started.iter().max().map_or(0, |m| m + 1);
        self.doc.steps.truncate(keep);
        self.ends.truncate(keep);
        for s in undo {
            self.doc.push(s, vec![]);
        }
        if self.settings.hooks.post_unsuccessful_failover {
            self.doc.push(Step::Hook { point: crate::plan::HookPoint::PostUnsuccessfulFailover }, vec![]);
        }
        self.ends.resize(self.doc.steps.len(), None);
        self.next = keep;
        Command::RecordPlan(self.doc.clone())
    }

    fn advance(&mut self) -> Command {
        if self.next >= self.doc.steps.len() {
            return self.finish();
        }
        let switchover = self.doc.kind == crate::plan::PlanKind::Switchover;
        if self.stopping && self.may_act && switchover && !self.promoted && self.abandoned.is_none() {
            return self.abandon("pivot is stopping before the promotion: switchover rolled back".into());
        }
        let rolling_back = switchover && self.abandoned.is_some();
        if !self.may_act || (self.stopping && !rolling_back) {
            return Command::Park {
                next_seq: PlanDoc::seq(self.next),
                reason: "this pivot process may not act now; the recovery is left for the one that may".into(),
            };
        }
        let i = self.next;
        if let Some(p) = self.doc.promote_index().filter(|p| i > *p) {
            assert!(
                self.abandoned.is_some() || self.ends[p].is_some_and(Ended::succeeded),
                "nothing after the promotion runs unless the promotion ended well"
            );
        }
        if !self.started.contains(&i) {
            self.started.push(i);
        }
        let planned = &self.doc.steps[i];
        let check_first = self.interrupted == Some(i) && planned.on_resume == crate::plan::OnResume::CheckFirst;
        Command::RunStep {
            seq: PlanDoc::seq(i),
            step: planned.step.clone(),
            check_first,
            needs_record: !planned.step.is_undo(),
        }
    }

    fn finish(&mut self) -> Command {
        self.finished = true;
        let lost: Vec<InstanceKey> = self.lost().cloned().collect();
        if let Some(why) = &self.abandoned {
            let mut summary = why.clone();
            if !self.errors.is_empty() {
                summary.push_str(&format!("; undoing: {}", self.errors.join("; ")));
            }
            if self.resumed {
                summary = format!("resumed after a pivot restart; {summary}");
            }
            return Command::Finish(Finish {
                status: Status::Aborted,
                summary,
                new_primary: None,
                lost: vec![],
                block: false,
                alert: true,
            });
        }
        assert!(self.promoted, "a plan that was not abandoned promoted its candidate");
        let candidate = self.doc.candidate().cloned().expect("a promoted plan has a candidate");
        let switchover = self.doc.kind == crate::plan::PlanKind::Switchover;
        let mut summary = if switchover {
            format!("switched over to {candidate} (was {}, now its replica)", self.doc.failed_primary)
        } else {
            format!("promoted {candidate} (was {})", self.doc.failed_primary)
        };
        if let Some(choice) = &self.doc.choice {
            if !choice.followers.is_empty() {
                let ok: Vec<String> =
                    choice.followers.iter().filter(|f| !lost.contains(f)).map(ToString::to_string).collect();
                let ok = if ok.is_empty() { "none".to_string() } else { ok.join(", ") };
                summary.push_str(&format!("; replicas following it: {ok}"));
            }
            for (k, why) in choice.lost.iter().chain(&self.lost) {
                summary.push_str(&format!("; lost {k}: {why}"));
            }
        }
        for e in &self.errors {
            summary.push_str(&format!("; {e}"));
        }
        if self.resumed {
            summary = format!("resumed after a pivot restart; {summary}");
        }
        let route_failed = self.doc.steps.iter().zip(&self.ends).any(|(s, e)| {
            matches!(s.step, Step::UpdateRoute { required: true, .. }) && e.is_some_and(|e| !e.succeeded())
        });
        let status = if route_failed {
            summary.push_str("; a required route was not updated: clients may not reach the new primary");
            Status::Failed
        } else if self.errors.is_empty() {
            Status::Succeeded
        } else {
            Status::SucceededWithErrors
        };
        Command::Finish(Finish {
            status,
            summary,
            new_primary: Some(candidate),
            lost,
            // A planned switchover must not hold back the failover of the
            // new primary should it die.
            block: !switchover,
            alert: status != Status::Succeeded,
        })
    }
}

mod resume;
mod switchover;

pub use resume::RecordedStep;
