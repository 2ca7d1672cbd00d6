//! Who can talk to whom: links cut between any two parties (pivot and the
//! servers), and probes made slow.
//!
//! Clients are not a party: they always reach every server. That is the
//! worst case for split brain (an old primary stays reachable by the
//! applications), so every check of "one writer" holds against it.

use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Party {
    Pivot,
    Server(usize),
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::Pivot => write!(f, "pivot"),
            Party::Server(i) => write!(f, "s{}", i + 1),
        }
    }
}

fn pair(a: Party, b: Party) -> (Party, Party) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Network {
    /// Cut links, each with the time it heals.
    cuts: BTreeMap<(Party, Party), u64>,
    /// Extra probe latency per server, until a time.
    slow: BTreeMap<usize, (u64, u64)>,
}

impl Network {
    pub fn connected(&self, a: Party, b: Party) -> bool {
        a == b || !self.cuts.contains_key(&pair(a, b))
    }

    pub fn cut(&mut self, a: Party, b: Party, heal_at: u64) {
        if a != b {
            let e = self.cuts.entry(pair(a, b)).or_insert(heal_at);
            *e = (*e).max(heal_at);
        }
    }

    /// Cut `p` from every party in `others` until `heal_at`.
    pub fn isolate(&mut self, p: Party, others: &[Party], heal_at: u64) {
        for &o in others {
            self.cut(p, o, heal_at);
        }
    }

    pub fn slow_probes(&mut self, server: usize, extra_ms: u64, until: u64) {
        self.slow.insert(server, (extra_ms, until));
    }

    pub fn probe_extra_ms(&self, server: usize, now: u64) -> u64 {
        self.slow.get(&server).filter(|(_, until)| *until > now).map_or(0, |(e, _)| *e)
    }

    pub fn cut_count(&self) -> usize {
        self.cuts.len()
    }

    /// Heal what is due; returns the links healed.
    pub fn heal_due(&mut self, now: u64) -> Vec<(Party, Party)> {
        let due: Vec<(Party, Party)> = self.cuts.iter().filter(|(_, t)| **t <= now).map(|(k, _)| *k).collect();
        for k in &due {
            self.cuts.remove(k);
        }
        self.slow.retain(|_, (_, until)| *until > now);
        due
    }

    pub fn heal_all(&mut self) {
        self.cuts.clear();
        self.slow.clear();
    }
}
