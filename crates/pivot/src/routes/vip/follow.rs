//! In `pivot run`: one task per cluster with `[cluster.vip]` that follows
//! the cluster's route table. Every third of the lease (and at once when
//! the table changes) it runs a round: the primary's agent gets its lease
//! renewed (or the address, after an adoption or a step that failed), the
//! others are released, and every agent gets the table for its health
//! checks. While a recovery holds writes no lease is renewed: the address
//! goes when its lease ends, unless the recovery's `route_vip` step moved
//! it first. A round never waits: an agent that may still hold a lease is
//! asked again at the next round.

use super::{Moved, VipMover};
use crate::config::ClusterConfig;
use crate::routes::RouteHub;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The shortest time between two rounds.
const MIN_PERIOD: Duration = Duration::from_millis(300);

/// Start the follower of cluster `c` if it configures a VIP. It ends when
/// `stop` turns true (or its sender is gone).
pub fn spawn(c: &ClusterConfig, hub: &RouteHub, stop: watch::Receiver<bool>) -> Option<JoinHandle<()>> {
    let cfg = c.vip.as_ref()?;
    let mover = VipMover::new(&c.name, cfg, hub.vip_book());
    Some(tokio::spawn(follow(mover, c.name.clone(), hub.clone(), stop)))
}

async fn follow(mover: VipMover, cluster: String, hub: RouteHub, mut stop: watch::Receiver<bool>) {
    let period = (mover.config().lease / 3).max(MIN_PERIOD);
    let mut tables = hub.subscribe();
    // Logged when it changes, not every round.
    let mut said = String::new();
    let mut say = |warn: bool, text: String| {
        if text != said {
            if warn {
                tracing::warn!(%cluster, "vip: {text}");
            } else {
                tracing::info!(%cluster, "vip: {text}");
            }
            said = text;
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let table = tables.borrow_and_update().clone();
        let mut wait = period;
        if table.hold || table.epoch == 0 || table.primary.is_none() {
            mover.push_tables(&table).await;
            let why = if table.hold { "a recovery holds writes" } else { "no primary has an epoch yet" };
            say(false, format!("{why}: no lease renewed, the address goes when its lease ends"));
        } else {
            let epoch = table.epoch;
            let still = || {
                let now = hub.current();
                now.epoch == epoch && !now.hold
            };
            match mover.round(&table, None, &still).await {
                Ok(m @ Moved::Leased { .. }) => {
                    // `took` changes every round: only the place is logged.
                    if let Moved::Leased { instance, agent, .. } = &m {
                        let place = format!("{} on {instance} (agent {agent}, epoch {epoch})", mover.config().address);
                        say(
                            false,
                            if mover.config().keepalived {
                                format!("{place}: keepalived's check passes there")
                            } else {
                                place
                            },
                        );
                    }
                }
                Ok(Moved::Waiting { until, holders }) => {
                    wait = until
                        .saturating_duration_since(std::time::Instant::now())
                        .clamp(Duration::from_millis(50), period);
                    let list: Vec<String> = holders.iter().map(ToString::to_string).collect();
                    say(
                        true,
                        format!(
                            "waiting for {} to release the address (no answer) or its lease to end",
                            list.join(", ")
                        ),
                    );
                }
                Err(e) => say(true, e),
            }
        }
        tokio::select! {
            changed = tables.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
