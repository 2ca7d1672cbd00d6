//! A plan as data: the versioned document stored with a recovery, read back
//! by a restarted pivot. Step numbers are derived (position + 1), never stored
//! apart from the steps.

use super::step::{OnResume, Step};
use crate::candidate::Choice;
use crate::instance::InstanceKey;
use serde::{Deserialize, Serialize};

/// The version of the plan document this pivot writes and reads.
pub const PLAN_VERSION: u32 = 3;
/// Older versions this pivot still reads (their steps are a subset).
const READS_VERSIONS: [u32; 2] = [2, 3];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    Failover,
    /// A planned switchover: `failed_primary` is the live primary handing over.
    Switchover,
}

/// A step with what it declares: veto, resume rule, undo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub step: Step,
    pub vetoes: bool,
    pub on_resume: OnResume,
    /// Steps that undo this one's effect when the plan is abandoned before
    /// the promotion (empty: nothing to undo).
    pub undo: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDoc {
    pub version: u32,
    pub kind: PlanKind,
    pub failed_primary: InstanceKey,
    /// The failover was forced: a resume keeps overriding what was overridden.
    pub force: bool,
    /// Set once the candidate is chosen.
    pub choice: Option<Choice>,
    pub steps: Vec<PlannedStep>,
}

impl PlanDoc {
    pub fn new(kind: PlanKind, failed_primary: InstanceKey, force: bool) -> PlanDoc {
        PlanDoc { version: PLAN_VERSION, kind, failed_primary, force, choice: None, steps: Vec::new() }
    }

    /// Append `step` with the declarations of its kind and `undo`.
    pub fn push(&mut self, step: Step, undo: Vec<Step>) {
        let (vetoes, on_resume) = (step.vetoes(), step.on_resume());
        self.steps.push(PlannedStep { step, vetoes, on_resume, undo });
    }

    /// The step number of the step at `index`.
    pub fn seq(index: usize) -> i64 {
        index as i64 + 1
    }

    pub fn index_of(seq: i64) -> Option<usize> {
        usize::try_from(seq).ok()?.checked_sub(1)
    }

    pub fn promote_index(&self) -> Option<usize> {
        self.steps.iter().position(|s| matches!(s.step, Step::Promote { .. }))
    }

    pub fn candidate(&self) -> Option<&InstanceKey> {
        self.choice.as_ref().map(|c| &c.candidate)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plans serialize")
    }

    /// Read a stored plan. A plan of another version, or one that breaks the
    /// order rules, is refused with the reason: it is left for an operator.
    pub fn from_json(text: &str) -> Result<PlanDoc, String> {
        #[derive(Deserialize)]
        struct Version {
            version: Option<u32>,
        }
        let v: Version = serde_json::from_str(text).map_err(|e| format!("not a plan document: {e}"))?;
        match v.version {
            Some(v) if READS_VERSIONS.contains(&v) => {}
            Some(other) => return Err(format!("plan version {other}; this pivot reads versions {READS_VERSIONS:?}")),
            None => return Err(format!("a plan without a version (written before version {PLAN_VERSION})")),
        }
        let doc: PlanDoc =
            serde_json::from_str(text).map_err(|e| format!("plan version {}: {e}", v.version.unwrap_or(0)))?;
        doc.check()?;
        Ok(doc)
    }

    /// The order rules every plan keeps (asserted when a plan is built,
    /// checked when one is read back).
    pub fn check(&self) -> Result<(), String> {
        let promotes: Vec<usize> = self
            .steps
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.step, Step::Promote { .. }))
            .map(|(i, _)| i)
            .collect();
        if promotes.len() > 1 {
            return Err(format!("{} promotions in one plan", promotes.len()));
        }
        if let Some(&p) = promotes.first() {
            let fence = self.steps.iter().position(|s| matches!(s.step, Step::RegisterFence { .. }));
            if fence.is_none_or(|f| f > p) {
                return Err("the promotion comes before the old primary is registered for fencing".into());
            }
            if let Some(late) = self.steps[p + 1..].iter().find(|s| s.vetoes) {
                return Err(format!("{} after the promotion declares a veto", late.step.name()));
            }
        }
        if self.kind == PlanKind::Switchover {
            if let Some(&p) = promotes.first() {
                // The old primary takes no write the candidate may miss.
                let before = |f: &dyn Fn(&Step) -> bool| self.steps[..p].iter().any(|s| f(&s.step));
                if !before(&|s| matches!(s, Step::MakeReadOnly { instance } if *instance == self.failed_primary)) {
                    return Err("a switchover promotes before the old primary is read-only".into());
                }
                if !before(&|s| matches!(s, Step::WaitCaughtUp { .. })) {
                    return Err("a switchover promotes before the candidate caught up".into());
                }
            }
        }
        // Routes follow the stored epoch of a promotion, never precede it.
        let epoch = self.steps.iter().position(|s| matches!(s.step, Step::RecordEpoch { .. }));
        if let Some(e) = epoch {
            if promotes.first().is_none_or(|p| *p > e) {
                return Err("the epoch is stored before the promotion".into());
            }
        }
        if let Some(r) = self.steps.iter().position(|s| matches!(s.step, Step::UpdateRoute { .. })) {
            if epoch.is_none_or(|e| e > r) {
                return Err("a route is updated before the new epoch is stored".into());
            }
        }
        for s in &self.steps {
            if s.vetoes != s.step.vetoes() || s.on_resume != s.step.on_resume() {
                return Err(format!("{} declares other rules than a {} step has", s.step.name(), s.step.name()));
            }
        }
        if let (Some(p), Some(choice)) = (promotes.first(), &self.choice) {
            if let Step::Promote { instance, .. } = &self.steps[*p].step {
                if *instance != choice.candidate {
                    return Err(format!("it promotes {instance}, not the chosen candidate {}", choice.candidate));
                }
            }
        }
        if let Some(first_undo) = self.steps.iter().position(|s| s.step.is_undo()) {
            if let Some(s) = self.steps[first_undo..].iter().find(|s| !s.step.is_undo() && !is_closing_hook(&s.step)) {
                return Err(format!("{} comes after the plan was abandoned", s.step.name()));
            }
        }
        Ok(())
    }
}

fn is_closing_hook(step: &Step) -> bool {
    matches!(step, Step::Hook { point: super::HookPoint::PostUnsuccessfulFailover })
}
