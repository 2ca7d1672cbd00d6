//! GTID sets of both flavours behind one type.
//!
//! A cluster is all MariaDB or all MySQL (their GTIDs cannot replicate into each
//! other), so operations across flavours are a programming error in the caller
//! and answered conservatively (`contains` is false, `subtract` keeps everything).

mod mariadb;
mod mysql;

pub use mariadb::{MariaGtid, MariaGtidList, MariaParseError, PositionOrder};
pub use mysql::{MysqlGtidSet, MysqlParseError, SourceId};

use crate::version::Flavor;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "flavor", content = "set", rename_all = "lowercase")]
pub enum GtidSet {
    MariaDb(MariaGtidList),
    MySql(MysqlGtidSet),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GtidParseError {
    #[error(transparent)]
    MariaDb(#[from] MariaParseError),
    #[error(transparent)]
    MySql(#[from] MysqlParseError),
}

impl GtidSet {
    pub fn empty(flavor: Flavor) -> GtidSet {
        match flavor {
            Flavor::MariaDb => GtidSet::MariaDb(MariaGtidList::new()),
            Flavor::MySql => GtidSet::MySql(MysqlGtidSet::new()),
        }
    }

    pub fn parse(flavor: Flavor, text: &str) -> Result<GtidSet, GtidParseError> {
        Ok(match flavor {
            Flavor::MariaDb => GtidSet::MariaDb(MariaGtidList::parse(text)?),
            Flavor::MySql => GtidSet::MySql(MysqlGtidSet::parse(text)?),
        })
    }

    pub fn flavor(&self) -> Flavor {
        match self {
            GtidSet::MariaDb(_) => Flavor::MariaDb,
            GtidSet::MySql(_) => Flavor::MySql,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::MariaDb(l) => l.is_empty(),
            GtidSet::MySql(s) => s.is_empty(),
        }
    }

    pub fn contains(&self, other: &GtidSet) -> bool {
        match (self, other) {
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => a.contains(b),
            (GtidSet::MySql(a), GtidSet::MySql(b)) => a.contains(b),
            _ => false,
        }
    }

    pub fn union(&self, other: &GtidSet) -> GtidSet {
        match (self, other) {
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => GtidSet::MariaDb(a.union(b)),
            (GtidSet::MySql(a), GtidSet::MySql(b)) => GtidSet::MySql(a.union(b)),
            _ => self.clone(),
        }
    }

    pub fn subtract(&self, other: &GtidSet) -> GtidSet {
        match (self, other) {
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => GtidSet::MariaDb(a.subtract(b)),
            (GtidSet::MySql(a), GtidSet::MySql(b)) => GtidSet::MySql(a.subtract(b)),
            _ => self.clone(),
        }
    }

    /// Whether a replica at position `self` has received at least everything a
    /// replica at `other` has, from the same stream. MariaDB compares per domain
    /// (server ids change at a failover, sequence numbers keep growing); MySQL
    /// compares sets.
    pub fn reaches(&self, other: &GtidSet) -> bool {
        match (self, other) {
            (GtidSet::MariaDb(a), GtidSet::MariaDb(b)) => {
                matches!(a.cmp_position(b), PositionOrder::Equal | PositionOrder::Ahead)
            }
            (GtidSet::MySql(a), GtidSet::MySql(b)) => a.contains(b),
            _ => false,
        }
    }

    /// Drop transactions that originated on one server: by `server_id` for
    /// MariaDB, by `server_uuid` for MySQL (unchanged when the uuid is unknown).
    pub fn without_origin(&self, server_id: u32, server_uuid: Option<&str>) -> GtidSet {
        match self {
            GtidSet::MariaDb(l) => GtidSet::MariaDb(l.without_server(server_id)),
            GtidSet::MySql(s) => GtidSet::MySql(server_uuid.map_or_else(|| s.clone(), |u| s.without_uuid(u))),
        }
    }

    /// A scalar that grows with the position, for ranking replicas of one stream.
    pub fn weight(&self) -> u128 {
        match self {
            GtidSet::MariaDb(l) => l.position_weight(),
            GtidSet::MySql(s) => s.count(),
        }
    }
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::MariaDb(l) => l.fmt(f),
            GtidSet::MySql(s) => s.fmt(f),
        }
    }
}

#[cfg(test)]
mod proptests;
