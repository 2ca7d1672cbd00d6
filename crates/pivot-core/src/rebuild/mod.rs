//! Rebuilding a replica from a physical backup of another replica
//! (`pivot rebuild`): who may be rebuilt, from whom, and where the rebuilt
//! server resumes replication. Pure, table-tested (`tests.rs`).
//!
//! * [`decide`]: refuse or name the donor;
//! * [`backup_info`]: the GTID position the backup recorded.

pub mod backup_info;
#[cfg(test)]
mod tests;

use crate::gtid::GtidSet;
use crate::instance::InstanceKey;
use std::fmt;

/// A replica as the donor choice sees it (the shell fills it from a fresh
/// discovery of the cluster).
#[derive(Clone, Debug, PartialEq)]
pub struct Replica {
    pub key: InstanceKey,
    /// It answered the last probe.
    pub reachable: bool,
    /// The source it replicates from, if any.
    pub source: Option<InstanceKey>,
    /// IO thread connected and SQL thread running, no replication error.
    pub threads_running: bool,
    /// It replicates with GTID positioning (not by file and position).
    pub uses_gtid: bool,
    /// Seconds behind its source, as it reports.
    pub lag_s: Option<u64>,
    /// Its `gtid_executed` / `gtid_current_pos`.
    pub executed: Option<GtidSet>,
    /// It has transactions the primary never had.
    pub errant: bool,
    /// `[cluster.failover] never_promote` lists it.
    pub never_promote: bool,
}

/// What a rebuild is asked to do, and what pivot knows.
#[derive(Clone, Debug, PartialEq)]
pub struct RebuildInput {
    pub target: InstanceKey,
    /// `--from`: the donor the operator named.
    pub from: Option<InstanceKey>,
    /// The cluster's primary now.
    pub primary: Option<InstanceKey>,
    /// A recovery (failover) of the cluster is running.
    pub recovery_running: bool,
    /// Every instance pivot knows in the cluster (discovered or on the
    /// fence list).
    pub known: Vec<InstanceKey>,
    /// The replicas among them (the target may be one).
    pub replicas: Vec<Replica>,
    /// A donor lagging more than this is not healthy.
    pub max_lag_s: u64,
}

/// The decision: rebuild `target` from `donor`, then point it at `primary`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildChoice {
    pub target: InstanceKey,
    pub donor: InstanceKey,
    pub primary: InstanceKey,
}

/// Why a rebuild is refused; nothing has changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    RecoveryRunning,
    NoPrimary,
    TargetIsPrimary(InstanceKey),
    UnknownTarget {
        target: InstanceKey,
        known: Vec<InstanceKey>,
    },
    DonorIsPrimary(InstanceKey),
    DonorIsTarget(InstanceKey),
    DonorUnhealthy {
        donor: InstanceKey,
        why: String,
    },
    /// No healthy replica other than the target.
    NoDonor,
    /// Every healthy replica is the only promotion candidate left.
    OnlyCandidate(InstanceKey),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::RecoveryRunning => {
                write!(f, "a recovery of the cluster is running: rebuild once it has ended (`pivot history`)")
            }
            Refusal::NoPrimary => write!(
                f,
                "the cluster has no identifiable primary: a rebuilt replica would have nothing to replicate from"
            ),
            Refusal::TargetIsPrimary(t) => write!(
                f,
                "{t} is the cluster's primary: pivot never rebuilds the primary (run a switchover or failover first)"
            ),
            Refusal::UnknownTarget { target, known } => {
                let list: Vec<String> = known.iter().map(ToString::to_string).collect();
                write!(f, "{target} is not an instance of this cluster; known: {}", list.join(", "))
            }
            Refusal::DonorIsPrimary(d) => write!(
                f,
                "{d} is the primary: the primary is never used as a donor (it is never locked); name a replica with --from"
            ),
            Refusal::DonorIsTarget(d) => write!(f, "{d} cannot be rebuilt from itself: name another replica with --from"),
            Refusal::DonorUnhealthy { donor, why } => {
                write!(f, "donor {donor} is not a healthy replica ({why}): name another with --from")
            }
            Refusal::NoDonor => write!(f, "no healthy replica other than the target can serve as a donor"),
            Refusal::OnlyCandidate(d) => write!(
                f,
                "{d} is the only healthy replica that could be promoted if the primary failed: pivot does not \
                 pick it by default (the backup loads it and briefly blocks its commits); name it with \
                 --from {d} to use it anyway"
            ),
        }
    }
}

/// Why `r` cannot serve as a donor for a cluster whose primary is
/// `primary`, if it cannot.
pub fn unhealthy(r: &Replica, primary: &InstanceKey, max_lag_s: u64) -> Option<String> {
    if !r.reachable {
        return Some("it does not answer".into());
    }
    match &r.source {
        None => return Some("it does not replicate".into()),
        Some(s) if s != primary => return Some(format!("it replicates from {s}, not from the primary {primary}")),
        Some(_) => {}
    }
    if !r.threads_running {
        return Some("its replication threads are not both running".into());
    }
    if !r.uses_gtid {
        return Some("it replicates by file and position, not with GTIDs".into());
    }
    match r.lag_s {
        None => return Some("it reports no lag (Seconds_Behind_Master is NULL)".into()),
        Some(l) if l > max_lag_s => return Some(format!("it lags {l} s, more than {max_lag_s} s")),
        Some(_) => {}
    }
    if r.errant {
        return Some("it has transactions the primary never had (errant GTIDs)".into());
    }
    if r.executed.is_none() {
        return Some("its GTID position is unknown".into());
    }
    None
}

/// Refuse, or name the donor.
///
/// The default donor is the most up-to-date healthy replica (by GTID
/// position) whose use still leaves another healthy replica that could be
/// promoted: the donor keeps serving during the backup, but it is busy and
/// its commits are blocked for a moment at the end, so pivot does not pick
/// by itself the one replica a failover would need. Naming a donor with
/// `--from` accepts any healthy replica but the target; the primary is never
/// a donor.
pub fn decide(input: &RebuildInput) -> Result<RebuildChoice, Refusal> {
    if input.recovery_running {
        return Err(Refusal::RecoveryRunning);
    }
    let primary = input.primary.clone().ok_or(Refusal::NoPrimary)?;
    let target = input.target.clone();
    if target == primary {
        return Err(Refusal::TargetIsPrimary(target));
    }
    if !input.known.contains(&target) {
        return Err(Refusal::UnknownTarget { target, known: input.known.clone() });
    }
    let choice = |donor: InstanceKey| RebuildChoice { target: target.clone(), donor, primary: primary.clone() };
    if let Some(d) = &input.from {
        if d == &primary {
            return Err(Refusal::DonorIsPrimary(d.clone()));
        }
        if d == &target {
            return Err(Refusal::DonorIsTarget(d.clone()));
        }
        let Some(r) = input.replicas.iter().find(|r| &r.key == d) else {
            return Err(Refusal::DonorUnhealthy { donor: d.clone(), why: "pivot does not see it as a replica".into() });
        };
        if let Some(why) = unhealthy(r, &primary, input.max_lag_s) {
            return Err(Refusal::DonorUnhealthy { donor: d.clone(), why });
        }
        return Ok(choice(d.clone()));
    }
    let mut healthy: Vec<&Replica> = input
        .replicas
        .iter()
        .filter(|r| r.key != target && r.key != primary && unhealthy(r, &primary, input.max_lag_s).is_none())
        .collect();
    if healthy.is_empty() {
        return Err(Refusal::NoDonor);
    }
    // Most advanced first; the key breaks ties so the choice is stable.
    healthy.sort_by(|a, b| {
        let w = |r: &Replica| r.executed.as_ref().map_or(0, GtidSet::weight);
        w(b).cmp(&w(a)).then_with(|| a.key.cmp(&b.key))
    });
    let candidates = healthy.iter().filter(|r| !r.never_promote).count();
    let leaves_a_candidate = |r: &Replica| r.never_promote || candidates >= 2;
    match healthy.iter().find(|r| leaves_a_candidate(r)) {
        Some(r) => Ok(choice(r.key.clone())),
        None => Err(Refusal::OnlyCandidate(healthy[0].key.clone())),
    }
}
