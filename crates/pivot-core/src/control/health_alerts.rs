//! Replication-health alerts: per instance and kind (IO thread, SQL thread,
//! lag, reachability), a transition of the instance's health becomes an
//! alert with a structured body; its way back becomes a resolved alert.
//!
//! Pure: the caller hands in each reading with the time. Rules:
//! - at most one alert per (instance, kind) per `interval`; a problem held
//!   back is sent once the interval has passed (on a later reading or tick)
//!   if the problem is still there, carrying how many transitions were not
//!   announced meanwhile;
//! - a resolve always goes out, at once, when its problem alert went out;
//!   a problem nobody was told of resolves silently (counted);
//! - while a recovery runs and for [`QUIET_AFTER_RECOVERY_MS`] after, and
//!   for a replica's IO thread while its source is unreachable (the source's
//!   own alert and the failover say it), problems are held back, not sent:
//!   replicas repointed by a failover raise nothing unless still broken
//!   once things have settled;
//! - an IO thread `connecting` (retrying its source) is alerted only once
//!   it has been so for [`IO_CONNECTING_GRACE_MS`]: a network blip heals by
//!   itself, and when the source died its replicas usually notice before
//!   pivot's probes do (the source's alert and the failover say it);
//! - memory: one entry per kind of each instance the caller still knows
//!   ([`HealthAlerts::retain`]).

use crate::instance::InstanceKey;
use crate::observation::{IoThread, Observation, ReplicationError};
use crate::time::Millis;
use serde::Serialize;
use std::collections::BTreeMap;

/// Problems are held back this long after a recovery ends: replicas are
/// repointed and their threads restart meanwhile.
pub const QUIET_AFTER_RECOVERY_MS: u64 = 10_000;
/// An IO thread retrying its source is a problem once it has been for this long.
pub const IO_CONNECTING_GRACE_MS: u64 = 5_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthKind {
    Io,
    Sql,
    Lag,
    Reachability,
}

impl HealthKind {
    pub const ALL: [HealthKind; 4] = [HealthKind::Io, HealthKind::Sql, HealthKind::Lag, HealthKind::Reachability];

    pub fn as_str(self) -> &'static str {
        match self {
            HealthKind::Io => "io",
            HealthKind::Sql => "sql",
            HealthKind::Lag => "lag",
            HealthKind::Reachability => "reachability",
        }
    }
}

/// One kind of an instance's health at one reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    /// `running`, `connecting`, `stopped`, `error`, `ok`, `over`,
    /// `reachable`, `unreachable`.
    pub state: &'static str,
    pub bad: bool,
    pub error: Option<ReplicationError>,
    pub lag_s: Option<u64>,
    /// Why an instance is unreachable (the probe's failure).
    pub message: Option<String>,
}

impl Reading {
    fn ok(state: &'static str) -> Reading {
        Reading { state, bad: false, error: None, lag_s: None, message: None }
    }

    /// Same problem (or same health): no transition.
    fn same(&self, other: &Reading) -> bool {
        self.state == other.state && self.error.as_ref().map(|e| e.number) == other.error.as_ref().map(|e| e.number)
    }
}

/// An alert about one instance's replication health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthAlert {
    pub cluster: String,
    pub instance: InstanceKey,
    pub kind: HealthKind,
    /// The instance is healthy again in this kind.
    pub resolved: bool,
    pub from: String,
    pub to: String,
    pub error: Option<ReplicationError>,
    pub lag_s: Option<u64>,
    pub threshold_s: Option<u64>,
    pub message: Option<String>,
    /// Transitions of this instance and kind not announced since the last alert.
    pub suppressed: u32,
    /// Monotonic time of the transition's announcement (the shell adds wall time).
    #[serde(skip)]
    pub at: Millis,
}

impl HealthAlert {
    /// One line: `sandbox 127.0.0.1:3307 sql: running -> error (error 1062: ...)`.
    pub fn line(&self) -> String {
        let what = if self.resolved { "RESOLVED" } else { "PROBLEM" };
        let mut s = format!("{what} {} {}: {} -> {}", self.instance, self.kind.as_str(), self.from, self.to);
        if let Some(e) = &self.error {
            s.push_str(&format!(" (error {}: {})", e.number, e.message));
        }
        if let (Some(l), Some(t)) = (self.lag_s, self.threshold_s) {
            s.push_str(&format!(" (lag {l}s, threshold {t}s)"));
        }
        if let Some(m) = &self.message {
            s.push_str(&format!(" ({m})"));
        }
        if self.suppressed > 0 {
            s.push_str(&format!(" [{} earlier transitions not announced]", self.suppressed));
        }
        s
    }
}

/// What the health of `obs`'s instance is, per kind; a kind that cannot be
/// told (unreachable: its threads) is absent.
/// `lag_s` is the replica's lag as pivot judges it (the heartbeat's when
/// measured, else `Seconds_Behind_Master`).
pub fn readings(obs: &Observation, lag_s: Option<u64>, lag_threshold_s: u64) -> Vec<(HealthKind, Reading)> {
    let Some(state) = obs.state() else {
        let message = obs.failure().map(|f| f.message.clone());
        return vec![(HealthKind::Reachability, Reading { message, ..Reading::ok("unreachable") }.bad())];
    };
    let mut out = vec![(HealthKind::Reachability, Reading::ok("reachable"))];
    let Some(r) = &state.replication else {
        // Not a replica (a primary, or replication reset): nothing to watch.
        out.extend([HealthKind::Io, HealthKind::Sql, HealthKind::Lag].map(|k| (k, Reading::ok("none"))));
        return out;
    };
    let io = match r.io_thread {
        IoThread::Running => Reading::ok("running"),
        IoThread::Connecting => Reading { error: r.io_error.clone(), ..Reading::ok("connecting") }.bad(),
        IoThread::Stopped => Reading { error: r.io_error.clone(), ..Reading::ok("stopped") }.bad(),
    };
    let sql = match (r.sql_running, &r.sql_error) {
        (_, Some(e)) => Reading { error: Some(e.clone()), ..Reading::ok("error") }.bad(),
        (false, None) => Reading::ok("stopped").bad(),
        (true, None) => Reading::ok("running"),
    };
    let lag = match lag_s {
        Some(s) if s > lag_threshold_s => Reading { lag_s: Some(s), ..Reading::ok("over") }.bad(),
        s => Reading { lag_s: s, ..Reading::ok("ok") },
    };
    out.extend([(HealthKind::Io, io), (HealthKind::Sql, sql), (HealthKind::Lag, lag)]);
    out
}

impl Reading {
    fn bad(self) -> Reading {
        Reading { bad: true, ..self }
    }
}

#[derive(Clone, Debug, Default)]
struct KindState {
    current: Option<Reading>,
    /// The last alert sent was a problem (not resolved yet).
    announced: Option<Reading>,
    last_sent: Option<Millis>,
    /// The current problem is not announced yet.
    pending: bool,
    /// When the current reading's state began.
    since: Millis,
    suppressed: u32,
}

/// The alerter of one cluster. See the module documentation.
#[derive(Clone, Debug)]
pub struct HealthAlerts {
    cluster: String,
    interval_ms: u64,
    lag_threshold_s: u64,
    states: BTreeMap<(InstanceKey, HealthKind), KindState>,
    recovering: bool,
    recovery_ended: Option<Millis>,
}

impl HealthAlerts {
    pub fn new(cluster: String, interval_ms: u64, lag_threshold_s: u64) -> HealthAlerts {
        HealthAlerts {
            cluster,
            interval_ms,
            lag_threshold_s,
            states: BTreeMap::new(),
            recovering: false,
            recovery_ended: None,
        }
    }

    /// Whether a recovery runs (here or elsewhere); its end starts the quiet time.
    pub fn set_recovering(&mut self, recovering: bool, now: Millis) {
        if self.recovering && !recovering {
            self.recovery_ended = Some(now);
        }
        self.recovering = recovering;
    }

    fn quiet(&self, now: Millis) -> bool {
        self.recovering || self.recovery_ended.is_some_and(|t| now.since(t) < QUIET_AFTER_RECOVERY_MS)
    }

    /// Fold one instance's readings in. `source_down`: its replication
    /// source is unreachable (IO thread problems are held back).
    pub fn observe(
        &mut self,
        instance: &InstanceKey,
        readings: Vec<(HealthKind, Reading)>,
        source_down: bool,
        now: Millis,
    ) -> Vec<HealthAlert> {
        let quiet = self.quiet(now);
        let mut out = Vec::new();
        for (kind, reading) in readings {
            let hold = quiet || (kind == HealthKind::Io && source_down);
            let st = self.states.entry((instance.clone(), kind)).or_default();
            let Some(prev) = st.current.clone() else {
                // First reading: only a problem is news.
                st.current = Some(reading.clone());
                st.since = now;
                if reading.bad {
                    st.pending = true;
                    out.extend(try_send(
                        st,
                        &self.cluster,
                        instance,
                        kind,
                        None,
                        hold,
                        self.interval_ms,
                        self.lag_threshold_s,
                        now,
                    ));
                }
                continue;
            };
            if prev.same(&reading) {
                st.current = Some(reading); // lag figures move within a state
                continue;
            }
            if st.pending {
                // The problem held back is replaced before anyone heard of it.
                st.suppressed += 1;
                st.pending = false;
            }
            st.current = Some(reading.clone());
            st.since = now;
            if reading.bad {
                st.pending = true;
                let t = self.lag_threshold_s;
                out.extend(try_send(st, &self.cluster, instance, kind, Some(&prev), hold, self.interval_ms, t, now));
            } else if let Some(problem) = st.announced.take() {
                // A resolve always goes out when its problem did.
                let suppressed = std::mem::take(&mut st.suppressed);
                st.last_sent = Some(now);
                out.push(alert(
                    &self.cluster,
                    instance,
                    kind,
                    &problem,
                    &reading,
                    true,
                    suppressed,
                    self.lag_threshold_s,
                    now,
                ));
            } else {
                st.suppressed += 1;
            }
        }
        out
    }

    /// The timer: problems held back whose interval has passed (and no
    /// longer held by a recovery) go out now. `source_down(instance)`: as
    /// in [`HealthAlerts::observe`].
    pub fn tick(&mut self, now: Millis, source_down: impl Fn(&InstanceKey) -> bool) -> Vec<HealthAlert> {
        let quiet = self.quiet(now);
        let mut out = Vec::new();
        for ((instance, kind), st) in self.states.iter_mut() {
            if !st.pending {
                continue;
            }
            let hold = quiet || (*kind == HealthKind::Io && source_down(instance));
            let prev = st.announced.clone();
            let t = self.lag_threshold_s;
            out.extend(try_send(st, &self.cluster, instance, *kind, prev.as_ref(), hold, self.interval_ms, t, now));
        }
        out
    }

    /// Forget instances no longer known (bounded memory).
    pub fn retain(&mut self, known: impl Fn(&InstanceKey) -> bool) {
        self.states.retain(|(k, _), _| known(k));
    }

    /// Entries held (for tests of the bound).
    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

#[allow(clippy::too_many_arguments)]
fn try_send(
    st: &mut KindState,
    cluster: &str,
    instance: &InstanceKey,
    kind: HealthKind,
    prev: Option<&Reading>,
    hold: bool,
    interval_ms: u64,
    threshold_s: u64,
    now: Millis,
) -> Option<HealthAlert> {
    let current = st.current.clone()?;
    let settling =
        kind == HealthKind::Io && current.state == "connecting" && now.since(st.since) < IO_CONNECTING_GRACE_MS;
    let due = !settling && st.last_sent.is_none_or(|t| now.since(t) >= interval_ms);
    if hold || !due || !st.pending || st.announced.as_ref().is_some_and(|a| a.same(&current)) {
        if st.announced.as_ref().is_some_and(|a| a.same(&current)) {
            st.pending = false; // back to the problem already announced
        }
        return None;
    }
    let from = st.announced.clone().or_else(|| prev.cloned()).unwrap_or_else(|| healthy_of(kind));
    let suppressed = std::mem::take(&mut st.suppressed);
    st.pending = false;
    st.last_sent = Some(now);
    st.announced = Some(current.clone());
    Some(alert(cluster, instance, kind, &from, &current, false, suppressed, threshold_s, now))
}

fn healthy_of(kind: HealthKind) -> Reading {
    Reading::ok(match kind {
        HealthKind::Io | HealthKind::Sql => "running",
        HealthKind::Lag => "ok",
        HealthKind::Reachability => "reachable",
    })
}

#[allow(clippy::too_many_arguments)]
fn alert(
    cluster: &str,
    instance: &InstanceKey,
    kind: HealthKind,
    from: &Reading,
    to: &Reading,
    resolved: bool,
    suppressed: u32,
    threshold_s: u64,
    now: Millis,
) -> HealthAlert {
    // A problem names its error; a resolve names the problem it ends.
    let about = if resolved { from } else { to };
    HealthAlert {
        cluster: cluster.to_string(),
        instance: instance.clone(),
        kind,
        resolved,
        from: from.state.to_string(),
        to: to.state.to_string(),
        error: about.error.clone(),
        lag_s: if kind == HealthKind::Lag { to.lag_s } else { None },
        threshold_s: (kind == HealthKind::Lag).then_some(threshold_s),
        message: if kind == HealthKind::Reachability { about.message.clone() } else { None },
        suppressed,
        at: now,
    }
}
