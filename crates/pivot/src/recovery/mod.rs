//! Recoveries: the recovery machine of `pivot_core::control`, driven against
//! the servers with every step recorded before and after it runs.
//!
//! * [`failover::run`]: a new failover (automatic or manual);
//! * [`resume::resume`]: a recovery a stopped (or panicked) pivot left running;
//! * [`driver`]: performs the machine's commands, renews the lease, parks;
//! * [`exec`]: performs one step;
//! * [`fence_watch`]: keeping former primaries read-only when they reappear;
//! * [`hooks`]: external programs at points of a recovery.

mod audit;
pub mod driver;
mod exec;
mod exec_handover;
pub mod failover;
mod fanout;
pub mod fence_watch;
pub mod hooks;
pub mod owner;
mod proxy_drain;
pub mod resume;
mod route_step;
pub mod switchover;

use crate::config::{ClusterConfig, SemiSyncPolicy as ConfigSemiSync};
use pivot_core::candidate::PromotionRules;
use pivot_core::control::{FailoverSettings, SemiSyncPolicy};
use pivot_core::plan::HookSet;
use pivot_core::routes::{RouteKind, RouteSpec};
use pivot_core::InstanceKey;
use pivot_state::{RecoveryId, RecoveryStatus, StateStore};
use serde::Serialize;
use std::sync::Arc;

/// What a recovery runs with.
#[derive(Clone)]
pub struct RecoveryEnv {
    pub cluster: Arc<ClusterConfig>,
    pub state: Arc<dyn StateStore>,
    /// Who runs it (unique per process start), recorded with its lease.
    pub owner: String,
    /// This process's routes of the cluster (`pivot run`); `None` in the CLI.
    pub routes: Option<crate::routes::RouteHub>,
}

/// Run a state-store call off the async runtime's threads.
pub async fn blocking<T, F>(env: &RecoveryEnv, f: F) -> Result<T, String>
where
    T: Send + 'static,
    F: FnOnce(&dyn StateStore) -> Result<T, pivot_state::StateError> + Send + 'static,
{
    let state = env.state.clone();
    match tokio::task::spawn_blocking(move || f(state.as_ref())).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(e) => Err(format!("state store call failed: {e}")),
    }
}

#[derive(Clone, Debug)]
pub struct Trigger {
    pub automatic: bool,
    /// Only this replica may become the primary.
    pub target: Option<InstanceKey>,
    /// Override the safety rules that can be overridden.
    pub force: bool,
}

impl Trigger {
    pub fn kind(&self) -> &'static str {
        if self.automatic {
            "automatic_failover"
        } else {
            "manual_failover"
        }
    }
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Outcome {
    pub id: RecoveryId,
    pub status: RecoveryStatus,
    pub failed_primary: InstanceKey,
    pub new_primary: Option<InstanceKey>,
    pub lost: Vec<InstanceKey>,
    pub summary: String,
    /// Operators must be told.
    pub alert: bool,
    /// The anti-flapping block it started (wall ms), if any.
    pub block_until: Option<i64>,
    /// The end could not be written to the state file (why).
    pub unrecorded: Option<String>,
    /// Stopped at a step boundary; still `running` in the state file.
    pub parked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{0}")]
    State(String),
    #[error("no primary to fail over: {0}")]
    NoPrimary(String),
}

/// The failover settings of a cluster's configuration.
pub fn settings(c: &ClusterConfig) -> FailoverSettings {
    FailoverSettings {
        rules: PromotionRules {
            preferred: c.failover.preferred.clone(),
            never_promote: c.failover.never_promote.clone(),
            max_lag_s: c.failover.max_candidate_lag.as_secs(),
        },
        semi_sync: match c.failover.semi_sync {
            ConfigSemiSync::On => SemiSyncPolicy::On,
            ConfigSemiSync::Off => SemiSyncPolicy::Off,
            ConfigSemiSync::Auto => SemiSyncPolicy::Auto,
        },
        hooks: HookSet {
            pre_failover: c.hooks.pre_failover.is_some(),
            fence: c.hooks.fence.is_some(),
            mha: c.hooks.mha_master_ip_failover.is_some(),
            post_failover: c.hooks.post_failover.is_some(),
            post_unsuccessful_failover: c.hooks.post_unsuccessful_failover.is_some(),
            pre_switchover: c.hooks.pre_switchover.is_some(),
            post_switchover: c.hooks.post_switchover.is_some(),
        },
        lag_threshold_s: c.detection.lag_threshold_s,
        routes: vec![RouteSpec { kind: RouteKind::Local, required: c.proxy.as_ref().is_some_and(|p| p.required) }]
            .into_iter()
            .chain(crate::routes::kv::route_specs(c))
            .chain(crate::routes::vip::route_spec(c))
            .collect(),
        switchover: c.switchover,
        replication_credentials: c.replication.is_some(),
    }
}
