//! The statements pivot sends, worded for one server flavour and version.

use crate::privileges::{self, PrivilegeNeed, PrivilegeReport};
use crate::rows::TextRow;
use crate::sql::{quote, Sql};
use pivot_core::version::{Flavor, ServerVersion};
use pivot_core::{GtidSet, InstanceKey};

/// How to talk to one server. Cheap to build; pick it from the version string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialect {
    pub flavor: Flavor,
    /// MySQL 8.0.22+: `SHOW REPLICA STATUS`, `START REPLICA`, `SHOW REPLICAS`.
    replica_words: bool,
    /// MySQL 8.0.23+: `CHANGE REPLICATION SOURCE TO SOURCE_*`.
    source_words: bool,
    /// MySQL 8.0.26+: `log_replica_updates`, semi-sync `source`/`replica` names.
    new_variable_names: bool,
    /// MariaDB 10.3.3+: semi-sync is built in, its variables always exist.
    builtin_semi_sync: bool,
    /// Which privileges allow what (see [`Dialect::privilege_needs`]).
    privileges: PrivilegeModel,
}

/// The server's privilege system, as far as pivot's statements are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PrivilegeModel {
    /// MySQL 5.7 and MariaDB before 10.5.2: `SUPER` does the administration.
    Super,
    /// MariaDB 10.5.2+: `SUPER` split into fine-grained privileges. Replica
    /// status needs `SLAVE MONITOR` from 10.5.9 (`REPLICATION SLAVE ADMIN`
    /// before); `read_only` needs `READ_ONLY ADMIN`, which `SUPER` no longer
    /// includes from 10.11.
    MariaDbSplit { slave_monitor: bool, read_only_admin_only: bool },
    /// MySQL 8.0+: dynamic privileges, `SUPER` deprecated but still honoured.
    MySqlDynamic,
}

/// Where a replica should replicate from. Unset fields keep the replica's
/// current setting (both servers keep unspecified `CHANGE MASTER` options).
#[derive(Clone, Debug, Default)]
pub struct ChangeSource {
    pub source: Option<InstanceKey>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub heartbeat_ms: Option<u64>,
    pub connect_retry_s: Option<u32>,
}

/// A client session in `information_schema.PROCESSLIST p`: not the caller's
/// connection, not the server's own threads, not a replica's binlog dump.
const CLIENT_SESSION: &str = "p.ID <> CONNECTION_ID() AND p.USER NOT IN ('system user', 'event_scheduler') \
     AND p.COMMAND NOT IN ('Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Slave_IO', 'Slave_SQL', 'Slave_worker')";
/// ... and not one of pivot's own account's (its probes, its crash watch).
const NOT_PIVOTS_OWN: &str = "AND p.USER <> SUBSTRING_INDEX(CURRENT_USER(), '@', 1)";

impl Dialect {
    pub fn for_version(version: &ServerVersion) -> Dialect {
        let mysql = version.flavor == Flavor::MySql;
        Dialect {
            flavor: version.flavor,
            replica_words: mysql && version.at_least(8, 0, 22),
            source_words: mysql && version.at_least(8, 0, 23),
            new_variable_names: mysql && version.at_least(8, 0, 26),
            builtin_semi_sync: !mysql && version.at_least(10, 3, 3),
            privileges: if mysql {
                if version.at_least(8, 0, 0) {
                    PrivilegeModel::MySqlDynamic
                } else {
                    PrivilegeModel::Super
                }
            } else if version.at_least(10, 5, 2) {
                PrivilegeModel::MariaDbSplit {
                    slave_monitor: version.at_least(10, 5, 9),
                    read_only_admin_only: version.at_least(10, 11, 0),
                }
            } else {
                PrivilegeModel::Super
            },
        }
    }

    /// The server's version, asked before the dialect is known (columns
    /// `version` and `version_comment`; see [`crate::parse_version`]).
    pub fn version_query() -> Sql {
        Sql::plain("SELECT @@version AS version, @@version_comment AS version_comment")
    }

    fn replica_word(&self) -> &'static str {
        if self.replica_words {
            "REPLICA"
        } else {
            "SLAVE"
        }
    }

    // ---- probing -------------------------------------------------------------

    /// One row of server variables, columns named as [`crate::parse`] expects.
    pub fn variables_query(&self) -> Sql {
        let common = "@@server_id AS server_id, @@version AS version, @@version_comment AS version_comment, \
                      @@read_only AS read_only, @@log_bin AS log_bin";
        Sql::plain(match self.flavor {
            Flavor::MariaDb => format!(
                "SELECT {common}, @@log_slave_updates AS log_replica_updates, \
                 @@gtid_binlog_state AS gtid_executed, @@gtid_current_pos AS gtid_applied, \
                 @@gtid_binlog_pos AS gtid_binlog_pos, @@gtid_slave_pos AS gtid_replica_pos, \
                 @@gtid_strict_mode AS gtid_strict_mode{}",
                if self.builtin_semi_sync { SEMI_SYNC_SELECT } else { "" }
            ),
            Flavor::MySql => {
                let updates = if self.new_variable_names { "@@log_replica_updates" } else { "@@log_slave_updates" };
                format!(
                    "SELECT {common}, {updates} AS log_replica_updates, @@super_read_only AS super_read_only, \
                     @@server_uuid AS server_uuid, @@global.gtid_executed AS gtid_executed, @@gtid_mode AS gtid_mode"
                )
            }
        })
    }

    pub fn replica_status_query(&self) -> Sql {
        Sql::plain(match self.flavor {
            Flavor::MariaDb => "SHOW ALL SLAVES STATUS".to_string(),
            Flavor::MySql => format!("SHOW {} STATUS", self.replica_word()),
        })
    }

    /// Heartbeat counters where `SHOW ... STATUS` lacks them (MySQL keeps them
    /// in performance_schema); `None` for MariaDB.
    pub fn heartbeat_query(&self) -> Option<Sql> {
        (self.flavor == Flavor::MySql).then(|| {
            Sql::plain(
                "SELECT s.CHANNEL_NAME AS channel, s.COUNT_RECEIVED_HEARTBEATS AS heartbeats, \
                 c.HEARTBEAT_INTERVAL AS heartbeat_period \
                 FROM performance_schema.replication_connection_status s \
                 JOIN performance_schema.replication_connection_configuration c USING (CHANNEL_NAME)",
            )
        })
    }

    /// `None` where the variables query already reads them (MariaDB 10.3.3+).
    pub fn semi_sync_variables_query(&self) -> Option<Sql> {
        (!self.builtin_semi_sync).then(|| Sql::plain("SHOW GLOBAL VARIABLES LIKE 'rpl_semi_sync%'"))
    }

    pub fn semi_sync_status_query(&self) -> Sql {
        Sql::plain("SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync%'")
    }

    pub fn replica_hosts_query(&self) -> Sql {
        Sql::plain(if self.replica_words { "SHOW REPLICAS" } else { "SHOW SLAVE HOSTS" })
    }

    /// Binlog dump threads: replicas connected right now.
    pub fn dump_threads_query(&self) -> Sql {
        Sql::plain("SELECT HOST AS host FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
    }

    // ---- replication control --------------------------------------------------

    pub fn stop_replica_io(&self) -> Sql {
        Sql::plain(format!("STOP {} IO_THREAD", self.replica_word()))
    }

    /// Connection ids of the replication IO threads (column `id`). Ending that
    /// connection unblocks an IO thread stuck reading from a hung source,
    /// which `STOP SLAVE IO_THREAD` alone waits for until `slave_net_timeout`.
    pub fn io_thread_ids_query(&self) -> Sql {
        Sql::plain(match self.flavor {
            Flavor::MariaDb => {
                "SELECT ID AS id, STATE AS state FROM information_schema.PROCESSLIST WHERE COMMAND = 'Slave_IO'"
            }
            Flavor::MySql => {
                "SELECT PROCESSLIST_ID AS id, PROCESSLIST_STATE AS state FROM performance_schema.threads \
                 WHERE NAME IN ('thread/sql/replica_io', 'thread/sql/slave_io')"
            }
        })
    }

    /// Whether an IO thread in `state` is connected and waiting for events.
    pub fn io_thread_reading(&self, state: &str) -> bool {
        state.starts_with("Waiting for master to send event") || state.starts_with("Waiting for source to send event")
    }

    pub fn stop_replica(&self) -> Sql {
        Sql::plain(format!("STOP {}", self.replica_word()))
    }

    pub fn start_replica_sql(&self) -> Sql {
        Sql::plain(format!("START {} SQL_THREAD", self.replica_word()))
    }

    pub fn start_replica(&self) -> Sql {
        Sql::plain(format!("START {}", self.replica_word()))
    }

    /// Forget the replication configuration entirely (the new primary).
    pub fn reset_replica_all(&self) -> Sql {
        Sql::plain(format!("RESET {} ALL", self.replica_word()))
    }

    /// Point a stopped replica at a source with GTID auto-positioning.
    pub fn change_source(&self, change: &ChangeSource) -> Sql {
        let (prefix, key) =
            if self.source_words { ("CHANGE REPLICATION SOURCE TO", "SOURCE") } else { ("CHANGE MASTER TO", "MASTER") };
        let mut parts: Vec<(String, String)> = Vec::new();
        if let Some(src) = &change.source {
            parts.push((format!("{key}_HOST={}", quote(&src.host)), String::new()));
            parts.push((format!("{key}_PORT={}", src.port), String::new()));
        }
        if let Some(user) = &change.user {
            parts.push((format!("{key}_USER={}", quote(user)), String::new()));
        }
        if let Some(password) = &change.password {
            parts.push((format!("{key}_PASSWORD={}", quote(password)), format!("{key}_PASSWORD=<redacted>")));
        }
        if let Some(ms) = change.heartbeat_ms {
            parts.push((format!("{key}_HEARTBEAT_PERIOD={}.{:03}", ms / 1000, ms % 1000), String::new()));
        }
        if let Some(s) = change.connect_retry_s {
            parts.push((format!("{key}_CONNECT_RETRY={s}"), String::new()));
        }
        parts.push((
            match self.flavor {
                Flavor::MariaDb => "MASTER_USE_GTID=slave_pos".to_string(),
                Flavor::MySql => format!("{key}_AUTO_POSITION=1"),
            },
            String::new(),
        ));
        let text = parts.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>().join(", ");
        let shown = parts.iter().map(|(t, s)| if s.is_empty() { t.as_str() } else { s.as_str() }).collect::<Vec<_>>();
        Sql::with_secret(format!("{prefix} {text}"), format!("{prefix} {}", shown.join(", ")))
    }

    /// Set where GTID replication resumes (MariaDB `gtid_slave_pos`, with
    /// replication stopped) to `position`; `None` for MySQL, whose
    /// auto-positioning sends what `gtid_executed` lacks.
    pub fn set_replica_position(&self, position: &GtidSet) -> Option<Sql> {
        (self.flavor == Flavor::MariaDb)
            .then(|| Sql::plain(format!("SET GLOBAL gtid_slave_pos = {}", quote(&position.to_string()))))
    }

    /// The binary log files, oldest first (column `Log_name`).
    pub fn binary_logs_query(&self) -> Sql {
        Sql::plain("SHOW BINARY LOGS")
    }

    /// Block until the instance has applied `set`, at most `timeout_s` seconds.
    /// Returns one row, one column `result`: 0 when reached, -1 (MariaDB) or 1
    /// (MySQL) on timeout.
    pub fn wait_for_gtid(&self, set: &GtidSet, timeout_s: f64) -> Sql {
        Sql::plain(match self.flavor {
            Flavor::MariaDb => {
                let pos = match set {
                    GtidSet::MariaDb(l) => l.to_position().to_string(),
                    other => other.to_string(),
                };
                format!("SELECT MASTER_GTID_WAIT({}, {timeout_s:.3}) AS result", quote(&pos))
            }
            Flavor::MySql => {
                format!("SELECT WAIT_FOR_EXECUTED_GTID_SET({}, {timeout_s:.3}) AS result", quote(&set.to_string()))
            }
        })
    }

    /// The value [`Dialect::wait_for_gtid`] returns on success.
    pub fn wait_succeeded(&self, result: i64) -> bool {
        result == 0
    }

    // ---- read-only and fencing -------------------------------------------------

    /// Statements that make the instance read-only for everyone the server lets
    /// be read-only (`super_read_only` too where it exists).
    pub fn set_read_only(&self) -> Vec<Sql> {
        match self.flavor {
            Flavor::MariaDb => vec![Sql::plain("SET GLOBAL read_only = ON")],
            Flavor::MySql => {
                vec![Sql::plain("SET GLOBAL read_only = ON"), Sql::plain("SET GLOBAL super_read_only = ON")]
            }
        }
    }

    pub fn set_writable(&self) -> Vec<Sql> {
        match self.flavor {
            Flavor::MariaDb => vec![Sql::plain("SET GLOBAL read_only = OFF")],
            Flavor::MySql => {
                vec![Sql::plain("SET GLOBAL super_read_only = OFF"), Sql::plain("SET GLOBAL read_only = OFF")]
            }
        }
    }

    /// Client sessions to end when fencing: everything but pivot's own
    /// connection and the server's internal threads.
    pub fn client_sessions_query(&self) -> Sql {
        Sql::plain(format!("SELECT ID AS id FROM information_schema.PROCESSLIST p WHERE {CLIENT_SESSION}"))
    }

    /// As [`Dialect::client_sessions_query`], sparing pivot's own account's
    /// sessions too (its probes and crash watch: a switchover ends the
    /// applications' sessions, not pivot's view of the old primary).
    pub fn application_sessions_query(&self) -> Sql {
        Sql::plain(format!(
            "SELECT ID AS id FROM information_schema.PROCESSLIST p WHERE {CLIENT_SESSION} {NOT_PIVOTS_OWN}"
        ))
    }

    pub fn kill_connection(&self, id: u64) -> Sql {
        Sql::plain(format!("KILL CONNECTION {id}"))
    }

    // ---- switchover -----------------------------------------------------------------

    /// The oldest open InnoDB transaction but the caller's (`id`, `seconds`).
    pub fn oldest_transaction_query(&self) -> Sql {
        Sql::plain(
            "SELECT trx_mysql_thread_id AS id, TIMESTAMPDIFF(SECOND, trx_started, NOW()) AS seconds \
             FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID() \
             ORDER BY trx_started LIMIT 1",
        )
    }

    /// How many client sessions (as [`Dialect::client_sessions_query`] sees
    /// them) have a transaction open that can still end well on a read-only
    /// server: one that changed no row (`n`). One that did cannot commit on
    /// MariaDB once `read_only` is on (MySQL's `read_only` waited for it).
    pub fn open_transactions_query(&self) -> Sql {
        Sql::plain(format!(
            "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX t \
             JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id \
             WHERE {CLIENT_SESSION} AND t.trx_rows_modified = 0"
        ))
    }

    /// A former primary about to replicate: positions from what it wrote
    /// itself (its binary log), not its stale replica position. MySQL's
    /// auto-positioning already uses `gtid_executed`: nothing to do there.
    pub fn position_from_own_binlog(&self) -> Option<Sql> {
        match self.flavor {
            Flavor::MariaDb => Some(Sql::plain("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")),
            Flavor::MySql => None,
        }
    }

    // ---- privileges ---------------------------------------------------------------

    /// The current account's grants (one column, one `GRANT` per row).
    pub fn grants_query(&self) -> Sql {
        Sql::plain("SHOW GRANTS")
    }

    /// The global privileges pivot's statements need on this server, each
    /// with what pivot uses it for.
    pub fn privilege_needs(&self) -> Vec<PrivilegeNeed> {
        use PrivilegeModel::*;
        let need = |any_of: Vec<&'static str>, purpose: String| PrivilegeNeed { any_of, purpose };
        let w = self.replica_word();
        let status = self.replica_status_query();
        let hosts = self.replica_hosts_query();
        let change = if self.source_words { "CHANGE REPLICATION SOURCE" } else { "CHANGE MASTER" };
        let read_only = match self.flavor {
            Flavor::MariaDb => "SET GLOBAL read_only",
            Flavor::MySql => "SET GLOBAL read_only and super_read_only",
        };
        let semi_sync = format!("SET GLOBAL {}", self.semi_sync_primary_var());
        let (status_privs, hosts_privs, control, ro, kill, semi) = match self.privileges {
            Super => (
                vec!["REPLICATION CLIENT", "SUPER"],
                vec!["REPLICATION SLAVE"],
                vec!["SUPER"],
                vec!["SUPER"],
                vec!["SUPER"],
                vec!["SUPER"],
            ),
            MariaDbSplit { slave_monitor, read_only_admin_only } => (
                if slave_monitor { vec!["SLAVE MONITOR", "SUPER"] } else { vec!["REPLICATION SLAVE ADMIN", "SUPER"] },
                vec!["REPLICATION MASTER ADMIN"],
                vec!["REPLICATION SLAVE ADMIN", "SUPER"],
                if read_only_admin_only { vec!["READ_ONLY ADMIN"] } else { vec!["READ_ONLY ADMIN", "SUPER"] },
                vec!["CONNECTION ADMIN", "SUPER"],
                vec!["REPLICATION MASTER ADMIN", "SUPER"],
            ),
            MySqlDynamic => (
                vec!["REPLICATION CLIENT", "SUPER"],
                vec!["REPLICATION SLAVE"],
                vec!["REPLICATION_SLAVE_ADMIN", "SUPER"],
                vec!["SYSTEM_VARIABLES_ADMIN", "SUPER"],
                vec!["CONNECTION_ADMIN", "SUPER"],
                vec!["SYSTEM_VARIABLES_ADMIN", "SUPER"],
            ),
        };
        vec![
            need(status_privs, format!("{status}: reading replication state")),
            need(hosts_privs, format!("{hosts}: discovering replicas")),
            need(vec!["PROCESS"], "the process list: replication threads, sessions to end when fencing".into()),
            need(control, format!("STOP/START {w}, {change}: freezing, catching up, repointing")),
            need(vec!["RELOAD"], format!("{}: promoting a replica", self.reset_replica_all())),
            need(ro, format!("{read_only}: fencing, promoting")),
            need(kill, "KILL: ending sessions when fencing, unblocking a stuck IO thread".into()),
            need(semi, format!("{semi_sync}: semi-sync on a new primary")),
        ]
    }

    /// What the account lacks, from the rows of [`Dialect::grants_query`].
    pub fn missing_privileges(&self, grants: &[TextRow]) -> PrivilegeReport {
        // MariaDB lists the grants of the active role (and the roles it was
        // granted); MySQL lists role grants without their privileges.
        privileges::check(&self.privilege_needs(), grants, self.flavor == Flavor::MariaDb)
    }

    // ---- semi-sync --------------------------------------------------------------

    fn semi_sync_primary_var(&self) -> &'static str {
        if self.new_variable_names {
            "rpl_semi_sync_source_enabled"
        } else {
            "rpl_semi_sync_master_enabled"
        }
    }

    fn semi_sync_replica_var(&self) -> &'static str {
        if self.new_variable_names {
            "rpl_semi_sync_replica_enabled"
        } else {
            "rpl_semi_sync_slave_enabled"
        }
    }

    pub fn set_semi_sync_primary(&self, on: bool) -> Sql {
        Sql::plain(format!("SET GLOBAL {} = {}", self.semi_sync_primary_var(), on_off(on)))
    }

    /// Commits that do not wait for fsync (binary log and redo log): for
    /// benchmarks that measure something other than the disk. Never sent
    /// by pivot itself.
    pub fn commit_without_fsync(&self) -> Vec<Sql> {
        vec![Sql::plain("SET GLOBAL innodb_flush_log_at_trx_commit = 0"), Sql::plain("SET GLOBAL sync_binlog = 0")]
    }

    pub fn set_semi_sync_replica(&self, on: bool) -> Sql {
        Sql::plain(format!("SET GLOBAL {} = {}", self.semi_sync_replica_var(), on_off(on)))
    }

    /// A statement that waits `seconds` on the server. pivot keeps one
    /// running on the primary: when the server dies, the kernel closes the
    /// connection at once and the wait ends with an error, long before the
    /// next probe would have noticed.
    pub fn wait_on_server(&self, seconds: u32) -> Sql {
        Sql::plain(format!("SELECT SLEEP({seconds})"))
    }
}

/// MariaDB's built-in semi-sync variables, read with the others (a `SHOW
/// VARIABLES LIKE` costs a temporary table on every probe).
const SEMI_SYNC_SELECT: &str = ", @@rpl_semi_sync_master_enabled AS rpl_semi_sync_master_enabled, \
     @@rpl_semi_sync_slave_enabled AS rpl_semi_sync_slave_enabled, \
     @@rpl_semi_sync_master_timeout AS rpl_semi_sync_master_timeout, \
     @@rpl_semi_sync_master_wait_point AS rpl_semi_sync_master_wait_point, \
     @@rpl_semi_sync_master_wait_no_slave AS rpl_semi_sync_master_wait_no_slave";

fn on_off(on: bool) -> &'static str {
    if on {
        "ON"
    } else {
        "OFF"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(v: &str) -> Dialect {
        Dialect::for_version(&ServerVersion::parse(v, "").unwrap())
    }

    #[test]
    fn words_follow_the_version() {
        let cases = [
            ("10.11.6-MariaDB", "SHOW ALL SLAVES STATUS", "STOP SLAVE IO_THREAD", "CHANGE MASTER TO"),
            ("5.7.44-log", "SHOW SLAVE STATUS", "STOP SLAVE IO_THREAD", "CHANGE MASTER TO"),
            ("8.0.21", "SHOW SLAVE STATUS", "STOP SLAVE IO_THREAD", "CHANGE MASTER TO"),
            ("8.0.22", "SHOW REPLICA STATUS", "STOP REPLICA IO_THREAD", "CHANGE MASTER TO"),
            ("8.0.36", "SHOW REPLICA STATUS", "STOP REPLICA IO_THREAD", "CHANGE REPLICATION SOURCE TO"),
            ("8.4.0", "SHOW REPLICA STATUS", "STOP REPLICA IO_THREAD", "CHANGE REPLICATION SOURCE TO"),
        ];
        for (v, status, stop, change) in cases {
            let d = d(v);
            assert_eq!(d.replica_status_query().to_string(), status, "{v}");
            assert_eq!(d.stop_replica_io().to_string(), stop, "{v}");
            assert!(d.change_source(&ChangeSource::default()).to_string().starts_with(change), "{v}");
        }
    }

    #[test]
    fn change_source_hides_the_password() {
        let change = ChangeSource {
            source: Some("127.0.0.1:3307".parse().unwrap()),
            user: Some("repl".into()),
            password: Some("s3cr'et".into()),
            heartbeat_ms: Some(250),
            connect_retry_s: Some(1),
        };
        let maria = d("10.11.6-MariaDB").change_source(&change);
        assert_eq!(
            maria.text(),
            "CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=3307, MASTER_USER='repl', MASTER_PASSWORD='s3cr''et', \
             MASTER_HEARTBEAT_PERIOD=0.250, MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos"
        );
        assert!(!maria.to_string().contains("s3cr"));
        let mysql = d("8.4.0").change_source(&change);
        assert!(
            mysql.text().contains("SOURCE_PASSWORD='s3cr''et'") && mysql.text().ends_with("SOURCE_AUTO_POSITION=1")
        );
        assert!(!format!("{mysql:?}").contains("s3cr"));
    }

    #[test]
    fn read_only_covers_super_read_only_on_mysql() {
        assert_eq!(d("8.0.36").set_read_only().len(), 2);
        assert_eq!(d("10.6.1-MariaDB").set_read_only().len(), 1);
        assert_eq!(d("8.0.36").set_semi_sync_primary(true).to_string(), "SET GLOBAL rpl_semi_sync_source_enabled = ON");
        assert_eq!(
            d("10.6.1-MariaDB").set_semi_sync_primary(true).to_string(),
            "SET GLOBAL rpl_semi_sync_master_enabled = ON"
        );
    }

    #[test]
    fn replica_position_is_set_on_mariadb_only() {
        let pos = GtidSet::parse(Flavor::MariaDb, "0-1-100,1-2-5").unwrap();
        let sql = d("10.11.6-MariaDB").set_replica_position(&pos).unwrap();
        assert_eq!(sql.to_string(), "SET GLOBAL gtid_slave_pos = '0-1-100,1-2-5'");
        assert!(d("8.0.36").set_replica_position(&pos).is_none());
    }

    #[test]
    fn gtid_wait_uses_positions_on_mariadb() {
        let set = GtidSet::parse(Flavor::MariaDb, "0-1-10,0-2-12").unwrap();
        assert_eq!(
            d("10.11.6-MariaDB").wait_for_gtid(&set, 2.5).to_string(),
            "SELECT MASTER_GTID_WAIT('0-2-12', 2.500) AS result"
        );
    }
}
