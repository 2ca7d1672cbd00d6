//! What `pivot check` judges: the live readings and the configuration's
//! facts, gathered by the shell.

use crate::analysis::ClusterAnalysis;
use crate::control::FailoverSettings;
use crate::instance::InstanceKey;
use crate::view::ClusterView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Readings of one instance beyond what a probe reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstanceExtra {
    /// Global variables by lower-case name (`SHOW GLOBAL VARIABLES`).
    pub variables: BTreeMap<String, String>,
    pub privileges: PrivilegeFact,
    pub clock: Option<ClockReading>,
    /// `[cluster.heartbeat]` on and the account lacks its grant: the missing
    /// privileges and the `GRANT` to run.
    pub heartbeat_grant: Option<(String, String)>,
}

/// What `SHOW GRANTS` said of pivot's account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PrivilegeFact {
    #[default]
    Unknown,
    Complete,
    /// `summary` lists each missing privilege with the steps that need it.
    Missing {
        summary: String,
        grant: Option<String>,
    },
}

/// The server's clock against pivot's, measured over one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockReading {
    /// Server minus pivot, in milliseconds.
    pub offset_ms: i64,
    /// Half the round trip (plus a millisecond of rounding): the true
    /// offset is within `offset_ms` ± this.
    pub uncertainty_ms: u64,
}

impl ClockReading {
    /// The server read `server_ms` between pivot's `sent_ms` and `received_ms`.
    pub fn from_exchange(sent_ms: i64, server_ms: i64, received_ms: i64) -> ClockReading {
        let rtt = (received_ms - sent_ms).max(0);
        let middle = sent_ms + rtt / 2;
        ClockReading { offset_ms: server_ms - middle, uncertainty_ms: (rtt as u64).div_ceil(2) + 1 }
    }

    /// The least the clocks can differ by.
    pub fn certain_skew_ms(&self) -> u64 {
        self.offset_ms.unsigned_abs().saturating_sub(self.uncertainty_ms)
    }
}

/// A configured hook and, if it would not run, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookFact {
    pub name: String,
    pub program: String,
    pub problem: Option<String>,
}

/// Where a route points now, as read from where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteFact {
    /// The route in words (`the daemon's route table at 127.0.0.1:8080`).
    pub route: String,
    /// `None`: it points nowhere (held, or no epoch).
    pub points_to: Option<InstanceKey>,
}

/// Everything the rules read.
pub struct CheckInput<'a> {
    pub view: &'a ClusterView,
    pub analysis: &'a ClusterAnalysis,
    pub extra: &'a BTreeMap<InstanceKey, InstanceExtra>,
    pub failover: &'a FailoverSettings,
    pub confirm_window_ms: u64,
    pub hooks: &'a [HookFact],
    pub routes: &'a [RouteFact],
    /// Clock skew tolerated between pivot and an instance.
    pub max_skew_ms: u64,
}

impl CheckInput<'_> {
    pub(crate) fn var(&self, key: &InstanceKey, name: &str) -> Option<&str> {
        self.extra.get(key).and_then(|e| e.variables.get(name)).map(String::as_str)
    }
}
