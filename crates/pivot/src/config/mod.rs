//! The configuration file: one TOML file, checked whole before anything runs.
//!
//! [`Config::load`] rejects unknown keys and bad values with the file, the
//! line and the reason, reads passwords from files or the environment, and
//! returns plain validated values. Nothing else in pivot reads the file, and
//! configuration is passed down explicitly (no global state).

mod dns;
mod duration;
mod heartbeat;
mod kv;
mod load;
mod proxy;
mod raw;
mod rebuild;
pub use rebuild::{rebuild_agents, RebuildConfig};
mod switchover;
mod vip;
mod webhook;
pub use webhook::{parse_url as parse_webhook_url, WebhookConfig, WebhookFormat, WebhookRoots, WebhookUrl};

mod agent;
mod agent_rebuild;
pub use agent::AgentConfig;
pub use agent_rebuild::AgentRebuild;
pub use vip::{interface_name, read_token, VipAddress, VipConfig};

pub use dns::DnsConfig;
pub use heartbeat::HeartbeatConfig;
pub use kv::{ConsulConfig, EtcdConfig};
pub use load::ConfigError;
pub use proxy::{ProxyConfig, ProxyMode};

use pivot_core::analysis::DetectionSettings;
use pivot_core::InstanceKey;
use pivot_server::Credentials;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    pub path: PathBuf,
    pub pivot: PivotSettings,
    pub clusters: Vec<ClusterConfig>,
}

#[derive(Clone, Debug)]
pub struct PivotSettings {
    /// The SQLite state file (recoveries, audit log, blocks).
    pub state: PathBuf,
    /// Where the HTTP API, metrics and health checks listen; `None` = off.
    pub http: Option<SocketAddr>,
    /// The authoritative DNS responder for the routes; `None` = off.
    pub dns: Option<DnsConfig>,
    /// The bearer token API mutations (switchover) need; `None`: the API is read-only.
    pub api_token: Option<pivot_server::Secret>,
    /// Where replication-health alerts are POSTed; `None` = no webhook.
    pub webhook: Option<WebhookConfig>,
}

#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub name: String,
    pub seeds: Vec<InstanceKey>,
    /// The account pivot probes and acts with.
    pub credentials: Credentials,
    /// The replication account, for repointing a replica that has none.
    pub replication: Option<Credentials>,
    pub poll_interval: Duration,
    pub probe_timeout: Duration,
    /// Upper bound on instances discovered in this cluster.
    pub max_instances: usize,
    pub detection: DetectionSettings,
    pub failover: FailoverConfig,
    pub switchover: pivot_core::plan::SwitchoverLimits,
    pub hooks: HooksConfig,
    /// The primary published to etcd v3, if configured.
    pub etcd: Option<EtcdConfig>,
    /// The primary published to Consul's KV store, if configured.
    pub consul: Option<ConsulConfig>,
    /// The built-in proxy, if configured.
    pub proxy: Option<ProxyConfig>,
    /// A virtual IP that follows the primary (`pivot agent`), if configured.
    pub vip: Option<VipConfig>,
    /// `[cluster.rebuild]` (defaults when absent).
    pub rebuild: RebuildConfig,
    /// Replicas lagging more leave the read routes (proxy read port, DNS,
    /// health checks).
    pub read_max_lag: Duration,
    /// A fenced former primary whose GTIDs the primary holds becomes its
    /// replica without an operator (`auto_rejoin`, default on).
    pub auto_rejoin: bool,
    /// At most one replication-health alert per instance and kind this often.
    pub alert_interval: Duration,
    /// `[cluster.heartbeat]` when enabled: heartbeat lag next to the server's.
    pub heartbeat: Option<HeartbeatConfig>,
    /// Active/passive dual primaries (`dual_primary`, default off): with two
    /// instances, pivot closes the ring again after a failover or a
    /// switchover (the active replicates from the read-only passive).
    pub dual_primary: bool,
}

#[derive(Clone, Debug)]
pub struct FailoverConfig {
    /// Fail over without an operator when the analysis says the primary is dead.
    pub automatic: bool,
    /// After an automatic recovery, no other automatic recovery of this
    /// cluster for this long unless acknowledged (`pivot ack`).
    pub block_period: Duration,
    /// Bound on waiting for a candidate to apply its relay log.
    pub relay_apply_timeout: Duration,
    /// Replicas lagging more than this (last known) are not promoted.
    pub max_candidate_lag: Duration,
    /// Bound on each SQL step of a recovery.
    pub step_timeout: Duration,
    pub preferred: Vec<InstanceKey>,
    pub never_promote: Vec<InstanceKey>,
    pub semi_sync: SemiSyncPolicy,
}

/// Whether the new primary gets the semi-sync primary side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SemiSyncPolicy {
    /// As the old primary had it.
    Auto,
    On,
    Off,
}

/// External programs run at points of a recovery. Each is argv (program and
/// arguments), never a shell string.
#[derive(Clone, Debug, Default)]
pub struct HooksConfig {
    pub timeout: Duration,
    pub pre_failover: Option<Vec<String>>,
    pub post_failover: Option<Vec<String>>,
    pub post_unsuccessful_failover: Option<Vec<String>>,
    pub pre_switchover: Option<Vec<String>>,
    pub post_switchover: Option<Vec<String>>,
    /// STONITH: make sure the old primary takes no writes.
    pub fence: Option<Vec<String>>,
    /// Called with every alert.
    pub alert: Option<Vec<String>>,
    /// An MHA `master_ip_failover_script`, called with MHA's arguments.
    pub mha_master_ip_failover: Option<String>,
}

impl Config {
    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }
}
