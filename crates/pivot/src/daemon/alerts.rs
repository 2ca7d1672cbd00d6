//! Alerts, as the cluster machine raises them (once each): logged loudly,
//! recorded in the state file, and handed to the `alert` hook.

use crate::clock;
use crate::config::ClusterConfig;
use crate::recovery::hooks::{self, HookData};
use pivot_core::plan::HookPoint;
use pivot_core::{Code, InstanceKey};
use pivot_state::StateStore;
use std::sync::Arc;

pub struct Alerts {
    cfg: Arc<ClusterConfig>,
    state: Arc<dyn StateStore>,
}

impl Alerts {
    pub fn new(cfg: Arc<ClusterConfig>, state: Arc<dyn StateStore>) -> Alerts {
        Alerts { cfg, state }
    }

    /// Log, record and hand to the alert hook; nothing here blocks.
    pub fn send(&self, reason: &str, code: Option<Code>, primary: Option<InstanceKey>) {
        let analysis = code.map_or_else(|| "control".to_string(), |c| c.to_string());
        tracing::error!(cluster = %self.cfg.name, alert = %analysis, "ALERT: {reason}");
        let (state, cluster, text) = (self.state.clone(), self.cfg.name.clone(), reason.to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = state.event(&cluster, clock::wall_ms(), "alert", &text) {
                tracing::error!(%cluster, "cannot record the alert: {e}");
            }
        });
        let data = HookData {
            cluster: self.cfg.name.clone(),
            failed_primary: primary,
            analysis,
            outcome: reason.to_string(),
            new_primary_password: Some(self.cfg.credentials.password.clone()),
            ..HookData::default()
        };
        let (hooks_cfg, timeout, cluster) = (self.cfg.hooks.clone(), self.cfg.hooks.timeout, self.cfg.name.clone());
        tokio::spawn(async move {
            let argv = hooks::command_for_off_thread(&hooks_cfg, HookPoint::Alert, &data).await;
            if let Some(argv) = argv {
                let r = hooks::run(&argv, HookPoint::Alert, &data, timeout).await;
                if !r.ok() {
                    tracing::error!(%cluster, "alert hook: {}", r.describe());
                }
            }
        });
    }
}
