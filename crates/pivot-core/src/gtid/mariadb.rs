//! MariaDB GTID lists: `domain-server-seq` triples such as `0-1-100,0-2-57,1-1-3`.
//!
//! MariaDB does not keep a set of every transaction; it keeps the last sequence
//! number per `(domain, server_id)` (`@@gtid_binlog_state`) or per domain
//! (`@@gtid_current_pos`, `Gtid_IO_Pos`). In `gtid_strict_mode` sequence numbers
//! grow monotonically inside a domain, so "has everything up to seq N from this
//! server in this domain" is a sound reading of an entry, and the list forms a
//! lattice: union is the per-key maximum, containment is per-key `>=`.
//!
//! Two readings are offered because MariaDB uses both:
//! * per `(domain, server_id)` ([`MariaGtidList::contains`], [`MariaGtidList::subtract`]):
//!   finds transactions that originated on a server the primary never heard of
//!   (errant transactions), or that an old primary wrote after the others left it;
//! * per domain ([`MariaGtidList::domain_seq`], [`MariaGtidList::cmp_position`]):
//!   orders positions of replicas of one primary stream (who received most).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// One GTID: `domain-server-seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MariaGtid {
    pub domain: u32,
    pub server_id: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server_id, self.seq)
    }
}

/// The highest sequence number per `(domain, server_id)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MariaGtidList {
    last: BTreeMap<(u32, u32), u64>,
}

/// How two positions of replicas of the same stream relate, domain by domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositionOrder {
    Equal,
    Ahead,
    Behind,
    /// Ahead in one domain and behind in another.
    Mixed,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not a MariaDB GTID list: {reason} (expected domain-server-seq[,...], e.g. 0-1-100)")]
pub struct MariaParseError {
    pub text: String,
    pub reason: String,
}

impl MariaGtidList {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn parse(text: &str) -> Result<Self, MariaParseError> {
        let mut list = MariaGtidList::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let err = |reason: String| MariaParseError { text: text.to_string(), reason };
            let fields: Vec<&str> = part.split('-').collect();
            if fields.len() != 3 {
                return Err(err(format!("`{part}` does not have three numbers")));
            }
            let num = |s: &str| s.parse::<u64>().map_err(|_| err(format!("`{s}` in `{part}` is not a number")));
            let domain = u32::try_from(num(fields[0])?).map_err(|_| err(format!("domain in `{part}` is too large")))?;
            let server_id =
                u32::try_from(num(fields[1])?).map_err(|_| err(format!("server_id in `{part}` is too large")))?;
            list.insert(MariaGtid { domain, server_id, seq: num(fields[2])? });
        }
        Ok(list)
    }

    /// Record `gtid`, keeping the highest sequence number per `(domain, server_id)`.
    pub fn insert(&mut self, gtid: MariaGtid) {
        let seq = self.last.entry((gtid.domain, gtid.server_id)).or_insert(gtid.seq);
        *seq = (*seq).max(gtid.seq);
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = MariaGtid> + '_ {
        self.last.iter().map(|(&(domain, server_id), &seq)| MariaGtid { domain, server_id, seq })
    }

    /// Every entry of `other` is covered by an entry of `self` for the same
    /// `(domain, server_id)` with an equal or higher sequence number.
    pub fn contains(&self, other: &MariaGtidList) -> bool {
        other.last.iter().all(|(key, seq)| self.last.get(key).is_some_and(|mine| mine >= seq))
    }

    pub fn union(&self, other: &MariaGtidList) -> MariaGtidList {
        let mut out = self.clone();
        other.iter().for_each(|g| out.insert(g));
        out
    }

    /// The entries of `self` that `other` does not cover.
    pub fn subtract(&self, other: &MariaGtidList) -> MariaGtidList {
        let last = self
            .last
            .iter()
            .filter(|(key, seq)| other.last.get(key).is_none_or(|theirs| theirs < seq))
            .map(|(k, s)| (*k, *s))
            .collect();
        MariaGtidList { last }
    }

    /// Drop every entry written by `server_id`.
    pub fn without_server(&self, server_id: u32) -> MariaGtidList {
        let last = self.last.iter().filter(|((_, s), _)| *s != server_id).map(|(k, v)| (*k, *v)).collect();
        MariaGtidList { last }
    }

    pub fn domains(&self) -> impl Iterator<Item = u32> + '_ {
        let mut domains: Vec<u32> = self.last.keys().map(|(d, _)| *d).collect();
        domains.dedup();
        domains.into_iter()
    }

    /// The highest sequence number seen in `domain`, from any server.
    pub fn domain_seq(&self, domain: u32) -> Option<u64> {
        self.last.range((domain, 0)..=(domain, u32::MAX)).map(|(_, s)| *s).max()
    }

    /// Compare as positions: domain by domain, by the highest sequence number.
    /// A domain missing on one side counts as sequence 0 there.
    pub fn cmp_position(&self, other: &MariaGtidList) -> PositionOrder {
        let (mut ahead, mut behind) = (false, false);
        let mut domains: Vec<u32> = self.domains().chain(other.domains()).collect();
        domains.sort_unstable();
        domains.dedup();
        for d in domains {
            let (a, b) = (self.domain_seq(d).unwrap_or(0), other.domain_seq(d).unwrap_or(0));
            ahead |= a > b;
            behind |= a < b;
        }
        match (ahead, behind) {
            (false, false) => PositionOrder::Equal,
            (true, false) => PositionOrder::Ahead,
            (false, true) => PositionOrder::Behind,
            (true, true) => PositionOrder::Mixed,
        }
    }

    /// Sum of the per-domain highest sequence numbers: a scalar for ranking
    /// replicas of one stream when positions are totally ordered.
    pub fn position_weight(&self) -> u128 {
        self.domains().map(|d| u128::from(self.domain_seq(d).unwrap_or(0))).sum()
    }

    /// Reduce to one entry per domain (the highest sequence, and its server):
    /// the form `gtid_slave_pos` and `MASTER_GTID_WAIT()` take.
    pub fn to_position(&self) -> MariaGtidList {
        let mut out = MariaGtidList::new();
        for d in self.domains().collect::<Vec<_>>() {
            if let Some(g) = self.iter().filter(|g| g.domain == d).max_by_key(|g| g.seq) {
                out.insert(g);
            }
        }
        out
    }
}

impl fmt::Display for MariaGtidList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for g in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

impl Serialize for MariaGtidList {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MariaGtidList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MariaGtidList::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> MariaGtidList {
        MariaGtidList::parse(s).unwrap()
    }

    #[test]
    fn parse_print_round_trip() {
        assert_eq!(l("0-2-57, 0-1-100,1-1-3").to_string(), "0-1-100,0-2-57,1-1-3");
        assert_eq!(l("").to_string(), "");
        assert_eq!(l("0-1-5,0-1-3").to_string(), "0-1-5", "duplicate keys keep the highest seq");
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["0-1", "a-1-2", "0-1-2-3", "0-99999999999-1", "0--1"] {
            assert!(MariaGtidList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn containment_is_per_domain_and_server() {
        let primary = l("0-1-100");
        assert!(primary.contains(&l("0-1-99")));
        assert!(!primary.contains(&l("0-1-101")));
        // A transaction written on replica 3 is errant even if its seq is low.
        assert!(!primary.contains(&l("0-3-5")));
        assert_eq!(l("0-1-90,0-3-5,99-3-1").subtract(&primary), l("0-3-5,99-3-1"));
    }

    #[test]
    fn positions_compare_per_domain() {
        assert_eq!(l("0-1-10").cmp_position(&l("0-1-9")), PositionOrder::Ahead);
        assert_eq!(l("0-2-10").cmp_position(&l("0-1-10")), PositionOrder::Equal);
        assert_eq!(l("0-1-10,1-1-1").cmp_position(&l("0-1-11")), PositionOrder::Mixed);
        assert_eq!(l("").cmp_position(&l("0-1-1")), PositionOrder::Behind);
        assert_eq!(l("0-1-10,0-2-12,1-1-3").to_position(), l("0-2-12,1-1-3"));
    }
}
