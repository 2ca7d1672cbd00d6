//! The extra readings `pivot check` needs beyond a probe: server variables
//! the preflight rules judge, and the server's clock.

use crate::dialect::Dialect;
use crate::rows::{text, TextRow};
use crate::sql::Sql;
use pivot_core::version::Flavor;
use std::collections::BTreeMap;

/// The global variables the preflight rules read (both flavours' names; a
/// server lists only those it has).
const CHECK_VARIABLES: &[&str] = &[
    "binlog_format",
    "sync_binlog",
    "innodb_flush_log_at_trx_commit",
    "relay_log_recovery",
    "relay_log_info_repository",
    "slave_net_timeout",
    "replica_net_timeout",
    "auto_increment_increment",
    "auto_increment_offset",
];

impl Dialect {
    /// `SHOW GLOBAL VARIABLES WHERE Variable_name IN (...)`: columns
    /// `Variable_name`, `Value`; see [`Dialect::check_variables`].
    pub fn check_variables_query(&self) -> Sql {
        let names = CHECK_VARIABLES.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ");
        Sql::plain(format!("SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})"))
    }

    /// The rows of [`Dialect::check_variables_query`] as name -> value, with
    /// MySQL 8's `replica_*` names folded into the `slave_*` ones.
    pub fn check_variables(&self, rows: &[TextRow]) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for row in rows {
            let (Some(name), Some(value)) = (text(row, &["Variable_name"]), text(row, &["Value"])) else { continue };
            let name = name.to_ascii_lowercase();
            let name = if self.flavor == Flavor::MySql && name == "replica_net_timeout" {
                "slave_net_timeout".to_string()
            } else {
                name
            };
            out.insert(name, value.to_string());
        }
        out
    }

    /// The server's clock in microseconds since the epoch (column `now_us`).
    pub fn clock_query(&self) -> Sql {
        Sql::plain("SELECT CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS UNSIGNED) AS now_us")
    }

    /// The value of [`Dialect::clock_query`]'s row, in milliseconds.
    pub fn clock_ms(&self, rows: &[TextRow]) -> Option<i64> {
        let us: i64 = text(rows.first()?, &["now_us"])?.trim().parse().ok()?;
        Some(us / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pivot_core::ServerVersion;

    fn row(name: &str, value: &str) -> TextRow {
        TextRow::from([
            ("Variable_name".to_string(), Some(name.to_string())),
            ("Value".to_string(), Some(value.into())),
        ])
    }

    #[test]
    fn variables_are_read_by_name_and_mysql_names_folded() {
        let maria = Dialect::for_version(&ServerVersion::parse("10.11.6-MariaDB", "").unwrap());
        let q = maria.check_variables_query().to_string();
        assert!(q.starts_with("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('binlog_format', "), "{q}");
        let vars = maria.check_variables(&[row("binlog_format", "ROW"), row("sync_binlog", "0")]);
        assert_eq!(vars["binlog_format"], "ROW");
        assert_eq!(vars["sync_binlog"], "0");
        let mysql = Dialect::for_version(&ServerVersion::parse("8.0.36", "").unwrap());
        let vars = mysql.check_variables(&[row("replica_net_timeout", "60")]);
        assert_eq!(vars["slave_net_timeout"], "60");
    }

    #[test]
    fn clock_is_read_in_milliseconds() {
        let d = Dialect::for_version(&ServerVersion::parse("10.11.6-MariaDB", "").unwrap());
        let rows = vec![TextRow::from([("now_us".to_string(), Some("1700000000123456".to_string()))])];
        assert_eq!(d.clock_ms(&rows), Some(1_700_000_000_123));
        assert_eq!(d.clock_ms(&[]), None);
    }
}
