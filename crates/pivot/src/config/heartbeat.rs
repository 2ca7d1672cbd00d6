//! `[cluster.heartbeat]`: replication lag measured with a heartbeat row
//! (pt-heartbeat style), next to the server's own `Seconds_Behind_Master`.
//!
//! ```toml
//! [cluster.heartbeat]
//! enabled = true           # default false: pivot writes nothing unless asked
//! schema = "pivot"         # created on the primary on first use, replicated
//! table = "heartbeat"
//! interval = "1s"          # one write on the primary per interval
//! ```
//!
//! pivot's account needs `GRANT SELECT, INSERT, UPDATE, CREATE ON pivot.* TO ...`.

use super::duration::Dur;
use super::load::{duration_in, Source};
use super::ConfigError;
use pivot_dialect::HeartbeatTable;
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    pub enabled: Option<bool>,
    pub schema: Option<Spanned<String>>,
    pub table: Option<Spanned<String>>,
    pub interval: Option<Spanned<Dur>>,
}

/// The heartbeat of one cluster, when enabled.
#[derive(Clone, Debug)]
pub struct HeartbeatConfig {
    pub table: HeartbeatTable,
    /// One write on the primary per interval.
    pub interval: Duration,
    /// Readings older than this say nothing (`HeartbeatReading::stale_after_ms`):
    /// three times the longer of `interval` and `poll_interval`, plus `probe_timeout`.
    pub stale_after: Duration,
}

pub(super) fn heartbeat(
    src: &Source,
    raw: &Option<Spanned<RawHeartbeat>>,
    poll_interval: Duration,
    probe_timeout: Duration,
) -> Result<Option<HeartbeatConfig>, ConfigError> {
    let Some(raw) = raw.as_ref().map(Spanned::get_ref) else { return Ok(None) };
    let interval = duration_in(
        src,
        &raw.interval,
        "heartbeat interval",
        Duration::from_secs(1),
        Duration::from_millis(100),
        Duration::from_secs(3600),
    )?;
    let name =
        |v: &Option<Spanned<String>>, default: &str| v.as_ref().map_or(default.to_string(), |s| s.get_ref().clone());
    let (schema, table) = (name(&raw.schema, "pivot"), name(&raw.table, "heartbeat"));
    let table = HeartbeatTable::new(&schema, &table).map_err(|e| {
        let at = if e.contains("schema") { raw.schema.as_ref() } else { raw.table.as_ref() };
        match at {
            Some(at) => src.err(at, e),
            None => src.err_at(0..0, e),
        }
    })?;
    if !raw.enabled.unwrap_or(false) {
        return Ok(None);
    }
    let stale_after = interval.max(poll_interval) * 3 + probe_timeout;
    Ok(Some(HeartbeatConfig { table, interval, stale_after }))
}
