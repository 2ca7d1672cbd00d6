//! Recoveries: running a failover plan against the servers, step by step,
//! with every step recorded before and after it runs.
//!
//! * [`failover::run`]: a new failover (automatic or manual);
//! * [`resume::resume`]: a failover a stopped pivot left running;
//! * [`fence_watch`]: keeping former primaries read-only when they reappear;
//! * [`hooks`]: external programs at points of a recovery.

mod audit;
mod exec;
mod failover;
mod fanout;
pub mod fence_watch;
pub mod hooks;
pub mod owner;
pub mod resume;

use crate::config::ClusterConfig;
use pivot_core::{ClusterAnalysis, ClusterView, InstanceKey};
use pivot_state::{RecoveryId, RecoveryStatus, StateError, StateStore};
use serde::Serialize;
use std::sync::Arc;

/// What a recovery runs with.
#[derive(Clone)]
pub struct RecoveryEnv {
    pub cluster: Arc<ClusterConfig>,
    pub state: Arc<StateStore>,
    /// Who runs it, recorded so another process can tell if it died.
    pub owner: String,
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

#[derive(Clone, Debug, Serialize)]
pub struct Outcome {
    pub id: RecoveryId,
    pub status: RecoveryStatus,
    pub failed_primary: InstanceKey,
    pub new_primary: Option<InstanceKey>,
    pub lost: Vec<InstanceKey>,
    pub summary: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no primary to fail over: {0}")]
    NoPrimary(String),
}

/// Fail over the primary `analysis` names.
pub async fn failover(
    env: &RecoveryEnv,
    view: &ClusterView,
    analysis: &ClusterAnalysis,
    trigger: &Trigger,
) -> Result<Outcome, RecoveryError> {
    failover::run(env, view, analysis, trigger).await
}
