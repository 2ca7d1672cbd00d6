//! Could a diverged former primary's extra transactions have been
//! acknowledged to a client? Pure: what pivot saw of it while it was the
//! primary, and what the surviving replicas hold, in; a verdict out.
//!
//! With semi-sync and wait point `AFTER_SYNC`, a commit is acknowledged to
//! its client only after a replica confirmed receiving it, unless the primary
//! fell back to asynchronous replication. A fall-back needs a commit to wait
//! `rpl_semi_sync_master_timeout` (or, without `wait_no_slave`, no replica
//! connected at all). So a transaction no surviving replica received was
//! never acknowledged when, at pivot's last look at the primary, semi-sync
//! was on and active with `AFTER_SYNC` and `wait_no_slave`, and the primary
//! was certainly gone (connection refused) before any commit could have
//! waited out the timeout: every commit waiting then started after the last
//! look at which none waited ([`SemiSyncSeen::idle_at`]).

use crate::gtid::GtidSet;
use crate::instance::InstanceKey;
use crate::observation::SemiSyncState;
use crate::time::Millis;

/// What pivot saw of one primary's semi-sync, kept while it is the primary
/// and after it died.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SemiSyncSeen {
    /// The last observation of it as the primary: when, and its semi-sync.
    pub last: Option<(Millis, SemiSyncState)>,
    /// The last observation as the primary at which semi-sync was active
    /// and no commit waited for an acknowledgement.
    pub idle_at: Option<Millis>,
    /// The first observation after `last` that found nothing listening
    /// (connection refused: the process was gone).
    pub gone_at: Option<Millis>,
}

/// The part of one observation [`SemiSyncSeen`] folds in, taken before the
/// observation moves into the view.
#[derive(Clone, Debug)]
pub struct SemiSyncReading {
    pub at: Millis,
    pub state: Option<SemiSyncState>,
    /// The probe found nothing listening (connection refused).
    pub refused: bool,
}

impl SemiSyncReading {
    pub fn of(obs: &crate::observation::Observation) -> SemiSyncReading {
        SemiSyncReading {
            at: obs.at,
            state: obs.state().map(|s| s.semi_sync.clone()),
            refused: obs.failure().is_some_and(|f| f.kind == crate::observation::FailureKind::Refused),
        }
    }
}

impl SemiSyncSeen {
    /// Fold in one observation of the instance while it is the primary
    /// (`state`), or a failed one (`refused`: nothing listened).
    pub fn observed(&mut self, at: Millis, state: Option<&SemiSyncState>, refused: bool) {
        match state {
            Some(s) => {
                if s.primary_active && s.primary_waiting_sessions == 0 {
                    self.idle_at = Some(at);
                }
                self.last = Some((at, s.clone()));
                self.gone_at = None;
            }
            None if refused && self.last.is_some() && self.gone_at.is_none() => self.gone_at = Some(at),
            None => {}
        }
    }

    /// Why a commit might have been acknowledged without a replica
    /// receiving it; `None` when that was impossible.
    pub fn fallback_possible(&self) -> Option<String> {
        let Some((_, s)) = &self.last else {
            return Some("pivot never observed its semi-sync settings while it was the primary".into());
        };
        if !s.primary_enabled || !s.primary_active {
            return Some("it did not run semi-sync (or had fallen back to asynchronous) when last seen".into());
        }
        let point = s.primary_wait_point.as_deref().unwrap_or("unknown");
        if !point.eq_ignore_ascii_case("AFTER_SYNC") {
            return Some(format!("its semi-sync wait point was {point}, not AFTER_SYNC"));
        }
        if s.primary_wait_no_replica != Some(true) {
            return Some(
                "semi-sync falls back to asynchronous when no replica is connected (wait_no_slave off)".into(),
            );
        }
        let Some(idle) = self.idle_at else {
            return Some("pivot never saw it with no commit waiting for a replica".into());
        };
        let Some(gone) = self.gone_at else {
            return Some("pivot cannot tell when it stopped (it was not seen refusing connections)".into());
        };
        let timeout = s.primary_timeout_ms.unwrap_or(0);
        if gone.since(idle) >= timeout {
            return Some(format!(
                "a commit could have waited out the semi-sync timeout ({timeout} ms) before it stopped ({} ms)",
                gone.since(idle)
            ));
        }
        None
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acknowledged {
    /// No client ever got an OK for any of them.
    Never,
    /// Some may have been acknowledged: why.
    Maybe(String),
}

impl Acknowledged {
    pub fn describe(&self) -> String {
        match self {
            Acknowledged::Never => {
                "none of these could have been acknowledged to a client (semi-sync AFTER_SYNC, no replica received \
                 them)"
                    .into()
            }
            Acknowledged::Maybe(why) => format!("some may have been acknowledged: {why}"),
        }
    }
}

/// Whether `extra` (what the former primary holds beyond `primary_executed`)
/// could have been acknowledged, given what pivot saw of its semi-sync and
/// what each surviving replica holds (executed and received).
pub fn acknowledged(
    extra: &GtidSet,
    primary_executed: &GtidSet,
    seen: Option<&SemiSyncSeen>,
    replicas: &[(InstanceKey, GtidSet)],
) -> Acknowledged {
    let received: Vec<String> = replicas
        .iter()
        .filter(|(_, holds)| shares(extra, &holds.subtract(primary_executed)))
        .map(|(k, _)| k.to_string())
        .collect();
    if !received.is_empty() {
        return Acknowledged::Maybe(format!("replica(s) {} received some of them", received.join(", ")));
    }
    match seen.map_or_else(|| Some("pivot never observed it as the primary".into()), SemiSyncSeen::fallback_possible) {
        Some(why) => Acknowledged::Maybe(why),
        None => Acknowledged::Never,
    }
}

/// Whether two sets of transactions beyond one common primary have a
/// transaction in common. MariaDB lists keep the last sequence number per
/// (domain, server): two such remainders share one when they name the same
/// (domain, server) (both hold the first transaction after the primary's).
/// MySQL sets intersect.
fn shares(a: &GtidSet, b: &GtidSet) -> bool {
    match (a, b) {
        (GtidSet::MariaDb(x), GtidSet::MariaDb(y)) => {
            x.iter().any(|g| y.iter().any(|h| (g.domain, g.server_id) == (h.domain, h.server_id)))
        }
        (GtidSet::MySql(_), GtidSet::MySql(_)) => !a.subtract(&a.subtract(b)).is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{key, maria};

    fn semi(active: bool, point: &str, no_replica: bool, timeout: u64) -> SemiSyncState {
        SemiSyncState {
            available: true,
            primary_enabled: true,
            primary_active: active,
            primary_clients: 2,
            primary_timeout_ms: Some(timeout),
            primary_wait_point: Some(point.into()),
            primary_wait_no_replica: Some(no_replica),
            ..SemiSyncState::default()
        }
    }

    fn seen(s: SemiSyncState, idle: Option<u64>, gone: Option<u64>) -> SemiSyncSeen {
        SemiSyncSeen { last: Some((Millis(1_000), s)), idle_at: idle.map(Millis), gone_at: gone.map(Millis) }
    }

    #[test]
    fn acknowledged_table() {
        let strict = semi(true, "AFTER_SYNC", true, 10_000);
        type Case<'a> = (&'a str, Option<SemiSyncSeen>, Vec<(&'a str, &'a str)>, &'a str);
        let cases: Vec<Case> = vec![
            (
                "semi-sync after_sync, nobody received",
                Some(seen(strict.clone(), Some(900), Some(1_500))),
                vec![],
                "none of these",
            ),
            (
                "a replica received one",
                Some(seen(strict.clone(), Some(900), Some(1_500))),
                vec![("10.0.0.3:3306", "0-1-101,0-2-5")],
                "replica(s) 10.0.0.3:3306 received",
            ),
            (
                "a replica holds only the primary's",
                Some(seen(strict.clone(), Some(900), Some(1_500))),
                vec![("10.0.0.3:3306", "0-1-100,0-2-5")],
                "none of these",
            ),
            ("never seen", None, vec![], "never observed it"),
            ("no settings seen", Some(SemiSyncSeen::default()), vec![], "never observed its semi-sync"),
            (
                "fallen back",
                Some(seen(semi(false, "AFTER_SYNC", true, 10_000), Some(900), Some(1_500))),
                vec![],
                "fallen back",
            ),
            (
                "after_commit",
                Some(seen(semi(true, "AFTER_COMMIT", true, 10_000), Some(900), Some(1_500))),
                vec![],
                "AFTER_COMMIT",
            ),
            (
                "no wait without replicas",
                Some(seen(semi(true, "AFTER_SYNC", false, 10_000), Some(900), Some(1_500))),
                vec![],
                "wait_no_slave",
            ),
            ("not seen refusing", Some(seen(strict.clone(), Some(900), None)), vec![], "cannot tell when"),
            ("never idle", Some(seen(strict.clone(), None, Some(1_500))), vec![], "no commit waiting"),
            ("timeout could pass", Some(seen(strict.clone(), Some(900), Some(10_900))), vec![], "waited out"),
            ("timeout just not passed", Some(seen(strict.clone(), Some(900), Some(10_899))), vec![], "none of these"),
        ];
        let primary = maria("0-1-100,0-2-5");
        let extra = maria("0-1-101");
        for (name, seen, replicas, words) in cases {
            let replicas: Vec<(InstanceKey, GtidSet)> = replicas.into_iter().map(|(k, s)| (key(k), maria(s))).collect();
            let v = acknowledged(&extra, &primary, seen.as_ref(), &replicas);
            assert!(v.describe().contains(words), "{name}: {}", v.describe());
            assert_eq!(v == Acknowledged::Never, words == "none of these", "{name}");
        }
    }

    #[test]
    fn observations_fold_into_what_was_seen() {
        let mut s = SemiSyncSeen::default();
        s.observed(Millis(10), None, true);
        assert_eq!(s.gone_at, None, "refused before ever seen says nothing");
        let mut waiting = semi(true, "AFTER_SYNC", true, 1_000);
        s.observed(Millis(100), Some(&waiting), false);
        assert_eq!(s.idle_at, Some(Millis(100)));
        waiting.primary_waiting_sessions = 1;
        s.observed(Millis(200), Some(&waiting), false);
        assert_eq!((s.idle_at, s.last.as_ref().map(|l| l.0)), (Some(Millis(100)), Some(Millis(200))));
        s.observed(Millis(300), None, false);
        assert_eq!(s.gone_at, None, "a timeout is not a certain death");
        s.observed(Millis(400), None, true);
        s.observed(Millis(500), None, true);
        assert_eq!(s.gone_at, Some(Millis(400)), "the first refusal counts");
        let inactive = semi(false, "AFTER_SYNC", true, 1_000);
        s.observed(Millis(600), Some(&inactive), false);
        assert_eq!((s.idle_at, s.gone_at), (Some(Millis(100)), None), "inactive is not idle; back alive clears gone");
    }

    #[test]
    fn mysql_sets_intersect() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let p = GtidSet::parse(crate::version::Flavor::MySql, &format!("{u}:1-10")).unwrap();
        let extra = GtidSet::parse(crate::version::Flavor::MySql, &format!("{u}:11-12")).unwrap();
        let r = GtidSet::parse(crate::version::Flavor::MySql, &format!("{u}:1-11")).unwrap();
        let none = GtidSet::parse(crate::version::Flavor::MySql, &format!("{u}:1-10")).unwrap();
        let strict = seen(semi(true, "AFTER_SYNC", true, 10_000), Some(900), Some(1_500));
        assert!(matches!(
            acknowledged(&extra, &p, Some(&strict), &[(key("10.0.0.3:3306"), r)]),
            Acknowledged::Maybe(_)
        ));
        assert_eq!(acknowledged(&extra, &p, Some(&strict), &[(key("10.0.0.3:3306"), none)]), Acknowledged::Never);
    }
}
