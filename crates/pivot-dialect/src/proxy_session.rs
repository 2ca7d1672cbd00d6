//! The statements of the proxy's protocol mode: turning on the server's
//! session-state tracking on a client's session, restoring that state on a
//! new primary, and reading an account's stored `mysql_native_password`
//! hash (to log the client in there again).

use crate::dialect::Dialect;
use crate::rows::{text, TextRow};
use crate::sql::{quote, Sql};
use pivot_core::version::Flavor;

/// Variables the server reports as changed but that are read-only (set by
/// the server itself): never restored.
const REPORTED_READ_ONLY: &[&str] = &["last_gtid", "in_transaction"];

const TRACKING: &str = "SESSION session_track_system_variables = '*', SESSION session_track_schema = ON, \
                        SESSION session_track_state_change = ON";

impl Dialect {
    /// Make the server report every change of the session's variables,
    /// default database and other state in its OK packets.
    pub fn session_tracking(&self) -> Sql {
        Sql::plain(format!("SET {TRACKING}"))
    }

    /// Session tracking, then each variable as the server reported it, in
    /// order (character sets before collations, which they would reset),
    /// but those the server sets itself (`last_gtid`).
    /// Refuses a name that is not a plain variable name.
    pub fn restore_session(&self, variables: &[(String, String)]) -> Result<Sql, String> {
        let mut ordered: Vec<&(String, String)> =
            variables.iter().filter(|(n, _)| !REPORTED_READ_ONLY.contains(&n.as_str())).collect();
        ordered.sort_by_key(|(n, _)| n.starts_with("collation_"));
        let mut text = format!("SET {TRACKING}");
        for (name, value) in ordered {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("session variable `{name}` is not a plain name"));
            }
            text.push_str(&format!(", SESSION {name} = {}", literal(name, value)));
        }
        Ok(Sql::plain(text))
    }

    /// One row per account named `user`, column `hash`: the stored
    /// authentication string (`*` + 40 hex digits for `mysql_native_password`).
    /// Needs `SELECT` on `mysql.global_priv` (MariaDB 10.4+) or `mysql.user`.
    pub fn password_hashes_query(&self, user: &str) -> Sql {
        Sql::plain(match self.flavor {
            Flavor::MariaDb => format!(
                "SELECT JSON_VALUE(Priv, '$.authentication_string') AS hash FROM mysql.global_priv WHERE User = {}",
                quote(user)
            ),
            Flavor::MySql => {
                format!("SELECT authentication_string AS hash FROM mysql.user WHERE User = {}", quote(user))
            }
        })
    }

    /// The stored hashes from [`Dialect::password_hashes_query`]'s rows.
    pub fn password_hashes(&self, rows: &[TextRow]) -> Vec<String> {
        rows.iter().filter_map(|r| text(r, &["hash"]).map(str::to_string)).collect()
    }
}

/// A tracked value as a literal: numbers as they are (numeric variables
/// refuse strings), an empty character set as NULL, the rest quoted.
fn literal(name: &str, value: &str) -> String {
    let numeric = !value.is_empty()
        && value.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && value.trim_start_matches('-').bytes().next().is_some_and(|b| b.is_ascii_digit());
    if numeric {
        value.to_string()
    } else if value.is_empty() && name.starts_with("character_set_") {
        "NULL".to_string()
    } else {
        quote(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pivot_core::version::ServerVersion;

    fn maria() -> Dialect {
        Dialect::for_version(&ServerVersion::parse("10.11.6-MariaDB", "").unwrap())
    }

    #[test]
    fn restoring_sets_tracking_then_the_variables_charsets_before_collations() {
        let vars = vec![
            ("collation_connection".to_string(), "utf8mb4_general_ci".to_string()),
            ("character_set_client".to_string(), "utf8mb4".to_string()),
            ("sql_mode".to_string(), "ANSI_QUOTES,STRICT_ALL_TABLES".to_string()),
            ("wait_timeout".to_string(), "600".to_string()),
            ("character_set_results".to_string(), String::new()),
            ("time_zone".to_string(), "+02:00".to_string()),
            ("sql_select_limit".to_string(), "18446744073709551615".to_string()),
            ("last_gtid".to_string(), "0-1-42".to_string()),
        ];
        let sql = maria().restore_session(&vars).unwrap();
        assert_eq!(
            sql.text(),
            format!(
                "SET {TRACKING}, SESSION character_set_client = 'utf8mb4', \
                 SESSION sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES', SESSION wait_timeout = 600, \
                 SESSION character_set_results = NULL, SESSION time_zone = '+02:00', \
                 SESSION sql_select_limit = 18446744073709551615, SESSION collation_connection = 'utf8mb4_general_ci'"
            )
        );
        assert!(maria().restore_session(&[("a=1; DROP".into(), "x".into())]).is_err());
        assert_eq!(maria().restore_session(&[]).unwrap(), maria().session_tracking());
    }

    #[test]
    fn values_are_quoted_unless_numbers() {
        assert_eq!(literal("sql_mode", "it's"), "'it''s'");
        assert_eq!(literal("x", "-1"), "-1");
        assert_eq!(literal("x", "1.5"), "1.5");
        assert_eq!(literal("x", "-"), "'-'");
        assert_eq!(literal("x", ""), "''");
    }

    #[test]
    fn stored_hashes_are_read_per_flavour() {
        assert!(maria().password_hashes_query("o'k").text().contains("mysql.global_priv WHERE User = 'o''k'"));
        let mysql = Dialect::for_version(&ServerVersion::parse("8.0.36", "").unwrap());
        assert!(mysql.password_hashes_query("app").text().contains("FROM mysql.user WHERE User = 'app'"));
        let row: TextRow = [("hash".to_string(), Some("*AB".to_string()))].into_iter().collect();
        let null: TextRow = [("hash".to_string(), None)].into_iter().collect();
        assert_eq!(maria().password_hashes(&[row, null]), vec!["*AB".to_string()]);
    }
}
