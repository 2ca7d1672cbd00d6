//! `pivot keepalived-config --cluster C`: a keepalived configuration, the
//! same on every database host, under which VRRP can only follow pivot's
//! decision:
//!
//! * the only check is `pivot agent check-primary`, which passes only where
//!   the local agent holds pivot's lease as the primary of the current
//!   epoch, with a table from pivot younger than the lease;
//! * the check is tracked with weight 0: an instance whose check fails is
//!   in FAULT and never holds the address, whatever VRRP would elect;
//! * every instance starts as BACKUP with the same priority, so no host is
//!   preferred by keepalived itself; at most one host passes the check, and
//!   it becomes MASTER.

use super::out::emit;
use crate::config::{Config, VipConfig};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub struct KeepalivedSpec<'a> {
    pub cluster: &'a str,
    pub vip: &'a VipConfig,
    /// The pivot binary on the database hosts.
    pub pivot: &'a Path,
    /// The agent's configuration on the database hosts.
    pub agent_config: &'a Path,
    pub router_id: u8,
}

/// A stable router id from the cluster's name (1 to 255).
pub fn default_router_id(cluster: &str) -> u8 {
    // FNV-1a: the same name gives the same id on every run and host.
    let mut h: u32 = 0x811c_9dc5;
    for b in cluster.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h % 255) as u8 + 1
}

pub fn render(s: &KeepalivedSpec) -> String {
    let c = s.cluster;
    let v = s.vip;
    let iface = &v.interface;
    format!(
        "# keepalived configuration for pivot cluster `{c}`, written by `pivot keepalived-config`.\n\
         # The same file on every database host, next to `pivot agent` (its configuration:\n\
         # {agent}). VRRP only follows pivot: the one check passes only where the agent\n\
         # holds pivot's lease as the primary of the current epoch; an instance whose check\n\
         # fails is in FAULT (weight 0) and never holds the address.\n\
         global_defs {{\n    \
             enable_script_security\n    \
             script_user root\n\
         }}\n\n\
         vrrp_script chk_pivot_{c} {{\n    \
             script \"{pivot} agent check-primary --config {agent}\"\n    \
             interval 1\n    \
             timeout 1\n    \
             fall 1\n    \
             rise 1\n    \
             weight 0\n\
         }}\n\n\
         vrrp_instance pivot_{c} {{\n    \
             state BACKUP\n    \
             interface {iface}\n    \
             virtual_router_id {id}\n    \
             priority 100\n    \
             advert_int 1\n    \
             virtual_ipaddress {{\n        \
                 {address} dev {iface}\n    \
             }}\n    \
             track_script {{\n        \
                 chk_pivot_{c} weight 0\n    \
             }}\n\
         }}\n",
        agent = s.agent_config.display(),
        pivot = s.pivot.display(),
        id = s.router_id,
        address = v.address,
    )
}

/// A path keepalived can run as one word of its `script` string.
fn plain_path(p: &Path, what: &str) -> anyhow::Result<()> {
    let text = p.to_str().ok_or_else(|| anyhow::anyhow!("{what} `{}` is not UTF-8", p.display()))?;
    if !p.is_absolute() || text.chars().any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\') {
        anyhow::bail!(
            "{what} `{text}` must be an absolute path without spaces or quotes (keepalived splits its script line)"
        );
    }
    Ok(())
}

pub fn run(
    config: &Path,
    cluster: &str,
    agent_config: &Path,
    pivot: Option<PathBuf>,
    router_id: Option<u8>,
) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config)?;
    let c = super::cluster_of(&cfg, cluster)?;
    let Some(vip) = &c.vip else {
        anyhow::bail!(
            "cluster `{cluster}` has no [cluster.vip] in {}: add one with keepalived = true",
            config.display()
        );
    };
    if !vip.keepalived {
        anyhow::bail!(
            "[cluster.vip] of cluster `{cluster}` has keepalived = false: pivot's agents move the address themselves, \
             and two movers would fight over it; set keepalived = true to let keepalived move it"
        );
    }
    let pivot = match pivot {
        Some(p) => p,
        None => {
            std::env::current_exe().map_err(|e| anyhow::anyhow!("cannot tell where pivot is ({e}): give --pivot"))?
        }
    };
    plain_path(&pivot, "--pivot")?;
    plain_path(agent_config, "--agent-config")?;
    if router_id == Some(0) {
        anyhow::bail!("--router-id must be 1 to 255");
    }
    let spec = KeepalivedSpec {
        cluster,
        vip,
        pivot: &pivot,
        agent_config,
        router_id: router_id.unwrap_or_else(|| default_router_id(cluster)),
    };
    emit(&render(&spec))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_only_follows_pivot() {
        let vip = VipConfig {
            address: "10.0.0.100/24".parse().unwrap(),
            interface: "bond0".into(),
            agents: vec![],
            token: pivot_server::Secret::new("0123456789abcdef"),
            lease: std::time::Duration::from_secs(3),
            timeout: std::time::Duration::from_secs(1),
            required: true,
            keepalived: true,
        };
        let spec = KeepalivedSpec {
            cluster: "main",
            vip: &vip,
            pivot: Path::new("/usr/local/bin/pivot"),
            agent_config: Path::new("/etc/pivot/agent.toml"),
            router_id: 51,
        };
        let out = render(&spec);
        for want in [
            "script \"/usr/local/bin/pivot agent check-primary --config /etc/pivot/agent.toml\"",
            "interval 1\n    timeout 1\n    fall 1\n    rise 1\n    weight 0\n",
            "state BACKUP\n    interface bond0\n    virtual_router_id 51\n    priority 100\n",
            "virtual_ipaddress {\n        10.0.0.100/24 dev bond0\n    }",
            "track_script {\n        chk_pivot_main weight 0\n    }",
        ] {
            assert!(out.contains(want), "missing `{want}` in:\n{out}");
        }
        assert!(!out.contains("nopreempt") && !out.contains("state MASTER"), "{out}");
        assert!(!out.contains("0123456789abcdef"), "no token in the file");
    }

    #[test]
    fn router_ids_are_stable_and_in_range() {
        assert_eq!(default_router_id("main"), default_router_id("main"));
        for name in ["a", "main", "sandbox", "x-y_z", ""] {
            assert!((1..=255).contains(&default_router_id(name)), "{name}");
        }
    }
}
