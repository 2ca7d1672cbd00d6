//! Probing one instance.

use crate::credentials::Credentials;
use crate::errors::{classify, SessionError};
use crate::session::Session;
use pivot_core::observation::{FailureKind, ProbeFailure, ProbeOutcome};
use pivot_core::{InstanceKey, InstanceState, Millis, Observation};
use pivot_dialect::{ProbeRows, Sql};
use std::time::{Duration, Instant};

/// Probes one instance; keeps the connection between probes so a probe costs
/// a few round trips, not a login.
pub struct Prober {
    key: InstanceKey,
    creds: Credentials,
    timeout: Duration,
    session: Option<Session>,
    probes: u64,
    /// Binlog dump threads change rarely and listing them costs a temporary
    /// table; they are re-read every [`DUMP_THREADS_EVERY`] probes.
    dump_threads: Vec<pivot_dialect::TextRow>,
}

const DUMP_THREADS_EVERY: u64 = 10;

impl Prober {
    /// `timeout` bounds a whole probe, connect included.
    pub fn new(key: InstanceKey, creds: Credentials, timeout: Duration) -> Prober {
        Prober { key, creds, timeout, session: None, probes: 0, dump_threads: Vec::new() }
    }

    pub fn key(&self) -> &InstanceKey {
        &self.key
    }

    /// Probe once. `at` is the caller's clock reading at the start.
    pub async fn probe(&mut self, at: Millis) -> Observation {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(self.timeout, self.read_state()).await {
            Ok(Ok(state)) => ProbeOutcome::Reachable { state: Box::new(state) },
            Ok(Err(e)) => {
                self.session = None;
                ProbeOutcome::Unreachable { failure: classify(&e) }
            }
            Err(_) => {
                // The in-flight query was abandoned: the connection is unusable.
                self.session = None;
                let message = format!("no answer within {} ms", self.timeout.as_millis());
                ProbeOutcome::Unreachable { failure: ProbeFailure { kind: FailureKind::Timeout, message } }
            }
        };
        Observation { instance: self.key.clone(), at, latency_us: started.elapsed().as_micros() as u64, outcome }
    }

    async fn read_state(&mut self) -> Result<InstanceState, SessionError> {
        if !self.session.as_ref().is_some_and(Session::is_usable) {
            self.session = Some(Session::connect(&self.key, &self.creds, self.timeout).await?);
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
        if !(without_status.semi_sync.primary_enabled || without_status.semi_sync.replica_enabled) {
            return Ok(without_status);
        }
        rows.semi_sync_status = s.rows(&d.semi_sync_status_query()).await?;
        rows.into_state().map_err(|e| SessionError::Unexpected(e.to_string()))
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
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let (key, creds, at) = (key.clone(), creds.clone(), now());
            tokio::spawn(async move { Prober::new(key, creds, timeout).probe(at).await })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.expect("probe task panicked"));
    }
    out
}
