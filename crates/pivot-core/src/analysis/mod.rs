//! What the observations of a cluster mean.
//!
//! [`analyze`] takes a [`ClusterView`](crate::view::ClusterView), the detection
//! settings and the time, and returns a [`ClusterAnalysis`]: one cluster-level
//! [`Code`], the signal that decided it, and the problems of single instances.
//! It is pure; the tests in `tests.rs` are a table of observations in, analysis out.

mod detect;
mod problems;
#[cfg(test)]
mod ring_tests;
#[cfg(test)]
mod tests;

pub use detect::analyze;
pub use problems::errant_gtids;

use crate::instance::InstanceKey;
use crate::observation::{ProbeFailure, ReplicationError};
use crate::time::Millis;
use crate::topology::Topology;
use serde::{Deserialize, Serialize};

/// How failure detection is tuned. Defaults detect a crashed primary in well
/// under a second and a hung one in about `probe_timeout + confirm_window`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionSettings {
    /// Consecutive failed probes of the primary before it counts as unreachable.
    pub unreachable_after: u32,
    /// How long a replica must have received nothing (no event, no heartbeat)
    /// from the primary to confirm it dead while its IO thread still looks connected.
    pub confirm_window_ms: u64,
    /// Replication lag that counts as a problem.
    pub lag_threshold_s: u64,
}

impl Default for DetectionSettings {
    fn default() -> Self {
        DetectionSettings { unreachable_after: 1, confirm_window_ms: 1_000, lag_threshold_s: 10 }
    }
}

/// The cluster-level verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// Not every known instance has been probed yet.
    Incomplete,
    Healthy,
    /// No instance can be identified as the primary.
    NoPrimary,
    /// More than one instance is writable.
    SplitBrain,
    /// The primary answers but is read-only.
    NoWritablePrimary,
    /// Semi-sync is on, sessions wait for an acknowledgement and no semi-sync replica is connected.
    SemiSyncPrimaryStuck,
    /// The primary is up but none of its replicas replicates.
    AllReplicasNotReplicating,
    /// The primary answers, but pivot's probe fails (credentials, privileges):
    /// says nothing about its health, never a reason to fail over.
    PrimaryProbeError,
    /// pivot cannot reach the primary; the replicas have not confirmed yet.
    PrimaryUnreachableUnconfirmed,
    /// pivot cannot reach the primary, but a replica still receives from it.
    PrimaryUnreachableReplicasReplicating,
    /// pivot cannot reach the primary and every replica confirms.
    DeadPrimary,
    /// As [`Code::DeadPrimary`], with some replicas unreachable too.
    DeadPrimaryAndSomeReplicas,
    /// pivot cannot reach the primary nor any of its replicas.
    DeadPrimaryWithoutReplicas,
}

impl Code {
    /// Whether this verdict, by itself, justifies an automatic failover.
    pub fn failover_worthy(self) -> bool {
        matches!(self, Code::DeadPrimary | Code::DeadPrimaryAndSomeReplicas)
    }

    /// Whether operators must be told now.
    pub fn alerting(self) -> bool {
        !matches!(self, Code::Healthy | Code::Incomplete | Code::PrimaryUnreachableUnconfirmed)
    }
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Incomplete => "incomplete",
            Code::Healthy => "healthy",
            Code::NoPrimary => "no_primary",
            Code::SplitBrain => "split_brain",
            Code::NoWritablePrimary => "no_writable_primary",
            Code::SemiSyncPrimaryStuck => "semi_sync_primary_stuck",
            Code::AllReplicasNotReplicating => "all_replicas_not_replicating",
            Code::PrimaryProbeError => "primary_probe_error",
            Code::PrimaryUnreachableUnconfirmed => "primary_unreachable_unconfirmed",
            Code::PrimaryUnreachableReplicasReplicating => "primary_unreachable_replicas_replicating",
            Code::DeadPrimary => "dead_primary",
            Code::DeadPrimaryAndSomeReplicas => "dead_primary_and_some_replicas",
            Code::DeadPrimaryWithoutReplicas => "dead_primary_without_replicas",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem of one instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ProblemKind {
    Unreachable {
        failure: ProbeFailure,
    },
    IoThreadStopped,
    IoThreadConnecting,
    IoError {
        error: ReplicationError,
    },
    SqlThreadStopped,
    SqlError {
        error: ReplicationError,
    },
    Lagging {
        seconds: u64,
        threshold: u64,
    },
    Delayed {
        seconds: u64,
    },
    /// Transactions the primary never had.
    ErrantGtids {
        gtids: String,
    },
    /// A replica that ordinary clients can write to.
    WritableReplica,
    /// Writable while the primary is elsewhere.
    WritableNonPrimary,
    BinlogOff,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub instance: InstanceKey,
    #[serde(flatten)]
    pub kind: ProblemKind,
    /// The problem in words, for status output and logs.
    pub text: String,
}

/// How one replica answers the question "is the primary dead?".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum ReplicaOpinion {
    /// Its IO thread is not connected to the primary.
    IoNotConnected {
        io_thread: String,
    },
    /// Its IO thread was stopped with no error (by an operator): no opinion.
    IoStopped,
    /// Connected, but nothing arrived for at least `silent_ms`.
    Silent {
        silent_ms: u64,
    },
    /// Something arrived from the primary recently.
    StillReceiving {
        silent_ms: u64,
        needed_ms: u64,
    },
    /// Not probed since the primary started failing.
    Stale,
    /// IO thread connected and heartbeats off: silence proves nothing.
    NoHeartbeat,
    Unreachable,
}

impl ReplicaOpinion {
    pub fn confirms(&self) -> bool {
        matches!(self, ReplicaOpinion::IoNotConnected { .. } | ReplicaOpinion::Silent { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterAnalysis {
    pub at: Millis,
    pub code: Code,
    pub primary: Option<InstanceKey>,
    /// The signal that decided `code`, in words.
    pub signal: String,
    pub problems: Vec<Problem>,
    /// Each direct replica's answer when the primary is unreachable.
    pub opinions: Vec<(InstanceKey, ReplicaOpinion)>,
    pub topology: Topology,
}

impl ClusterAnalysis {
    pub fn problems_of<'a>(&'a self, key: &'a InstanceKey) -> impl Iterator<Item = &'a Problem> + 'a {
        self.problems.iter().filter(move |p| &p.instance == key)
    }
}
