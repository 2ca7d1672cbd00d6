//! Active/passive dual primaries: when pivot closes the ring again.
//!
//! With `dual_primary` on, a two-instance cluster is kept as a ring: the
//! primary (the active) also replicates from its replica (the passive), as
//! a DBA running active/passive expects. A failover's promotion and a
//! switchover's promotion end the new active's replication (its old source
//! is the old active); once the old active is back as a read-only replica
//! of the new active, [`restore_due`] says the ring may be closed again.
//!
//! Closing it never makes anything writable. It is only asked while the
//! passive is read-only, replicates from the active with both threads and
//! no error, and is off the fence list (rejoined): the active then receives
//! nothing but what the passive relays of its own writes, which it skips.
//! The shell re-checks on fresh readings and waits (bounded) until the
//! passive applied everything the active executed before it starts.

use crate::analysis::{ClusterAnalysis, Code};
use crate::instance::InstanceKey;
use crate::observation::IoThread;
use crate::view::ClusterView;
use std::collections::BTreeSet;

/// The ring to close: `active` is to replicate from `passive`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingRestore {
    pub active: InstanceKey,
    pub passive: InstanceKey,
}

/// Whether the ring of a dual-primary cluster is to be closed now, or why
/// not (in words; `None` for "already whole").
pub fn restore_due(
    view: &ClusterView,
    analysis: &ClusterAnalysis,
    fenced: &BTreeSet<InstanceKey>,
) -> Result<RingRestore, Option<String>> {
    if analysis.code != Code::Healthy {
        return Err(Some(format!("the cluster is {}", analysis.code)));
    }
    let keys: Vec<&InstanceKey> = view.keys().collect();
    if keys.len() != 2 {
        return Err(Some(format!("a dual-primary ring has two instances, this cluster {}", keys.len())));
    }
    let active = analysis.primary.clone().ok_or_else(|| Some("no primary".to_string()))?;
    let passive = keys.into_iter().find(|k| **k != active).cloned().ok_or_else(|| Some("no passive".to_string()))?;
    let a = view.get(&active).and_then(|r| r.current_state()).ok_or_else(|| Some(format!("{active} is silent")))?;
    let p = view.get(&passive).and_then(|r| r.current_state()).ok_or_else(|| Some(format!("{passive} is silent")))?;
    if !a.writable() {
        return Err(Some(format!("the active {active} is read-only")));
    }
    match &a.replication {
        None => {}
        // Closed, and running (or reconnecting): whole.
        Some(r) if r.source == passive && r.io_thread != IoThread::Stopped && r.sql_running => return Err(None),
        // Closed once, its threads stopped with no error (pivot stopped
        // between pointing and starting it, or an operator's STOP SLAVE):
        // pivot owns the ring with dual_primary on, and starts it again.
        Some(r) if r.source == passive && r.io_error.is_none() && r.sql_error.is_none() => {}
        Some(r) if r.source == passive => {
            return Err(Some(format!(
                "the active {active}'s replication from the passive stopped with an error: for an operator"
            )))
        }
        Some(r) => {
            return Err(Some(format!("the active {active} replicates from {} (configured by hand?)", r.source)));
        }
    }
    if p.writable() {
        return Err(Some(format!("the passive {passive} is writable")));
    }
    if fenced.contains(&passive) {
        return Err(Some(format!("the passive {passive} is a former primary on the fence list (not rejoined yet)")));
    }
    let Some(r) = p.replication.as_ref().filter(|r| r.source == active) else {
        return Err(Some(format!("the passive {passive} does not replicate from the active {active}")));
    };
    if r.io_thread != IoThread::Running || !r.sql_running || r.io_error.is_some() || r.sql_error.is_some() {
        return Err(Some(format!("the passive {passive} does not replicate with both threads and no error")));
    }
    Ok(RingRestore { active, passive })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{analyze, DetectionSettings};
    use crate::fixture::*;
    use crate::observation::{FailureKind, Observation};

    const A: &str = "10.0.0.1:3306";
    const B: &str = "10.0.0.2:3306";
    const C: &str = "10.0.0.3:3306";

    fn active() -> StateBuilder {
        state(1, "0-1-100")
    }
    fn passive() -> StateBuilder {
        state(2, "0-1-100").replica_of(A, "0-1-100")
    }

    fn due(obs: Vec<Observation>, fenced: &[&str]) -> Result<RingRestore, Option<String>> {
        let mut v = ClusterView::default();
        for o in obs {
            v.apply(o, 10);
        }
        let fenced: BTreeSet<InstanceKey> = fenced.iter().map(|k| key(k)).collect();
        v.fenced = fenced.clone();
        let a = analyze(&v, &DetectionSettings::default(), crate::Millis(10));
        restore_due(&v, &a, &fenced)
    }

    #[test]
    fn the_ring_is_closed_only_behind_a_read_only_rejoined_replicating_passive() {
        let want = Ok(RingRestore { active: key(A), passive: key(B) });
        type Case<'a> = (&'a str, Vec<Observation>, &'a [&'a str], Result<RingRestore, Option<&'a str>>);
        let cases: Vec<Case> = vec![
            ("after a failover and rejoin", vec![up(A, 1, active()), up(B, 1, passive())], &[], want.clone()),
            (
                "already a ring",
                vec![up(A, 1, active().replica_of(B, "0-1-100").read_only(false)), up(B, 1, passive())],
                &[],
                Err(None),
            ),
            (
                "a ring whose return replication was stopped without an error: started again",
                vec![
                    up(A, 1, active().replica_of(B, "0-1-100").read_only(false).io(IoThread::Stopped).sql_stopped()),
                    up(B, 1, passive()),
                ],
                &[],
                want.clone(),
            ),
            (
                "a ring whose return replication stopped on an error: left to an operator",
                vec![
                    up(A, 1, active().replica_of(B, "0-1-100").read_only(false).sql_error(1062, "Duplicate entry")),
                    up(B, 1, passive()),
                ],
                &[],
                Err(Some("stopped with an error")),
            ),
            (
                "the active replicates from a stranger",
                vec![up(A, 1, active().replica_of(C, "0-1-100").read_only(false)), up(B, 1, passive())],
                &[],
                Err(Some("")),
            ),
            (
                "the passive not rejoined yet",
                vec![up(A, 1, active()), up(B, 1, passive())],
                &[B],
                Err(Some("fence list")),
            ),
            (
                "the passive writable",
                vec![up(A, 1, active()), up(B, 1, passive().read_only(false))],
                &[],
                Err(Some("split_brain")),
            ),
            (
                "the passive's SQL thread stopped",
                vec![up(A, 1, active()), up(B, 1, passive().sql_error(1062, "Duplicate entry"))],
                &[],
                Err(Some("all_replicas_not_replicating")),
            ),
            (
                "the passive's IO thread connecting",
                vec![up(A, 1, active()), up(B, 1, passive().io(IoThread::Connecting))],
                &[],
                Err(Some("all_replicas_not_replicating")),
            ),
            (
                "the passive is silent",
                vec![up(A, 1, active()), up(B, 1, passive()), down(B, 2, FailureKind::Refused)],
                &[],
                Err(Some("all_replicas_not_replicating")),
            ),
            (
                "the active dead",
                vec![up(A, 1, active()), up(B, 1, passive()), down(A, 2, FailureKind::Refused)],
                &[],
                Err(Some("the cluster is")),
            ),
            (
                "three instances",
                vec![up(A, 1, active()), up(B, 1, passive()), up(C, 1, state(3, "0-1-100").replica_of(A, "0-1-100"))],
                &[],
                Err(Some("two instances")),
            ),
        ];
        for (name, obs, fenced, expected) in cases {
            let got = due(obs, fenced);
            match (&got, &expected) {
                (Ok(g), Ok(e)) => assert_eq!(g, e, "{name}"),
                (Err(None), Err(None)) => {}
                (Err(Some(g)), Err(Some(e))) => assert!(g.contains(e), "{name}: {g}"),
                _ => panic!("{name}: got {got:?}, want {expected:?}"),
            }
        }
    }
}
