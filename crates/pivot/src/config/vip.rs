//! `[cluster.vip]`: a virtual IP that follows the primary, moved by `pivot
//! agent` on each database host (or by keepalived, whose check asks the
//! agent), and the token pivot authenticates to the agents with.

use super::duration::Dur;
use super::load::{duration_in, Source};
use super::ConfigError;
use pivot_core::InstanceKey;
use pivot_server::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawVip {
    pub address: Option<Spanned<String>>,
    pub interface: Option<Spanned<String>>,
    pub agents: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    pub token_file: Option<Spanned<String>>,
    pub lease: Option<Spanned<Dur>>,
    pub timeout: Option<Spanned<Dur>>,
    pub required: Option<bool>,
    pub keepalived: Option<bool>,
}

/// An IPv4 address with its prefix length, as `ip addr` takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipAddress {
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

impl std::fmt::Display for VipAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

impl std::str::FromStr for VipAddress {
    type Err = String;

    /// `198.18.0.100/24`; a bare address is a /32.
    fn from_str(s: &str) -> Result<VipAddress, String> {
        let (ip, prefix) = s.split_once('/').unwrap_or((s, "32"));
        if ip.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(format!("`{s}`: IPv6 virtual addresses are not supported (yet): use an IPv4 address"));
        }
        let ip: Ipv4Addr = ip.parse().map_err(|_| format!("`{s}` is not an IPv4 address like 10.0.0.100/24"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (1..=32).contains(p))
            .ok_or_else(|| format!("`{s}`: the prefix length must be 1 to 32, like 10.0.0.100/24"))?;
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            return Err(format!("`{s}` cannot be a virtual address: use a unicast address of the hosts' network"));
        }
        Ok(VipAddress { ip, prefix })
    }
}

/// The virtual IP of one cluster.
#[derive(Clone, Debug)]
pub struct VipConfig {
    pub address: VipAddress,
    /// Where the address goes on each host (an agent's own `interface`
    /// setting wins); keepalived's `interface` too.
    pub interface: String,
    /// Each instance's agent (`host:port` of its `listen`), in instance order.
    pub agents: Vec<(InstanceKey, InstanceKey)>,
    /// Sent as `Authorization: Bearer`; never printed.
    pub token: Secret,
    /// How long an agent keeps the address (or its claim to be primary,
    /// for keepalived) without a renewal from pivot: whole seconds.
    pub lease: Duration,
    /// Bound on one command to an agent; also how long a command stays
    /// valid on the agent's clock (a late one is refused).
    pub timeout: Duration,
    /// A failover whose address could not be moved counts as failed.
    pub required: bool,
    /// keepalived moves the address (`pivot keepalived-config`); the agents
    /// only answer its check, and never touch an address themselves.
    pub keepalived: bool,
}

impl VipConfig {
    /// The agent of `instance`, if one is configured.
    pub fn agent_of(&self, instance: &InstanceKey) -> Option<&InstanceKey> {
        self.agents.iter().find(|(i, _)| i == instance).map(|(_, a)| a)
    }
}

const MIN_LEASE: Duration = Duration::from_secs(1);
const MAX_LEASE: Duration = Duration::from_secs(600);
const DEFAULT_LEASE: Duration = Duration::from_secs(3);
const MIN_TIMEOUT: Duration = Duration::from_millis(100);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Tokens shorter than this are refused: a guessable token moves the VIP.
pub const MIN_TOKEN_LEN: usize = 16;

/// An interface name as the kernel takes it (at most 15 bytes).
pub fn interface_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if ok {
        Ok(())
    } else {
        Err(format!("interface `{name}` is not an interface name (1 to 15 characters, no `/`, `:` or spaces)"))
    }
}

pub(super) fn vip(src: &Source, raw: &Option<Spanned<RawVip>>) -> Result<Option<VipConfig>, ConfigError> {
    let Some(spanned) = raw else { return Ok(None) };
    let r = spanned.get_ref();
    let address = match &r.address {
        None => return Err(src.err(spanned, "[cluster.vip] needs address, like address = \"10.0.0.100/24\"")),
        Some(a) => a.get_ref().parse::<VipAddress>().map_err(|e| src.err(a, format!("vip address {e}")))?,
    };
    let interface = match &r.interface {
        None => "eth0".to_string(),
        Some(i) => {
            interface_name(i.get_ref()).map_err(|e| src.err(i, format!("vip {e}")))?;
            i.get_ref().clone()
        }
    };
    let Some(agents_raw) = &r.agents else {
        return Err(src.err(
            spanned,
            "[cluster.vip] needs agents: each instance and its host's `pivot agent`, like \
             agents = { \"10.0.0.1:3306\" = \"10.0.0.1:9190\" }",
        ));
    };
    if agents_raw.get_ref().is_empty() {
        return Err(src.err(agents_raw, "vip agents is empty: name each instance's agent"));
    }
    let mut agents: Vec<(InstanceKey, InstanceKey)> = Vec::new();
    for (instance, agent) in agents_raw.get_ref() {
        let i: InstanceKey =
            instance.parse().map_err(|e| src.err(agent, format!("vip agents: the instance {instance}: {e}")))?;
        let a: InstanceKey = agent.get_ref().parse().map_err(|e| src.err(agent, format!("vip agent of {i}: {e}")))?;
        if let Some((other, _)) = agents.iter().find(|(_, seen)| *seen == a) {
            return Err(src.err(
                agent,
                format!("vip agent {a} serves both {other} and {i}: each agent answers for one instance"),
            ));
        }
        if agents.iter().any(|(seen, _)| *seen == i) {
            return Err(src.err(agent, format!("vip agents names {i} twice")));
        }
        agents.push((i, a));
    }
    let token = match &r.token_file {
        None => {
            return Err(src
                .err(spanned, "[cluster.vip] needs token_file: the file (mode 0600) with the token the agents accept"))
        }
        Some(f) => token_file(src, f, "the agents' token")?,
    };
    let lease = duration_in(src, &r.lease, "vip lease", DEFAULT_LEASE, MIN_LEASE, MAX_LEASE)?;
    if lease.subsec_nanos() != 0 {
        let at = r.lease.as_ref().expect("a fraction came from the file");
        return Err(src.err(at, "vip lease must be whole seconds (the kernel keeps address lifetimes in seconds)"));
    }
    let timeout = duration_in(src, &r.timeout, "vip timeout", DEFAULT_TIMEOUT, MIN_TIMEOUT, lease / 2)?;
    Ok(Some(VipConfig {
        address,
        interface,
        agents,
        token,
        lease,
        timeout,
        required: r.required.unwrap_or(true),
        keepalived: r.keepalived.unwrap_or(false),
    }))
}

/// A token from a file only its owner may access (mode 0600 or stricter):
/// one line, at least [`MIN_TOKEN_LEN`] characters.
pub(super) fn token_file(src: &Source, f: &Spanned<String>, what: &str) -> Result<Secret, ConfigError> {
    read_token(&src.resolve(f.get_ref())).map_err(|e| src.err(f, format!("token_file {e} ({what})")))
}

/// See [`token_file`]; the error names the file.
pub fn read_token(path: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| format!("`{shown}` cannot be read: {e} (create it with mode 0600)"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "`{shown}` has mode {mode:04o}, open to group or others: run `chmod 600 {shown}` (only its owner may \
             have access)"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("`{shown}` cannot be read: {e}"))?;
    let token = text.trim_end_matches(['\n', '\r']);
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("`{shown}` must hold one line without spaces: the token"));
    }
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "`{shown}` holds a token of {} characters; use at least {MIN_TOKEN_LEN}, like the output of \
             `head -c 32 /dev/urandom | base64`",
            token.len()
        ));
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
#[path = "vip_tests.rs"]
mod tests;
