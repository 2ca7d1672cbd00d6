//! The KV routes: each cluster's primary published to etcd v3 and to
//! Consul's KV store, in orchestrator's key layout so that existing
//! consul-template and confd setups keep working, guarded by pivot's epoch.
//!
//! Under a configured prefix (default empty), for cluster `<c>`:
//!
//! | key | value |
//! |---|---|
//! | `mysql/master/<c>` | `host:port` of the primary |
//! | `mysql/master/<c>/hostname` | its host |
//! | `mysql/master/<c>/port` | its port |
//! | `mysql/master/<c>/ipv4` | the host if it is an IPv4 literal, else the first IPv4 address it resolved to when its epoch was first published (resolved once per epoch, not followed afterwards; empty until it resolves) |
//! | `mysql/master/<c>/epoch` | pivot's epoch number, in decimal |
//!
//! A publisher never replaces a newer epoch with an older one. It reads the
//! keys, decides with [`plan`], and writes every key in one transaction
//! that only applies if the epoch key is still as it was read: etcd compares
//! the epoch key's `mod_revision` (or `version = 0` when it is missing);
//! Consul's `/v1/txn` starts with `check-index` on its `ModifyIndex` (or
//! `check-not-exists`). The epoch numbers themselves are compared as numbers
//! by pivot after the read, never as strings by the store (etcd compares
//! values byte by byte: "10" < "9"), so the value stays a plain number.
//! If another writer changed the epoch key in between, the transaction does
//! nothing and the publisher reads again.
//!
//! Publishing the same epoch again writes nothing. A newer epoch in the
//! store is left alone and reported (`Published::Newer`). The same epoch
//! naming a different primary, or an epoch key that is not a number, is
//! refused with an error: another pivot (another state file) writes there.
//!
//! The publications run as the failover's `route_etcd` / `route_consul`
//! steps ([`KvPublisher::publish`]: up to 3 attempts within the configured
//! timeout) and, in `pivot run`, from a [`reconcile`] task per cluster and
//! store that follows the cluster's route table.

mod consul;
mod etcd;
pub mod reconcile;

#[cfg(test)]
mod tests;

use crate::config::{ClusterConfig, ConsulConfig, EtcdConfig};
use pivot_core::routes::{RouteKind, RouteSpec};
use pivot_core::InstanceKey;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Attempts of one publication within its timeout.
const ATTEMPTS: u32 = 3;
/// Reads and conditional writes in one attempt before giving up on a key
/// that keeps changing under it.
const MAX_ROUNDS: usize = 4;

/// The KV routes a cluster's configuration asks for, in plan order (after
/// the local route).
pub fn route_specs(c: &ClusterConfig) -> Vec<RouteSpec> {
    let etcd = c.etcd.as_ref().map(|e| RouteSpec { kind: RouteKind::Etcd, required: e.required });
    let consul = c.consul.as_ref().map(|e| RouteSpec { kind: RouteKind::Consul, required: e.required });
    etcd.into_iter().chain(consul).collect()
}

/// One cluster's keys under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    base: String,
}

impl Layout {
    /// `prefix`: empty or ending in `/` (as the configuration gives it).
    pub fn new(prefix: &str, cluster: &str) -> Layout {
        Layout { base: format!("{prefix}mysql/master/{cluster}") }
    }

    /// `mysql/master/<cluster>` under the prefix: the primary's `host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn epoch_key(&self) -> String {
        format!("{}/epoch", self.base)
    }

    fn sub(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// Every key pivot writes, the epoch key last.
    pub fn keys(&self) -> Vec<String> {
        vec![self.base.clone(), self.sub("hostname"), self.sub("port"), self.sub("ipv4"), self.epoch_key()]
    }

    /// The keys and values naming `primary` as of `epoch`.
    pub fn values(&self, epoch: u64, primary: &InstanceKey, ipv4: Option<Ipv4Addr>) -> Vec<(String, String)> {
        vec![
            (self.base.clone(), primary.to_string()),
            (self.sub("hostname"), primary.host.clone()),
            (self.sub("port"), primary.port.to_string()),
            (self.sub("ipv4"), ipv4.map(|a| a.to_string()).unwrap_or_default()),
            (self.epoch_key(), epoch.to_string()),
        ]
    }
}

/// What a publication should do, given what the store holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// The same epoch with the same values is there: write nothing.
    Unchanged,
    /// Write `values` (every key) if the epoch key is still as read;
    /// `over`: the epoch there (older, or the same with keys to repair).
    Write { over: Option<u64>, values: Vec<(String, String)> },
    /// A newer epoch is there: leave it.
    Newer { epoch: u64, primary: String },
    /// Refuse: the store holds something pivot must not overwrite.
    Refuse(String),
}

/// Decide what to write to name `primary` as of `epoch`. `stored`: our keys
/// as read (missing ones absent); `ipv4`: the primary's address as resolved
/// now, if it resolved. The address of a host name is resolved once per
/// epoch: one stored with the same epoch is kept; a new epoch gets the new
/// address or an empty one, never the old primary's.
pub fn plan(
    layout: &Layout,
    epoch: u64,
    primary: &InstanceKey,
    ipv4: Option<Ipv4Addr>,
    stored: &BTreeMap<String, String>,
) -> Plan {
    let mut values = layout.values(epoch, primary, ipv4);
    let epoch_key = layout.epoch_key();
    let there = stored.get(layout.base()).cloned().unwrap_or_default();
    let Some(text) = stored.get(&epoch_key) else {
        // Nothing of pivot's there (perhaps orchestrator's keys): take over.
        return Plan::Write { over: None, values };
    };
    let Ok(stored_epoch) = text.trim().parse::<u64>() else {
        return Plan::Refuse(format!(
            "`{epoch_key}` holds `{text}`, not an epoch number: pivot leaves these keys alone until it is fixed or deleted"
        ));
    };
    if stored_epoch > epoch {
        return Plan::Newer { epoch: stored_epoch, primary: there };
    }
    if stored_epoch < epoch {
        return Plan::Write { over: Some(stored_epoch), values };
    }
    let ours = primary.to_string();
    if there != ours {
        return Plan::Refuse(format!(
            "epoch {epoch} in `{}` names `{there}`, but this pivot's epoch {epoch} names `{ours}`: \
             another pivot (with another state file) publishes to these keys; give each its own prefix",
            layout.base()
        ));
    }
    // A host name is resolved once per epoch: an address stored with this
    // epoch stays (an empty one is filled in once the name resolves).
    if primary.host.parse::<Ipv4Addr>().is_err() {
        let ipv4_key = layout.sub("ipv4");
        let kept = stored.get(&ipv4_key).filter(|v| !v.is_empty() || ipv4.is_none());
        if let (Some(v), Some(kept)) = (values.iter_mut().find(|(k, _)| *k == ipv4_key), kept) {
            v.1 = kept.clone();
        }
    }
    if values.iter().all(|(k, v)| stored.get(k) == Some(v)) {
        Plan::Unchanged
    } else {
        Plan::Write { over: Some(stored_epoch), values }
    }
}

/// What a publication did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Published {
    /// Every key written; `over`: the epoch that was there.
    Written { over: Option<u64> },
    /// The same epoch and values were there.
    Unchanged,
    /// A newer epoch is there and was left alone.
    Newer { epoch: u64, primary: String },
}

impl Published {
    /// In words, for step records and logs.
    pub fn describe(&self, store: &str, layout: &Layout, epoch: u64, primary: &InstanceKey) -> String {
        let base = layout.base();
        match self {
            Published::Written { over: None } => format!("{store}: {base} = {primary} (epoch {epoch})"),
            Published::Written { over: Some(o) } if *o == epoch => {
                format!("{store}: {base} = {primary} (epoch {epoch}, keys repaired)")
            }
            Published::Written { over: Some(o) } => {
                format!("{store}: {base} = {primary} (epoch {epoch}, was epoch {o})")
            }
            Published::Unchanged => {
                format!("{store}: {base} = {primary} (epoch {epoch}, already there: nothing written)")
            }
            Published::Newer { epoch: e, primary: p } => format!(
                "{store} already holds epoch {e} ({p}), newer than epoch {epoch}: left alone (the newer epoch wins)"
            ),
        }
    }
}

/// A store's keys as read: values of our keys, and the version of the
/// epoch key a conditional write must still find (`None`: missing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub values: BTreeMap<String, String>,
    pub epoch_version: Option<u64>,
}

#[derive(Clone)]
enum Store {
    Etcd(etcd::EtcdStore),
    Consul(consul::ConsulStore),
}

/// Publishes one cluster's primary to one KV store.
#[derive(Clone)]
pub struct KvPublisher {
    store: Store,
    layout: Layout,
    timeout: Duration,
}

impl KvPublisher {
    pub fn etcd(cfg: &EtcdConfig, cluster: &str) -> KvPublisher {
        KvPublisher {
            store: Store::Etcd(etcd::EtcdStore::new(cfg)),
            layout: Layout::new(&cfg.prefix, cluster),
            timeout: cfg.timeout,
        }
    }

    pub fn consul(cfg: &ConsulConfig, cluster: &str) -> KvPublisher {
        KvPublisher {
            store: Store::Consul(consul::ConsulStore::new(cfg)),
            layout: Layout::new(&cfg.prefix, cluster),
            timeout: cfg.timeout,
        }
    }

    /// The publisher of route `kind` of cluster `c`, if configured.
    pub fn for_route(c: &ClusterConfig, kind: RouteKind) -> Option<KvPublisher> {
        match kind {
            RouteKind::Etcd => c.etcd.as_ref().map(|e| KvPublisher::etcd(e, &c.name)),
            RouteKind::Consul => c.consul.as_ref().map(|e| KvPublisher::consul(e, &c.name)),
            RouteKind::Local | RouteKind::Vip => None,
        }
    }

    /// Every KV publisher cluster `c` configures.
    pub fn all(c: &ClusterConfig) -> Vec<KvPublisher> {
        route_specs(c).iter().filter_map(|r| KvPublisher::for_route(c, r.kind)).collect()
    }

    pub fn kind(&self) -> RouteKind {
        match self.store {
            Store::Etcd(_) => RouteKind::Etcd,
            Store::Consul(_) => RouteKind::Consul,
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The primary the store names now (`None`: the key is missing), read
    /// once within the configured timeout (`pivot check`).
    pub async fn read_primary(&self) -> Result<Option<String>, String> {
        let read = async {
            match &self.store {
                Store::Etcd(s) => s.read(&self.layout).await,
                Store::Consul(s) => s.read(&self.layout).await,
            }
        };
        let snap = tokio::time::timeout(self.timeout, read).await.map_err(|_| "no answer in time".to_string())??;
        Ok(snap.values.get(self.layout.base()).cloned())
    }

    /// Publish `primary` as of `epoch`: up to [`ATTEMPTS`] attempts, all
    /// within the configured timeout. `Ok` also when a newer epoch is
    /// there ([`Published::Newer`]).
    pub async fn publish(&self, epoch: u64, primary: &InstanceKey) -> Result<Published, String> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let per_attempt = self.timeout / ATTEMPTS;
        let ipv4 = resolve_ipv4(&primary.host, primary.port, per_attempt).await;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let bound = if attempt == ATTEMPTS { left } else { per_attempt.min(left) };
            match tokio::time::timeout(bound, self.publish_once(epoch, primary, ipv4)).await {
                Ok(Ok(p)) => return Ok(p),
                Ok(Err(Failure::Refused(e))) => return Err(e),
                Ok(Err(Failure::Retry(e))) => last = e,
                Err(_) => last = format!("no answer within {}", humantime::format_duration(bound)),
            }
            if attempt < ATTEMPTS {
                // A quick failure (connection refused) waits a little before
                // the next attempt, still within the deadline.
                let pause = Duration::from_millis(100 * u64::from(attempt));
                tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            }
        }
        Err(format!(
            "{}: {} not published within {} ({ATTEMPTS} attempts): {last}",
            self.kind().as_str(),
            self.layout.base(),
            humantime::format_duration(self.timeout)
        ))
    }

    /// One attempt: read, decide, write if the epoch key is unchanged;
    /// read again if it changed meanwhile.
    async fn publish_once(
        &self,
        epoch: u64,
        primary: &InstanceKey,
        ipv4: Option<Ipv4Addr>,
    ) -> Result<Published, Failure> {
        if epoch == 0 {
            return Err(Failure::Refused("epoch 0 names no primary: nothing to publish".into()));
        }
        let epoch_key = self.layout.epoch_key();
        for _ in 0..MAX_ROUNDS {
            let snap = match &self.store {
                Store::Etcd(s) => s.read(&self.layout).await,
                Store::Consul(s) => s.read(&self.layout).await,
            }
            .map_err(Failure::Retry)?;
            let (over, values) = match plan(&self.layout, epoch, primary, ipv4, &snap.values) {
                Plan::Unchanged => return Ok(Published::Unchanged),
                Plan::Newer { epoch, primary } => return Ok(Published::Newer { epoch, primary }),
                Plan::Refuse(why) => return Err(Failure::Refused(why)),
                Plan::Write { over, values } => (over, values),
            };
            let applied = match &self.store {
                Store::Etcd(s) => s.write_if(&epoch_key, snap.epoch_version, &values).await,
                Store::Consul(s) => s.write_if(&epoch_key, snap.epoch_version, &values).await,
            }
            .map_err(Failure::Retry)?;
            if applied {
                return Ok(Published::Written { over });
            }
        }
        Err(Failure::Retry(format!("`{}` kept changing while pivot wrote", self.layout.epoch_key())))
    }
}

/// Why an attempt failed.
enum Failure {
    /// Worth another attempt (unreachable, timed out, lost a race).
    Retry(String),
    /// Pivot will not write there: no attempt changes that.
    Refused(String),
}

/// The IPv4 address of `host`: itself if it is an IPv4 literal, else the
/// first IPv4 address it resolves to within `bound`.
pub async fn resolve_ipv4(host: &str, port: u16, bound: Duration) -> Option<Ipv4Addr> {
    if let Ok(a) = host.parse::<Ipv4Addr>() {
        return Some(a);
    }
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        return None;
    }
    let found = tokio::time::timeout(bound, tokio::net::lookup_host((host, port))).await.ok()?.ok()?;
    found
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .next()
}
