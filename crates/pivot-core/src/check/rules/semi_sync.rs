//! Semi-synchronous replication: what makes an acknowledged write survive a failover.

use super::{primary_state, reachable, replicas};
use crate::check::{CheckInput, Finding};

/// A semi-sync timeout shorter than this is a fallback to asynchronous.
const NO_FALLBACK_MS: u64 = 24 * 3600 * 1000;

pub(crate) fn collect(input: &CheckInput, out: &mut Vec<Finding>) {
    let primary = input.analysis.primary.as_ref();
    for (key, st) in reachable(input) {
        if Some(key) != primary && st.replication.is_some() && st.semi_sync.primary_enabled {
            out.push(Finding::new(
                "PVT-E011",
                vec![key.clone()],
                "rpl_semi_sync_master_enabled is ON on a replica (on MariaDB 10.11 a replica that logs replica \
                 updates then stalls its SQL thread for the ack timeout on every transaction)"
                    .into(),
                None,
            ));
        }
    }
    let Some((pkey, p)) = primary_state(input) else { return };
    let ss = &p.semi_sync;
    if !ss.primary_enabled {
        return;
    }
    if let Some(point) = ss.primary_wait_point.as_deref().filter(|w| !w.eq_ignore_ascii_case("AFTER_SYNC")) {
        out.push(Finding::new(
            "PVT-W002",
            vec![pkey.clone()],
            format!("rpl_semi_sync_master_wait_point is {point}: commits are visible before a replica has them"),
            None,
        ));
    }
    let mut fallback = Vec::new();
    if let Some(ms) = ss.primary_timeout_ms.filter(|ms| *ms < NO_FALLBACK_MS) {
        fallback.push(format!("after {ms} ms without an acknowledgement"));
    }
    if ss.primary_wait_no_replica == Some(false) {
        fallback.push("at once when no semi-sync replica is connected (wait_no_slave OFF)".to_string());
    }
    if !fallback.is_empty() {
        out.push(Finding::new(
            "PVT-W003",
            vec![pkey.clone()],
            format!("semi-sync falls back to asynchronous {}", fallback.join(", and ")),
            None,
        ));
    }
    let semi: Vec<_> = replicas(input).into_iter().filter(|(_, s)| s.semi_sync.replica_enabled).collect();
    if semi.len() < 2 {
        let mut keys = vec![pkey.clone()];
        keys.extend(semi.iter().map(|(k, _)| (*k).clone()));
        out.push(Finding::new(
            "PVT-W004",
            keys,
            format!("semi-sync is on but only {} replica(s) have the replica side enabled", semi.len()),
            None,
        ));
    }
}
