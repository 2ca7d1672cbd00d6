//! Alerts: logged loudly, recorded in the state file, and handed to the
//! `alert` hook; each distinct alert once, until the cluster is healthy again.

use crate::clock;
use crate::config::ClusterConfig;
use crate::recovery::hooks::{self, HookData};
use pivot_core::plan::HookPoint;
use pivot_core::ClusterAnalysis;
use pivot_state::StateStore;
use std::sync::Arc;

pub struct Alerts {
    cfg: Arc<ClusterConfig>,
    state: Arc<StateStore>,
    last: Option<String>,
}

impl Alerts {
    pub fn new(cfg: Arc<ClusterConfig>, state: Arc<StateStore>) -> Alerts {
        Alerts { cfg, state, last: None }
    }

    /// Forget the last alert (the cluster recovered): the next one is new.
    pub fn clear(&mut self) {
        self.last = None;
    }

    /// Raise an alert unless the same one (`key`) is already raised.
    pub fn raise(&mut self, key: &str, analysis: &ClusterAnalysis, reason: &str) {
        if self.last.as_deref() == Some(key) {
            return;
        }
        self.last = Some(key.to_string());
        tracing::error!(cluster = %self.cfg.name, alert = %analysis.code, "ALERT: {reason}");
        if let Err(e) = self.state.event(&self.cfg.name, clock::now().0 as i64, "alert", reason) {
            tracing::error!(cluster = %self.cfg.name, "cannot record the alert: {e}");
        }
        let data = HookData {
            cluster: self.cfg.name.clone(),
            failed_primary: analysis.primary.clone(),
            analysis: analysis.code.to_string(),
            signal: analysis.signal.clone(),
            outcome: reason.to_string(),
            ..HookData::default()
        };
        if let Some(argv) = hooks::command_for(&self.cfg.hooks, HookPoint::Alert, &data) {
            let (timeout, cluster) = (self.cfg.hooks.timeout, self.cfg.name.clone());
            tokio::spawn(async move {
                let r = hooks::run(&argv, HookPoint::Alert, &data, timeout).await;
                if !r.ok() {
                    tracing::error!(%cluster, "alert hook: {}", r.describe());
                }
            });
        }
    }
}
