//! Instance identity: `host:port`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One MySQL/MariaDB server as pivot addresses it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceKey {
    pub host: String,
    pub port: u16,
}

impl InstanceKey {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        InstanceKey { host: normalize_host(&host.into()), port }
    }
}

/// Hosts are compared case-insensitively; `localhost` is the loopback address
/// (pivot never uses Unix sockets to reach an instance).
fn normalize_host(host: &str) -> String {
    let lower = host.trim().to_ascii_lowercase();
    if lower == "localhost" {
        "127.0.0.1".to_string()
    } else {
        lower
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{input}` is not an instance address: {reason} (expected host:port, e.g. 127.0.0.1:3306)")]
pub struct InstanceKeyError {
    pub input: String,
    pub reason: &'static str,
}

impl FromStr for InstanceKey {
    type Err = InstanceKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| InstanceKeyError { input: s.to_string(), reason };
        let s = s.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| err("unclosed `[`"))?;
            let port = after.strip_prefix(':').ok_or_else(|| err("missing `:port`"))?;
            (host, port)
        } else {
            s.rsplit_once(':').ok_or_else(|| err("missing `:port`"))?
        };
        if host.is_empty() {
            return Err(err("empty host"));
        }
        let port: u16 = port.parse().map_err(|_| err("port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(err("port 0 is not a listening port"));
        }
        Ok(InstanceKey::new(host, port))
    }
}

impl Serialize for InstanceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for InstanceKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let k: InstanceKey = "DB1.example:3306".parse().unwrap();
        assert_eq!(k, InstanceKey::new("db1.example", 3306));
        assert_eq!(k.to_string(), "db1.example:3306");
        let k: InstanceKey = "localhost:3307".parse().unwrap();
        assert_eq!(k.to_string(), "127.0.0.1:3307");
        let k: InstanceKey = "[::1]:3306".parse().unwrap();
        assert_eq!(k.to_string(), "[::1]:3306");
    }

    #[test]
    fn rejects_bad_addresses() {
        for bad in ["db1", ":3306", "db1:0", "db1:x", "db1:70000", "[::1"] {
            assert!(bad.parse::<InstanceKey>().is_err(), "{bad} should be rejected");
        }
    }
}
