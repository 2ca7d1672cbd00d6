//! Epochs and the routes a promotion updates.

use crate::instance::InstanceKey;
use serde::{Deserialize, Serialize};

/// One promotion (or adoption) of a primary, as stored. Epoch numbers only
/// grow; every route carries the number it was set from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub number: u64,
    pub primary: InstanceKey,
    /// The recovery that promoted it; `None`: adopted (pivot found it the
    /// healthy primary without having recovered to it).
    pub recovery_id: Option<i64>,
    /// Wall time it was stored, for display.
    pub since_ms: i64,
}

/// A route a promotion updates as a step of its plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// This pivot process's own routes: the proxy's ports, its DNS answers
    /// and HAProxy health checks.
    Local,
    /// The primary's address under a key in etcd v3.
    Etcd,
    /// The same in Consul's KV store.
    Consul,
    /// A virtual IP moved by `pivot agent` on the database hosts.
    Vip,
}

impl RouteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Local => "local",
            RouteKind::Etcd => "etcd",
            RouteKind::Consul => "consul",
            RouteKind::Vip => "vip",
        }
    }
}

/// A configured route: what kind, and whether a failover whose route could
/// not be updated counts as failed (clients cannot reach the new primary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    pub kind: RouteKind,
    pub required: bool,
}
