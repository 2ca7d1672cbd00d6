//! What one probe of one instance saw.

use crate::gtid::GtidSet;
use crate::instance::InstanceKey;
use crate::time::Millis;
use crate::version::ServerVersion;
use serde::{Deserialize, Serialize};

/// The result of probing one instance once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub instance: InstanceKey,
    /// When the probe started.
    pub at: Millis,
    /// How long the probe took, connect included when it had to connect.
    pub latency_us: u64,
    pub outcome: ProbeOutcome,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProbeOutcome {
    Reachable { state: Box<InstanceState> },
    Unreachable { failure: ProbeFailure },
}

impl Observation {
    pub fn state(&self) -> Option<&InstanceState> {
        match &self.outcome {
            ProbeOutcome::Reachable { state } => Some(state),
            ProbeOutcome::Unreachable { .. } => None,
        }
    }

    pub fn failure(&self) -> Option<&ProbeFailure> {
        match &self.outcome {
            ProbeOutcome::Reachable { .. } => None,
            ProbeOutcome::Unreachable { failure } => Some(failure),
        }
    }
}

/// Why a probe failed, classified so the analysis and operators can tell a
/// dead server from a wrong password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFailure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Nothing listens (connection refused): the process is gone.
    Refused,
    /// Connected or tried to, got no answer in time: hung, overloaded or cut off.
    Timeout,
    /// The server answered and refused the credentials.
    AccessDenied,
    /// Connection reset, host unreachable, DNS failure and the like.
    Network,
    /// The server answered but a query failed (privileges, unexpected result).
    Query,
}

impl FailureKind {
    /// True when the failure says something about the server's health rather
    /// than about pivot's configuration.
    pub fn is_health_signal(self) -> bool {
        !matches!(self, FailureKind::AccessDenied | FailureKind::Query)
    }
}

/// Everything pivot reads from a reachable instance in one probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceState {
    pub server_id: u32,
    /// `@@server_uuid` (MySQL); the origin of its GTIDs.
    pub server_uuid: Option<String>,
    pub version: ServerVersion,
    pub read_only: bool,
    /// `None` where the server has no such variable (MariaDB).
    pub super_read_only: Option<bool>,
    pub log_bin: bool,
    pub log_replica_updates: bool,
    pub gtid: GtidState,
    /// The replication this instance runs as a replica (first channel), if any.
    pub replication: Option<ReplicationStatus>,
    pub semi_sync: SemiSyncState,
    /// Replicas that registered with this instance (`SHOW SLAVE HOSTS` / `SHOW REPLICAS`).
    pub registered_replicas: Vec<InstanceKey>,
    /// Client hosts of binlog dump threads: replicas connected right now (ports unknown).
    pub dump_thread_hosts: Vec<String>,
    /// pivot's heartbeat table as this instance holds it, with its own clock
    /// (`[cluster.heartbeat]`; `None` when off or not readable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<HeartbeatReading>,
}

impl InstanceState {
    /// Writable for ordinary clients.
    pub fn writable(&self) -> bool {
        !self.read_only && self.super_read_only != Some(true)
    }
}

/// GTID positions. MariaDB fills all of them; MySQL fills `executed` and
/// `applied` with `gtid_executed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GtidState {
    /// Every transaction in this instance's binary log, per origin
    /// (MariaDB `gtid_binlog_state`, MySQL `gtid_executed`).
    pub executed: GtidSet,
    /// The position applied to the data (MariaDB `gtid_current_pos`).
    pub applied: GtidSet,
    /// The last GTID written to the binary log per domain (MariaDB `gtid_binlog_pos`).
    pub binlog_pos: Option<GtidSet>,
    /// The position replication resumes from (MariaDB `gtid_slave_pos`).
    pub replica_pos: Option<GtidSet>,
    pub strict_mode: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IoThread {
    /// Connected to the source and reading.
    Running,
    /// Trying to (re)connect.
    Connecting,
    Stopped,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationError {
    pub number: u32,
    pub message: String,
}

/// Replication filters; two replicas with different filters hold different data.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationFilters {
    pub do_db: String,
    pub ignore_db: String,
    pub do_table: String,
    pub ignore_table: String,
    pub wild_do_table: String,
    pub wild_ignore_table: String,
    pub do_domain_ids: String,
    pub ignore_domain_ids: String,
}

impl ReplicationFilters {
    pub fn is_empty(&self) -> bool {
        *self == ReplicationFilters::default()
    }
}

/// One replication channel as `SHOW [ALL] SLAVE|REPLICA STATUS` reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplicationStatus {
    /// MariaDB connection name / MySQL channel name ("" for the default).
    pub channel: String,
    pub source: InstanceKey,
    pub source_server_id: Option<u32>,
    pub io_thread: IoThread,
    pub sql_running: bool,
    pub io_state: String,
    pub sql_state: String,
    pub io_error: Option<ReplicationError>,
    pub sql_error: Option<ReplicationError>,
    pub seconds_behind: Option<u64>,
    pub sql_delay_s: u64,
    pub using_gtid: bool,
    /// Everything received from the source (MariaDB `Gtid_IO_Pos`, MySQL
    /// `Retrieved_Gtid_Set` joined with `gtid_executed`).
    pub received: GtidSet,
    /// Source binlog coordinates read so far: moves with every event.
    pub source_log_file: String,
    pub source_log_pos: u64,
    /// Heartbeats received on this channel; moves while the source is idle.
    pub heartbeats: Option<u64>,
    pub heartbeat_period_ms: Option<u64>,
    pub connect_retry_s: u32,
    pub filters: ReplicationFilters,
}

impl ReplicationStatus {
    /// Something that changes whenever anything arrives from the source.
    pub fn receive_token(&self) -> (String, u64, Option<u64>, String) {
        (self.source_log_file.clone(), self.source_log_pos, self.heartbeats, self.received.to_string())
    }

    pub fn replicating(&self) -> bool {
        self.io_thread == IoThread::Running && self.sql_running
    }
}

/// Semi-synchronous replication, both sides.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SemiSyncState {
    /// The server knows the semi-sync variables (built in or plugin loaded).
    pub available: bool,
    pub primary_enabled: bool,
    /// The primary side is on right now (falls off after a timeout).
    pub primary_active: bool,
    pub primary_clients: u32,
    /// Sessions waiting for a replica acknowledgement right now.
    pub primary_waiting_sessions: u32,
    pub primary_timeout_ms: Option<u64>,
    pub primary_wait_point: Option<String>,
    pub primary_wait_no_replica: Option<bool>,
    pub replica_enabled: bool,
    pub replica_active: bool,
}

/// One reading of pivot's heartbeat table on one instance (pt-heartbeat style):
/// the rows it holds and the server's own clock, paired with pivot's monotonic
/// time of the reading. Times are microseconds since the Unix epoch on *that
/// server's* clock; only a primary's `server_now_us` is ever compared with its
/// own rows (see `crate::lag`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReading {
    /// pivot's monotonic time of the reading (the middle of its round trip).
    pub taken_at: Millis,
    /// The server's `NOW(6)` at the reading.
    pub server_now_us: i64,
    /// The rows: one per primary that ever wrote a heartbeat.
    pub rows: Vec<HeartbeatRow>,
    /// Beyond this age a heartbeat says nothing: a primary whose own row is
    /// older has a writer that does not get through, and a primary's reading
    /// further than this from a replica's is too old to stand for its clock
    /// (the shell sets three times the longer of the write and poll
    /// intervals, plus the probe timeout).
    pub stale_after_ms: u64,
}

/// One row of the heartbeat table: the last heartbeat the primary
/// `server_id` wrote, by its clock, as far as this instance has applied it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRow {
    pub server_id: u32,
    pub ts_us: i64,
}

impl HeartbeatReading {
    /// The heartbeat `server_id` wrote, as this instance holds it.
    pub fn row_of(&self, server_id: u32) -> Option<i64> {
        self.rows.iter().find(|r| r.server_id == server_id).map(|r| r.ts_us)
    }
}
