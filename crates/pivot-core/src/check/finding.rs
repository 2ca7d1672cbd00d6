//! A preflight finding and the table of every code `pivot check` can report.
//! The README's table is this one; a test keeps them equal.

use crate::instance::InstanceKey;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A failover would go wrong or lose data: `pivot check` exits non-zero.
    Error,
    /// Weaker guarantees or slower detection than pivot can give.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One entry of the code table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeInfo {
    pub code: &'static str,
    pub severity: Severity,
    pub what: &'static str,
    pub fix: &'static str,
}

/// One problem found, with the instances concerned and the fix in one line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub instances: Vec<InstanceKey>,
    pub text: String,
    pub fix: String,
}

impl Finding {
    /// A finding of `code` (which must be in [`CODES`]); `fix` adds the
    /// specifics to the table's fix, if any.
    pub fn new(code: &'static str, instances: Vec<InstanceKey>, text: String, fix: Option<String>) -> Finding {
        let info = info(code).unwrap_or_else(|| panic!("{code} is not in the code table"));
        Finding {
            code: code.to_string(),
            severity: info.severity,
            instances,
            text,
            fix: fix.unwrap_or_else(|| info.fix.to_string()),
        }
    }
}

pub fn info(code: &str) -> Option<&'static CodeInfo> {
    CODES.iter().find(|c| c.code == code)
}

const fn e(code: &'static str, what: &'static str, fix: &'static str) -> CodeInfo {
    CodeInfo { code, severity: Severity::Error, what, fix }
}

const fn w(code: &'static str, what: &'static str, fix: &'static str) -> CodeInfo {
    CodeInfo { code, severity: Severity::Warning, what, fix }
}

/// Every code, in order. Codes are stable: never renumber, only add.
pub const CODES: &[CodeInfo] = &[
    e("PVT-E001", "an instance does not answer pivot", "start it, or remove it from `seeds` / the topology; check the network and credentials"),
    e("PVT-E002", "the cluster has no single writable primary (none, read-only, or several)", "make exactly one instance writable and the others its read-only replicas"),
    e("PVT-E003", "replication broken on a replica (IO or SQL thread stopped, or an error)", "fix the error shown, then START SLAVE"),
    e("PVT-E004", "two instances share a server_id", "give each instance its own server_id in its option file and restart it"),
    e("PVT-E005", "binary log off on an instance that could be promoted", "set log_bin in its option file and restart it"),
    e("PVT-E006", "log_slave_updates off on a promotable replica", "set log_slave_updates = ON (log_replica_updates on MySQL) in its option file and restart it"),
    e("PVT-E007", "binlog_format is not ROW", "set binlog_format = ROW (SET GLOBAL, and in the option file)"),
    e("PVT-E008", "a replica is writable", "set read_only = ON on it (SET GLOBAL, and in its option file; super_read_only too on MySQL)"),
    e("PVT-E009", "errant GTIDs: a replica has transactions the primary never had", "inspect them; if not needed: MySQL, add them to the primary as empty transactions (gtid_next injection); MariaDB (no empty transaction is logged), RESET MASTER on the replica; or rebuild the replica"),
    e("PVT-E010", "replication filters differ between replicas", "use the same replicate_* filters on every replica (or none)"),
    e("PVT-E011", "semi-sync primary side enabled on a replica", "set rpl_semi_sync_master_enabled (MySQL: rpl_semi_sync_source_enabled) = OFF on the replica; pivot enables it on a new primary"),
    e("PVT-E012", "a replica's slave_net_timeout is not above its heartbeat period: it reconnects while the primary is idle", "make MASTER_HEARTBEAT_PERIOD (CHANGE MASTER) well below slave_net_timeout, e.g. 0.5 s and 2 s or more"),
    e("PVT-E013", "pivot's account lacks a privilege a failover step needs", "run the GRANT shown"),
    e("PVT-E014", "a configured hook is missing, not executable, or its interpreter is missing", "install the hook program (chmod +x; fix its #! line)"),
    e("PVT-E015", "a route points somewhere other than the primary", "let pivot's daemon publish the routes (`pivot run`), or fix the route by hand"),
    e("PVT-E016", "dual primaries whose auto_increment_increment/offset let both generate the same key", "set the same auto_increment_increment >= 2 on both and different auto_increment_offset values"),
    e("PVT-E017", "no replica could be promoted if the primary failed now", "fix the reasons listed for each replica"),
    e(
        "PVT-E018",
        "a replica runs an older server version (or another flavour) than its source",
        "upgrade the replica first: replicas must run the same or a newer version than their source",
    ),
    w("PVT-W001", "gtid_strict_mode is off", "set gtid_strict_mode = ON (SET GLOBAL, and in the option file)"),
    w("PVT-W002", "semi-sync wait point is not AFTER_SYNC: a client can see a commit that a failover loses", "set rpl_semi_sync_master_wait_point (MySQL: rpl_semi_sync_source_wait_point) = AFTER_SYNC"),
    w("PVT-W003", "semi-sync falls back to asynchronous after its timeout", "raise rpl_semi_sync_master_timeout (pivot's sandbox uses its maximum) if writes must never be lost"),
    w("PVT-W004", "fewer than two semi-sync replicas: one lost replica stalls or degrades the primary", "set rpl_semi_sync_slave_enabled (MySQL: rpl_semi_sync_replica_enabled) = ON on at least two replicas, then restart their IO threads"),
    w("PVT-W005", "heartbeat period too long (or off) for pivot's confirm window: a hung primary is confirmed late", "set MASTER_HEARTBEAT_PERIOD (CHANGE MASTER) to half the confirm window or less"),
    w("PVT-W006", "Connect_Retry longer than the confirm window: a replica that lost its connection stays away", "set MASTER_CONNECT_RETRY (CHANGE MASTER) to 1 s"),
    w("PVT-W007", "sync_binlog is not 1: a crash can lose binary log events the data has", "set sync_binlog = 1 (SET GLOBAL, and in the option file)"),
    w("PVT-W008", "innodb_flush_log_at_trx_commit is not 1: a crash can lose committed transactions", "set innodb_flush_log_at_trx_commit = 1 (SET GLOBAL, and in the option file)"),
    w("PVT-W009", "replica positions are not crash-safe", "use GTID replication (MASTER_USE_GTID=slave_pos) or set relay_log_recovery = ON"),
    w("PVT-W010", "clocks skewed between pivot and an instance", "run NTP/chrony on every host"),
    w(
        "PVT-W011",
        "a replica lags more than failover.max_candidate_lag, or is delayed: it would not be promoted",
        "find why it lags (load, long transactions, single-threaded apply); list a delayed replica in failover.never_promote",
    ),
    w(
        "PVT-W012",
        "[cluster.heartbeat] is on but pivot's account lacks the heartbeat grant: no heartbeat lag",
        "give pivot's account SELECT, INSERT, UPDATE and CREATE on the heartbeat schema (pivot by default; the finding shows the statement)",
    ),
];
