//! Server flavour and version, read from the version string the server reports.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    MariaDb,
    MySql,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::MariaDb => "MariaDB",
            Flavor::MySql => "MySQL",
        })
    }
}

/// A server version such as `10.11.19-MariaDB-0+deb12u1-log` or `8.0.36`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerVersion {
    pub flavor: Flavor,
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    /// The string exactly as the server reported it.
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot read server version `{0}`: expected something like 10.11.6-MariaDB or 8.0.36")]
pub struct VersionError(pub String);

impl ServerVersion {
    /// Parse `@@version`. `comment` is `@@version_comment`, consulted because some
    /// MariaDB builds hide the flavour there; pass "" when unknown.
    pub fn parse(version: &str, comment: &str) -> Result<ServerVersion, VersionError> {
        let err = || VersionError(version.to_string());
        // MariaDB 10.x behind old MySQL clients reports "5.5.5-10.11.6-MariaDB".
        let text = version.trim();
        let core = text.strip_prefix("5.5.5-").unwrap_or(text);
        let numeric: String = core.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let mut parts = numeric.split('.').filter(|p| !p.is_empty());
        let major = parts.next().ok_or_else(err)?.parse().map_err(|_| err())?;
        let minor = parts.next().unwrap_or("0").parse().map_err(|_| err())?;
        let patch = parts.next().unwrap_or("0").parse().map_err(|_| err())?;
        let mariadb = text.to_ascii_lowercase().contains("mariadb") || comment.to_ascii_lowercase().contains("mariadb");
        let flavor = if mariadb { Flavor::MariaDb } else { Flavor::MySql };
        Ok(ServerVersion { flavor, major, minor, patch, text: text.to_string() })
    }

    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        (self.major, self.minor, self.patch) >= (major, minor, patch)
    }

    /// Orders versions of the same flavour; `None` across flavours.
    pub fn cmp_same_flavor(&self, other: &ServerVersion) -> Option<std::cmp::Ordering> {
        (self.flavor == other.flavor)
            .then(|| (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch)))
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}.{}.{}", self.flavor, self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_version_strings() {
        let cases = [
            ("10.11.19-MariaDB-0+deb12u1-log", "", Flavor::MariaDb, (10, 11, 19)),
            ("5.5.5-10.6.16-MariaDB", "", Flavor::MariaDb, (10, 6, 16)),
            ("11.4.2-MariaDB", "mariadb.org binary distribution", Flavor::MariaDb, (11, 4, 2)),
            ("8.0.36", "MySQL Community Server - GPL", Flavor::MySql, (8, 0, 36)),
            ("5.7.44-log", "MySQL Community Server (GPL)", Flavor::MySql, (5, 7, 44)),
            ("8.4.0", "MySQL Community Server - GPL", Flavor::MySql, (8, 4, 0)),
            ("8.0.35-27", "Percona Server (GPL), Release 27", Flavor::MySql, (8, 0, 35)),
        ];
        for (text, comment, flavor, (ma, mi, pa)) in cases {
            let v = ServerVersion::parse(text, comment).unwrap();
            assert_eq!((v.flavor, v.major, v.minor, v.patch), (flavor, ma, mi, pa), "{text}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert!(ServerVersion::parse("MariaDB", "").is_err());
        assert!(ServerVersion::parse("", "").is_err());
    }
}
