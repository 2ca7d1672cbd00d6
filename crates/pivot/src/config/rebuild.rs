//! `[cluster.rebuild]`: how `pivot rebuild` reaches each host's `pivot
//! agent`. Without it, the agents and token of `[cluster.vip]` serve.
//!
//! ```toml
//! [cluster.rebuild]
//! agents = { "10.0.0.1:3306" = "10.0.0.1:9190", "10.0.0.2:3306" = "10.0.0.2:9190" }
//! token_file = "/etc/pivot/agent.token"   # mode 0600, the agents' token
//! # timeout = "10s"           # one request to an agent
//! # max_duration = "6h"       # the whole rebuild
//! # replicate_timeout = "2m"  # the rebuilt server answering and replicating
//! ```

use super::duration::Dur;
use super::load::{duration_in, Source};
use super::ConfigError;
use pivot_core::InstanceKey;
use pivot_server::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRebuild {
    agents: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    token_file: Option<Spanned<String>>,
    timeout: Option<Spanned<Dur>>,
    max_duration: Option<Spanned<Dur>>,
    replicate_timeout: Option<Spanned<Dur>>,
}

#[derive(Clone, Debug)]
pub struct RebuildConfig {
    /// Each instance's agent; empty: `[cluster.vip]`'s.
    pub agents: Vec<(InstanceKey, InstanceKey)>,
    /// `None`: `[cluster.vip]`'s.
    pub token: Option<Secret>,
    pub timeout: Duration,
    pub max_duration: Duration,
    pub replicate_timeout: Duration,
}

impl Default for RebuildConfig {
    fn default() -> Self {
        RebuildConfig {
            agents: Vec::new(),
            token: None,
            timeout: Duration::from_secs(10),
            max_duration: Duration::from_secs(6 * 3600),
            replicate_timeout: Duration::from_secs(120),
        }
    }
}

pub(super) fn rebuild(src: &Source, raw: &Option<Spanned<RawRebuild>>) -> Result<RebuildConfig, ConfigError> {
    let Some(raw) = raw else { return Ok(RebuildConfig::default()) };
    let r = raw.get_ref();
    let mut agents: Vec<(InstanceKey, InstanceKey)> = Vec::new();
    for (instance, agent) in r.agents.as_ref().map(|a| a.get_ref().iter().collect::<Vec<_>>()).unwrap_or_default() {
        let i: InstanceKey =
            instance.parse().map_err(|e| src.err(agent, format!("rebuild agents: the instance {instance}: {e}")))?;
        let a = super::load::instance(src, agent, "rebuild agents: the agent")?;
        agents.push((i, a));
    }
    let token = r.token_file.as_ref().map(|f| super::vip::token_file(src, f, "the agents' token")).transpose()?;
    let (secs, d) = (Duration::from_secs, RebuildConfig::default());
    Ok(RebuildConfig {
        agents,
        token,
        timeout: duration_in(src, &r.timeout, "timeout", d.timeout, Duration::from_millis(100), secs(600))?,
        max_duration: duration_in(src, &r.max_duration, "max_duration", d.max_duration, secs(10), secs(7 * 86400))?,
        replicate_timeout: duration_in(
            src,
            &r.replicate_timeout,
            "replicate_timeout",
            d.replicate_timeout,
            secs(1),
            secs(3600),
        )?,
    })
}

/// The agents and token `pivot rebuild` uses for `c`: `[cluster.rebuild]`'s,
/// else `[cluster.vip]`'s.
pub fn rebuild_agents(c: &super::ClusterConfig) -> (Vec<(InstanceKey, InstanceKey)>, Option<Secret>) {
    let vip = c.vip.as_ref();
    let agents = if c.rebuild.agents.is_empty() {
        vip.map(|v| v.agents.clone()).unwrap_or_default()
    } else {
        c.rebuild.agents.clone()
    };
    (agents, c.rebuild.token.clone().or_else(|| vip.map(|v| v.token.clone())))
}
