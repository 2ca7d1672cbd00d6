//! `pivot check --simulate`: the next failover as the recovery machine would
//! run it if the primary failed now, from the live readings, changing
//! nothing. The same [`RecoveryMachine`] the daemon drives is driven here
//! with every step reported as ended well.

use super::finding::Finding;
use crate::candidate::Choice;
use crate::control::{Command, Ended, FailoverRequest, FailoverSettings, RecoveryMachine, StepEnd};
use crate::instance::InstanceKey;
use crate::observation::{FailureKind, Observation, ProbeFailure, ProbeOutcome};
use crate::plan::Step;
use crate::time::Millis;
use crate::view::ClusterView;
use serde::{Deserialize, Serialize};

/// How the primary is taken to fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// The process is gone (crash, kill -9): connections are refused.
    Dead,
    /// The process is alive but answers nothing (stuck I/O, SIGSTOP).
    Hung,
    /// Cut off from pivot and its replicas; it may still serve clients.
    Partitioned,
}

impl FailureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureMode::Dead => "dead",
            FailureMode::Hung => "hung",
            FailureMode::Partitioned => "partitioned",
        }
    }

    fn failure(self) -> ProbeFailure {
        let (kind, message) = match self {
            FailureMode::Dead => (FailureKind::Refused, "simulated: connection refused"),
            FailureMode::Hung => (FailureKind::Timeout, "simulated: no answer in time"),
            FailureMode::Partitioned => (FailureKind::Network, "simulated: network unreachable"),
        };
        ProbeFailure { kind, message: message.to_string() }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStep {
    pub name: String,
    pub detail: String,
}

/// One replica and what the choice made of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimulatedReplica {
    pub instance: InstanceKey,
    pub received: String,
    pub chosen: bool,
    /// Why it wins, or why it is skipped.
    pub why: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Simulation {
    pub mode: FailureMode,
    pub failed_primary: InstanceKey,
    /// The replica that would be promoted; `None`: the failover is refused.
    pub winner: Option<InstanceKey>,
    /// The machine's summary: what it would promote, or why it refuses.
    pub summary: String,
    pub replicas: Vec<SimulatedReplica>,
    pub steps: Vec<SimStep>,
    /// The hook points that would run, in order.
    pub hooks: Vec<String>,
    /// GTIDs the primary had (as last read) that no surviving replica
    /// received: lost by the failover. Empty: none. `None`: unknown (pivot
    /// has no reading of the primary, or no replica was chosen).
    pub data_loss: Option<String>,
    pub notes: Vec<String>,
    /// Findings that would make the real failover fail where the dry run
    /// reports every step as ended well (see [`Simulation::with_blockers`]).
    /// Not empty: the failover would not promote anyone either.
    #[serde(default)]
    pub blockers: Vec<Finding>,
    /// Why the daemon would not start this failover by itself (automatic
    /// recovery off, blocked after a recent recovery, a recovery running),
    /// as the shell read them. Not empty: nobody would be promoted
    /// unless an operator acts.
    #[serde(default)]
    pub not_automatic: Vec<String>,
}

/// Hooks whose failure aborts a failover (the others are only reported).
const VETO_HOOKS: [&str; 3] = ["pre_failover", "fence", "mha_master_ip_failover"];

impl Simulation {
    /// The dry run reports every step as ended well; the live findings say
    /// whether a step would fail: pivot's account lacking a privilege on an
    /// instance the plan acts on (`PVT-E013`: the candidate is promoted and
    /// every replica is stopped and repointed), or a hook that aborts the
    /// failover when it cannot run (`PVT-E014`).
    pub fn with_blockers(mut self, findings: &[Finding]) -> Simulation {
        let acted_on = |f: &Finding| {
            f.instances.iter().any(|k| *k != self.failed_primary && self.replicas.iter().any(|r| r.instance == *k))
        };
        let vetoing = |f: &Finding| {
            VETO_HOOKS.iter().any(|h| self.hooks.iter().any(|r| r == h) && f.text.starts_with(&format!("hook {h} (")))
        };
        self.blockers = findings
            .iter()
            .filter(|f| (f.code == "PVT-E013" && acted_on(f)) || (f.code == "PVT-E014" && vetoing(f)))
            .cloned()
            .collect();
        self
    }

    /// Why the daemon would not start it by itself (see [`Simulation::not_automatic`]).
    pub fn with_not_automatic(mut self, reasons: Vec<String>) -> Simulation {
        self.not_automatic = reasons;
        self
    }

    /// Whether a replica would be promoted for real, without an operator.
    pub fn would_promote(&self) -> bool {
        self.winner.is_some() && self.blockers.is_empty() && self.not_automatic.is_empty()
    }
}

/// Dry-run a failover of `primary` failing as `mode` at `now`.
pub fn simulate(
    view: &ClusterView,
    primary: &InstanceKey,
    settings: &FailoverSettings,
    mode: FailureMode,
    now: Millis,
) -> Simulation {
    let mut view = view.clone();
    let at = Millis(view.records.values().map(|r| r.latest.at.0).max().unwrap_or(0).max(now.0) + 1);
    let outcome = ProbeOutcome::Unreachable { failure: mode.failure() };
    view.apply(Observation { instance: primary.clone(), at, latency_us: 0, outcome }, settings.lag_threshold_s);
    let request = FailoverRequest { automatic: true, target: None, force: false };
    let (mut machine, mut cmd) = RecoveryMachine::start(primary.clone(), view.clone(), settings.clone(), request);
    let mut ran: Vec<Step> = Vec::new();
    let summary = loop {
        cmd = match cmd {
            Command::RecordPlan(_) => machine.plan_recorded(Ok(())),
            Command::RunStep { seq, step, .. } => {
                let mut end = StepEnd::new(Ended::Ok, "simulated");
                if let Step::Observe { instances, .. } = &step {
                    end.observations = instances
                        .iter()
                        .filter_map(|k| view.get(k))
                        .map(|r| Observation { at: Millis(at.0 + 1), ..r.latest.clone() })
                        .collect();
                }
                ran.push(step);
                machine.step_ended(seq, end)
            }
            Command::Finish(f) => break f.summary,
            Command::Park { reason, .. } => break reason,
        };
    };
    let choice = machine.doc().choice.clone();
    let winner = machine.promoted().then(|| machine.candidate().cloned()).flatten();
    let primary_state = view.get(primary).and_then(|r| r.last_state());
    // Unknown without a reading of the primary: never "none".
    let data_loss = match (&choice, primary_state) {
        (Some(c), Some(p)) => Some(p.gtid.executed.subtract(&c.target).to_string()),
        _ => None,
    };
    let hooks = ran
        .iter()
        .filter_map(|s| match s {
            Step::Hook { point } => Some(point.as_str().to_string()),
            _ => None,
        })
        .collect();
    let steps = ran.iter().map(|s| SimStep { name: s.name(), detail: s.detail() }).collect();
    let replicas = choice.as_ref().map(explain).unwrap_or_default();
    let mut notes = notes(mode, settings, primary_state.map(|p| &p.semi_sync));
    if primary_state.is_none() {
        notes.push(format!("pivot has no reading of {primary}: the data-loss bound is unknown"));
    }
    Simulation {
        mode,
        failed_primary: primary.clone(),
        winner,
        summary,
        replicas,
        steps,
        hooks,
        data_loss,
        notes,
        blockers: Vec::new(),
        not_automatic: Vec::new(),
    }
}

/// Why the winner wins and each other replica does not.
fn explain(c: &Choice) -> Vec<SimulatedReplica> {
    let winner = c.report.iter().find(|r| r.instance == c.candidate);
    c.report
        .iter()
        .map(|r| {
            let chosen = r.instance == c.candidate;
            let why = if chosen {
                let mut why = Vec::new();
                if r.preferred {
                    why.push("listed in failover.preferred".to_string());
                }
                let same: Vec<String> = c
                    .report
                    .iter()
                    .filter(|o| o.eligible && o.instance != r.instance && o.received == r.received)
                    .map(|o| o.instance.to_string())
                    .collect();
                if same.is_empty() {
                    why.push("eligible and most advanced of the eligible replicas".to_string());
                } else {
                    why.push(format!("eligible; received as much as {} and comes first by address", same.join(", ")));
                }
                if let Some(from) = &c.catch_up_from {
                    why.push(format!("catches up from {from} first"));
                }
                why.join("; ")
            } else if r.eligible {
                let w = winner.map(|w| w.received.clone()).unwrap_or_default();
                if w == r.received {
                    format!("eligible, ranked after {} (same data, later by preference or address)", c.candidate)
                } else {
                    format!("eligible, ranked after {} (received {}, the winner {w})", c.candidate, r.received)
                }
            } else {
                format!("skipped: {}", r.reasons.join("; "))
            };
            SimulatedReplica { instance: r.instance.clone(), received: r.received.clone(), chosen, why }
        })
        .collect()
}

pub(super) fn notes(
    mode: FailureMode,
    settings: &FailoverSettings,
    semi_sync: Option<&crate::observation::SemiSyncState>,
) -> Vec<String> {
    let lossless = semi_sync.is_some_and(|s| {
        s.primary_enabled
            && s.primary_wait_point.as_deref().is_some_and(|w| w.eq_ignore_ascii_case("AFTER_SYNC"))
            && s.primary_wait_no_replica != Some(false)
            && s.primary_timeout_ms.is_some_and(|t| t >= 24 * 3600 * 1000)
    });
    let acked = if lossless {
        "semi-sync AFTER_SYNC without fallback: none of it was acknowledged to a client"
    } else {
        "without lossless semi-sync some of it may have been acknowledged to clients"
    };
    let mut out = vec![format!(
        "the data-loss bound compares the primary's binary log as pivot last read it with what the most advanced \
         replica received; anything the primary wrote after that reading is lost too ({acked})"
    )];
    match mode {
        FailureMode::Dead => {}
        FailureMode::Hung => out.push(
            "a hung primary may hold commits no replica received; its replicas' IO threads are ended, not \
             waited for, and pivot fences it (read_only) if it ever answers again"
                .to_string(),
        ),
        FailureMode::Partitioned => out.push(if settings.hooks.fence {
            "a partitioned primary may still take writes from clients on its side: the fence hook runs before \
             the promotion"
                .to_string()
        } else {
            "a partitioned primary may still take writes from clients on its side until it is fenced, and no \
             fence hook is configured ([cluster.hooks] fence) to stop it"
                .to_string()
        }),
    }
    out
}
