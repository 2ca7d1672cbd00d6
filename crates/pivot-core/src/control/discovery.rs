//! Which instances a cluster's monitor watches, within `max_instances`.
//!
//! Seeds and discovered instances are watched while there is room. When the
//! limit is reached, instances that answer win over ones that never did: a
//! newly referenced instance (named by one that answered) replaces a watched
//! instance that never answered, and seeds waiting for room take the place
//! of instances that failed [`GIVE_UP_AFTER`] probes without ever answering.
//! The limit is reported once (log) and kept in status and metrics.

use crate::instance::InstanceKey;
use crate::view::ClusterView;
use std::collections::VecDeque;

/// Failed probes, with no answer ever, after which a waiting seed takes the place.
pub const GIVE_UP_AFTER: u32 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Watch(InstanceKey),
    Drop(InstanceKey),
    /// Said once, when the limit is first reached.
    LimitReached(String),
}

#[derive(Clone, Debug)]
pub struct Discovery {
    max: usize,
    waiting: VecDeque<InstanceKey>,
    reported: bool,
    dropped: usize,
}

impl Discovery {
    pub fn new(max: usize) -> Discovery {
        Discovery { max, waiting: VecDeque::new(), reported: false, dropped: 0 }
    }

    fn watched(view: &ClusterView) -> usize {
        view.records.len() + view.pending.len()
    }

    /// An instance to watch: a seed, or one `referenced` by an instance that
    /// answered. `protected` instances (former primaries) are never dropped.
    pub fn offer(
        &mut self,
        view: &ClusterView,
        key: InstanceKey,
        referenced: bool,
        protected: &[InstanceKey],
    ) -> Vec<Step> {
        if view.get(&key).is_some() || view.pending.contains(&key) {
            return vec![];
        }
        if Self::watched(view) < self.max {
            self.waiting.retain(|k| *k != key);
            return vec![Step::Watch(key)];
        }
        let mut steps = self.report_limit();
        if referenced || protected.contains(&key) {
            // Make room: the watched instance that failed longest without answering.
            let victim = view
                .records
                .iter()
                .filter(|(k, r)| r.last_reachable.is_none() && !protected.contains(k))
                .max_by_key(|(_, r)| r.consecutive_failures)
                .map(|(k, _)| k.clone())
                .or_else(|| view.pending.iter().find(|k| !protected.contains(k)).cloned());
            if let Some(v) = victim {
                self.dropped += 1;
                steps.push(Step::Drop(v));
                steps.push(Step::Watch(key));
                return steps;
            }
        }
        if !self.waiting.contains(&key) {
            self.waiting.push_back(key);
        }
        steps
    }

    /// Give waiting seeds the places of instances that never answered, until
    /// a primary is `found` (from then on, discovery follows replication).
    pub fn rotate(&mut self, view: &ClusterView, found: bool) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.waiting.is_empty() || found {
            return steps;
        }
        let stale: Vec<InstanceKey> = view
            .records
            .iter()
            .filter(|(_, r)| r.last_reachable.is_none() && r.consecutive_failures >= GIVE_UP_AFTER)
            .map(|(k, _)| k.clone())
            .collect();
        for victim in stale {
            let Some(next) = self.waiting.pop_front() else { break };
            self.dropped += 1;
            // The dropped one waits again, behind the others.
            self.waiting.push_back(victim.clone());
            steps.push(Step::Drop(victim));
            steps.push(Step::Watch(next));
        }
        steps
    }

    fn report_limit(&mut self) -> Vec<Step> {
        if self.reported {
            return vec![];
        }
        self.reported = true;
        vec![Step::LimitReached(format!(
            "max_instances ({}) reached: instances that answer are preferred; raise max_instances or remove bad seeds",
            self.max
        ))]
    }

    /// The limit in words, for status, once reached.
    pub fn limit_text(&self) -> Option<String> {
        self.reported.then(|| {
            format!(
                "max_instances {} reached: {} waiting to be watched, {} dropped for never answering",
                self.max,
                self.waiting.len(),
                self.dropped
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{down, key, state, up};
    use crate::observation::FailureKind;

    fn apply(view: &mut ClusterView, steps: &[Step]) {
        for s in steps {
            match s {
                Step::Watch(k) => {
                    view.learn(k.clone());
                }
                Step::Drop(k) => view.forget(k),
                Step::LimitReached(_) => {}
            }
        }
    }

    #[test]
    fn answering_instances_win_over_bogus_seeds_and_the_limit_is_said_once() {
        let mut d = Discovery::new(3);
        let mut view = ClusterView::default();
        let seeds = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4", "10.0.0.1:3306"];
        let mut said = 0;
        for s in seeds {
            let steps = d.offer(&view, key(s), false, &[]);
            said += steps.iter().filter(|s| matches!(s, Step::LimitReached(_))).count();
            apply(&mut view, &steps);
        }
        assert_eq!(view.pending.len(), 3);
        assert!(!view.pending.contains(&key("10.0.0.1:3306")), "the real primary waits");
        // The bogus seeds fail; waiting seeds take their places.
        let mut rounds = 0;
        while !view.keys().any(|k| *k == key("10.0.0.1:3306")) {
            rounds += 1;
            assert!(rounds < 20, "the waiting primary never got a place");
            for k in view.keys().cloned().collect::<Vec<_>>() {
                view.apply(down(&k.to_string(), rounds * 10, FailureKind::Refused), 10);
            }
            let steps = d.rotate(&view, false);
            apply(&mut view, &steps);
        }
        view.apply(up("10.0.0.1:3306", 1_000, state(1, "0-1-5")), 10);
        assert_eq!(d.rotate(&view, true), vec![], "once a primary is found, waiting seeds stay waiting");
        // A replica it names gets a place at once, at a bogus seed's expense.
        let steps = d.offer(&view, key("10.0.0.2:3306"), true, &[]);
        said += steps.iter().filter(|s| matches!(s, Step::LimitReached(_))).count();
        assert!(steps.contains(&Step::Watch(key("10.0.0.2:3306"))), "{steps:?}");
        assert!(!steps.contains(&Step::Drop(key("10.0.0.1:3306"))), "never drop one that answered");
        apply(&mut view, &steps);
        assert_eq!(said, 1, "the limit is said once");
        assert!(d.limit_text().unwrap().contains("max_instances 3 reached"));
    }

    #[test]
    fn protected_instances_are_never_dropped() {
        let mut d = Discovery::new(1);
        let mut view = ClusterView::default();
        let steps = d.offer(&view, key("10.0.0.9:3306"), false, &[]);
        apply(&mut view, &steps);
        let steps = d.offer(&view, key("10.0.0.2:3306"), true, &[key("10.0.0.9:3306")]);
        assert!(!steps.iter().any(|s| matches!(s, Step::Drop(_))), "{steps:?}");
    }

    #[test]
    fn known_instances_are_not_offered_twice_and_only_stale_never_answering_ones_rotate() {
        let mut d = Discovery::new(2);
        let mut view = ClusterView::default();
        let steps = d.offer(&view, key("127.0.0.1:1"), false, &[]);
        apply(&mut view, &steps);
        assert_eq!(d.offer(&view, key("127.0.0.1:1"), false, &[]), vec![], "pending already");
        view.apply(down("127.0.0.1:1", 10, FailureKind::Refused), 10);
        assert_eq!(d.offer(&view, key("127.0.0.1:1"), true, &[]), vec![], "watched already");
        let steps = d.offer(&view, key("127.0.0.1:2"), false, &[]);
        apply(&mut view, &steps);
        // Full: a third seed waits.
        let steps = d.offer(&view, key("127.0.0.1:3"), false, &[]);
        assert!(!steps.iter().any(|s| matches!(s, Step::Watch(_))), "{steps:?}");
        // Two failures are not enough to give the place away.
        view.apply(down("127.0.0.1:1", 20, FailureKind::Refused), 10);
        view.apply(up("127.0.0.1:2", 20, state(2, "0-2-1")), 10);
        assert_eq!(d.rotate(&view, false), vec![]);
        view.apply(down("127.0.0.1:1", 30, FailureKind::Refused), 10);
        let steps = d.rotate(&view, false);
        assert_eq!(steps, vec![Step::Drop(key("127.0.0.1:1")), Step::Watch(key("127.0.0.1:3"))]);
        apply(&mut view, &steps);
        // The one that answered once keeps its place, however often it fails.
        for t in 40..50 {
            view.apply(down("127.0.0.1:2", t, FailureKind::Refused), 10);
        }
        let steps = d.rotate(&view, false);
        assert!(!steps.contains(&Step::Drop(key("127.0.0.1:2"))), "{steps:?}");
        assert!(d.limit_text().unwrap().contains("1 dropped"), "{:?}", d.limit_text());
    }

    #[test]
    fn a_protected_instance_that_failed_is_not_the_victim() {
        let mut d = Discovery::new(2);
        let mut view = ClusterView::default();
        for k in ["10.0.0.9:3306", "127.0.0.1:1"] {
            let steps = d.offer(&view, key(k), false, &[]);
            apply(&mut view, &steps);
            view.apply(down(k, 10, FailureKind::Refused), 10);
        }
        view.apply(down("10.0.0.9:3306", 20, FailureKind::Refused), 10);
        let steps = d.offer(&view, key("10.0.0.2:3306"), true, &[key("10.0.0.9:3306")]);
        assert!(steps.contains(&Step::Drop(key("127.0.0.1:1"))), "{steps:?}");
        assert!(!steps.contains(&Step::Drop(key("10.0.0.9:3306"))), "{steps:?}");
    }
}
