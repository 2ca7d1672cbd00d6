//! In `pivot run`: one task per cluster and KV store that follows the
//! cluster's route table and publishes its epoch and primary whenever they
//! change, at start, and every [`RESYNC`] (keys deleted or edited by hand
//! come back; an unchanged store is only read). This covers what no
//! failover step publishes: a primary pivot adopted, and a step that failed.
//! Failures are retried with backoff; the monitor never waits for it.

use super::{KvPublisher, Published};
use crate::config::ClusterConfig;
use crate::routes::RouteHub;
use pivot_core::routes::RouteTable;
use pivot_core::InstanceKey;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Re-check an unchanged table this often.
pub const RESYNC: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Start a follower for every KV store cluster `c` configures. Each ends
/// when `stop` turns true (or its sender is gone).
pub fn spawn_all(c: &ClusterConfig, hub: &RouteHub, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    KvPublisher::all(c)
        .into_iter()
        .map(|p| tokio::spawn(follow(p, c.name.clone(), hub.subscribe(), stop.clone())))
        .collect()
}

/// The epoch and primary a table says the store should name.
fn target(table: &RouteTable) -> Option<(u64, InstanceKey)> {
    (table.epoch > 0).then(|| table.primary.clone().map(|p| (table.epoch, p))).flatten()
}

async fn follow(
    publisher: KvPublisher,
    cluster: String,
    mut tables: watch::Receiver<Arc<RouteTable>>,
    mut stop: watch::Receiver<bool>,
) {
    let store = publisher.kind().as_str();
    let mut done: Option<(u64, InstanceKey)> = None;
    let mut backoff = BACKOFF_MIN;
    let mut failing = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let table = tables.borrow_and_update().clone();
        let mut wait = RESYNC;
        if let Some((epoch, primary)) = target(&table).filter(|t| Some(t) != done.as_ref()) {
            match publisher.publish(epoch, &primary).await {
                Ok(p) => {
                    let said = p.describe(store, publisher.layout(), epoch, &primary);
                    match p {
                        Published::Written { .. } => tracing::info!(%cluster, "{said}"),
                        Published::Unchanged => tracing::debug!(%cluster, "{said}"),
                        Published::Newer { .. } => tracing::warn!(%cluster, "{said}"),
                    }
                    if failing {
                        tracing::info!(%cluster, "{store} route published again");
                    }
                    done = Some((epoch, primary));
                    backoff = BACKOFF_MIN;
                    failing = false;
                }
                Err(e) => {
                    tracing::warn!(%cluster, "{store} route: {e}; retrying in {}", humantime::format_duration(backoff));
                    wait = backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    failing = true;
                }
            }
        }
        tokio::select! {
            changed = tables.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(wait) => {
                // Resync (or retry): publish again even if nothing changed.
                done = None;
            }
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pivot_core::routes::EpochRecord;

    #[test]
    fn only_a_stored_epoch_with_a_primary_is_published() {
        assert_eq!(target(&RouteTable::default()), None, "no epoch yet");
        let e = EpochRecord { number: 3, primary: "db1:3306".parse().unwrap(), recovery_id: None, since_ms: 0 };
        let t = RouteTable::derive(Some(&e), &pivot_core::ClusterView::default(), true, 10);
        assert_eq!(target(&t), Some((3, "db1:3306".parse().unwrap())), "held or not, the epoch's primary");
    }
}
