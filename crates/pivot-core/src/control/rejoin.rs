//! Rejoin: when a fenced former primary becomes a replica of the current
//! primary, and whether a rejoin may go ahead right now. Pure.
//!
//! Two decisions, both table-tested:
//! * [`due`]: which fenced instances the cluster machine asks the shell to
//!   rejoin (automatic rejoin on, judged able to rejoin, read-only and
//!   answering, no recovery running, the primary is the newest epoch's,
//!   not asked already, its retry backoff over);
//! * [`check`]: the shell's re-judgement at the moment of the rejoin, on
//!   what it just read from both servers and the state store (the primary
//!   may have moved on since the verdict): refuse, saying why, or the
//!   position to resume replication from.

use crate::gtid::GtidSet;
use crate::instance::InstanceKey;
use crate::time::Millis;

/// First wait after a failed rejoin; doubles up to [`RETRY_MAX_MS`].
pub const RETRY_FIRST_MS: u64 = 5_000;
pub const RETRY_MAX_MS: u64 = 300_000;

/// What the shell read just before rejoining `instance`.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    pub instance: &'a InstanceKey,
    pub writable: bool,
    pub executed: &'a GtidSet,
    pub primary: &'a InstanceKey,
    pub primary_writable: bool,
    pub primary_executed: &'a GtidSet,
    /// The newest epoch's primary in the state store.
    pub epoch_primary: Option<&'a InstanceKey>,
    /// A replication account is configured, or the instance has one set.
    pub has_replication_account: bool,
}

/// How to make it a replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub source: InstanceKey,
    /// The replication position to resume from: exactly what it holds (the
    /// set just judged to be contained in the primary's).
    pub position: GtidSet,
}

/// Re-judge a rejoin on fresh readings: the plan, or why not.
pub fn check(f: &Facts) -> Result<Plan, String> {
    let (me, p) = (f.instance, f.primary);
    if me == p {
        return Err(format!("{me} is the primary"));
    }
    match f.epoch_primary {
        None => return Err(format!("no epoch is recorded: pivot cannot tell that {p} is the current primary")),
        Some(e) if e != p => {
            return Err(format!(
                "the newest epoch's primary is {e}, not {p}: pivot rejoins only to the current primary"
            ))
        }
        Some(_) => {}
    }
    if f.writable {
        return Err(format!("{me} is writable: it must be read-only (fenced) before it rejoins"));
    }
    if !f.primary_writable {
        return Err(format!("the primary {p} is read-only: no primary to replicate from now"));
    }
    let extra = f.executed.subtract(f.primary_executed);
    if !extra.is_empty() {
        return Err(format!(
            "{me} is diverged: {extra} are not on {p}; it stays quarantined: rebuild it (or review its saved extra \
             transactions)"
        ));
    }
    if !f.has_replication_account {
        return Err(format!(
            "{me} has no replication account set and none is configured: add [cluster.replication] to the \
             configuration"
        ));
    }
    Ok(Plan { source: p.clone(), position: position_of(f.executed) })
}

/// The replication position of a GTID set: for MariaDB one GTID per domain
/// (the form `gtid_slave_pos` takes); MySQL positions by the set itself.
pub fn position_of(executed: &GtidSet) -> GtidSet {
    match executed {
        GtidSet::MariaDb(l) => GtidSet::MariaDb(l.to_position()),
        other => other.clone(),
    }
}

/// Where reading a quarantined instance's binary log for its extra
/// transactions starts: per domain of `extra`, the GTID after which they
/// follow (the primary's last one of the same server; with
/// `gtid_strict_mode` every later transaction of the domain is extra). MySQL:
/// the primary's set (the transactions to exclude).
pub fn extra_start(extra: &GtidSet, primary_executed: &GtidSet) -> GtidSet {
    let (GtidSet::MariaDb(extra), GtidSet::MariaDb(theirs)) = (extra, primary_executed) else {
        return primary_executed.clone();
    };
    let mut start = crate::gtid::MariaGtidList::new();
    for d in extra.domains().collect::<Vec<_>>() {
        let first = extra
            .iter()
            .filter(|g| g.domain == d)
            .map(|g| {
                let seq = theirs.iter().find(|t| (t.domain, t.server_id) == (d, g.server_id)).map_or(0, |t| t.seq);
                crate::gtid::MariaGtid { seq, ..g }
            })
            .min_by_key(|g| g.seq);
        if let Some(g) = first {
            start.insert(g);
        }
    }
    GtidSet::MariaDb(start)
}

/// Whether a fence entry says its instance was judged able to rejoin (a
/// `read_only` entry whose detail carries that verdict).
pub fn judged_able(status: &str, detail: &str) -> bool {
    status == "read_only" && detail.contains("it can rejoin as a replica")
}

/// One fenced instance as the cluster machine sees it.
#[derive(Clone, Debug)]
pub struct Fenced<'a> {
    pub instance: &'a InstanceKey,
    /// The fence entry judged it able to rejoin.
    pub can_rejoin: bool,
    /// It answered its last probe, read-only.
    pub answering_read_only: bool,
    /// A fence or a rejoin of it is in flight.
    pub busy: bool,
    /// No rejoin before this (the last one failed).
    pub retry_at: Option<Millis>,
}

/// The cluster around the fenced instances.
#[derive(Clone, Debug)]
pub struct Cluster<'a> {
    pub auto_rejoin: bool,
    pub primary: Option<&'a InstanceKey>,
    pub epoch_primary: Option<&'a InstanceKey>,
    /// A recovery runs (here, elsewhere, or waits to be resumed).
    pub recovering: bool,
    pub may_act: bool,
    pub now: Millis,
}

/// The fenced instances to rejoin now.
pub fn due<'a>(c: &Cluster, fenced: &[Fenced<'a>]) -> Vec<&'a InstanceKey> {
    if !c.auto_rejoin || c.recovering || !c.may_act {
        return Vec::new();
    }
    let Some(primary) = c.primary else { return Vec::new() };
    if c.epoch_primary != Some(primary) {
        return Vec::new();
    }
    fenced
        .iter()
        .filter(|f| f.instance != primary && f.can_rejoin && f.answering_read_only && !f.busy)
        .filter(|f| f.retry_at.is_none_or(|t| c.now >= t))
        .map(|f| f.instance)
        .collect()
}

/// The wait before retrying after `failures` failed rejoins in a row (at least one).
pub fn retry_wait_ms(failures: u32) -> u64 {
    let doublings = failures.saturating_sub(1).min(16);
    RETRY_FIRST_MS.saturating_mul(1 << doublings).min(RETRY_MAX_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{key, maria};

    #[test]
    fn check_table() {
        let (me, p, other) = (key("10.0.0.1:3306"), key("10.0.0.2:3306"), key("10.0.0.3:3306"));
        // (name, instance, writable, executed, primary writable, primary executed, epoch primary, account, result)
        type Case<'a> =
            (&'a str, &'a InstanceKey, bool, &'a str, bool, &'a str, Option<&'a InstanceKey>, bool, &'a str);
        let cases: Vec<Case> = vec![
            ("behind", &me, false, "0-1-90", true, "0-1-100,0-2-7", Some(&p), true, "ok 0-1-90"),
            (
                "same, two domains",
                &me,
                false,
                "0-1-100,1-1-4",
                true,
                "0-1-100,0-2-7,1-1-4",
                Some(&p),
                true,
                "ok 0-1-100,1-1-4",
            ),
            ("position per domain", &me, false, "0-3-20,0-1-100", true, "0-1-100,0-3-20", Some(&p), true, "ok 0-1-100"),
            ("is the primary", &p, false, "0-1-90", true, "0-1-100", Some(&p), true, "is the primary"),
            ("no epoch", &me, false, "0-1-90", true, "0-1-100", None, true, "no epoch"),
            (
                "older epoch's primary",
                &me,
                false,
                "0-1-90",
                true,
                "0-1-100",
                Some(&other),
                true,
                "newest epoch's primary is 10.0.0.3",
            ),
            ("writable", &me, true, "0-1-90", true, "0-1-100", Some(&p), true, "is writable"),
            ("primary read-only", &me, false, "0-1-90", false, "0-1-100", Some(&p), true, "is read-only"),
            ("diverged", &me, false, "0-1-101", true, "0-1-100,0-2-7", Some(&p), true, "diverged: 0-1-101 are not on"),
            ("errant domain", &me, false, "0-1-100,5-1-1", true, "0-1-100", Some(&p), true, "diverged: 5-1-1"),
            ("no account", &me, false, "0-1-90", true, "0-1-100", Some(&p), false, "no replication account"),
        ];
        for (name, inst, writable, mine, pw, theirs, epoch, account, want) in cases {
            let (mine, theirs) = (maria(mine), maria(theirs));
            let f = Facts {
                instance: inst,
                writable,
                executed: &mine,
                primary: &p,
                primary_writable: pw,
                primary_executed: &theirs,
                epoch_primary: epoch,
                has_replication_account: account,
            };
            let got = match check(&f) {
                Ok(plan) => {
                    assert_eq!(plan.source, p, "{name}");
                    format!("ok {}", plan.position)
                }
                Err(e) => e,
            };
            assert!(got.contains(want), "{name}: {got}");
            assert_eq!(got.starts_with("ok"), want.starts_with("ok"), "{name}: {got}");
        }
    }

    #[test]
    fn due_table() {
        let (p, a, b, other) = (key("10.0.0.2:3306"), key("10.0.0.1:3306"), key("10.0.0.5:3306"), key("10.0.0.3:3306"));
        let base = Cluster {
            auto_rejoin: true,
            primary: Some(&p),
            epoch_primary: Some(&p),
            recovering: false,
            may_act: true,
            now: Millis(10_000),
        };
        let ok = |k| Fenced { instance: k, can_rejoin: true, answering_read_only: true, busy: false, retry_at: None };
        let cases: Vec<(&str, Cluster, Fenced, bool)> = vec![
            ("ready", base.clone(), ok(&a), true),
            ("auto_rejoin off", Cluster { auto_rejoin: false, ..base.clone() }, ok(&a), false),
            ("recovery running", Cluster { recovering: true, ..base.clone() }, ok(&a), false),
            ("may not act", Cluster { may_act: false, ..base.clone() }, ok(&a), false),
            ("no primary", Cluster { primary: None, ..base.clone() }, ok(&a), false),
            ("no epoch", Cluster { epoch_primary: None, ..base.clone() }, ok(&a), false),
            ("epoch names another", Cluster { epoch_primary: Some(&other), ..base.clone() }, ok(&a), false),
            ("quarantined", base.clone(), Fenced { can_rejoin: false, ..ok(&a) }, false),
            ("not answering or writable", base.clone(), Fenced { answering_read_only: false, ..ok(&a) }, false),
            ("in flight", base.clone(), Fenced { busy: true, ..ok(&a) }, false),
            ("backing off", base.clone(), Fenced { retry_at: Some(Millis(10_001)), ..ok(&a) }, false),
            ("backoff over", base.clone(), Fenced { retry_at: Some(Millis(10_000)), ..ok(&a) }, true),
            ("the primary itself", base.clone(), ok(&p), false),
        ];
        for (name, cluster, fenced, want) in cases {
            let got = due(&cluster, &[fenced.clone(), Fenced { can_rejoin: false, ..ok(&b) }]);
            assert_eq!(got == vec![fenced.instance], want, "{name}: {got:?}");
            assert!(got.len() <= 1, "{name}");
        }
    }

    #[test]
    fn judged_able_table() {
        let can = super::super::verdict::Verdict::CanRejoin { primary: key("10.0.0.2:3306") }.describe();
        let cases = [
            ("read_only", can.as_str(), true),
            ("read_only", "made read-only in 2 ms, 0 client session(s) ended", false),
            ("quarantined", can.as_str(), false),
            ("pending", can.as_str(), false),
            ("quarantined", "diverged: 0-1-5 are not on 10.0.0.2:3306", false),
        ];
        for (status, detail, want) in cases {
            assert_eq!(judged_able(status, detail), want, "{status}: {detail}");
        }
    }

    #[test]
    fn extra_start_table() {
        let cases = [
            ("one server ahead", "0-1-103", "0-1-100,0-2-150", "0-1-100"),
            ("two domains", "0-1-103,1-1-9", "0-1-100,1-1-7,0-2-150", "0-1-100,1-1-7"),
            ("a server the primary never saw", "0-9-4", "0-1-100", "0-9-0"),
            ("the earliest of two servers", "0-1-103,0-3-120", "0-1-100,0-3-110", "0-1-100"),
            ("nothing extra", "", "0-1-100", ""),
        ];
        for (name, extra, theirs, want) in cases {
            assert_eq!(extra_start(&maria(extra), &maria(theirs)).to_string(), want, "{name}");
        }
    }

    #[test]
    fn retries_wait_longer_up_to_a_cap() {
        let waits: Vec<u64> = (1..=9).map(retry_wait_ms).collect();
        assert_eq!(waits, [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000, 300_000]);
        assert_eq!(retry_wait_ms(0), 5_000);
        assert_eq!(retry_wait_ms(u32::MAX), 300_000);
    }
}
