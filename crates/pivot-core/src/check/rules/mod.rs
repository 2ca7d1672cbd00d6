//! The preflight rules, grouped by topic.

pub(super) mod detection;
pub(super) mod durability;
pub(super) mod operations;
pub(super) mod replication;
pub(super) mod semi_sync;

use super::CheckInput;
use crate::instance::InstanceKey;
use crate::observation::InstanceState;

/// Every reachable instance with its state.
pub(super) fn reachable<'a>(input: &'a CheckInput) -> impl Iterator<Item = (&'a InstanceKey, &'a InstanceState)> + 'a {
    input.view.records.iter().filter_map(|(k, r)| r.current_state().map(|s| (k, s)))
}

/// The primary's direct replicas that answer, with their states.
pub(super) fn replicas<'a>(input: &'a CheckInput) -> Vec<(&'a InstanceKey, &'a InstanceState)> {
    let Some(primary) = input.analysis.primary.as_ref() else { return Vec::new() };
    input
        .analysis
        .topology
        .replicas(primary)
        .iter()
        .filter_map(|k| input.view.get(k).and_then(|r| r.current_state()).map(|s| (k, s)))
        .collect()
}

pub(super) fn primary_state<'a>(input: &'a CheckInput) -> Option<(&'a InstanceKey, &'a InstanceState)> {
    let p = input.analysis.primary.as_ref()?;
    input.view.get(p).and_then(|r| r.current_state()).map(|s| (p, s))
}
