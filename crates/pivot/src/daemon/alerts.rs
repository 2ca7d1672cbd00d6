//! Alerts: logged loudly, recorded in the state file, and handed to the
//! `alert` hook; each distinct alert once, until the cluster is healthy again.

use crate::clock;
use crate::config::ClusterConfig;
use crate::recovery::hooks::{self, HookData};
use pivot_core::plan::HookPoint;
use pivot_core::{ClusterAnalysis, InstanceKey};
use pivot_state::StateStore;
use std::collections::VecDeque;
use std::sync::Arc;

/// Distinct alerts remembered (so each is raised once).
const REMEMBERED: usize = 64;

pub struct Alerts {
    cfg: Arc<ClusterConfig>,
    state: Arc<dyn StateStore>,
    /// The analysis alert last raised.
    last: Option<String>,
    /// Other alerts raised (control-plane problems, recovery ends), bounded.
    raised: VecDeque<String>,
}

impl Alerts {
    pub fn new(cfg: Arc<ClusterConfig>, state: Arc<dyn StateStore>) -> Alerts {
        Alerts { cfg, state, last: None, raised: VecDeque::new() }
    }

    /// Forget the last analysis alert (the cluster recovered): the next one is new.
    pub fn clear(&mut self) {
        self.last = None;
    }

    /// Raise an alert about the analysis unless the same one (`key`) is already raised.
    pub fn raise(&mut self, key: &str, analysis: &ClusterAnalysis, reason: &str) {
        if self.last.as_deref() == Some(key) {
            return;
        }
        self.last = Some(key.to_string());
        tracing::error!(cluster = %self.cfg.name, alert = %analysis.code, "ALERT: {reason}");
        self.send(analysis.primary.clone(), analysis.code.to_string(), analysis.signal.clone(), reason);
    }

    /// Raise an alert that is not an analysis verdict (a failed recovery, a
    /// state file that cannot be written), once per `key`.
    pub fn raise_text(&mut self, key: &str, reason: &str) {
        if self.raised.iter().any(|k| k == key) {
            return;
        }
        if self.raised.len() == REMEMBERED {
            self.raised.pop_front();
        }
        self.raised.push_back(key.to_string());
        tracing::error!(cluster = %self.cfg.name, "ALERT: {reason}");
        self.send(None, "control".into(), String::new(), reason);
    }

    fn send(&self, primary: Option<InstanceKey>, analysis: String, signal: String, reason: &str) {
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
            signal,
            outcome: reason.to_string(),
            new_primary_password: Some(self.cfg.credentials.password.clone()),
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
