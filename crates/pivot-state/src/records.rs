//! What the store holds, as plain values.

use serde::{Deserialize, Serialize};

pub type RecoveryId = i64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryStatus {
    Running,
    /// A new primary was promoted and every step ended.
    Succeeded,
    /// A new primary was promoted but something after it failed (lost replicas, hooks).
    SucceededWithErrors,
    /// A new primary was promoted but a required route could not be updated:
    /// clients may not reach it.
    Failed,
    /// Refused or aborted before promotion; the cluster was left as it was.
    Aborted,
    /// A pivot restart found it running and could not resume it.
    Interrupted,
}

impl RecoveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecoveryStatus::Running => "running",
            RecoveryStatus::Succeeded => "succeeded",
            RecoveryStatus::SucceededWithErrors => "succeeded_with_errors",
            RecoveryStatus::Failed => "failed",
            RecoveryStatus::Aborted => "aborted",
            RecoveryStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> RecoveryStatus {
        match s {
            "running" => RecoveryStatus::Running,
            "succeeded" => RecoveryStatus::Succeeded,
            "succeeded_with_errors" => RecoveryStatus::SucceededWithErrors,
            "failed" => RecoveryStatus::Failed,
            "aborted" => RecoveryStatus::Aborted,
            _ => RecoveryStatus::Interrupted,
        }
    }

    /// Whether a new primary was put in place.
    pub fn promoted(self) -> bool {
        matches!(self, RecoveryStatus::Succeeded | RecoveryStatus::SucceededWithErrors | RecoveryStatus::Failed)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRecovery {
    pub cluster: String,
    /// `automatic_failover`, `manual_failover`.
    pub kind: String,
    pub failed_primary: Option<String>,
    /// The analysis that started it, in words.
    pub analysis: String,
    /// Which process runs it (`pivot run, pid 123 on host, 5f3a`).
    pub owner: String,
    /// The owner's lease: until then (wall milliseconds) no other process
    /// takes the recovery over; the owner renews it while it runs.
    pub lease_until: i64,
    pub at: i64,
    /// When pivot first saw the primary fail (its first failed probe ended).
    pub detected_at: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub seq: i64,
    pub name: String,
    pub detail: String,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    /// `ok`, `failed`, `skipped`, `already_done`; `None` while running or if
    /// pivot stopped in the middle of it.
    pub outcome: Option<String>,
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryRecord {
    pub id: RecoveryId,
    pub cluster: String,
    pub kind: String,
    pub status: RecoveryStatus,
    pub started_at: i64,
    pub detected_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub failed_primary: Option<String>,
    pub new_primary: Option<String>,
    pub analysis: String,
    /// The plan as JSON, once chosen.
    pub plan: Option<String>,
    pub lost_replicas: Vec<String>,
    pub summary: Option<String>,
    pub owner: String,
    pub lease_until: Option<i64>,
    pub steps: Vec<StepRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub cluster: String,
    pub recovery_id: Option<RecoveryId>,
    pub blocked_until: i64,
    pub acked_at: Option<i64>,
    pub acked_by: Option<String>,
}

impl Block {
    /// Blocks automatic recovery at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.acked_at.is_none() && now < self.blocked_until
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencedInstance {
    pub cluster: String,
    pub instance: String,
    pub recovery_id: Option<RecoveryId>,
    pub since: i64,
    /// `pending` (not reached yet), `read_only` (fenced), `rejoined`, `quarantined`.
    pub status: String,
    pub detail: String,
}

/// A promotion (or adoption) of a primary: every route is set from the
/// newest epoch, and epoch numbers only grow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    pub cluster: String,
    pub number: u64,
    pub primary: String,
    /// The recovery that promoted it; `None`: adopted.
    pub recovery_id: Option<RecoveryId>,
    pub since: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub cluster: String,
    pub at: i64,
    pub level: String,
    pub message: String,
}
