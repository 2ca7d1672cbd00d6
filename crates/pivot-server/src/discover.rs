//! Walking a topology from its seeds, once.

use crate::credentials::Credentials;
use crate::probe::probe_all_with;
use pivot_core::{ClusterView, InstanceKey, InstanceState, Millis};
use std::time::Duration;

/// Instances a reachable instance tells about: its source and the replicas
/// registered with it.
pub fn referenced_instances(state: &InstanceState) -> Vec<InstanceKey> {
    let mut out: Vec<InstanceKey> = state.replication.iter().map(|r| r.source.clone()).collect();
    out.extend(state.registered_replicas.iter().cloned());
    out
}

/// Probe the seeds, then everything they reference, until nothing new turns
/// up or `max_instances` are known. Instances of one round are probed
/// concurrently. `now` reads the caller's clock. A port that accepts but
/// never greets is reported as possibly not a MySQL server
/// ([`crate::Prober::explaining_silence`]).
pub async fn discover(
    seeds: &[InstanceKey],
    creds: &Credentials,
    timeout: Duration,
    max_instances: usize,
    lag_threshold_s: u64,
    now: impl Fn() -> Millis,
) -> ClusterView {
    let mut view = ClusterView::new(seeds.iter().cloned());
    // Each round probes at least one new instance, so this bound is never the
    // one that stops a healthy walk.
    for _round in 0..max_instances.max(1) {
        let pending: Vec<InstanceKey> = view.pending.iter().cloned().collect();
        if pending.is_empty() {
            break;
        }
        // Not on a recovery's path: a silent port is looked into.
        for obs in probe_all_with(&pending, creds, timeout, &now, true, None).await {
            let referenced = obs.state().map(referenced_instances).unwrap_or_default();
            view.apply(obs, lag_threshold_s);
            for key in referenced {
                if view.records.len() + view.pending.len() >= max_instances {
                    break;
                }
                view.learn(key);
            }
        }
    }
    view
}
