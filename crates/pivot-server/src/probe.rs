//! Probing one instance.

use crate::credentials::Credentials;
use crate::errors::{classify, SessionError};
use crate::greeting;
use crate::session::Session;
use pivot_core::observation::{FailureKind, ProbeFailure, ProbeOutcome};
use pivot_core::{InstanceKey, InstanceState, Millis, Observation};
use pivot_dialect::{HeartbeatTable, ProbeRows, Sql};
use std::time::{Duration, Instant};

/// Probes one instance; keeps the connection between probes so a probe costs
/// a few round trips, not a login.
pub struct Prober {
    key: InstanceKey,
    creds: Credentials,
    timeout: Duration,
    session: Option<Session>,
    /// Look into a connect that timed out before the instance ever greeted
    /// this prober: a port that accepts and stays silent, or sends half a
    /// packet, may not be a MySQL server. Costs up to [`greeting::PEEK`] more
    /// on such a probe, so the recovery's probes do not do it.
    explain_silence: bool,
    /// The instance has greeted this prober as a MySQL server once: a later
    /// silence is a hang, not a wrong port, and is not looked into.
    greeted: bool,
    probes: u64,
    /// Binlog dump threads change rarely and listing them costs a temporary
    /// table; they are re-read every [`DUMP_THREADS_EVERY`] probes.
    dump_threads: Vec<pivot_dialect::TextRow>,
    /// Read pivot's heartbeat table too (`[cluster.heartbeat]`).
    heartbeat: Option<HeartbeatProbe>,
}

/// What a prober needs to read the heartbeat table.
#[derive(Clone, Debug)]
pub struct HeartbeatProbe {
    pub table: HeartbeatTable,
    /// See `HeartbeatReading::stale_after_ms`.
    pub stale_after: Duration,
}

const DUMP_THREADS_EVERY: u64 = 10;

impl Prober {
    /// `timeout` bounds a whole probe, connect included.
    pub fn new(key: InstanceKey, creds: Credentials, timeout: Duration) -> Prober {
        Prober {
            key,
            creds,
            timeout,
            session: None,
            explain_silence: false,
            greeted: false,
            probes: 0,
            dump_threads: Vec::new(),
            heartbeat: None,
        }
    }

    /// A prober that also reads the heartbeat table (when `Some`).
    pub fn with_heartbeat(mut self, heartbeat: Option<HeartbeatProbe>) -> Prober {
        self.heartbeat = heartbeat;
        self
    }

    /// A prober that says "no MySQL greeting" rather than "no answer" when the
    /// instance has never greeted it (for `pivot status` and discovery).
    pub fn explaining_silence(mut self) -> Prober {
        self.explain_silence = true;
        self
    }

    pub fn key(&self) -> &InstanceKey {
        &self.key
    }

    /// Probe once. `at` is the caller's clock reading at the start.
    pub async fn probe(&mut self, at: Millis) -> Observation {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.read_state(at, started)).await {
            Ok(result) => result,
            // The in-flight call was abandoned.
            Err(_) => Err(SessionError::Timeout(self.timeout.as_millis() as u64)),
        };
        let outcome = match result {
            Ok(state) => ProbeOutcome::Reachable { state: Box::new(state) },
            Err(e) => {
                // No session: it was the connect that failed.
                let connecting = self.session.is_none();
                // After an error or a timeout the connection is unusable.
                self.session = None;
                let e = match e {
                    // Never greeted: is it a MySQL server at all?
                    SessionError::Timeout(_) if connecting && self.explain_silence && !self.greeted => {
                        greeting::explain(&self.key, e, Some(self.timeout)).await
                    }
                    e => e,
                };
                let failure = match e {
                    SessionError::Timeout(ms) => {
                        ProbeFailure { kind: FailureKind::Timeout, message: format!("no answer within {ms} ms") }
                    }
                    e => classify(&e),
                };
                ProbeOutcome::Unreachable { failure }
            }
        };
        Observation { instance: self.key.clone(), at, latency_us: started.elapsed().as_micros() as u64, outcome }
    }

    async fn read_state(&mut self, at: Millis, started: Instant) -> Result<InstanceState, SessionError> {
        if !self.session.as_ref().is_some_and(Session::is_usable) {
            self.session = None;
            self.session = Some(Session::connect(&self.key, &self.creds, self.timeout).await?);
            self.greeted = true;
        }
        let s = self.session.as_mut().expect("session just ensured");
        let d = s.dialect.clone();
        let variables = s.rows(&d.variables_query()).await?.into_iter().next();
        let mut rows = ProbeRows {
            variables: variables.ok_or_else(|| SessionError::Unexpected("variables query returned no row".into()))?,
            replica_status: s.rows(&d.replica_status_query()).await?,
            heartbeats: match d.heartbeat_query() {
                Some(q) => optional(s, &q).await?,
                None => Vec::new(),
            },
            semi_sync_variables: match d.semi_sync_variables_query() {
                Some(q) => s.rows(&q).await?,
                None => Vec::new(),
            },
            replica_hosts: optional(s, &d.replica_hosts_query()).await?,
            ..ProbeRows::default()
        };
        if self.probes.is_multiple_of(DUMP_THREADS_EVERY) {
            self.dump_threads = optional(s, &d.dump_threads_query()).await?;
        }
        self.probes += 1;
        rows.dump_threads = self.dump_threads.clone();
        // Semi-sync counters only matter where semi-sync is switched on.
        let without_status = rows.clone().into_state().map_err(|e| SessionError::Unexpected(e.to_string()))?;
        let mut state = if !(without_status.semi_sync.primary_enabled || without_status.semi_sync.replica_enabled) {
            without_status
        } else {
            rows.semi_sync_status = s.rows(&d.semi_sync_status_query()).await?;
            rows.into_state().map_err(|e| SessionError::Unexpected(e.to_string()))?
        };
        if let Some(hb) = &self.heartbeat {
            state.heartbeat = read_heartbeat(s, hb, at, started).await?;
        }
        Ok(state)
    }
}

/// The heartbeat table and the server's clock, paired with pivot's
/// monotonic time of the reading (`at` plus the middle of the round trip).
/// A missing table or privilege leaves the rows empty; `None` only if even
/// the clock cannot be read.
async fn read_heartbeat(
    s: &mut Session,
    hb: &HeartbeatProbe,
    at: Millis,
    started: Instant,
) -> Result<Option<pivot_core::observation::HeartbeatReading>, SessionError> {
    let d = s.dialect.clone();
    let mut sent = started.elapsed();
    let mut rows = optional(s, &d.heartbeat_read(&hb.table)).await?;
    if rows.is_empty() {
        sent = started.elapsed();
        rows = optional(s, &d.heartbeat_now_query()).await?;
    }
    if rows.is_empty() {
        return Ok(None);
    }
    let middle = (sent + started.elapsed()) / 2;
    let taken_at = at.plus(middle.as_millis() as u64);
    let stale = hb.stale_after.as_millis() as u64;
    // A heartbeat that cannot be read only means no heartbeat lag: never a
    // failed probe.
    match d.parse_heartbeat(&rows, taken_at, stale) {
        Ok(reading) => Ok(Some(reading)),
        Err(e) => {
            tracing::debug!(instance = %s.key, error = %e, "heartbeat reading unusable");
            Ok(None)
        }
    }
}

/// A query whose failure on the server side (privilege missing, table
/// disabled) only means less detail, not an unreachable instance.
async fn optional(s: &mut Session, sql: &Sql) -> Result<Vec<pivot_dialect::TextRow>, SessionError> {
    match s.rows(sql).await {
        Ok(rows) => Ok(rows),
        Err(e) if e.is_server_error() => {
            tracing::debug!(instance = %s.key, query = %sql, error = %e, "optional probe query failed");
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

/// Probe every instance once, all at once (a task each), on new connections.
/// Observations come back in the order of `keys`; `now` is read as each probe starts.
pub async fn probe_all(
    keys: &[InstanceKey],
    creds: &Credentials,
    timeout: Duration,
    now: impl Fn() -> Millis,
) -> Vec<Observation> {
    probe_all_with(keys, creds, timeout, now, false, None).await
}

/// [`probe_all`], reading the heartbeat table too (`pivot status`).
pub async fn probe_all_with_heartbeat(
    keys: &[InstanceKey],
    creds: &Credentials,
    timeout: Duration,
    now: impl Fn() -> Millis,
    heartbeat: &HeartbeatProbe,
) -> Vec<Observation> {
    probe_all_with(keys, creds, timeout, now, false, Some(heartbeat)).await
}

/// [`probe_all`], with [`Prober::explaining_silence`] if `explain_silence`.
pub(crate) async fn probe_all_with(
    keys: &[InstanceKey],
    creds: &Credentials,
    timeout: Duration,
    now: impl Fn() -> Millis,
    explain_silence: bool,
    heartbeat: Option<&HeartbeatProbe>,
) -> Vec<Observation> {
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let (key, creds, at) = (key.clone(), creds.clone(), now());
            let prober = Prober::new(key, creds, timeout).with_heartbeat(heartbeat.cloned());
            let mut prober = if explain_silence { prober.explaining_silence() } else { prober };
            tokio::spawn(async move { prober.probe(at).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("probe task panicked"));
    }
    out
}
