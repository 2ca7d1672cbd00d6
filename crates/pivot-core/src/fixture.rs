//! Builders for observations, used by table-driven tests here and in the shell.
//!
//! Defaults describe a healthy MariaDB 10.11 instance with binary log and
//! `log_slave_updates` on; each method changes one thing.

use crate::gtid::GtidSet;
use crate::instance::InstanceKey;
use crate::observation::*;
use crate::time::Millis;
use crate::version::{Flavor, ServerVersion};

pub fn key(s: &str) -> InstanceKey {
    s.parse().expect("fixture instance key")
}

pub fn maria(text: &str) -> GtidSet {
    GtidSet::parse(Flavor::MariaDb, text).expect("fixture MariaDB GTID")
}

#[derive(Clone, Debug)]
pub struct StateBuilder(InstanceState);

impl From<InstanceState> for StateBuilder {
    fn from(state: InstanceState) -> Self {
        StateBuilder(state)
    }
}

/// A writable MariaDB instance with `server_id` and binlog state `executed`.
pub fn state(server_id: u32, executed: &str) -> StateBuilder {
    let gtid = maria(executed);
    StateBuilder(InstanceState {
        server_id,
        server_uuid: None,
        version: ServerVersion::parse("10.11.19-MariaDB-log", "").unwrap(),
        read_only: false,
        super_read_only: None,
        log_bin: true,
        log_replica_updates: true,
        gtid: GtidState {
            executed: gtid.clone(),
            applied: gtid.clone(),
            binlog_pos: Some(gtid.clone()),
            replica_pos: None,
            strict_mode: Some(true),
        },
        replication: None,
        semi_sync: SemiSyncState { available: true, ..SemiSyncState::default() },
        registered_replicas: Vec::new(),
        dump_thread_hosts: Vec::new(),
        heartbeat: None,
    })
}

impl StateBuilder {
    pub fn read_only(mut self, on: bool) -> Self {
        self.0.read_only = on;
        self
    }

    /// A healthy read-only replica of `source` that has received `received`.
    pub fn replica_of(mut self, source: &str, received: &str) -> Self {
        self.0.read_only = true;
        self.0.gtid.replica_pos = Some(self.0.gtid.applied.clone());
        self.0.replication = Some(ReplicationStatus {
            channel: String::new(),
            source: key(source),
            source_server_id: None,
            io_thread: IoThread::Running,
            sql_running: true,
            io_state: "Waiting for master to send event".into(),
            sql_state: "Slave has read all relay log; waiting for more updates".into(),
            io_error: None,
            sql_error: None,
            seconds_behind: Some(0),
            sql_delay_s: 0,
            using_gtid: true,
            received: maria(received),
            source_log_file: "mariadb-bin.000001".into(),
            source_log_pos: 4,
            heartbeats: Some(0),
            heartbeat_period_ms: Some(250),
            connect_retry_s: 1,
            filters: ReplicationFilters::default(),
        });
        self
    }

    fn repl(&mut self) -> &mut ReplicationStatus {
        self.0.replication.as_mut().expect("call replica_of first")
    }

    pub fn io(mut self, io: IoThread) -> Self {
        self.repl().io_thread = io;
        if io != IoThread::Running {
            self.repl().seconds_behind = None;
        }
        self
    }

    pub fn io_error(mut self, number: u32, message: &str) -> Self {
        self.repl().io_error = Some(ReplicationError { number, message: message.into() });
        self
    }

    pub fn sql_stopped(mut self) -> Self {
        self.repl().sql_running = false;
        self.repl().seconds_behind = None;
        self
    }

    pub fn sql_error(mut self, number: u32, message: &str) -> Self {
        self.repl().sql_running = false;
        self.repl().seconds_behind = None;
        self.repl().sql_error = Some(ReplicationError { number, message: message.into() });
        self
    }

    pub fn lag(mut self, seconds: u64) -> Self {
        self.repl().seconds_behind = Some(seconds);
        self
    }

    /// Heartbeats received so far: a different number means something arrived.
    pub fn heartbeats(mut self, n: u64) -> Self {
        self.repl().heartbeats = Some(n);
        self
    }

    pub fn heartbeat_period_ms(mut self, ms: Option<u64>) -> Self {
        self.repl().heartbeat_period_ms = ms;
        self
    }

    pub fn delay(mut self, seconds: u64) -> Self {
        self.repl().sql_delay_s = seconds;
        self
    }

    pub fn filter_do_db(mut self, dbs: &str) -> Self {
        self.repl().filters.do_db = dbs.into();
        self
    }

    pub fn version(mut self, text: &str) -> Self {
        self.0.version = ServerVersion::parse(text, "").unwrap();
        self
    }

    pub fn log_bin(mut self, on: bool) -> Self {
        self.0.log_bin = on;
        self
    }

    pub fn applied(mut self, applied: &str) -> Self {
        self.0.gtid.applied = maria(applied);
        self
    }

    pub fn semi_sync_primary(mut self, clients: u32, waiting: u32) -> Self {
        let s = &mut self.0.semi_sync;
        s.primary_enabled = true;
        s.primary_active = clients > 0;
        s.primary_clients = clients;
        s.primary_waiting_sessions = waiting;
        self
    }

    /// A heartbeat reading taken at `taken_at` (pivot's monotonic ms): the
    /// server's clock said `server_now_us`; `rows` are (server_id, ts_us).
    pub fn heartbeat(mut self, taken_at: u64, server_now_us: i64, rows: &[(u32, i64)]) -> Self {
        self.0.heartbeat = Some(HeartbeatReading {
            taken_at: Millis(taken_at),
            server_now_us,
            rows: rows.iter().map(|&(server_id, ts_us)| HeartbeatRow { server_id, ts_us }).collect(),
            stale_after_ms: 5_000,
        });
        self
    }

    pub fn build(self) -> InstanceState {
        self.0
    }
}

/// `key` answered at `at` with `state`.
pub fn up(key_text: &str, at: u64, state: StateBuilder) -> Observation {
    Observation {
        instance: key(key_text),
        at: Millis(at),
        latency_us: 300,
        outcome: ProbeOutcome::Reachable { state: Box::new(state.build()) },
    }
}

/// `key` did not answer at `at`.
pub fn down(key_text: &str, at: u64, kind: FailureKind) -> Observation {
    Observation {
        instance: key(key_text),
        at: Millis(at),
        latency_us: 1_000,
        outcome: ProbeOutcome::Unreachable { failure: ProbeFailure { kind, message: format!("{kind:?} (fixture)") } },
    }
}
