//! Alerts, as the cluster machine raises them (once each): logged loudly,
//! recorded in the state file, and handed to the `alert` hook.
//! Every alert also goes to the webhook: replication-health alerts
//! ([`Alerts::health`]) and the control plane's ([`Alerts::send`]).

use crate::clock;
use crate::config::ClusterConfig;
use crate::recovery::hooks::{self, HookData};
use pivot_core::control::health_alerts::HealthAlert;
use pivot_core::plan::HookPoint;
use pivot_core::{Code, InstanceKey};
use pivot_state::StateStore;
use std::sync::Arc;

#[derive(Clone)]
pub struct Alerts {
    cfg: Arc<ClusterConfig>,
    state: Arc<dyn StateStore>,
    webhook: Option<super::webhook::Webhook>,
    /// Control alerts POSTed lately (text, when): the same text is POSTed at
    /// most once per `alert_interval` (the machine may raise one reason
    /// again as its gate's state moves).
    posted: Arc<std::sync::Mutex<std::collections::VecDeque<(String, std::time::Instant)>>>,
}

/// Control alert texts remembered for the webhook's rate limit.
const POSTED_REMEMBERED: usize = 64;

impl Alerts {
    pub fn new(
        cfg: Arc<ClusterConfig>,
        state: Arc<dyn StateStore>,
        webhook: Option<super::webhook::Webhook>,
    ) -> Alerts {
        Alerts { cfg, state, webhook, posted: Arc::default() }
    }

    /// A replication-health alert: one log line, an `alert` event in the
    /// state file, the alert hook (`PIVOT_ALERT_*`), the webhook.
    pub fn health(&self, a: &HealthAlert) {
        let line = a.line();
        if a.resolved {
            tracing::warn!(cluster = %self.cfg.name, instance = %a.instance, kind = a.kind.as_str(), "ALERT: {line}");
        } else {
            tracing::error!(cluster = %self.cfg.name, instance = %a.instance, kind = a.kind.as_str(), "ALERT: {line}");
        }
        let wall = clock::wall_of(a.at);
        if let Some(w) = &self.webhook {
            w.push(a, wall);
        }
        self.record(line.clone(), wall);
        let analysis = format!("replication_{}", a.kind.as_str());
        let data = HookData {
            cluster: self.cfg.name.clone(),
            analysis,
            outcome: line,
            new_primary_password: Some(self.cfg.credentials.password.clone()),
            alert_env: alert_env(a, wall),
            ..HookData::default()
        };
        self.run_hook(data);
    }

    /// Whether `text` was not POSTed within `alert_interval` (noted as POSTed now).
    fn first_post(&self, text: &str) -> bool {
        let now = std::time::Instant::now();
        let mut posted = self.posted.lock().unwrap_or_else(|e| e.into_inner());
        posted.retain(|(_, at)| now.duration_since(*at) < self.cfg.alert_interval);
        if posted.iter().any(|(t, _)| t == text) {
            return false;
        }
        if posted.len() == POSTED_REMEMBERED {
            posted.pop_front();
        }
        posted.push_back((text.to_string(), now));
        true
    }

    fn record(&self, text: String, wall: i64) {
        let (state, cluster) = (self.state.clone(), self.cfg.name.clone());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = state.event(&cluster, wall, "alert", &text) {
                tracing::error!(%cluster, "cannot record the alert: {e}");
            }
        });
    }

    fn run_hook(&self, data: HookData) {
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

    /// Log, record, hand to the alert hook and the webhook; nothing here blocks.
    pub fn send(&self, reason: &str, code: Option<Code>, primary: Option<InstanceKey>) {
        let analysis = code.map_or_else(|| "control".to_string(), |c| c.to_string());
        tracing::error!(cluster = %self.cfg.name, alert = %analysis, "ALERT: {reason}");
        let wall = clock::wall_ms();
        if let Some(w) = self.webhook.as_ref().filter(|_| self.first_post(reason)) {
            // The page that matters most (a dead primary pivot will not fail
            // over, pivot unable to act) goes where the others go.
            let c = super::webhook::ControlAlert {
                cluster: &self.cfg.name,
                analysis: &analysis,
                primary: primary.as_ref(),
                text: reason,
            };
            w.push_control(&c, wall);
        }
        self.record(reason.to_string(), wall);
        let data = HookData {
            cluster: self.cfg.name.clone(),
            failed_primary: primary,
            analysis,
            outcome: reason.to_string(),
            new_primary_password: Some(self.cfg.credentials.password.clone()),
            ..HookData::default()
        };
        self.run_hook(data);
    }
}

/// The alert hook's `PIVOT_ALERT_*` variables of a replication-health alert.
fn alert_env(a: &HealthAlert, wall_ms: i64) -> Vec<(&'static str, String)> {
    let opt = |v: Option<String>| v.unwrap_or_default();
    vec![
        ("PIVOT_ALERT_INSTANCE", a.instance.to_string()),
        ("PIVOT_ALERT_KIND", a.kind.as_str().to_string()),
        ("PIVOT_ALERT_STATUS", if a.resolved { "resolved" } else { "problem" }.to_string()),
        ("PIVOT_ALERT_FROM", a.from.clone()),
        ("PIVOT_ALERT_TO", a.to.clone()),
        ("PIVOT_ALERT_ERROR_NUMBER", opt(a.error.as_ref().map(|e| e.number.to_string()))),
        ("PIVOT_ALERT_ERROR_TEXT", opt(a.error.as_ref().map(|e| e.message.clone()))),
        ("PIVOT_ALERT_LAG_SECONDS", opt(a.lag_s.map(|l| l.to_string()))),
        ("PIVOT_ALERT_THRESHOLD_SECONDS", opt(a.threshold_s.map(|l| l.to_string()))),
        ("PIVOT_ALERT_SUPPRESSED", a.suppressed.to_string()),
        ("PIVOT_ALERT_TIME_MS", wall_ms.to_string()),
    ]
}
