//! The route table: the one answer every route gives, derived from the
//! newest epoch and the cluster view.

use super::epoch::EpochRecord;
use crate::instance::InstanceKey;
use crate::observation::IoThread;
use crate::view::ClusterView;
use serde::{Deserialize, Serialize};

/// An instance's part in the routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The primary of the current epoch.
    Primary,
    Replica,
    /// A former primary pivot keeps read-only: no route ever leads to it.
    Fenced,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRoute {
    pub instance: InstanceKey,
    pub role: Role,
    /// Answered its last probe.
    pub reachable: bool,
    /// Primary: reachable and writable. Replica: reachable, read-only, IO
    /// and SQL threads running, replicating (through any chain) from the
    /// primary, lag known and within the limit.
    pub healthy: bool,
    /// The lag the replica reports, when it reports one.
    pub lag_s: Option<u64>,
    /// Why it is healthy or not, in words (the health checks' body).
    pub reason: String,
}

/// What every route says for one cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteTable {
    /// The epoch the write target comes from (0: none stored yet).
    pub epoch: u64,
    /// Where writes go: the primary of the epoch. `None`: nowhere.
    pub primary: Option<InstanceKey>,
    /// A recovery is running and has not promoted yet: new write
    /// connections wait (bounded) instead of reaching the old primary.
    pub hold: bool,
    /// Every instance pivot knows, with its role and health.
    pub instances: Vec<InstanceRoute>,
    /// The lag limit replicas were judged by.
    pub max_lag_s: u64,
}

/// Chains longer than this are not followed (a loop, or a broken view).
const MAX_CHAIN: usize = 8;

impl RouteTable {
    /// The table for `view` under `epoch`. `hold`: a recovery is running and
    /// its promotion has not been stored yet. `max_lag_s`: replicas lagging
    /// more leave the read routes.
    pub fn derive(epoch: Option<&EpochRecord>, view: &ClusterView, hold: bool, max_lag_s: u64) -> RouteTable {
        let primary = epoch.map(|e| e.primary.clone());
        let mut instances: Vec<InstanceRoute> =
            view.keys().map(|k| judge(k, primary.as_ref(), view, max_lag_s)).collect();
        // The epoch's primary in the fence list (made read-only as a split
        // brain's intruder, say): no write goes there; its replicas are
        // still judged against it.
        let fenced_primary = primary.as_ref().is_some_and(|p| view.fenced.contains(p));
        if let Some(p) = primary.as_ref().filter(|_| !fenced_primary) {
            if !instances.iter().any(|r| r.instance == *p) {
                instances.push(InstanceRoute {
                    instance: p.clone(),
                    role: Role::Primary,
                    reachable: false,
                    healthy: false,
                    lag_s: None,
                    reason: "not observed yet".into(),
                });
            }
        }
        instances.sort_by(|a, b| a.instance.cmp(&b.instance));
        let primary = primary.filter(|_| !fenced_primary);
        RouteTable { epoch: epoch.map_or(0, |e| e.number), primary, hold, instances, max_lag_s }
    }

    /// Whether `self` may replace `current`: never an older epoch.
    pub fn supersedes(&self, current: &RouteTable) -> bool {
        self.epoch >= current.epoch
    }

    /// Where new write connections go now; `None` while holding or without
    /// a primary.
    pub fn write_target(&self) -> Option<&InstanceKey> {
        if self.hold {
            return None;
        }
        self.primary.as_ref()
    }

    /// Replicas fit for reads within `max_lag_s` (the table's own limit when
    /// `None`).
    pub fn readable(&self, max_lag_s: Option<u64>) -> impl Iterator<Item = &InstanceRoute> {
        let limit = max_lag_s.unwrap_or(self.max_lag_s);
        self.instances
            .iter()
            .filter(move |r| r.role == Role::Replica && r.healthy && r.lag_s.is_some_and(|l| l <= limit))
    }

    /// Where reads may go: healthy replicas, else the primary (unless held).
    pub fn read_targets(&self) -> Vec<InstanceKey> {
        let replicas: Vec<InstanceKey> = self.readable(None).map(|r| r.instance.clone()).collect();
        if !replicas.is_empty() {
            return replicas;
        }
        self.write_target().cloned().into_iter().collect()
    }

    /// The table right after a promotion was stored as `epoch`, before the
    /// next observation: writes go to the new primary at once, and the old
    /// one (registered for fencing) leaves every route.
    pub fn after_promotion(&self, epoch: &EpochRecord, old: Option<&InstanceKey>) -> RouteTable {
        let mut t = self.clone();
        t.epoch = epoch.number;
        t.primary = Some(epoch.primary.clone());
        t.hold = false;
        t.instances.retain(|r| r.instance != epoch.primary && Some(&r.instance) != old);
        t.instances.push(InstanceRoute {
            instance: epoch.primary.clone(),
            role: Role::Primary,
            reachable: true,
            healthy: true,
            lag_s: None,
            reason: format!("promoted (epoch {})", epoch.number),
        });
        t.instances.extend(old.map(|old| InstanceRoute {
            instance: old.clone(),
            role: Role::Fenced,
            reachable: false,
            healthy: false,
            lag_s: None,
            reason: "the failed primary: registered for fencing, no route leads to it".into(),
        }));
        t.instances.sort_by(|a, b| a.instance.cmp(&b.instance));
        t
    }

    /// Whether a write connection to `backend` may stay open: only while
    /// it is where new writes go (a recovery that starts, or a new epoch,
    /// ends it at once).
    pub fn keeps_write(&self, backend: &InstanceKey) -> bool {
        self.write_target() == Some(backend)
    }

    /// Whether a read connection to `backend` may stay open: while it is a
    /// read target, or a replica that only lags (new reads avoid it, open
    /// ones finish); a fenced, unreachable or broken one is cut off.
    pub fn keeps_read(&self, backend: &InstanceKey) -> bool {
        if self.read_targets().contains(backend) {
            return true;
        }
        self.get(backend).is_some_and(|r| {
            r.role == Role::Replica && r.reachable && !r.healthy && r.lag_s.is_some_and(|l| l > self.max_lag_s)
        })
    }

    pub fn get(&self, key: &InstanceKey) -> Option<&InstanceRoute> {
        self.instances.iter().find(|r| r.instance == *key)
    }
}

fn judge(key: &InstanceKey, primary: Option<&InstanceKey>, view: &ClusterView, max_lag_s: u64) -> InstanceRoute {
    let record = view.get(key);
    let state = record.and_then(|r| r.current_state());
    let reachable = state.is_some();
    let role = if view.fenced.contains(key) {
        Role::Fenced
    } else if Some(key) == primary {
        Role::Primary
    } else {
        Role::Replica
    };
    // The heartbeat's lag against the epoch's primary when measured, else the server's.
    let lag_s = crate::heartbeat::lag_of(view, primary, key).and_then(|l| l.seconds());
    let route = |healthy: bool, reason: String| InstanceRoute {
        instance: key.clone(),
        role,
        reachable,
        healthy,
        lag_s: if role == Role::Replica { lag_s } else { None },
        reason,
    };
    let Some(state) = state else {
        let why = record
            .and_then(|r| r.latest.failure())
            .map_or("not observed yet".to_string(), |f| format!("unreachable: {}", f.message));
        return route(false, why);
    };
    match role {
        Role::Fenced => route(false, "a fenced former primary: kept read-only, no route leads to it".into()),
        Role::Primary if state.writable() => route(true, "the primary: writable".into()),
        Role::Primary => route(false, "the primary of the epoch, but read-only".into()),
        Role::Replica => {
            let Some(primary) = primary else {
                return route(false, "no primary is known: nothing to replicate from".into());
            };
            let Some(r) = &state.replication else {
                return route(false, "not replicating".into());
            };
            if state.writable() {
                return route(false, "writable: a replica must be read-only".into());
            }
            if r.io_thread != IoThread::Running {
                let err = r.io_error.as_ref().map(|e| format!(" (error {}: {})", e.number, e.message));
                return route(false, format!("IO thread {:?}{}", r.io_thread, err.unwrap_or_default()));
            }
            if !r.sql_running {
                let err = r.sql_error.as_ref().map(|e| format!(" (error {}: {})", e.number, e.message));
                return route(false, format!("SQL thread stopped{}", err.unwrap_or_default()));
            }
            if !replicates_from(key, primary, view) {
                return route(false, format!("replicates from {}, not from the primary {primary}", r.source));
            }
            match lag_s {
                None => route(false, "lag unknown".into()),
                Some(l) if l > max_lag_s => route(false, format!("lagging {l} s (limit {max_lag_s} s)")),
                Some(l) => route(true, format!("replicating from {}, {l} s behind", r.source)),
            }
        }
    }
}

/// Whether `key`'s chain of sources leads to `primary`, every link running.
fn replicates_from(key: &InstanceKey, primary: &InstanceKey, view: &ClusterView) -> bool {
    let mut at = key.clone();
    for _ in 0..MAX_CHAIN {
        let Some(r) = view.get(&at).and_then(|r| r.current_state()).and_then(|s| s.replication.as_ref()) else {
            return false;
        };
        if r.io_thread != IoThread::Running || !r.sql_running {
            return false;
        }
        if r.source == *primary {
            return true;
        }
        at = r.source.clone();
    }
    false
}
