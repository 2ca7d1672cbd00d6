//! Choosing the replica to promote when a primary failed.
//!
//! Every direct replica of the failed primary is judged: reachable, binary
//! log on, no errant transactions, healthy SQL thread, the same filters as the
//! others, not delayed, not newer than the others, not lagging too much, not
//! marked never-promote. The eligible ones are ranked: preferred first, then by
//! what they received, then by what they applied. If the winner received less
//! than another replica, it first catches up from that replica, so nothing a
//! surviving replica has is lost. Replicas that cannot follow are reported as
//! lost, never dropped silently.

use crate::analysis::errant_gtids;
use crate::gtid::GtidSet;
use crate::instance::InstanceKey;
use crate::observation::{InstanceState, ReplicationFilters};
use crate::topology::Topology;
use crate::view::ClusterView;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromotionRules {
    pub preferred: Vec<InstanceKey>,
    pub never_promote: Vec<InstanceKey>,
    /// Replicas whose last known lag is above this are not promoted.
    pub max_lag_s: u64,
}

/// Why a replica is not promoted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    Unreachable,
    NotAReplicaOfTheFailedPrimary,
    NeverPromote,
    BinlogOff,
    ReplicaUpdatesOff,
    ErrantGtids { gtids: String },
    ReplicationError { number: u32, message: String },
    FiltersDiffer,
    Delayed { seconds: u64 },
    NewerThanReplica { replica: InstanceKey },
    Lagging { seconds: u64, limit: u64 },
}

impl SkipReason {
    /// Whether `--force` may override it. Unreachable or unrelated instances
    /// cannot be promoted whatever the operator says.
    pub fn overridable(&self) -> bool {
        !matches!(self, SkipReason::Unreachable | SkipReason::NotAReplicaOfTheFailedPrimary)
    }
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SkipReason::Unreachable => write!(f, "unreachable"),
            SkipReason::NotAReplicaOfTheFailedPrimary => write!(f, "does not replicate from the failed primary"),
            SkipReason::NeverPromote => write!(f, "marked never_promote"),
            SkipReason::BinlogOff => write!(f, "binary log off"),
            SkipReason::ReplicaUpdatesOff => {
                write!(f, "log_slave_updates off: could not serve the other replicas what it received")
            }
            SkipReason::ErrantGtids { gtids } => write!(f, "errant GTIDs the primary never had: {gtids}"),
            SkipReason::ReplicationError { number, message } => {
                write!(f, "SQL thread stopped with error {number} ({message}): its data is incomplete")
            }
            SkipReason::FiltersDiffer => write!(f, "replication filters differ from the other replicas'"),
            SkipReason::Delayed { seconds } => write!(f, "delayed replica ({seconds}s)"),
            SkipReason::NewerThanReplica { replica } => {
                write!(f, "newer server version than replica {replica}, which could not replicate from it")
            }
            SkipReason::Lagging { seconds, limit } => write!(f, "lagging {seconds}s (limit {limit}s)"),
        }
    }
}

/// One replica as the choice saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateReport {
    pub instance: InstanceKey,
    pub received: String,
    pub preferred: bool,
    pub eligible: bool,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub candidate: InstanceKey,
    /// The replica the candidate first replicates from, to get what only it received.
    pub catch_up_from: Option<InstanceKey>,
    /// What the most advanced usable replica received: the candidate applies
    /// all of it before it opens for writes.
    pub target: GtidSet,
    /// Replicas to repoint to the candidate.
    pub followers: Vec<InstanceKey>,
    /// Replicas that cannot follow now, with why.
    pub lost: Vec<(InstanceKey, String)>,
    pub report: Vec<CandidateReport>,
    /// Safety rules `--force` overrode, in words.
    pub overridden: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub reason: String,
    pub report: Vec<CandidateReport>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason)?;
        for r in &self.report {
            let verdict = if r.eligible { "eligible".to_string() } else { r.reasons.join("; ") };
            write!(
                f,
                "\n  {} (received {}): {verdict}",
                r.instance,
                if r.received.is_empty() { "-" } else { &r.received }
            )?;
        }
        Ok(())
    }
}

pub struct ChoiceRequest<'a> {
    pub view: &'a ClusterView,
    pub topology: &'a Topology,
    pub failed_primary: &'a InstanceKey,
    pub rules: &'a PromotionRules,
    /// Only this replica may be chosen (`pivot failover --to`).
    pub target: Option<&'a InstanceKey>,
    /// Override the rules `SkipReason::overridable` allows.
    pub force: bool,
}

struct Judged<'a> {
    key: &'a InstanceKey,
    state: Option<&'a InstanceState>,
    received: Option<GtidSet>,
    lag: Option<u64>,
    preferred: bool,
    reasons: Vec<SkipReason>,
}

impl Judged<'_> {
    fn usable_source(&self) -> bool {
        self.reasons.iter().all(|r| {
            matches!(r, SkipReason::NeverPromote | SkipReason::NewerThanReplica { .. } | SkipReason::Lagging { .. })
        })
    }

    fn report(&self) -> CandidateReport {
        CandidateReport {
            instance: self.key.clone(),
            received: self.received.as_ref().map(ToString::to_string).unwrap_or_default(),
            preferred: self.preferred,
            eligible: self.reasons.is_empty(),
            reasons: self.reasons.iter().map(ToString::to_string).collect(),
        }
    }
}

pub fn choose(req: &ChoiceRequest) -> Result<Choice, Refusal> {
    let replicas = req.topology.replicas(req.failed_primary);
    if replicas.is_empty() {
        return Err(Refusal { reason: format!("{} has no replicas to promote", req.failed_primary), report: vec![] });
    }
    let primary_state = req.view.get(req.failed_primary).and_then(|r| r.last_state());
    let peers: Vec<(&InstanceKey, Option<&InstanceState>)> =
        replicas.iter().map(|r| (r, req.view.get(r).and_then(|rec| rec.current_state()))).collect();
    let filters = majority_filters(&peers);
    let judged: Vec<Judged> =
        peers.iter().map(|(key, state)| judge(req, key, *state, primary_state, &filters, &peers)).collect();
    let mut report: Vec<CandidateReport> = judged.iter().map(Judged::report).collect();
    let refuse = |reason: String, report: Vec<CandidateReport>| Err(Refusal { reason, report });

    // The most advanced replica whose data can be served to the others.
    let best = judged
        .iter()
        .filter(|j| j.usable_source() && j.received.is_some())
        .max_by_key(|j| (j.received.as_ref().map(GtidSet::weight), std::cmp::Reverse(j.key)));
    let Some(best) = best else {
        return refuse("no reachable replica can serve as the new primary".into(), report);
    };
    let target = best.received.clone().expect("sources have positions");
    let mut overridden = Vec::new();
    for j in &judged {
        let Some(got) = &j.received else { continue };
        if !target.reaches(got) {
            let msg = format!(
                "{} received {got}, more than any replica that can serve it ({} has {target}): promoting would lose it",
                j.key, best.key
            );
            if !req.force {
                return refuse(msg, report);
            }
            overridden.push(msg);
        }
    }

    let allowed = |j: &&Judged| req.target.is_none_or(|t| j.key == t);
    let mut eligible: Vec<&Judged> = judged.iter().filter(allowed).filter(|j| j.reasons.is_empty()).collect();
    if eligible.is_empty() && req.force {
        eligible = judged
            .iter()
            .filter(allowed)
            .filter(|j| j.state.is_some() && j.reasons.iter().all(SkipReason::overridable))
            .collect();
        for j in &eligible {
            overridden.extend(j.reasons.iter().map(|r| format!("{}: {r}", j.key)));
        }
    }
    if let Some(t) = req.target {
        for r in report.iter_mut().filter(|r| &r.instance != t) {
            r.eligible = false;
            r.reasons.push(format!("not the requested target {t}"));
        }
    }
    eligible.sort_by_key(|j| {
        (
            std::cmp::Reverse(j.preferred),
            std::cmp::Reverse(j.received.as_ref().map(GtidSet::weight)),
            std::cmp::Reverse(j.state.map(|s| s.gtid.applied.weight())),
            j.lag,
            j.key.clone(),
        )
    });
    let Some(winner) = eligible.first() else {
        let reason = match req.target {
            Some(t) if !replicas.contains(t) => {
                format!("the requested target {t} is not a replica of {}", req.failed_primary)
            }
            Some(t) => format!("the requested target {t} cannot be promoted (--force overrides what can be)"),
            None => "no replica can be promoted".to_string(),
        };
        return refuse(reason, report);
    };
    let candidate = winner.key.clone();
    let got = winner.received.clone().expect("eligible replicas are reachable");
    let catch_up_from = (!got.reaches(&target)).then(|| best.key.clone());
    let followers: Vec<InstanceKey> =
        judged.iter().filter(|j| j.key != &candidate && j.state.is_some()).map(|j| j.key.clone()).collect();
    let lost: Vec<(InstanceKey, String)> = judged
        .iter()
        .filter(|j| j.state.is_none())
        .map(|j| (j.key.clone(), format!("unreachable during the failover: repoint it to {candidate} when it is back")))
        .collect();
    Ok(Choice { candidate, catch_up_from, target, followers, lost, report, overridden })
}

fn judge<'a>(
    req: &ChoiceRequest<'a>,
    key: &'a InstanceKey,
    state: Option<&'a InstanceState>,
    primary_state: Option<&InstanceState>,
    majority_filters: &ReplicationFilters,
    peers: &[(&InstanceKey, Option<&InstanceState>)],
) -> Judged<'a> {
    let preferred = req.rules.preferred.contains(key);
    let lag = req.view.get(key).and_then(|r| r.last_known_lag_s);
    let mut reasons = Vec::new();
    let Some(st) = state else {
        return Judged { key, state, received: None, lag, preferred, reasons: vec![SkipReason::Unreachable] };
    };
    let Some(repl) = st.replication.as_ref().filter(|r| &r.source == req.failed_primary) else {
        let reasons = vec![SkipReason::NotAReplicaOfTheFailedPrimary];
        return Judged { key, state, received: None, lag, preferred, reasons };
    };
    if req.rules.never_promote.contains(key) {
        reasons.push(SkipReason::NeverPromote);
    }
    if !st.log_bin {
        reasons.push(SkipReason::BinlogOff);
    }
    if peers.len() > 1 && !st.log_replica_updates {
        reasons.push(SkipReason::ReplicaUpdatesOff);
    }
    if let Some(p) = primary_state {
        let errant = errant_gtids(st, p);
        if !errant.is_empty() {
            reasons.push(SkipReason::ErrantGtids { gtids: errant });
        }
    }
    if let Some(e) = &repl.sql_error {
        reasons.push(SkipReason::ReplicationError { number: e.number, message: e.message.clone() });
    }
    if &repl.filters != majority_filters {
        reasons.push(SkipReason::FiltersDiffer);
    }
    if repl.sql_delay_s > 0 {
        reasons.push(SkipReason::Delayed { seconds: repl.sql_delay_s });
    }
    let older = peers.iter().find(|(_, other)| {
        other.is_some_and(|o| st.version.cmp_same_flavor(&o.version) == Some(std::cmp::Ordering::Greater))
    });
    if let Some((replica, _)) = older {
        reasons.push(SkipReason::NewerThanReplica { replica: (*replica).clone() });
    }
    if let Some(l) = lag.filter(|l| *l > req.rules.max_lag_s) {
        reasons.push(SkipReason::Lagging { seconds: l, limit: req.rules.max_lag_s });
    }
    // What arrived through replication: the IO position, plus what was applied
    // (in case the IO thread never connected since a restart), minus what the
    // replica wrote itself (errant writes bump MariaDB's per-domain position).
    let applied_from_stream = st.gtid.applied.without_origin(st.server_id, st.server_uuid.as_deref());
    let received = Some(repl.received.union(&applied_from_stream));
    Judged { key, state, received, lag, preferred, reasons }
}

/// The filters most reachable replicas share (ties: the empty set if present).
fn majority_filters(peers: &[(&InstanceKey, Option<&InstanceState>)]) -> ReplicationFilters {
    let all: Vec<&ReplicationFilters> =
        peers.iter().filter_map(|(_, s)| s.and_then(|s| s.replication.as_ref())).map(|r| &r.filters).collect();
    all.iter()
        .max_by_key(|f| (all.iter().filter(|g| g == f).count(), f.is_empty()))
        .map(|f| (*f).clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
