//! The proxy's counters, read by `/metrics`.

use crate::proxy::mysql::session::Reason;
use pivot_core::InstanceKey;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

#[derive(Default, Debug)]
pub struct BackendStats {
    /// Connections open now.
    pub active: AtomicU64,
    pub total: AtomicU64,
    /// Connections that could not be made, or ended with an error.
    pub errors: AtomicU64,
    pub bytes_to_backend: AtomicU64,
    pub bytes_to_client: AtomicU64,
    /// Connections pivot closed because the backend left the route.
    pub cut: AtomicU64,
    /// Protocol mode: sessions in a command or a transaction on the backend now.
    pub busy: AtomicU64,
}

#[derive(Default, Debug)]
pub struct ProxyStats {
    /// Per (port, backend).
    backends: Mutex<BTreeMap<(&'static str, InstanceKey), Arc<BackendStats>>>,
    /// Connections waiting for a primary now.
    pub held: AtomicU64,
    pub held_total: AtomicU64,
    /// Held connections closed because no primary came within the bound.
    pub hold_timeouts: AtomicU64,
    /// Connections refused: the connection limit or the hold queue was full.
    pub refused: AtomicU64,
    /// Client connections open now, both ports.
    pub clients: AtomicU64,
    /// Protocol mode: sessions waiting now, at a route change, for the new
    /// primary (idle, outside a transaction).
    pub parked: AtomicU64,
    /// Protocol mode: sessions moved to a new primary without their client noticing.
    pub migrated: AtomicU64,
    /// Protocol mode: sessions ended at a route change, per [`Reason`] (in
    /// the order of [`Reason::ALL`]).
    pub ended: [AtomicU64; Reason::ALL.len()],
}

impl ProxyStats {
    pub fn backend(&self, port: &'static str, key: &InstanceKey) -> Arc<BackendStats> {
        let mut map = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((port, key.clone())).or_default().clone()
    }

    /// Open connections of `port` to `key` now.
    pub fn active(&self, port: &'static str, key: &InstanceKey) -> u64 {
        let map = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(port, key.clone())).map_or(0, |b| b.active.load(Relaxed))
    }

    pub fn count_ended(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.ended[i].fetch_add(1, Relaxed);
        }
    }

    /// Sessions ended for `reason` so far.
    pub fn ended(&self, reason: Reason) -> u64 {
        Reason::ALL.iter().position(|r| *r == reason).map_or(0, |i| self.ended[i].load(Relaxed))
    }

    /// Protocol-mode sessions of `port` busy on `key` now.
    pub fn busy(&self, port: &'static str, key: &InstanceKey) -> u64 {
        let map = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(port, key.clone())).map_or(0, |b| b.busy.load(Relaxed))
    }

    /// Every (port, backend) with its counters, for `/metrics`.
    pub fn snapshot(&self) -> Vec<(&'static str, InstanceKey, Arc<BackendStats>)> {
        let map = self.backends.lock().unwrap_or_else(|p| p.into_inner());
        map.iter().map(|((port, k), s)| (*port, k.clone(), s.clone())).collect()
    }
}
