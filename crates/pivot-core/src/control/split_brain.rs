//! Resolving a split brain instead of only reporting it.
//!
//! When the replicas follow one writable instance (the topology's primary)
//! and another instance is writable too, but nobody replicates from it, the
//! other one is the intruder: a former primary back with `read_only` off, a
//! replica someone made writable. It is made read-only and recorded in the
//! fence list, with an alert. When no single primary is followed (two
//! writable trees, or none answering), pivot cannot tell who is right: it
//! only alerts.

use crate::analysis::{ClusterAnalysis, Code};
use crate::instance::InstanceKey;
use crate::view::ClusterView;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Make these read-only and record them; `primary` keeps writing.
    Fence { primary: InstanceKey, intruders: Vec<InstanceKey>, reason: String },
    /// Pivot cannot tell which writer is right.
    AlertOnly { reason: String },
}

/// What to do about a split brain; `None` when the analysis is not one.
pub fn resolve(view: &ClusterView, a: &ClusterAnalysis) -> Option<Resolution> {
    if a.code != Code::SplitBrain {
        return None;
    }
    let writable_now = |k: &InstanceKey| view.get(k).and_then(|r| r.current_state()).is_some_and(|s| s.writable());
    let writers: Vec<InstanceKey> = view.records.keys().filter(|k| writable_now(k)).cloned().collect();
    let topo = &a.topology;
    let Some(primary) = topo.primary.clone().filter(|p| writable_now(p) && !topo.replicas(p).is_empty()) else {
        return Some(Resolution::AlertOnly {
            reason: format!(
                "split brain: {} are writable and no replicas follow a single one of them: decide by hand",
                list(&writers)
            ),
        });
    };
    let (followed, intruders): (Vec<InstanceKey>, Vec<InstanceKey>) =
        writers.into_iter().filter(|w| *w != primary).partition(|w| !topo.replicas(w).is_empty());
    if !followed.is_empty() {
        return Some(Resolution::AlertOnly {
            reason: format!(
                "split brain: {primary} and {} are writable and each has replicas: decide by hand",
                list(&followed)
            ),
        });
    }
    let reason = format!(
        "split brain: {} writable while the replicas follow {primary}: made read-only and kept in the fence list",
        list(&intruders)
    );
    Some(Resolution::Fence { primary, intruders, reason })
}

fn list(keys: &[InstanceKey]) -> String {
    keys.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{analyze, DetectionSettings};
    use crate::fixture::*;
    use crate::time::Millis;

    const P: &str = "10.0.0.1:3306";
    const R1: &str = "10.0.0.2:3306";
    const R2: &str = "10.0.0.3:3306";
    const X: &str = "10.0.0.9:3306";

    fn view(extra: Vec<crate::observation::Observation>) -> ClusterView {
        let mut v = ClusterView::default();
        v.apply(up(P, 1_000, state(1, "0-1-10")), 10);
        v.apply(up(R1, 1_000, state(2, "0-1-10").replica_of(P, "0-1-10")), 10);
        for o in extra {
            v.apply(o, 10);
        }
        v
    }

    fn resolution(v: &ClusterView) -> Option<Resolution> {
        let a = analyze(v, &DetectionSettings::default(), Millis(2_000));
        resolve(v, &a)
    }

    #[test]
    fn split_brain_table() {
        // A writable instance nobody follows: fenced.
        let back = view(vec![up(X, 1_000, state(1, "0-1-11"))]);
        match resolution(&back) {
            Some(Resolution::Fence { primary, intruders, .. }) => {
                assert_eq!((primary, intruders), (key(P), vec![key(X)]))
            }
            other => panic!("fence the intruder: {other:?}"),
        }
        // A replica made writable: fenced too (replicas are read-only).
        let rw = view(vec![up(R2, 1_000, state(3, "0-1-10").replica_of(P, "0-1-10").read_only(false))]);
        assert!(matches!(resolution(&rw), Some(Resolution::Fence { intruders, .. }) if intruders == vec![key(R2)]));
        // Two writable trees: nobody is fenced.
        let trees =
            view(vec![up(X, 1_000, state(9, "0-9-3")), up(R2, 1_000, state(3, "0-9-3").replica_of(X, "0-9-3"))]);
        assert!(matches!(resolution(&trees), Some(Resolution::AlertOnly { .. })), "{:?}", resolution(&trees));
        // The followed instance is read-only: which writer is right is not clear.
        let mut ro = ClusterView::default();
        ro.apply(up(P, 1_000, state(1, "0-1-10").read_only(true)), 10);
        ro.apply(up(R1, 1_000, state(2, "0-1-10").replica_of(P, "0-1-10")), 10);
        ro.apply(up(X, 1_000, state(9, "0-1-10")), 10);
        ro.apply(up(R2, 1_000, state(3, "0-1-10")), 10);
        let a = analyze(&ro, &DetectionSettings::default(), Millis(2_000));
        assert_eq!(a.code, Code::SplitBrain, "{}", a.signal);
        assert!(matches!(resolve(&ro, &a), Some(Resolution::AlertOnly { .. })), "{:?}", resolve(&ro, &a));
        // The reasons name the instances.
        match resolution(&back) {
            Some(Resolution::Fence { reason, .. }) => assert!(reason.contains(X) && reason.contains(P), "{reason}"),
            other => panic!("{other:?}"),
        }
        // No split brain: nothing to resolve.
        assert_eq!(resolution(&view(vec![])), None);
    }
}
