//! The heartbeat write on the primary (`[cluster.heartbeat]`), on a
//! connection of its own: a write that waits (semi-sync without a replica,
//! a lock) never holds up a probe, and is abandoned after its timeout.
//!
//! Whom to write to is decided elsewhere (`pivot_core::heartbeat::write_target`):
//! this only performs one write, creating the schema and table on first use.

use crate::credentials::Credentials;
use crate::errors::SessionError;
use crate::session::Session;
use pivot_core::InstanceKey;
use pivot_dialect::HeartbeatTable;
use std::time::Duration;

/// Server errors that mean pivot's account lacks the heartbeat grant.
const DENIED: [u16; 4] = [1044, 1142, 1143, 1227];
/// Unknown database, unknown table: first use.
const MISSING: [u16; 2] = [1049, 1146];

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatWriteError {
    /// The account may not create or write the table: the grant to give.
    #[error("pivot's account lacks the heartbeat grant ({error}); give it: {grant}")]
    MissingGrant { grant: String, error: String },
    #[error("no heartbeat written within {0} ms (abandoned)")]
    Timeout(u64),
    #[error("the instance is read-only: no heartbeat written")]
    ReadOnly,
    /// `binlog_format = STATEMENT`: the write would be logged even when it
    /// changes nothing, and keyed by each replica's own server_id.
    #[error("binlog_format is STATEMENT: the heartbeat needs ROW or MIXED (no heartbeat written)")]
    StatementFormat,
    #[error("{0}")]
    Other(String),
}

/// Writes the heartbeat; keeps its connection between writes.
pub struct HeartbeatWriter {
    creds: Credentials,
    timeout: Duration,
    table: HeartbeatTable,
    session: Option<Session>,
}

impl HeartbeatWriter {
    /// `timeout` bounds one whole write, connect and first-use creation included.
    pub fn new(creds: Credentials, timeout: Duration, table: HeartbeatTable) -> HeartbeatWriter {
        HeartbeatWriter { creds, timeout, table, session: None }
    }

    /// Write one heartbeat on `key`. A timeout abandons the connection (it
    /// is closed in the background); the next write connects again.
    pub async fn write(&mut self, key: &InstanceKey) -> Result<(), HeartbeatWriteError> {
        if self.session.as_ref().is_some_and(|s| s.key != *key || !s.is_usable()) {
            self.session = None;
        }
        let result = match tokio::time::timeout(self.timeout, self.write_once(key)).await {
            Ok(r) => r,
            Err(_) => Err(HeartbeatWriteError::Timeout(self.timeout.as_millis() as u64)),
        };
        if matches!(result, Err(HeartbeatWriteError::Timeout(_) | HeartbeatWriteError::Other(_))) {
            self.session = None;
        }
        result
    }

    async fn write_once(&mut self, key: &InstanceKey) -> Result<(), HeartbeatWriteError> {
        let table = self.table.clone();
        let user = self.creds.user.clone();
        if self.session.is_none() {
            let mut s = Session::connect(key, &self.creds, self.timeout).await.map_err(|e| self.fail(e))?;
            let d = s.dialect.clone();
            let format = s.rows(&d.heartbeat_binlog_format_query()).await.map_err(|e| classify(e, &table, &user))?;
            let format = format.first().and_then(|r| r.get("binlog_format").cloned().flatten()).unwrap_or_default();
            if format.eq_ignore_ascii_case("STATEMENT") {
                return Err(HeartbeatWriteError::StatementFormat);
            }
            self.session = Some(s);
        }
        let s = self.session.as_mut().expect("session just ensured");
        let d = s.dialect.clone();
        match s.exec(&d.heartbeat_write(&table)).await {
            Ok(()) => return Ok(()),
            Err(e) if e.server_code().is_some_and(|c| MISSING.contains(&c)) => {}
            Err(e) => return Err(classify(e, &table, &user)),
        }
        // First use. DDL is not held back by `read_only` for an account that
        // may bypass it: check first, so a demoted primary gains nothing.
        let ro = s.rows(&d.heartbeat_read_only_query()).await.map_err(|e| classify(e, &table, &user))?;
        if ro.first().and_then(|r| r.get("read_only").cloned().flatten()).as_deref() != Some("0") {
            return Err(HeartbeatWriteError::ReadOnly);
        }
        tracing::info!(instance = %key, schema = table.schema(), "creating pivot's heartbeat table (first use)");
        for sql in [d.heartbeat_create_schema(&table), d.heartbeat_create_table(&table), d.heartbeat_write(&table)] {
            s.exec(&sql).await.map_err(|e| classify(e, &table, &user))?;
        }
        Ok(())
    }

    fn fail(&self, e: SessionError) -> HeartbeatWriteError {
        classify(e, &self.table, &self.creds.user)
    }
}

fn classify(e: SessionError, table: &HeartbeatTable, user: &str) -> HeartbeatWriteError {
    match e {
        SessionError::Timeout(ms) => HeartbeatWriteError::Timeout(ms),
        e if e.server_code().is_some_and(|c| DENIED.contains(&c)) => {
            HeartbeatWriteError::MissingGrant { grant: table.grant(user), error: e.to_string() }
        }
        // ER_OPTION_PREVENTS_STATEMENT: read-only.
        e if e.server_code() == Some(1290) => HeartbeatWriteError::ReadOnly,
        e => HeartbeatWriteError::Other(e.to_string()),
    }
}
