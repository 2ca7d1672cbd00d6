//! Replication lag measured with a heartbeat (pt-heartbeat style), and where
//! the heartbeat may be written.
//!
//! pivot writes `(server_id, NOW(6))` into its heartbeat table on the primary
//! every interval; the row replicates like any write. On a replica, the row
//! of the current primary says up to when the replica has applied the
//! primary's writes, in the *primary's* clock. So the lag is compared against
//! the primary's clock, never pivot's nor the replica's:
//!
//! ```text
//! lag = primary_now_at(replica reading) - replica's row of the primary
//! primary_now_at(t) = primary's NOW(6) at its own reading + (t - that reading's time)
//! ```
//!
//! where both reading times are pivot's monotonic clock. The replica's and
//! pivot's wall clocks never enter; the primary's clock only enters as a
//! difference with itself. The resolution is the write interval (like
//! pt-heartbeat): a replica that has everything shows between 0 and one
//! interval.
//!
//! Pure: the readings come in with the observations (`InstanceState::heartbeat`).

use crate::instance::InstanceKey;
use crate::observation::{HeartbeatReading, InstanceState};
use crate::view::ClusterView;
use serde::{Deserialize, Serialize};

/// Why there is no heartbeat lag for a replica: the server's own figure
/// stands alone then.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum NoHeartbeatLag {
    /// The primary was never read with the heartbeat (off, or unreachable).
    NoPrimaryReading,
    /// The replica was read without the heartbeat (off, or its clock could
    /// not be read).
    NoReplicaReading,
    /// The primary holds no row of its own: nothing written yet (first use,
    /// a missing grant, a read-only primary).
    NoPrimaryRow,
    /// The primary's own row is old: the writer does not get through, and a
    /// growing figure would blame the replicas.
    WriterStale { age_ms: u64 },
    /// The primary's reading is too far from the replica's to stand for its clock.
    PrimaryReadingStale { apart_ms: u64 },
    /// The primary's row has not reached the replica yet.
    NoReplicaRow,
}

/// The lag of a replica whose reading is `replica`, against the primary
/// `primary_server_id` whose reading is `primary`, in milliseconds.
pub fn lag_ms(
    primary_server_id: u32,
    primary: &HeartbeatReading,
    replica: &HeartbeatReading,
) -> Result<u64, NoHeartbeatLag> {
    let own = primary.row_of(primary_server_id).ok_or(NoHeartbeatLag::NoPrimaryRow)?;
    let stale_us = i128::from(primary.stale_after_ms) * 1000;
    let writer_age_us = i128::from(primary.server_now_us) - i128::from(own);
    if writer_age_us > stale_us {
        return Err(NoHeartbeatLag::WriterStale { age_ms: (writer_age_us / 1000) as u64 });
    }
    // pivot's monotonic time from the primary's reading to the replica's.
    let apart_ms = i128::from(replica.taken_at.0) - i128::from(primary.taken_at.0);
    if apart_ms.abs() > i128::from(primary.stale_after_ms) {
        return Err(NoHeartbeatLag::PrimaryReadingStale { apart_ms: apart_ms.unsigned_abs() as u64 });
    }
    let applied = replica.row_of(primary_server_id).ok_or(NoHeartbeatLag::NoReplicaRow)?;
    let primary_now_us = i128::from(primary.server_now_us) + apart_ms * 1000;
    let lag_us = (primary_now_us - i128::from(applied)).max(0);
    Ok(u64::try_from(lag_us / 1000).unwrap_or(u64::MAX))
}

/// A replica's lag both ways: the server's own `Seconds_Behind_Master` and
/// the heartbeat's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lag {
    /// `Seconds_Behind_Master` / `Seconds_Behind_Source` as the replica reports it.
    pub server_s: Option<u64>,
    /// The heartbeat's lag in milliseconds, when it can be measured.
    pub heartbeat_ms: Result<u64, NoHeartbeatLag>,
}

impl Lag {
    /// The lag pivot acts on (the `lagging` problem, the read routes'
    /// limit): the heartbeat's when measured (it does not lie when the IO
    /// thread is behind or a long transaction applies), else the server's.
    pub fn seconds(&self) -> Option<u64> {
        match &self.heartbeat_ms {
            Ok(ms) => Some(ms / 1000),
            Err(_) => self.server_s,
        }
    }
}

/// The lag of `key` (its current reading) against `primary` (its last
/// reading). `None` for the primary itself or an instance that does not
/// answer or does not replicate.
pub fn lag_of(view: &ClusterView, primary: Option<&InstanceKey>, key: &InstanceKey) -> Option<Lag> {
    let state = view.get(key)?.current_state()?;
    let repl = state.replication.as_ref()?;
    let heartbeat_ms = match (&state.heartbeat, primary.filter(|p| *p != key)) {
        (None, _) => Err(NoHeartbeatLag::NoReplicaReading),
        (Some(_), None) => Err(NoHeartbeatLag::NoPrimaryReading),
        (Some(_), Some(p)) => heartbeat_against(view.get(p).and_then(|r| r.last_state()), state),
    };
    Some(Lag { server_s: repl.seconds_behind, heartbeat_ms })
}

fn heartbeat_against(primary: Option<&InstanceState>, replica: &InstanceState) -> Result<u64, NoHeartbeatLag> {
    let primary = primary.ok_or(NoHeartbeatLag::NoPrimaryReading)?;
    let p = primary.heartbeat.as_ref().ok_or(NoHeartbeatLag::NoPrimaryReading)?;
    let r = replica.heartbeat.as_ref().ok_or(NoHeartbeatLag::NoReplicaReading)?;
    lag_ms(primary.server_id, p, r)
}

/// Where the heartbeat may be written now, or why nowhere. Only ever the
/// primary the routes send writes to (the newest epoch's, none while a
/// recovery holds them), when the analysis agrees, it answers writable, and
/// a commit there would not wait for a semi-sync acknowledgement nobody can
/// give. A heartbeat on any other instance would be an errant transaction.
pub fn write_target(
    route_primary: Option<&InstanceKey>,
    analysis_primary: Option<&InstanceKey>,
    view: &ClusterView,
) -> Result<InstanceKey, &'static str> {
    let target = route_primary.ok_or("the routes name no primary (none known, or a recovery runs)")?;
    if analysis_primary != Some(target) {
        return Err("the analysis does not name the routes' primary");
    }
    let state = view.get(target).and_then(|r| r.current_state()).ok_or("the primary does not answer")?;
    if !state.writable() {
        return Err("the primary is read-only");
    }
    let s = &state.semi_sync;
    if s.primary_enabled && (s.primary_waiting_sessions > 0 || (s.primary_active && s.primary_clients == 0)) {
        return Err("semi-sync commits on the primary wait for an acknowledgement");
    }
    Ok(target.clone())
}

#[cfg(test)]
#[path = "heartbeat_tests.rs"]
mod tests;
