//! `[cluster.etcd]` and `[cluster.consul]`: the KV stores a cluster's
//! primary is published to (orchestrator's key layout, guarded by pivot's
//! epoch).

use super::duration::Dur;
use super::load::{duration_in, Source};
use super::ConfigError;
use pivot_server::Secret;
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawEtcd {
    pub endpoints: Option<Spanned<Vec<Spanned<String>>>>,
    pub prefix: Option<Spanned<String>>,
    pub timeout: Option<Spanned<Dur>>,
    pub required: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConsul {
    pub address: Option<Spanned<String>>,
    pub prefix: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub timeout: Option<Spanned<Dur>>,
    pub required: Option<bool>,
}

/// Publishing the primary to etcd v3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdConfig {
    /// `http://host:port` of each etcd member.
    pub endpoints: Vec<String>,
    /// Put before `mysql/master/<cluster>`: empty, or ending in `/`.
    pub prefix: String,
    /// Bound on one publication (up to 3 attempts within it).
    pub timeout: Duration,
    /// A failover whose etcd keys could not be updated counts as failed.
    pub required: bool,
}

/// Publishing the primary to Consul's KV store (through the HTTP API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsulConfig {
    /// The agent's (or server's) HTTP API host.
    pub host: String,
    pub port: u16,
    /// Put before `mysql/master/<cluster>`: empty, or ending in `/`.
    pub prefix: String,
    /// The ACL token, sent as `X-Consul-Token`; never printed.
    pub token: Option<Secret>,
    /// Bound on one publication (up to 3 attempts within it).
    pub timeout: Duration,
    /// A failover whose Consul keys could not be updated counts as failed.
    pub required: bool,
}

impl ConsulConfig {
    /// `http://host:port`, for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }
}

const MIN_TIMEOUT: Duration = Duration::from_millis(100);
const MAX_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn etcd(src: &Source, raw: &Option<Spanned<RawEtcd>>) -> Result<Option<EtcdConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let r = raw.get_ref();
    let endpoints = match &r.endpoints {
        None => vec!["http://127.0.0.1:2379".to_string()],
        Some(list) if list.get_ref().is_empty() => {
            return Err(src.err(list, "etcd endpoints is empty: list at least one, like \"http://127.0.0.1:2379\""))
        }
        Some(list) => list
            .get_ref()
            .iter()
            .map(|e| {
                http_address(e.get_ref(), "etcd endpoint")
                    .map(|(host, port)| url_of(&host, port))
                    .map_err(|m| src.err(e, m))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(Some(EtcdConfig {
        endpoints,
        prefix: prefix(src, &r.prefix, "etcd", false)?,
        timeout: duration_in(src, &r.timeout, "etcd timeout", DEFAULT_TIMEOUT, MIN_TIMEOUT, MAX_TIMEOUT)?,
        required: r.required.unwrap_or(false),
    }))
}

pub(super) fn consul(src: &Source, raw: &Option<Spanned<RawConsul>>) -> Result<Option<ConsulConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let r = raw.get_ref();
    let (host, port) = match &r.address {
        None => ("127.0.0.1".to_string(), 8500),
        Some(a) => http_address(a.get_ref(), "consul address").map_err(|m| src.err(a, m))?,
    };
    let token = match &r.token_file {
        None => None,
        Some(f) => Some(token_from(src, f)?),
    };
    Ok(Some(ConsulConfig {
        host,
        port,
        prefix: prefix(src, &r.prefix, "consul", true)?,
        token,
        timeout: duration_in(src, &r.timeout, "consul timeout", DEFAULT_TIMEOUT, MIN_TIMEOUT, MAX_TIMEOUT)?,
        required: r.required.unwrap_or(false),
    }))
}

fn url_of(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// `http://host:port` (a trailing `/` allowed) as host and port. Plain HTTP
/// only: pivot has no TLS client for its KV stores (yet).
fn http_address(text: &str, what: &str) -> Result<(String, u16), String> {
    let example = if what.starts_with("etcd") { "http://127.0.0.1:2379" } else { "http://127.0.0.1:8500" };
    if text.starts_with("https://") {
        return Err(format!(
            "{what} `{text}`: https is not supported by pivot yet; use http:// to a local agent or proxy, like {example}"
        ));
    }
    let Some(rest) = text.strip_prefix("http://") else {
        return Err(format!("{what} `{text}` must be a URL like {example}"));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let bad = |why: &str| format!("{what} `{text}`: {why}; write it like {example}");
    if rest.contains('/') || rest.contains('?') || rest.contains('@') {
        return Err(bad("only scheme, host and port are allowed"));
    }
    let key: pivot_core::InstanceKey = rest.parse().map_err(|_| bad("not a host:port"))?;
    Ok((key.host, key.port))
}

/// Empty, or segments of letters, digits, `-`, `_`, `.` separated by `/`;
/// returned ending in `/`. Consul keys may not begin with `/` (etcd keys
/// may: confd's etcd backend asks for `/mysql/master/...`).
fn prefix(src: &Source, raw: &Option<Spanned<String>>, store: &str, consul: bool) -> Result<String, ConfigError> {
    let Some(p) = raw else { return Ok(String::new()) };
    let text = p.get_ref();
    if text.is_empty() {
        return Ok(String::new());
    }
    let ok_chars = text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if !ok_chars || text.contains("//") {
        return Err(src.err(
            p,
            format!("{store} prefix `{text}` may only have letters, digits, `-`, `_`, `.` and single `/` between them"),
        ));
    }
    if consul && text.starts_with('/') {
        return Err(src.err(p, format!("consul prefix `{text}` must not begin with `/` (Consul keys never do)")));
    }
    if text == "/" || text.ends_with('/') {
        Ok(text.clone())
    } else {
        Ok(format!("{text}/"))
    }
}

/// The Consul ACL token from a file only its owner may read (like
/// `password_file`); trailing newlines dropped.
fn token_from(src: &Source, f: &Spanned<String>) -> Result<Secret, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let path = src.resolve(f.get_ref());
    let shown = path.display();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| src.err(f, format!("token_file `{shown}` cannot be read: {e} (create it with mode 0600)")))?;
    let mode = std::fs::metadata(&path)
        .map_err(|e| src.err(f, format!("token_file `{shown}` cannot be read: {e}")))?
        .permissions()
        .mode()
        & 0o7777;
    if mode & 0o066 != 0 {
        return Err(src.err(
            f,
            format!(
                "token_file `{shown}` has mode {mode:04o}, open to group or others: run `chmod 600 {shown}` \
                 (only its owner may have access)"
            ),
        ));
    }
    let token = text.trim_end_matches(['\n', '\r']);
    if token.is_empty() || token.chars().any(|c| c.is_control()) {
        return Err(src.err(f, format!("token_file `{shown}` must hold one line: the Consul ACL token")));
    }
    Ok(Secret::new(token))
}

#[cfg(test)]
#[path = "kv_tests.rs"]
mod tests;
