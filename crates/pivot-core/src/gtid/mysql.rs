//! MySQL GTID sets: `uuid:interval[:interval...]` per source, comma separated,
//! with the 8.4 tag form `uuid:tag:interval`. Unlike MariaDB these are true
//! sets of transactions, so the algebra is ordinary set algebra on intervals.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Source of a transaction: server UUID plus optional tag (MySQL 8.4).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId {
    pub uuid: String,
    pub tag: Option<String>,
}

/// A set of MySQL GTIDs. Intervals are inclusive, sorted, disjoint and not adjacent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct MysqlGtidSet {
    sets: BTreeMap<SourceId, Vec<(u64, u64)>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{text}` is not a MySQL GTID set: {reason} (expected uuid:1-5[:7-9][,...])")]
pub struct MysqlParseError {
    pub text: String,
    pub reason: String,
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    groups.len() == 5 && groups.iter().zip(lens).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_tag(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl MysqlGtidSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn parse(text: &str) -> Result<Self, MysqlParseError> {
        let mut set = MysqlGtidSet::new();
        let err = |reason: String| MysqlParseError { text: text.to_string(), reason };
        // Servers print long sets with newlines after the commas.
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':');
            let uuid = fields.next().unwrap_or_default().to_ascii_lowercase();
            if !is_uuid(&uuid) {
                return Err(err(format!("`{uuid}` is not a server UUID")));
            }
            let mut source = SourceId { uuid, tag: None };
            let mut saw_interval = false;
            for field in fields {
                if field.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    let (lo, hi) = match field.split_once('-') {
                        Some((lo, hi)) => (lo, hi),
                        None => (field, field),
                    };
                    let lo: u64 = lo.parse().map_err(|_| err(format!("`{field}` is not an interval")))?;
                    let hi: u64 = hi.parse().map_err(|_| err(format!("`{field}` is not an interval")))?;
                    if lo == 0 || hi < lo {
                        return Err(err(format!("`{field}` is an empty or zero-based interval")));
                    }
                    set.insert_range(&source, lo, hi);
                    saw_interval = true;
                } else if is_tag(field) {
                    source = SourceId { uuid: source.uuid.clone(), tag: Some(field.to_ascii_lowercase()) };
                } else {
                    return Err(err(format!("`{field}` is neither an interval nor a tag")));
                }
            }
            if !saw_interval {
                return Err(err(format!("`{part}` has no interval")));
            }
        }
        Ok(set)
    }

    /// Add transactions `lo..=hi` of `source`.
    pub fn insert_range(&mut self, source: &SourceId, lo: u64, hi: u64) {
        assert!(lo >= 1 && lo <= hi, "GTID interval {lo}-{hi} must be non-empty and start at 1 or later");
        let ivs = self.sets.entry(source.clone()).or_default();
        ivs.push((lo, hi));
        *ivs = normalize(std::mem::take(ivs));
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Number of transactions in the set.
    pub fn count(&self) -> u128 {
        self.sets.values().flatten().map(|(lo, hi)| u128::from(hi - lo) + 1).sum()
    }

    pub fn contains(&self, other: &MysqlGtidSet) -> bool {
        other.subtract(self).is_empty()
    }

    pub fn union(&self, other: &MysqlGtidSet) -> MysqlGtidSet {
        let mut out = self.clone();
        for (src, ivs) in &other.sets {
            let mine = out.sets.entry(src.clone()).or_default();
            mine.extend(ivs.iter().copied());
            *mine = normalize(std::mem::take(mine));
        }
        out
    }

    pub fn subtract(&self, other: &MysqlGtidSet) -> MysqlGtidSet {
        let mut sets = BTreeMap::new();
        for (src, ivs) in &self.sets {
            let rest = match other.sets.get(src) {
                None => ivs.clone(),
                Some(theirs) => subtract_intervals(ivs, theirs),
            };
            if !rest.is_empty() {
                sets.insert(src.clone(), rest);
            }
        }
        MysqlGtidSet { sets }
    }

    /// Drop every transaction of server `uuid`, tagged or not.
    pub fn without_uuid(&self, uuid: &str) -> MysqlGtidSet {
        let uuid = uuid.to_ascii_lowercase();
        let sets = self.sets.iter().filter(|(src, _)| src.uuid != uuid).map(|(k, v)| (k.clone(), v.clone())).collect();
        MysqlGtidSet { sets }
    }

    pub fn intersect(&self, other: &MysqlGtidSet) -> MysqlGtidSet {
        self.subtract(&self.subtract(other))
    }
}

fn normalize(mut ivs: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ivs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
    for (lo, hi) in ivs {
        match out.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

fn subtract_intervals(mine: &[(u64, u64)], theirs: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(lo, hi) in mine {
        let mut cur = lo;
        for &(tlo, thi) in theirs {
            if thi < cur || tlo > hi {
                continue;
            }
            if tlo > cur {
                out.push((cur, tlo - 1));
            }
            cur = thi.saturating_add(1);
            if cur > hi {
                break;
            }
        }
        if cur <= hi && cur >= lo {
            out.push((cur, hi));
        }
    }
    out
}

impl fmt::Display for MysqlGtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut current_uuid: Option<&str> = None;
        for (src, ivs) in &self.sets {
            if current_uuid != Some(src.uuid.as_str()) {
                if current_uuid.is_some() {
                    f.write_str(",")?;
                }
                f.write_str(&src.uuid)?;
                current_uuid = Some(&src.uuid);
            }
            if let Some(tag) = &src.tag {
                write!(f, ":{tag}")?;
            }
            for (lo, hi) in ivs {
                if lo == hi {
                    write!(f, ":{lo}")?;
                } else {
                    write!(f, ":{lo}-{hi}")?;
                }
            }
        }
        Ok(())
    }
}

impl Serialize for MysqlGtidSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MysqlGtidSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        MysqlGtidSet::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4d2e1c5a-0000-11e1-9e33-c80aa9429562";

    fn s(text: &str) -> MysqlGtidSet {
        MysqlGtidSet::parse(text).unwrap()
    }

    #[test]
    fn parse_print_round_trip() {
        let text = format!("{A}:1-5:7:9-10,{B}:1-3");
        assert_eq!(s(&text).to_string(), text);
        assert_eq!(s(&format!("{A}:1-3:4-6")).to_string(), format!("{A}:1-6"), "adjacent intervals merge");
        assert_eq!(s(&format!("{}:1-2,\n{B}:1", A.to_uppercase())).to_string(), format!("{A}:1-2,{B}:1"));
        assert_eq!(s(&format!("{A}:1-5:blue:1-3")).to_string(), format!("{A}:1-5:blue:1-3"), "8.4 tags");
        assert!(s("").is_empty());
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["abc:1-5", A, &format!("{A}:5-1"), &format!("{A}:0-3"), &format!("{A}:1-x")] {
            assert!(MysqlGtidSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn set_algebra() {
        let primary = s(&format!("{A}:1-100"));
        let replica = s(&format!("{A}:1-90,{B}:1-2"));
        assert!(!primary.contains(&replica));
        assert_eq!(replica.subtract(&primary), s(&format!("{B}:1-2")));
        assert_eq!(primary.subtract(&s(&format!("{A}:10-20"))), s(&format!("{A}:1-9:21-100")));
        assert_eq!(primary.union(&replica).count(), 102);
        assert_eq!(primary.intersect(&replica), s(&format!("{A}:1-90")));
    }
}
