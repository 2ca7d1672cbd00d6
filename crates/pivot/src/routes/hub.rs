//! One cluster's current route table, shared by everything that routes
//! clients. Two publishers (the monitor, a recovery's route step) and never
//! a step back: a table of an older epoch than the current one is refused.

use pivot_core::routes::RouteTable;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
pub struct RouteHub {
    tx: Arc<watch::Sender<Arc<RouteTable>>>,
    /// Who may hold the cluster's virtual IP, as this process knows it:
    /// shared by the VIP follower and the `route_vip` steps.
    vip: crate::routes::vip::SharedBook,
    /// The built-in proxy's counters, when this process runs one: a
    /// switchover waits for its protocol-mode sessions to leave their
    /// transactions on the old primary before making it read-only.
    proxy: Arc<std::sync::OnceLock<Arc<crate::proxy::stats::ProxyStats>>>,
}

impl Default for RouteHub {
    fn default() -> Self {
        RouteHub::new()
    }
}

impl RouteHub {
    /// A hub with no epoch: nothing is routed until one is published.
    pub fn new() -> RouteHub {
        RouteHub {
            tx: Arc::new(watch::channel(Arc::new(RouteTable::default())).0),
            vip: crate::routes::vip::new_book(),
            proxy: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// What this process knows about the holders of the cluster's VIP.
    pub fn vip_book(&self) -> crate::routes::vip::SharedBook {
        self.vip.clone()
    }

    /// Publish `table` unless it would move the routes back to an older
    /// epoch. Returns whether it was taken.
    pub fn offer(&self, table: RouteTable) -> bool {
        let mut taken = false;
        self.tx.send_if_modified(|current| {
            if !table.supersedes(current) || **current == table {
                return false;
            }
            *current = Arc::new(table);
            taken = true;
            true
        });
        taken
    }

    /// Link the proxy that follows this hub (once).
    pub fn attach_proxy(&self, stats: Arc<crate::proxy::stats::ProxyStats>) {
        let _ = self.proxy.set(stats);
    }

    /// Protocol-mode sessions of the write port busy on `key` now (in a
    /// command or a transaction); `None` without a proxy.
    pub fn proxy_busy(&self, key: &pivot_core::InstanceKey) -> Option<u64> {
        self.proxy.get().map(|p| p.busy("write", key))
    }

    pub fn current(&self) -> Arc<RouteTable> {
        self.tx.borrow().clone()
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<RouteTable>> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pivot_core::routes::EpochRecord;

    fn table(epoch: u64, primary: &str, hold: bool) -> RouteTable {
        let e = EpochRecord { number: epoch, primary: primary.parse().unwrap(), recovery_id: None, since_ms: 0 };
        RouteTable::derive(Some(&e), &pivot_core::ClusterView::default(), hold, 10)
    }

    #[test]
    fn an_older_epoch_never_replaces_a_newer_one() {
        let hub = RouteHub::new();
        let mut rx = hub.subscribe();
        assert!(hub.offer(table(2, "a:1", false)));
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        assert!(!hub.offer(table(1, "b:1", false)), "older epoch refused");
        assert!(!hub.offer(table(2, "a:1", false)), "the same table is no change");
        assert!(!rx.has_changed().unwrap());
        assert!(hub.offer(table(2, "a:1", true)), "the same epoch may change (hold, health)");
        assert!(hub.offer(table(3, "b:1", false)));
        assert_eq!(hub.current().write_target().map(ToString::to_string), Some("b:1".into()));
    }
}
