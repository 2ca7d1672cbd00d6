//! The latest knowledge of one cluster, folded from observations.
//!
//! [`ClusterView::apply`] is the only way knowledge changes. It is pure: the
//! caller hands in each observation (with its time) and gets back the state
//! changes worth logging.

use crate::instance::InstanceKey;
use crate::observation::{InstanceState, IoThread, Observation, ProbeFailure, ReplicationError};
use crate::time::Millis;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What pivot knows about one instance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub latest: Observation,
    /// The most recent observation in which the instance answered.
    pub last_reachable: Option<Observation>,
    pub consecutive_failures: u32,
    /// Start time of the first failed probe of the current failure streak.
    pub failing_since: Option<Millis>,
    /// When that first failed probe ended: when pivot knew.
    #[serde(default)]
    pub failure_seen_at: Option<Millis>,
    /// When something last arrived from this replica's source, as far as pivot
    /// can tell from consecutive probes.
    pub progress: Option<ReceiveProgress>,
    /// The last lag the replica reported (it reports none once its source is gone).
    pub last_known_lag_s: Option<u64>,
}

impl InstanceRecord {
    pub fn reachable(&self) -> bool {
        self.latest.state().is_some()
    }

    /// The state now if reachable, else the last state seen.
    pub fn last_state(&self) -> Option<&InstanceState> {
        self.last_reachable.as_ref().and_then(Observation::state)
    }

    pub fn current_state(&self) -> Option<&InstanceState> {
        self.latest.state()
    }
}

/// Tracks the "something arrived" token of a replica across probes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiveProgress {
    pub token: (String, u64, Option<u64>, String),
    /// The first probe that saw the current token. Something arrived at or
    /// before this time; nothing new has been seen since.
    pub changed_at: Millis,
}

/// A change worth a log line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    Unreachable { instance: InstanceKey, failure: ProbeFailure },
    Reachable { instance: InstanceKey },
    IoThread { instance: InstanceKey, from: IoThread, to: IoThread, error: Option<ReplicationError> },
    SqlThread { instance: InstanceKey, running: bool, error: Option<ReplicationError> },
    LagAbove { instance: InstanceKey, seconds: u64, threshold: u64 },
    LagBelow { instance: InstanceKey, seconds: u64, threshold: u64 },
    ReadOnly { instance: InstanceKey, read_only: bool },
    Source { instance: InstanceKey, from: Option<InstanceKey>, to: Option<InstanceKey> },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let err = |e: &Option<ReplicationError>| match e {
            Some(e) => format!(" (error {}: {})", e.number, e.message),
            None => String::new(),
        };
        match self {
            Change::Unreachable { instance, failure } => write!(f, "{instance} unreachable: {}", failure.message),
            Change::Reachable { instance } => write!(f, "{instance} reachable again"),
            Change::IoThread { instance, from, to, error } => {
                write!(f, "{instance} IO thread {from:?} -> {to:?}{}", err(error))
            }
            Change::SqlThread { instance, running, error } => {
                let what = if *running { "started" } else { "stopped" };
                write!(f, "{instance} SQL thread {what}{}", err(error))
            }
            Change::LagAbove { instance, seconds, threshold } => {
                write!(f, "{instance} lag {seconds}s is over the {threshold}s threshold")
            }
            Change::LagBelow { instance, seconds, threshold } => {
                write!(f, "{instance} lag {seconds}s is back under the {threshold}s threshold")
            }
            Change::ReadOnly { instance, read_only } => write!(f, "{instance} read_only is now {read_only}"),
            Change::Source { instance, from, to } => {
                let show = |k: &Option<InstanceKey>| k.as_ref().map_or("nothing".to_string(), |k| k.to_string());
                write!(f, "{instance} now replicates from {} (was {})", show(to), show(from))
            }
        }
    }
}

/// Everything pivot knows about one cluster's instances.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub records: BTreeMap<InstanceKey, InstanceRecord>,
    /// Instances known (seeds, discovered) but not observed yet.
    pub pending: BTreeSet<InstanceKey>,
    /// Former primaries pivot keeps read-only (the fence list): never taken
    /// for the primary while another instance can be.
    #[serde(default)]
    pub fenced: BTreeSet<InstanceKey>,
}

impl ClusterView {
    pub fn new(seeds: impl IntoIterator<Item = InstanceKey>) -> Self {
        ClusterView { records: BTreeMap::new(), pending: seeds.into_iter().collect(), fenced: BTreeSet::new() }
    }

    /// Learn of an instance (from discovery). Returns true when it is new.
    pub fn learn(&mut self, key: InstanceKey) -> bool {
        !self.records.contains_key(&key) && self.pending.insert(key)
    }

    /// Forget an instance entirely (operator removed it).
    pub fn forget(&mut self, key: &InstanceKey) {
        self.records.remove(key);
        self.pending.remove(key);
    }

    pub fn get(&self, key: &InstanceKey) -> Option<&InstanceRecord> {
        self.records.get(key)
    }

    /// Every known instance has been observed at least once.
    pub fn complete(&self) -> bool {
        self.pending.is_empty() && !self.records.is_empty()
    }

    /// Every known instance has been observed at or after `t`.
    pub fn observed_since(&self, t: Millis) -> bool {
        self.pending.is_empty() && self.records.values().all(|r| r.latest.at >= t)
    }

    pub fn keys(&self) -> impl Iterator<Item = &InstanceKey> {
        self.records.keys().chain(self.pending.iter())
    }

    /// Fold one observation in. Observations older than the one already held
    /// for the instance are ignored (returns no changes).
    pub fn apply(&mut self, obs: Observation, lag_threshold_s: u64) -> Vec<Change> {
        let key = obs.instance.clone();
        self.pending.remove(&key);
        let Some(rec) = self.records.get_mut(&key) else {
            let mut changes = Vec::new();
            if let Some(failure) = obs.failure() {
                changes.push(Change::Unreachable { instance: key.clone(), failure: failure.clone() });
            }
            let record = InstanceRecord {
                last_known_lag_s: lag_of(&obs),
                last_reachable: obs.state().map(|_| obs.clone()),
                consecutive_failures: u32::from(obs.failure().is_some()),
                failing_since: obs.failure().map(|_| obs.at),
                failure_seen_at: obs.failure().map(|_| seen_at(&obs)),
                progress: progress_after(None, &obs),
                latest: obs,
            };
            self.records.insert(key, record);
            return changes;
        };
        if obs.at < rec.latest.at {
            return Vec::new();
        }
        let changes = diff(rec, &obs, lag_threshold_s);
        rec.progress = progress_after(rec.progress.take(), &obs);
        rec.last_known_lag_s = lag_of(&obs).or(rec.last_known_lag_s);
        if obs.state().is_some() {
            rec.consecutive_failures = 0;
            rec.failing_since = None;
            rec.failure_seen_at = None;
            rec.last_reachable = Some(obs.clone());
        } else {
            rec.consecutive_failures = rec.consecutive_failures.saturating_add(1);
            rec.failing_since.get_or_insert(obs.at);
            rec.failure_seen_at.get_or_insert(seen_at(&obs));
        }
        rec.latest = obs;
        changes
    }
}

/// When a probe ended.
fn seen_at(obs: &Observation) -> Millis {
    obs.at.plus(obs.latency_us / 1000)
}

fn lag_of(obs: &Observation) -> Option<u64> {
    obs.state()?.replication.as_ref()?.seconds_behind
}

/// Progress is only updated by answers; an unreachable replica's progress stays
/// where it was (its last known reading).
fn progress_after(prev: Option<ReceiveProgress>, obs: &Observation) -> Option<ReceiveProgress> {
    let Some(state) = obs.state() else {
        return prev;
    };
    let repl = state.replication.as_ref()?;
    let token = repl.receive_token();
    match prev {
        Some(p) if p.token == token => Some(p),
        _ => Some(ReceiveProgress { token, changed_at: obs.at }),
    }
}

fn diff(rec: &InstanceRecord, obs: &Observation, lag_threshold_s: u64) -> Vec<Change> {
    let key = &obs.instance;
    let mut out = Vec::new();
    match (rec.latest.state(), obs.state(), obs.failure()) {
        (Some(_), None, Some(failure)) => {
            out.push(Change::Unreachable { instance: key.clone(), failure: failure.clone() })
        }
        (None, Some(_), _) => out.push(Change::Reachable { instance: key.clone() }),
        _ => {}
    }
    // Compare replication against the last answer, so a blip of unreachability
    // does not hide a thread that stopped meanwhile.
    let (Some(before), Some(after)) = (rec.last_state(), obs.state()) else {
        return out;
    };
    if before.read_only != after.read_only {
        out.push(Change::ReadOnly { instance: key.clone(), read_only: after.read_only });
    }
    let src = |s: &InstanceState| s.replication.as_ref().map(|r| r.source.clone());
    if src(before) != src(after) {
        out.push(Change::Source { instance: key.clone(), from: src(before), to: src(after) });
    }
    let (Some(b), Some(a)) = (&before.replication, &after.replication) else {
        return out;
    };
    if b.io_thread != a.io_thread || (a.io_error.is_some() && b.io_error != a.io_error) {
        out.push(Change::IoThread {
            instance: key.clone(),
            from: b.io_thread,
            to: a.io_thread,
            error: a.io_error.clone(),
        });
    }
    if b.sql_running != a.sql_running || (a.sql_error.is_some() && b.sql_error != a.sql_error) {
        out.push(Change::SqlThread { instance: key.clone(), running: a.sql_running, error: a.sql_error.clone() });
    }
    let over = |s: Option<u64>| s.is_some_and(|s| s > lag_threshold_s);
    match (over(b.seconds_behind), over(a.seconds_behind), a.seconds_behind) {
        (false, true, Some(seconds)) => {
            out.push(Change::LagAbove { instance: key.clone(), seconds, threshold: lag_threshold_s })
        }
        (true, false, Some(seconds)) => {
            out.push(Change::LagBelow { instance: key.clone(), seconds, threshold: lag_threshold_s })
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::*;
    use crate::observation::FailureKind;

    const P: &str = "10.0.0.1:3306";
    const R: &str = "10.0.0.2:3306";

    fn replica() -> StateBuilder {
        state(2, "0-1-5").replica_of(P, "0-1-5")
    }

    /// Each row: the observation applied after a healthy reading of R at t=10,
    /// and the changes it must produce (as text).
    #[test]
    fn changes_table() {
        let cases: Vec<(&str, Observation, Vec<&str>)> = vec![
            ("nothing changed", up(R, 100, replica()), vec![]),
            ("unreachable", down(R, 100, FailureKind::Refused), vec!["10.0.0.2:3306 unreachable: Refused"]),
            (
                "IO thread connecting",
                up(R, 100, replica().io(IoThread::Connecting).io_error(2003, "gone")),
                vec!["10.0.0.2:3306 IO thread Running -> Connecting (error 2003: gone)"],
            ),
            (
                "SQL error",
                up(R, 100, replica().sql_error(1062, "dup")),
                vec!["10.0.0.2:3306 SQL thread stopped (error 1062: dup)"],
            ),
            (
                "lag over threshold",
                up(R, 100, replica().lag(11)),
                vec!["10.0.0.2:3306 lag 11s is over the 10s threshold"],
            ),
            ("lag at threshold is fine", up(R, 100, replica().lag(10)), vec![]),
            ("made writable", up(R, 100, replica().read_only(false)), vec!["10.0.0.2:3306 read_only is now false"]),
            (
                "repointed",
                up(R, 100, state(2, "0-1-5").replica_of("10.0.0.3:3306", "0-1-5")),
                vec!["10.0.0.2:3306 now replicates from 10.0.0.3:3306 (was 10.0.0.1:3306)"],
            ),
            ("older observation ignored", down(R, 0, FailureKind::Refused), vec![]),
        ];
        for (name, obs, want) in cases {
            let mut view = ClusterView::new([key(R)]);
            assert!(view.apply(up(R, 10, replica()), 10).is_empty());
            let got: Vec<String> = view.apply(obs, 10).iter().map(ToString::to_string).collect();
            assert_eq!(got.iter().map(|s| s.split(" (fixture)").next().unwrap()).collect::<Vec<_>>(), want, "{name}");
        }
    }

    #[test]
    fn back_after_failures_resets_the_streak_and_compares_with_last_answer() {
        let mut view = ClusterView::new([key(R)]);
        view.apply(up(R, 0, replica()), 10);
        view.apply(down(R, 100, FailureKind::Timeout), 10);
        view.apply(down(R, 200, FailureKind::Timeout), 10);
        let rec = view.get(&key(R)).unwrap();
        assert_eq!((rec.consecutive_failures, rec.failing_since), (2, Some(Millis(100))));
        assert!(rec.last_state().is_some() && rec.current_state().is_none());
        // Back, with the SQL thread stopped meanwhile: both changes are reported.
        let changes = view.apply(up(R, 300, replica().sql_stopped()), 10);
        let text: Vec<String> = changes.iter().map(ToString::to_string).collect();
        assert_eq!(text, vec!["10.0.0.2:3306 reachable again", "10.0.0.2:3306 SQL thread stopped"]);
        let rec = view.get(&key(R)).unwrap();
        assert_eq!((rec.consecutive_failures, rec.failing_since), (0, None));
    }

    #[test]
    fn progress_moves_only_when_something_arrives() {
        let mut view = ClusterView::new([key(R)]);
        view.apply(up(R, 0, replica().heartbeats(1)), 10);
        view.apply(up(R, 250, replica().heartbeats(1)), 10);
        assert_eq!(view.get(&key(R)).unwrap().progress.as_ref().unwrap().changed_at, Millis(0));
        view.apply(up(R, 500, replica().heartbeats(2)), 10);
        assert_eq!(view.get(&key(R)).unwrap().progress.as_ref().unwrap().changed_at, Millis(500));
        view.apply(down(R, 750, FailureKind::Timeout), 10);
        assert_eq!(
            view.get(&key(R)).unwrap().progress.as_ref().unwrap().changed_at,
            Millis(500),
            "kept while unreachable"
        );
    }
}
