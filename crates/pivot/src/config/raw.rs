//! The file as written, before validation. Unknown keys are rejected here.

use super::duration::Dur;
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub pivot: RawPivot,
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<Spanned<RawCluster>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPivot {
    pub state: Option<Spanned<String>>,
    pub http: Option<Spanned<String>>,
    /// `[pivot.dns]`: absent, no DNS.
    pub dns: Option<Spanned<super::dns::RawDns>>,
    /// A 0600 file with the bearer token API mutations need (absent: read-only API).
    pub api_token_file: Option<Spanned<String>>,
    /// `[pivot.webhook]`: absent, no webhook.
    pub webhook: Option<Spanned<super::webhook::RawWebhook>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub name: Spanned<String>,
    pub seeds: Spanned<Vec<Spanned<String>>>,
    pub credentials: Spanned<RawCredentials>,
    pub replication: Option<Spanned<RawCredentials>>,
    pub poll_interval: Option<Spanned<Dur>>,
    pub probe_timeout: Option<Spanned<Dur>>,
    pub lag_threshold: Option<Spanned<Dur>>,
    pub max_instances: Option<Spanned<i64>>,
    #[serde(default)]
    pub detection: RawDetection,
    #[serde(default)]
    pub failover: RawFailover,
    #[serde(default)]
    pub hooks: RawHooks,
    /// `[cluster.etcd]` / `[cluster.consul]`: the primary published there.
    pub etcd: Option<Spanned<super::kv::RawEtcd>>,
    pub consul: Option<Spanned<super::kv::RawConsul>>,
    pub proxy: Option<Spanned<super::proxy::RawProxy>>,
    /// `[cluster.vip]`: a virtual IP moved by `pivot agent` (or keepalived).
    pub vip: Option<Spanned<super::vip::RawVip>>,
    /// `[cluster.rebuild]`: the agents `pivot rebuild` talks to.
    pub rebuild: Option<Spanned<super::rebuild::RawRebuild>>,
    /// Replicas lagging more leave the read routes (default: lag_threshold).
    pub read_max_lag: Option<Spanned<Dur>>,
    #[serde(default)]
    pub switchover: super::switchover::RawSwitchover,
    /// Rejoin fenced former primaries as replicas by themselves (default true).
    pub auto_rejoin: Option<bool>,
    /// At most one replication-health alert per instance and kind this often (default 60s).
    pub alert_interval: Option<Spanned<Dur>>,
    /// `[cluster.heartbeat]`: heartbeat lag (absent or `enabled = false`: off).
    pub heartbeat: Option<Spanned<super::heartbeat::RawHeartbeat>>,
    /// Active/passive dual primaries: close the ring again after a failover
    /// or switchover (default false).
    pub dual_primary: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    pub user: Spanned<String>,
    pub password: Option<Spanned<String>>,
    pub password_file: Option<Spanned<String>>,
    pub password_env: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDetection {
    pub unreachable_after: Option<Spanned<i64>>,
    pub confirm_window: Option<Spanned<Dur>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    pub automatic: Option<bool>,
    pub block_period: Option<Spanned<Dur>>,
    pub relay_apply_timeout: Option<Spanned<Dur>>,
    pub max_candidate_lag: Option<Spanned<Dur>>,
    pub step_timeout: Option<Spanned<Dur>>,
    #[serde(default)]
    pub preferred: Vec<Spanned<String>>,
    #[serde(default)]
    pub never_promote: Vec<Spanned<String>>,
    pub semi_sync: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHooks {
    pub timeout: Option<Spanned<Dur>>,
    pub pre_failover: Option<Spanned<Vec<String>>>,
    pub post_failover: Option<Spanned<Vec<String>>>,
    pub post_unsuccessful_failover: Option<Spanned<Vec<String>>>,
    pub pre_switchover: Option<Spanned<Vec<String>>>,
    pub post_switchover: Option<Spanned<Vec<String>>>,
    pub fence: Option<Spanned<Vec<String>>>,
    pub alert: Option<Spanned<Vec<String>>>,
    pub mha_master_ip_failover: Option<Spanned<String>>,
}
