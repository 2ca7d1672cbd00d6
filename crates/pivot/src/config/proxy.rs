//! `[cluster.proxy]`: the built-in proxy's listeners and bounds.

use super::duration::Dur;
use super::load::{duration_in, int_in, Source};
use super::ConfigError;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawProxy {
    pub write: Option<Spanned<String>>,
    pub read: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub hold_queue: Option<Spanned<i64>>,
    pub hold_timeout: Option<Spanned<Dur>>,
    pub connect_timeout: Option<Spanned<Dur>>,
    pub idle_timeout: Option<Spanned<Dur>>,
    pub required: Option<bool>,
    pub threads: Option<Spanned<i64>>,
    pub mode: Option<Spanned<String>>,
    pub transaction_grace: Option<Spanned<Dur>>,
}

/// The built-in proxy of one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// Forwards to the primary of the current epoch only.
    pub write: Option<SocketAddr>,
    /// Balances over healthy replicas (least connections), the primary when none is.
    pub read: Option<SocketAddr>,
    /// Client connections at once, both ports together; more are refused.
    pub max_connections: usize,
    /// Connections waiting for a primary during a recovery; more are refused.
    pub hold_queue: usize,
    /// How long a held connection waits for the new primary.
    pub hold_timeout: Duration,
    pub connect_timeout: Duration,
    /// A connection with no bytes either way for this long is closed.
    pub idle_timeout: Duration,
    /// A failover whose proxy could not be switched counts as failed.
    pub required: bool,
    /// Threads moving bytes (the proxy's own runtime).
    pub threads: usize,
    /// How the write port forwards: bytes, or following the MySQL protocol
    /// to move idle sessions to a new primary.
    pub mode: ProxyMode,
    /// Protocol mode: how long a session in a transaction (or a command)
    /// may go on with the old primary after the route moved before it is ended.
    pub transaction_grace: Duration,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyMode {
    /// Bytes are moved as they come; connections to a former primary are cut.
    #[default]
    Tcp,
    /// The write port follows the MySQL protocol and moves idle sessions.
    Mysql,
}

fn mode(src: &Source, v: &Option<Spanned<String>>) -> Result<ProxyMode, ConfigError> {
    match v.as_ref().map(|m| (m, m.get_ref().as_str())) {
        None | Some((_, "tcp")) => Ok(ProxyMode::Tcp),
        Some((_, "mysql")) => Ok(ProxyMode::Mysql),
        Some((m, other)) => Err(src.err(m, format!("proxy mode `{other}` is unknown: write \"tcp\" or \"mysql\""))),
    }
}

fn addr(src: &Source, v: &Option<Spanned<String>>, name: &str) -> Result<Option<SocketAddr>, ConfigError> {
    let Some(v) = v else { return Ok(None) };
    v.get_ref().parse().map(Some).map_err(|_| {
        src.err(v, format!("proxy {name} `{}` is not an address: write it as 127.0.0.1:6033", v.get_ref()))
    })
}

pub(super) fn proxy(
    src: &Source,
    cluster: &str,
    raw: &Option<Spanned<RawProxy>>,
) -> Result<Option<ProxyConfig>, ConfigError> {
    let Some(spanned) = raw else { return Ok(None) };
    let raw = spanned.get_ref();
    let (ms, secs) = (Duration::from_millis, Duration::from_secs);
    let write = addr(src, &raw.write, "write")?;
    let read = addr(src, &raw.read, "read")?;
    if write.is_none() && read.is_none() {
        return Err(src.whole(format!(
            "[cluster.proxy] of cluster `{cluster}` has neither write nor read: give at least one listen address"
        )));
    }
    if let (Some(w), Some(r)) = (write, &raw.read) {
        if Some(w) == read {
            return Err(src.err(r, "proxy write and read are the same address: give each its own port"));
        }
    }
    Ok(Some(ProxyConfig {
        write,
        read,
        max_connections: int_in(src, &raw.max_connections, "proxy max_connections", 4096, 1, 1_000_000)? as usize,
        hold_queue: int_in(src, &raw.hold_queue, "proxy hold_queue", 1024, 0, 1_000_000)? as usize,
        hold_timeout: duration_in(src, &raw.hold_timeout, "proxy hold_timeout", secs(10), ms(0), secs(600))?,
        connect_timeout: duration_in(src, &raw.connect_timeout, "proxy connect_timeout", secs(1), ms(10), secs(60))?,
        idle_timeout: duration_in(
            src,
            &raw.idle_timeout,
            "proxy idle_timeout",
            secs(8 * 3600),
            secs(1),
            secs(86400 * 7),
        )?,
        required: raw.required.unwrap_or(write.is_some()),
        threads: int_in(src, &raw.threads, "proxy threads", 1, 1, 64)? as usize,
        mode: mode(src, &raw.mode)?,
        transaction_grace: duration_in(
            src,
            &raw.transaction_grace,
            "proxy transaction_grace",
            secs(2),
            ms(0),
            secs(3600),
        )?,
    }))
}
