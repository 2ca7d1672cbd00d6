//! Who replicates from whom, derived from a [`ClusterView`].
//!
//! Edges come from each instance's last known replication source, so a dead
//! primary stays the root of its replicas' tree until they are repointed.

use crate::instance::InstanceKey;
use crate::view::ClusterView;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// The instance the cluster writes to, if one can be identified.
    pub primary: Option<InstanceKey>,
    /// Replica -> the source it replicates from (last known).
    pub source_of: BTreeMap<InstanceKey, InstanceKey>,
    /// Source -> its direct replicas, sorted.
    pub replicas_of: BTreeMap<InstanceKey, Vec<InstanceKey>>,
    /// Other roots that have replicas: a second tree in what should be one cluster.
    pub other_primaries: Vec<InstanceKey>,
    /// Instances that replicate from nobody and have no replicas, other than the
    /// primary (a fenced former primary, a stand-alone server).
    pub detached: Vec<InstanceKey>,
    /// Members of replication cycles (dual primaries).
    pub cycle: Vec<InstanceKey>,
    /// An active/passive dual-primary pair: exactly two instances, each
    /// replicating from the other, the primary (writable) the active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring: Option<Ring>,
    /// Why `primary` is what it is, in words.
    pub reasoning: String,
}

/// The two members of an active/passive dual-primary pair (a two-node ring).
/// The active is the primary; the passive is its replica, kept read-only;
/// the active's replication from the passive is expected, not a problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ring {
    pub active: InstanceKey,
    pub passive: InstanceKey,
}

impl Topology {
    pub fn derive(view: &ClusterView) -> Topology {
        let mut source_of = BTreeMap::new();
        let mut all: BTreeSet<InstanceKey> = view.keys().cloned().collect();
        for (key, rec) in &view.records {
            if let Some(repl) = rec.last_state().and_then(|s| s.replication.as_ref()) {
                source_of.insert(key.clone(), repl.source.clone());
                all.insert(repl.source.clone());
            }
        }
        let mut replicas_of: BTreeMap<InstanceKey, Vec<InstanceKey>> = BTreeMap::new();
        for (replica, source) in &source_of {
            replicas_of.entry(source.clone()).or_default().push(replica.clone());
        }
        let cycle = find_cycle_members(&source_of);
        let roots: Vec<&InstanceKey> = all.iter().filter(|k| !source_of.contains_key(*k)).collect();
        let all_with_replicas: Vec<&InstanceKey> =
            roots.iter().copied().filter(|k| replicas_of.contains_key(*k)).collect();
        let writable = |k: &InstanceKey| view.get(k).and_then(|r| r.last_state()).is_some_and(|s| s.writable());
        let writable_now = |k: &InstanceKey| view.get(k).and_then(|r| r.current_state()).is_some_and(|s| s.writable());
        // A former primary pivot fenced is never the primary while another
        // instance can be: replicas it lost at a failover (unreachable, still
        // naming it as their source) must not make its tree the cluster's.
        let with_replicas: Vec<&InstanceKey> =
            all_with_replicas.iter().copied().filter(|k| !view.fenced.contains(*k)).collect();
        let fenced_trees_only = with_replicas.is_empty() && !all_with_replicas.is_empty();
        // Another instance known writable (now, or when last seen: a new
        // primary that hangs is still the one to judge) takes the place.
        let new_primary: Vec<&InstanceKey> = if fenced_trees_only {
            let now: Vec<&InstanceKey> =
                roots.iter().copied().filter(|k| !view.fenced.contains(*k) && writable_now(k)).collect();
            if now.is_empty() {
                roots.iter().copied().filter(|k| !view.fenced.contains(*k) && writable(k)).collect()
            } else {
                now
            }
        } else {
            Vec::new()
        };
        let with_replicas = if fenced_trees_only && new_primary.is_empty() { all_with_replicas } else { with_replicas };

        let (primary, reasoning) = if let [one] = new_primary.as_slice() {
            (
                Some((*one).clone()),
                format!("{one} is the writable instance (now or when last seen); the other trees hang off fenced former primaries"),
            )
        } else if with_replicas.len() == 1 {
            (
                Some(with_replicas[0].clone()),
                format!("{} is the only source that replicates from nobody", with_replicas[0]),
            )
        } else if with_replicas.len() > 1 {
            // Several trees: the biggest wins, the rest are reported.
            let best = with_replicas
                .iter()
                .max_by_key(|k| (descendants(k, &replicas_of), writable(k), std::cmp::Reverse((**k).clone())))
                .copied()
                .cloned();
            (best.clone(), format!("several sources replicate from nobody; {} has the most replicas", best.unwrap()))
        } else if !cycle.is_empty() {
            let writers: Vec<&InstanceKey> = cycle.iter().filter(|k| writable(k)).collect();
            match writers.as_slice() {
                [one] => (Some((*one).clone()), format!("{one} is the writable member of a replication cycle")),
                [] => (None, "replication cycle with no writable member".to_string()),
                _ => (None, "replication cycle with several writable members".to_string()),
            }
        } else {
            // Only an answer now counts: a dead former primary was writable when last seen.
            let writers: Vec<&InstanceKey> = roots.iter().copied().filter(|k| writable_now(k)).collect();
            match (roots.as_slice(), writers.as_slice()) {
                ([only], _) => (Some((*only).clone()), format!("{only} is the only instance")),
                (_, [one]) => (Some((*one).clone()), format!("{one} is the only writable instance; nobody replicates")),
                (_, []) => {
                    // Nobody answers as writable: the one instance pivot does not
                    // keep fenced that was writable when last seen (a primary
                    // whose replicas are all gone, now unreachable too).
                    let last: Vec<&InstanceKey> =
                        roots.iter().copied().filter(|k| !view.fenced.contains(*k) && writable(k)).collect();
                    match last.as_slice() {
                        [one] => (
                            Some((*one).clone()),
                            format!("{one} was the only writable instance when last seen; nobody replicates"),
                        ),
                        _ => (None, "no instance has replicas and no single instance answers as writable".to_string()),
                    }
                }
                _ => (None, "no instance has replicas and no single instance answers as writable".to_string()),
            }
        };
        let other_primaries: Vec<InstanceKey> = roots
            .iter()
            .filter(|k| replicas_of.contains_key(**k) && Some(**k) != primary.as_ref())
            .map(|k| (*k).clone())
            .collect();
        let detached: Vec<InstanceKey> = roots
            .iter()
            .filter(|k| Some(**k) != primary.as_ref() && !replicas_of.contains_key(**k))
            .map(|k| (*k).clone())
            .collect();
        let ring = ring_of(&all, &source_of, primary.as_ref());
        let reasoning = match &ring {
            Some(r) => format!("{reasoning} (active/passive dual primary: passive {})", r.passive),
            None => reasoning,
        };
        Topology { primary, source_of, replicas_of, other_primaries, detached, cycle, ring, reasoning }
    }

    /// Whether `replica`'s replication from `source` is the active's
    /// replication from the passive of a dual-primary pair.
    pub fn is_ring_return(&self, replica: &InstanceKey, source: &InstanceKey) -> bool {
        self.ring.as_ref().is_some_and(|r| &r.active == replica && &r.passive == source)
    }

    pub fn replicas(&self, source: &InstanceKey) -> &[InstanceKey] {
        self.replicas_of.get(source).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The instances of the primary's tree in depth-first order with their depth,
    /// the primary first; for printing.
    pub fn tree(&self) -> Vec<(usize, InstanceKey)> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        if let Some(p) = &self.primary {
            self.walk(p, 0, &mut out, &mut seen);
        }
        out
    }

    fn walk(
        &self,
        key: &InstanceKey,
        depth: usize,
        out: &mut Vec<(usize, InstanceKey)>,
        seen: &mut BTreeSet<InstanceKey>,
    ) {
        if !seen.insert(key.clone()) {
            return;
        }
        out.push((depth, key.clone()));
        for r in self.replicas(key) {
            self.walk(r, depth + 1, out, seen);
        }
    }
}

/// Exactly two instances, each replicating from the other, with a primary:
/// the primary is the active, the other the passive.
fn ring_of(
    all: &BTreeSet<InstanceKey>,
    source_of: &BTreeMap<InstanceKey, InstanceKey>,
    primary: Option<&InstanceKey>,
) -> Option<Ring> {
    let active = primary?;
    if all.len() != 2 {
        return None;
    }
    let passive = all.iter().find(|k| *k != active)?;
    let closed = source_of.get(active) == Some(passive) && source_of.get(passive) == Some(active);
    closed.then(|| Ring { active: active.clone(), passive: passive.clone() })
}

fn descendants(key: &InstanceKey, replicas_of: &BTreeMap<InstanceKey, Vec<InstanceKey>>) -> usize {
    let mut seen = BTreeSet::new();
    let mut stack = vec![key.clone()];
    while let Some(k) = stack.pop() {
        for r in replicas_of.get(&k).into_iter().flatten() {
            if seen.insert(r.clone()) {
                stack.push(r.clone());
            }
        }
    }
    seen.len()
}

fn find_cycle_members(source_of: &BTreeMap<InstanceKey, InstanceKey>) -> Vec<InstanceKey> {
    let mut members = BTreeSet::new();
    for start in source_of.keys() {
        let mut path = vec![start];
        let mut cur = start;
        // Bounded: a chain longer than the number of edges must have looped.
        for _ in 0..=source_of.len() {
            let Some(next) = source_of.get(cur) else {
                break;
            };
            if let Some(pos) = path.iter().position(|k| *k == next) {
                members.extend(path[pos..].iter().map(|k| (*k).clone()));
                break;
            }
            path.push(next);
            cur = next;
        }
    }
    members.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::*;
    use crate::observation::FailureKind;

    const P1: &str = "10.0.0.1:3306";
    const P2: &str = "10.0.0.2:3306";

    /// Simulator finding F2: after a failover, replicas that were unreachable
    /// still name the old primary as their source. Its tree must not win over
    /// the new primary's because it has more (lost) replicas.
    #[test]
    fn a_fenced_former_primary_is_never_the_primary_while_another_can_be() {
        let mut v = ClusterView::default();
        v.apply(down(P1, 1_000, FailureKind::Refused), 10);
        v.apply(up(P2, 1_000, state(2, "0-2-5")), 10);
        v.apply(up("10.0.0.3:3306", 1_000, state(3, "0-2-5").replica_of(P2, "0-2-5")), 10);
        for (k, id) in [("10.0.0.4:3306", 4), ("10.0.0.5:3306", 5)] {
            v.apply(up(k, 900, state(id, "0-1-9").replica_of(P1, "0-1-9")), 10);
            v.apply(down(k, 1_000, FailureKind::Timeout), 10);
        }
        assert_eq!(Topology::derive(&v).primary, Some(key(P1)), "without the fence list the bigger tree wins");
        v.fenced.insert(key(P1));
        let t = Topology::derive(&v);
        assert_eq!(t.primary, Some(key(P2)), "{}", t.reasoning);
        assert_eq!(t.other_primaries, vec![key(P1)], "its lost tree is still reported");
        // The fenced one came back writable (not yet fenced again) with its
        // lost replica: the new primary is still the primary.
        let mut back = v.clone();
        back.apply(up(P1, 1_200, state(1, "0-1-9")), 10);
        assert_eq!(Topology::derive(&back).primary, Some(key(P2)), "{}", Topology::derive(&back).reasoning);
        // The new primary has no reachable follower at all: still the primary.
        let mut alone = ClusterView::default();
        alone.apply(down(P1, 1_000, FailureKind::Refused), 10);
        alone.apply(up(P2, 1_000, state(2, "0-2-5")), 10);
        alone.apply(up("10.0.0.4:3306", 900, state(4, "0-1-9").replica_of(P1, "0-1-9")), 10);
        alone.apply(down("10.0.0.4:3306", 1_000, FailureKind::Timeout), 10);
        alone.fenced.insert(key(P1));
        assert_eq!(Topology::derive(&alone).primary, Some(key(P2)), "{}", Topology::derive(&alone).reasoning);
        // The new primary hangs (simulator finding F2b): it is still the one
        // to judge, not the fenced former primary with its lost replica.
        alone.apply(down(P2, 1_100, FailureKind::Timeout), 10);
        assert_eq!(Topology::derive(&alone).primary, Some(key(P2)), "{}", Topology::derive(&alone).reasoning);
    }

    fn view(obs: Vec<crate::observation::Observation>) -> ClusterView {
        let mut v = ClusterView::default();
        for o in obs {
            v.apply(o, 10);
        }
        v
    }

    #[test]
    fn topology_table() {
        const A: &str = "10.0.0.1:3306";
        const B: &str = "10.0.0.2:3306";
        const C: &str = "10.0.0.3:3306";
        const D: &str = "10.0.0.4:3306";
        // A chain: A -> B -> C; the tree is walked depth first.
        let chain = view(vec![
            up(A, 1, state(1, "0-1-5")),
            up(B, 1, state(2, "0-1-5").replica_of(A, "0-1-5")),
            up(C, 1, state(3, "0-1-5").replica_of(B, "0-1-5")),
        ]);
        let t = Topology::derive(&chain);
        assert_eq!(t.primary, Some(key(A)));
        assert_eq!(t.tree(), vec![(0, key(A)), (1, key(B)), (2, key(C))]);
        assert!(t.cycle.is_empty() && t.detached.is_empty() && t.other_primaries.is_empty());
        // A stand-alone instance next to the tree is detached.
        let mut with_d = chain.clone();
        with_d.apply(up(D, 1, state(4, "0-4-1").read_only(true)), 10);
        assert_eq!(Topology::derive(&with_d).detached, vec![key(D)]);
        // Dual primaries (a cycle): the one writable member is the primary.
        let cycle = |a_writable: bool, b_writable: bool| {
            view(vec![
                up(A, 1, state(1, "0-1-5").replica_of(B, "0-1-5").read_only(!a_writable)),
                up(B, 1, state(2, "0-1-5").replica_of(A, "0-1-5").read_only(!b_writable)),
            ])
        };
        let t = Topology::derive(&cycle(true, false));
        assert_eq!((t.primary.clone(), t.cycle.clone()), (Some(key(A)), vec![key(A), key(B)]));
        assert_eq!(t.ring, Some(Ring { active: key(A), passive: key(B) }), "a two-node ring is a dual-primary pair");
        assert!(t.is_ring_return(&key(A), &key(B)) && !t.is_ring_return(&key(B), &key(A)));
        let t = Topology::derive(&cycle(false, true));
        assert_eq!(t.ring, Some(Ring { active: key(B), passive: key(A) }), "the writable member is the active");
        assert_eq!(Topology::derive(&cycle(true, true)).ring, None, "no active: no pair");
        assert_eq!(Topology::derive(&chain).ring, None, "a chain is no ring");
        // A third instance: a cycle, but no active/passive pair.
        let mut three = cycle(true, false);
        three.apply(up(C, 1, state(3, "0-1-5").replica_of(A, "0-1-5")), 10);
        assert_eq!(Topology::derive(&three).ring, None, "only two instances make a pair");
        assert_eq!(Topology::derive(&cycle(false, false)).primary, None, "no writable member");
        assert_eq!(Topology::derive(&cycle(true, true)).primary, None, "two writable members");
        // Nobody replicates: the only instance, or the only writable one.
        assert_eq!(Topology::derive(&view(vec![up(A, 1, state(1, "0-1-5").read_only(true))])).primary, Some(key(A)));
        let two = view(vec![up(A, 1, state(1, "0-1-5").read_only(true)), up(B, 1, state(2, "0-2-5"))]);
        assert_eq!(Topology::derive(&two).primary, Some(key(B)));
        let none = view(vec![up(A, 1, state(1, "0-1-5")), up(B, 1, state(2, "0-2-5"))]);
        assert_eq!(Topology::derive(&none).primary, None, "two writable, nobody replicates");
        // A primary that lost its replicas, then went silent itself, next to
        // its fenced predecessor: still the primary (so its death is named).
        let mut alone = view(vec![up(A, 1, state(1, "0-1-5")), up(B, 1, state(2, "0-2-5"))]);
        alone.apply(down(A, 2, FailureKind::Refused), 10);
        alone.apply(down(B, 2, FailureKind::Timeout), 10);
        alone.fenced.insert(key(A));
        assert_eq!(Topology::derive(&alone).primary, Some(key(B)), "{}", Topology::derive(&alone).reasoning);
        // Two trees: the bigger wins; the other is reported.
        let trees = view(vec![
            up(A, 1, state(1, "0-1-5")),
            up(B, 1, state(2, "0-1-5").replica_of(A, "0-1-5")),
            up(C, 1, state(3, "0-3-5")),
            up(D, 1, state(4, "0-3-5").replica_of(C, "0-3-5")),
            up("10.0.0.5:3306", 1, state(5, "0-3-5").replica_of(D, "0-3-5")),
        ]);
        let t = Topology::derive(&trees);
        assert_eq!((t.primary, t.other_primaries), (Some(key(C)), vec![key(A)]));
    }
}
