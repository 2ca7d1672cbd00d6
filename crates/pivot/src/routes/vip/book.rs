//! What this process knows about who may hold the virtual address, and the
//! decision it makes from it: the primary's agent gets a lease only once
//! every other agent certainly holds none. Pure: time comes in as an
//! argument.
//!
//! An agent certainly holds nothing when either
//! * it confirmed a release of the current epoch: it took the address down
//!   and refuses every lease of an older epoch from then on, and no lease of
//!   the current epoch is ever sent to anyone but the primary's agent; or
//! * every lease it may have been given has certainly ended: leases this
//!   process sent, and leases another pivot (or this one before it
//!   restarted) may have sent until it learned of the new epoch.
//!
//! A lease sent at `t` is refused by the agent unless it arrives before
//! `t + validity` by the agent's own clock (pivot states the deadline in
//! that clock: [`Book::valid_until`]); it then lasts `lease`, and the
//! address is gone at most `after` later (the kernel's address lifetime, or
//! keepalived's check). So it has certainly ended at
//! `t + validity + lease + after` ([`Bounds::after_lease`]).

use pivot_core::InstanceKey;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The durations the decision is bounded by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// How long a lease stays valid for the agent to take (its clock).
    pub validity: Duration,
    pub lease: Duration,
    /// From the end of a lease until the address is certainly gone.
    pub after: Duration,
    /// How long another pivot process may go on renewing an old epoch's
    /// lease after this one learned of a newer epoch (it reads the state
    /// file every second).
    pub other_process: Duration,
}

impl Bounds {
    /// A lease sent at `t` has certainly ended at `t + after_lease()`.
    pub fn after_lease(&self) -> Duration {
        self.validity + self.lease + self.after
    }

    /// Leases nobody told us about have certainly ended this long after we
    /// learned of an epoch (or started).
    pub fn after_new_epoch(&self) -> Duration {
        self.other_process + self.after_lease()
    }
}

/// One reading of an agent's clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub boot: String,
    /// The agent's clock (ms) in its answer.
    pub agent_ms: u64,
    /// When the answer arrived (this process's clock).
    pub at: Instant,
}

#[derive(Clone, Debug)]
struct Entry {
    /// It may hold a lease until then.
    may_hold_until: Instant,
    /// It confirmed a release of this epoch after the last lease sent to it.
    released: Option<u64>,
    clock: Option<Sample>,
}

/// What to do about the primary's agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No other agent may hold the address: lease it.
    Lease,
    /// These agents may still hold a lease, at most until `until`.
    Wait { until: Instant, holders: Vec<InstanceKey> },
}

/// Per cluster and process: shared by the follower and the route steps.
#[derive(Clone, Debug)]
pub struct Book {
    started: Instant,
    /// The newest epoch seen; when it was first seen.
    epoch: u64,
    epoch_seen_at: Instant,
    agents: BTreeMap<InstanceKey, Entry>,
}

impl Book {
    /// A book that knows nothing: every agent may hold a lease given before
    /// `now` by anyone.
    pub fn new(now: Instant) -> Book {
        Book { started: now, epoch: 0, epoch_seen_at: now, agents: BTreeMap::new() }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn entry(&mut self, agent: &InstanceKey, b: &Bounds) -> &mut Entry {
        let since = self.started.max(self.epoch_seen_at);
        self.agents.entry(agent.clone()).or_insert_with(|| Entry {
            may_hold_until: since + b.after_new_epoch(),
            released: None,
            clock: None,
        })
    }

    /// Take note of `epoch` (the table being routed). A newer one than seen
    /// so far: every agent may hold a lease another process gave until it
    /// learns of it, and only releases of this epoch count from now on.
    /// Returns false when `epoch` is older than one already seen.
    pub fn observe_epoch(&mut self, epoch: u64, now: Instant, b: &Bounds) -> bool {
        if epoch < self.epoch {
            return false;
        }
        if epoch > self.epoch {
            self.epoch = epoch;
            self.epoch_seen_at = now;
            for e in self.agents.values_mut() {
                e.may_hold_until = e.may_hold_until.max(now + b.after_new_epoch());
                e.released = None;
            }
        }
        true
    }

    /// A lease is about to be sent to `agent` at `at`.
    pub fn lease_sent(&mut self, agent: &InstanceKey, at: Instant, b: &Bounds) {
        let e = self.entry(agent, b);
        e.may_hold_until = e.may_hold_until.max(at + b.after_lease());
        e.released = None;
    }

    /// `agent` confirmed a release of `epoch`.
    pub fn release_confirmed(&mut self, agent: &InstanceKey, epoch: u64, b: &Bounds) {
        let current = self.epoch;
        let e = self.entry(agent, b);
        if epoch == current {
            e.released = Some(epoch);
        }
    }

    /// May `target` get the lease now, given the `others`?
    pub fn decide(&mut self, others: &[InstanceKey], now: Instant, b: &Bounds) -> Decision {
        let epoch = self.epoch;
        let mut until = now;
        let mut holders = Vec::new();
        for a in others {
            let e = self.entry(a, b);
            if e.released == Some(epoch) || now >= e.may_hold_until {
                continue;
            }
            until = until.max(e.may_hold_until);
            holders.push(a.clone());
        }
        if holders.is_empty() {
            Decision::Lease
        } else {
            Decision::Wait { until, holders }
        }
    }

    /// Whether `agent` confirmed a release of the current epoch.
    pub fn released(&self, agent: &InstanceKey) -> bool {
        self.agents.get(agent).is_some_and(|e| e.released == Some(self.epoch))
    }

    /// An answer of `agent` read its clock.
    pub fn sample(&mut self, agent: &InstanceKey, s: Sample, b: &Bounds) {
        self.entry(agent, b).clock = Some(s);
    }

    /// The boot and the deadline (the agent's clock) of a lease sent `now`:
    /// its clock was at least `agent_ms` when the sample arrived, so it is
    /// at least `agent_ms + (now - at)` now, and the deadline is at most
    /// `validity` from now. `None` without a sample.
    pub fn valid_until(&self, agent: &InstanceKey, now: Instant, validity: Duration) -> Option<(String, u64)> {
        let s = self.agents.get(agent)?.clock.as_ref()?;
        let since = now.saturating_duration_since(s.at);
        let until = s.agent_ms.saturating_add((since + validity).as_millis() as u64);
        Some((s.boot.clone(), until))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b() -> Bounds {
        Bounds {
            validity: Duration::from_secs(1),
            lease: Duration::from_secs(3),
            after: Duration::from_millis(1500),
            other_process: Duration::from_millis(1500),
        }
    }

    fn k(s: &str) -> InstanceKey {
        s.parse().unwrap()
    }

    fn s(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn bounds_add_up() {
        assert_eq!(b().after_lease(), s(5500));
        assert_eq!(b().after_new_epoch(), s(7000));
    }

    /// (case, events, asked at (ms after start), decision: None = lease, Some(until ms, holders))
    #[test]
    fn who_may_hold_the_address() {
        enum Ev {
            Epoch(u64, u64),
            Lease(&'static str, u64),
            Released(&'static str, u64),
        }
        use Ev::*;
        type Case = (&'static str, Vec<Ev>, u64, Option<(u64, Vec<&'static str>)>);
        let cases: Vec<Case> = vec![
            (
                "a fresh process waits for leases it cannot know of",
                vec![Epoch(5, 0)],
                100,
                Some((7000, vec!["a:1", "c:1"])),
            ),
            ("... until they certainly ended", vec![Epoch(5, 0)], 7000, None),
            (
                "releases of the current epoch clear at once",
                vec![Epoch(5, 0), Released("a:1", 5), Released("c:1", 5)],
                100,
                None,
            ),
            (
                "one unreachable agent is waited for",
                vec![Epoch(5, 0), Released("c:1", 5)],
                100,
                Some((7000, vec!["a:1"])),
            ),
            (
                "a release of an older epoch does not count",
                vec![Epoch(4, 0), Released("a:1", 4), Released("c:1", 4), Epoch(5, 10)],
                100,
                Some((7010, vec!["a:1", "c:1"])),
            ),
            (
                "a lease we sent late extends the wait",
                vec![Epoch(4, 0), Released("c:1", 4), Lease("a:1", 6000), Epoch(5, 6500), Released("c:1", 5)],
                7000,
                Some((13500, vec!["a:1"])),
            ),
            (
                "a lease sent after a release undoes it",
                vec![Epoch(5, 0), Released("a:1", 5), Released("c:1", 5), Lease("a:1", 50)],
                100,
                Some((7000, vec!["a:1"])),
            ),
            (
                "an older epoch seen later changes nothing",
                vec![Epoch(5, 0), Released("a:1", 5), Released("c:1", 5), Epoch(4, 50)],
                100,
                None,
            ),
        ];
        for (case, events, at, want) in cases {
            let t0 = Instant::now();
            let mut book = Book::new(t0);
            for ev in events {
                match ev {
                    Epoch(e, ms) => {
                        book.observe_epoch(e, t0 + s(ms), &b());
                    }
                    Lease(a, ms) => book.lease_sent(&k(a), t0 + s(ms), &b()),
                    Released(a, e) => book.release_confirmed(&k(a), e, &b()),
                }
            }
            let got = book.decide(&[k("a:1"), k("c:1")], t0 + s(at), &b());
            let want = match want {
                None => Decision::Lease,
                Some((until, holders)) => {
                    Decision::Wait { until: t0 + s(until), holders: holders.into_iter().map(k).collect() }
                }
            };
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn an_older_epoch_is_refused() {
        let t0 = Instant::now();
        let mut book = Book::new(t0);
        assert!(book.observe_epoch(5, t0, &b()));
        assert!(book.observe_epoch(5, t0, &b()), "the same epoch again");
        assert!(!book.observe_epoch(4, t0, &b()));
        assert_eq!(book.epoch(), 5);
    }

    #[test]
    fn a_lease_deadline_is_stated_in_the_agents_clock() {
        let t0 = Instant::now();
        let mut book = Book::new(t0);
        assert_eq!(book.valid_until(&k("a:1"), t0, s(1000)), None, "no sample yet");
        book.sample(&k("a:1"), Sample { boot: "b1".into(), agent_ms: 50_000, at: t0 }, &b());
        // 300 ms later: the agent's clock is at least 50 300; the lease may
        // be taken until 51 300 on it.
        assert_eq!(book.valid_until(&k("a:1"), t0 + s(300), s(1000)), Some(("b1".into(), 51_300)));
        // A sample taken later than asked for (clock read in between) counts
        // no time backwards.
        assert_eq!(book.valid_until(&k("a:1"), t0, s(1000)), Some(("b1".into(), 51_000)));
    }
}
