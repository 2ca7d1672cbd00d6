//! pivot's heartbeat table (`[cluster.heartbeat]`): its creation, the write
//! on the primary, the read on every instance, and the parsing of that read.
//!
//! Times are kept in UTC (`UTC_TIMESTAMP(6)`, a `DATETIME(6)` a person can
//! read) and compared as microseconds since the epoch computed by the server
//! itself (`TIMESTAMPDIFF(MICROSECOND, '1970-01-01', ...)`), so neither the
//! session's nor the system's time zone, nor a daylight-saving change,
//! enters. Only the primary's clock is ever compared with itself
//! (`pivot_core::heartbeat`).

use crate::dialect::Dialect;
use crate::parse::ParseError;
use crate::rows::{number, text, TextRow};
use crate::sql::Sql;
use pivot_core::observation::{HeartbeatReading, HeartbeatRow};
use pivot_core::Millis;

/// At most this many rows are read (one per primary that ever wrote), the
/// newest first: rows of former primaries are never deleted, and the
/// current primary's is the one written last.
const MAX_ROWS: u32 = 64;

/// Where the heartbeat lives: `schema`.`table`, both plain identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatTable {
    schema: String,
    table: String,
}

impl HeartbeatTable {
    /// Checks both names: letters, digits, `_` and `$`, at most 64 characters.
    pub fn new(schema: &str, table: &str) -> Result<HeartbeatTable, String> {
        for (what, name) in [("schema", schema), ("table", table)] {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
                && !name.chars().all(|c| c.is_ascii_digit());
            if !ok {
                return Err(format!(
                    "heartbeat {what} {name:?} is not a plain identifier: use letters, digits, '_' or '$' (at most 64)"
                ));
            }
        }
        Ok(HeartbeatTable { schema: schema.to_string(), table: table.to_string() })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn full(&self) -> String {
        format!("`{}`.`{}`", self.schema, self.table)
    }

    /// The grant pivot's account needs, for messages and the README.
    pub fn grant(&self, user: &str) -> String {
        format!("GRANT SELECT, INSERT, UPDATE, CREATE ON `{}`.* TO '{user}'@'%'", self.schema)
    }

    /// Which privileges of [`HeartbeatTable::grant`] the account lacks, from
    /// the rows of `SHOW GRANTS` ([`Dialect::grants_query`]).
    pub fn missing_grants(&self, grants: &[TextRow]) -> Vec<&'static str> {
        crate::privileges::schema_missing(grants, &self.schema, &["SELECT", "INSERT", "UPDATE", "CREATE"])
    }
}

/// Microseconds since the epoch, UTC, computed by the server.
fn epoch_us(expr: &str) -> String {
    format!("TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', {expr})")
}

impl Dialect {
    /// Creating the schema on first use (primary only; replicated).
    pub fn heartbeat_create_schema(&self, t: &HeartbeatTable) -> Sql {
        Sql::plain(format!("CREATE DATABASE IF NOT EXISTS `{}`", t.schema))
    }

    /// Creating the table on first use (primary only; replicated).
    pub fn heartbeat_create_table(&self, t: &HeartbeatTable) -> Sql {
        Sql::plain(format!(
            "CREATE TABLE IF NOT EXISTS {} (server_id INT UNSIGNED NOT NULL PRIMARY KEY, \
             ts DATETIME(6) NOT NULL COMMENT 'UTC, written by pivot on the primary') ENGINE=InnoDB",
            t.full()
        ))
    }

    /// The heartbeat write: the primary's own row, binlogged so it
    /// replicates. Written only when the server is not read-only at that
    /// moment, so a primary demoted meanwhile (pivot's account may bypass
    /// `read_only`) changes no row and gains no transaction.
    pub fn heartbeat_write(&self, t: &HeartbeatTable) -> Sql {
        Sql::plain(format!(
            "INSERT INTO {} (server_id, ts) SELECT @@server_id, UTC_TIMESTAMP(6) FROM DUAL \
             WHERE @@global.read_only = 0 ON DUPLICATE KEY UPDATE ts = VALUES(ts)",
            t.full()
        ))
    }

    /// Whether the server is read-only now (checked before creating the table).
    pub fn heartbeat_read_only_query(&self) -> Sql {
        Sql::plain("SELECT @@global.read_only AS read_only")
    }

    /// The session's binary log format (checked once per connection): in
    /// `STATEMENT` format the write is logged even when it changes nothing
    /// (a transaction on a demoted primary) and `@@server_id` would be the
    /// replica's when applied; `ROW` and `MIXED` log the row.
    pub fn heartbeat_binlog_format_query(&self) -> Sql {
        Sql::plain("SELECT @@session.binlog_format AS binlog_format")
    }

    /// The rows and the server's clock in one statement (one moment).
    pub fn heartbeat_read(&self, t: &HeartbeatTable) -> Sql {
        Sql::plain(format!(
            "SELECT server_id, {} AS ts_us, {} AS server_now_us FROM {} ORDER BY ts DESC LIMIT {MAX_ROWS}",
            epoch_us("ts"),
            epoch_us("UTC_TIMESTAMP(6)"),
            t.full()
        ))
    }

    /// The server's clock alone (the table is missing or empty).
    pub fn heartbeat_now_query(&self) -> Sql {
        Sql::plain(format!("SELECT {} AS server_now_us", epoch_us("UTC_TIMESTAMP(6)")))
    }

    /// A reading from the rows of [`Dialect::heartbeat_read`] (or, when that
    /// returned none, the row of [`Dialect::heartbeat_now_query`]), taken at
    /// `taken_at` on pivot's monotonic clock.
    pub fn parse_heartbeat(
        &self,
        rows: &[TextRow],
        taken_at: Millis,
        stale_after_ms: u64,
    ) -> Result<HeartbeatReading, ParseError> {
        let signed = |row: &TextRow, name: &str| -> Result<i64, ParseError> {
            text(row, &[name])
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| ParseError(format!("heartbeat read: no number in {name}")))
        };
        let first = rows.first().ok_or_else(|| ParseError("heartbeat read: no row".into()))?;
        let server_now_us = signed(first, "server_now_us")?;
        let mut out = Vec::new();
        for row in rows.iter().filter(|r| r.contains_key("server_id")) {
            let server_id = number(row, &["server_id"])
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ParseError("heartbeat read: bad server_id".into()))?;
            out.push(HeartbeatRow { server_id, ts_us: signed(row, "ts_us")? });
        }
        Ok(HeartbeatReading { taken_at, server_now_us, rows: out, stale_after_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pivot_core::ServerVersion;

    fn row(pairs: &[(&str, &str)]) -> TextRow {
        pairs.iter().map(|(k, v)| (k.to_string(), Some(v.to_string()))).collect()
    }

    fn maria() -> Dialect {
        Dialect::for_version(&ServerVersion::parse("10.11.19-MariaDB-log", "").unwrap())
    }

    #[test]
    fn names_are_checked_and_quoted() {
        let t = HeartbeatTable::new("pivot", "heartbeat").unwrap();
        assert_eq!(
            maria().heartbeat_write(&t).to_string(),
            "INSERT INTO `pivot`.`heartbeat` (server_id, ts) SELECT @@server_id, UTC_TIMESTAMP(6) FROM DUAL \
             WHERE @@global.read_only = 0 ON DUPLICATE KEY UPDATE ts = VALUES(ts)"
        );
        assert_eq!(t.grant("pivot"), "GRANT SELECT, INSERT, UPDATE, CREATE ON `pivot`.* TO 'pivot'@'%'");
        for bad in ["", "a`b", "a.b", "x y", "123", &"x".repeat(65)] {
            let e = HeartbeatTable::new(bad, "heartbeat").unwrap_err();
            assert!(e.contains("schema") && e.contains("plain identifier"), "{bad:?}: {e}");
        }
        assert!(HeartbeatTable::new("pivot", "hb;DROP").unwrap_err().contains("table"));
    }

    #[test]
    fn parses_rows_and_the_clock() {
        let d = maria();
        let rows = [
            row(&[("server_id", "1"), ("ts_us", "1700000000123456"), ("server_now_us", "1700000000500000")]),
            row(&[("server_id", "3"), ("ts_us", "1690000000000000"), ("server_now_us", "1700000000500000")]),
        ];
        let r = d.parse_heartbeat(&rows, Millis(42), 5_000).unwrap();
        assert_eq!(r.server_now_us, 1_700_000_000_500_000);
        assert_eq!(r.row_of(1), Some(1_700_000_000_123_456));
        assert_eq!(r.row_of(3), Some(1_690_000_000_000_000));
        assert_eq!((r.taken_at, r.stale_after_ms), (Millis(42), 5_000));
        // The clock alone: an empty or missing table.
        let r = d.parse_heartbeat(&[row(&[("server_now_us", "5")])], Millis(1), 10).unwrap();
        assert_eq!((r.server_now_us, r.rows.len()), (5, 0));
        assert!(d.parse_heartbeat(&[], Millis(1), 10).is_err());
        assert!(d.parse_heartbeat(&[row(&[("server_now_us", "x")])], Millis(1), 10).is_err());
    }
}
