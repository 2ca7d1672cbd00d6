//! A MariaDB server, as much of it as failover needs.
//!
//! Each server keeps its binary log (every transaction it applied, in order,
//! with `log_slave_updates` on), the GTID lists MariaDB reports
//! (`gtid_binlog_state`, `gtid_slave_pos`), and, when it replicates, the
//! replication channel: IO thread, relay log (received, not yet applied), SQL
//! thread. Its primary side may run semi-sync (`AFTER_SYNC`: a commit is in
//! the binary log before it waits for an acknowledgement). The movement of
//! data between servers is in [`crate::replication`]; here are one server's
//! state and the statements pivot sends it, each with MariaDB's effect.
//!
//! GTIDs are MariaDB's `domain-server-seq`; client writes use domain 0, so
//! sequence numbers grow across failovers as with `gtid_strict_mode`.

use pivot_core::gtid::{MariaGtid, MariaGtidList};
use pivot_core::observation::{IoThread, ReplicationError};
use pivot_core::InstanceKey;
use std::collections::{HashMap, VecDeque};

/// Whether the process runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Up,
    /// `SIGSTOP`: holds its connections, answers nothing, does nothing.
    Hung,
    /// `kill -9`: nothing listens; the binary log survives on disk.
    Crashed,
}

/// One transaction in a binary log or relay log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub gtid: MariaGtid,
    /// When it was first committed (on its origin): the base of `Seconds_Behind_Master`.
    pub at: u64,
}

/// The replication channel of a replica (MariaDB's default connection).
#[derive(Clone, Debug)]
pub struct Channel {
    /// Index of the source server.
    pub source: usize,
    pub io: IoThread,
    pub io_error: Option<ReplicationError>,
    pub sql_running: bool,
    pub sql_error: Option<ReplicationError>,
    /// Received, not yet applied.
    pub relay: VecDeque<Event>,
    /// Everything received (`Gtid_IO_Pos`, kept per origin server). A
    /// (re)connection asks the source for what follows it; a `CHANGE MASTER`
    /// resets it to `gtid_slave_pos`.
    pub received: MariaGtidList,
    /// Next index of the source's binary log to read, while connected.
    pub cursor: Option<usize>,
    pub heartbeats: u64,
    pub next_heartbeat: u64,
    /// The last time anything (event or heartbeat) arrived.
    pub last_heard: u64,
    /// When a connecting IO thread tries again.
    pub retry_at: u64,
    /// Grows with every event read: the `Read_Master_Log_Pos` pivot compares.
    pub log_pos: u64,
}

impl Channel {
    fn new(source: usize, received: MariaGtidList, now: u64) -> Channel {
        Channel {
            source,
            io: IoThread::Connecting,
            io_error: None,
            sql_running: true,
            sql_error: None,
            relay: VecDeque::new(),
            received,
            cursor: None,
            heartbeats: 0,
            next_heartbeat: now,
            last_heard: now,
            retry_at: now,
            log_pos: 4,
        }
    }
}

/// The primary side of semi-synchronous replication.
#[derive(Clone, Debug, Default)]
pub struct SemiSync {
    /// `rpl_semi_sync_master_enabled`.
    pub enabled: bool,
    /// Switched on; falls off (to asynchronous) after `timeout_ms` without acknowledgement.
    pub active: bool,
    /// `rpl_semi_sync_master_timeout`; `None`: waits forever (what the sandbox sets).
    pub timeout_ms: Option<u64>,
    /// `rpl_semi_sync_master_wait_no_slave`.
    pub wait_no_replica: bool,
}

/// A client commit in the binary log, waiting for a semi-sync acknowledgement.
#[derive(Clone, Debug)]
pub struct Pending {
    pub gtid: MariaGtid,
    pub since: u64,
    /// The client attempt waiting for it (see [`crate::clients`]).
    pub attempt: u64,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub key: InstanceKey,
    pub server_id: u32,
    pub liveness: Liveness,
    pub read_only: bool,
    /// What `read_only` is after a restart (its configuration file).
    pub config_read_only: bool,
    pub binlog: Vec<Event>,
    /// GTID -> index in `binlog`.
    pub index: HashMap<MariaGtid, usize>,
    /// `gtid_binlog_state`.
    pub executed: MariaGtidList,
    /// `gtid_slave_pos`: replicated transactions applied (local writes excluded).
    pub slave_pos: MariaGtidList,
    pub channel: Option<Channel>,
    pub semi: SemiSync,
    /// `rpl_semi_sync_slave_enabled`.
    pub semi_replica: bool,
    /// Transactions the SQL thread applies per tick.
    pub apply_per_tick: usize,
    /// The SQL thread applies nothing before then (a `LOCK TABLES` held).
    pub apply_stalled_until: u64,
    pub pending: Vec<Pending>,
    /// Bumped whenever every client session ends (a crash, a fence): a
    /// connection opened before is closed by the server.
    pub sessions: u64,
}

pub fn key_of(i: usize) -> InstanceKey {
    InstanceKey::new(format!("10.0.0.{}", i + 1), 3306)
}

impl Server {
    pub fn new(i: usize) -> Server {
        Server {
            key: key_of(i),
            server_id: i as u32 + 1,
            liveness: Liveness::Up,
            read_only: true,
            config_read_only: true,
            binlog: Vec::new(),
            index: HashMap::new(),
            executed: MariaGtidList::new(),
            slave_pos: MariaGtidList::new(),
            channel: None,
            semi: SemiSync::default(),
            semi_replica: false,
            apply_per_tick: 10_000,
            apply_stalled_until: 0,
            pending: Vec::new(),
            sessions: 0,
        }
    }

    pub fn up(&self) -> bool {
        self.liveness == Liveness::Up
    }

    pub fn writable(&self) -> bool {
        !self.read_only
    }

    pub fn has(&self, gtid: &MariaGtid) -> bool {
        self.index.contains_key(gtid)
    }

    /// Received (in the relay log or applied) or applied.
    pub fn holds(&self, gtid: &MariaGtid) -> bool {
        self.has(gtid) || self.channel.as_ref().is_some_and(|c| covers(&c.received, gtid))
    }

    /// The next GTID a local write gets: domain 0, one past the highest
    /// sequence number of the domain (`gtid_strict_mode`).
    pub fn next_gtid(&self, domain: u32) -> MariaGtid {
        let seq = self.executed.domain_seq(domain).unwrap_or(0) + 1;
        MariaGtid { domain, server_id: self.server_id, seq }
    }

    /// Append a transaction to the binary log (a local commit or an applied one).
    pub fn append(&mut self, ev: Event, replicated: bool) {
        self.index.insert(ev.gtid, self.binlog.len());
        self.binlog.push(ev);
        self.executed.insert(ev.gtid);
        if replicated {
            self.slave_pos.insert(ev.gtid);
        }
    }

    // ---- statements pivot sends ------------------------------------------------

    /// `STOP SLAVE IO_THREAD`.
    pub fn stop_io(&mut self) {
        if let Some(c) = &mut self.channel {
            c.io = IoThread::Stopped;
            c.io_error = None;
            c.cursor = None;
        }
    }

    /// `STOP SLAVE`: both threads.
    pub fn stop_replica(&mut self) {
        self.stop_io();
        if let Some(c) = &mut self.channel {
            c.sql_running = false;
        }
    }

    /// `START SLAVE`: the IO thread reconnects from what it received, the SQL
    /// thread applies the relay log.
    pub fn start_replica(&mut self, now: u64) {
        if let Some(c) = &mut self.channel {
            if c.io != IoThread::Running {
                c.io = IoThread::Connecting;
                c.io_error = None;
                c.retry_at = now;
            }
            c.sql_running = true;
            c.sql_error = None;
        }
    }

    /// `START SLAVE SQL_THREAD`.
    pub fn start_sql(&mut self) {
        if let Some(c) = &mut self.channel {
            c.sql_running = true;
        }
    }

    /// `CHANGE MASTER TO master_host=..., master_use_gtid=slave_pos` then
    /// `START SLAVE`: the relay log is discarded and replication resumes from
    /// `gtid_slave_pos`.
    pub fn repoint(&mut self, source: usize, now: u64) {
        self.stop_replica();
        let mut c = Channel::new(source, self.slave_pos.clone(), now);
        if let Some(old) = &self.channel {
            c.heartbeats = old.heartbeats;
            c.log_pos = old.log_pos;
        }
        self.channel = Some(c);
    }

    /// `RESET SLAVE ALL`.
    pub fn reset_replica_all(&mut self) {
        self.channel = None;
    }

    pub fn set_semi_primary(&mut self, on: bool) {
        self.semi.enabled = on;
        self.semi.active = on;
    }

    /// `SET GLOBAL read_only=ON` and every client session ended: commits
    /// waiting for an acknowledgement fail for their clients (the
    /// transactions stay in the binary log). Returns the sessions ended.
    pub fn fence(&mut self) -> usize {
        self.read_only = true;
        let ended = self.pending.len();
        self.pending.clear();
        self.sessions += 1;
        ended
    }

    // ---- process faults --------------------------------------------------------

    pub fn crash(&mut self) {
        self.liveness = Liveness::Crashed;
        self.pending.clear();
        self.sessions += 1;
        if let Some(c) = &mut self.channel {
            c.cursor = None;
        }
    }

    /// Started again: read-only as its configuration says, both replication
    /// threads started (no `skip_slave_start`) from what it received (the
    /// relay log survives).
    pub fn restart(&mut self, now: u64) {
        self.liveness = Liveness::Up;
        self.read_only = self.config_read_only;
        self.semi.active = self.semi.enabled;
        if let Some(c) = &mut self.channel {
            c.io = IoThread::Connecting;
            c.io_error = None;
            c.cursor = None;
            c.retry_at = now;
            c.sql_running = true;
            c.sql_error = None;
        }
    }
}

/// `list` has `gtid` (same domain and origin, sequence at least as high).
pub fn covers(list: &MariaGtidList, gtid: &MariaGtid) -> bool {
    list.iter().any(|g| g.domain == gtid.domain && g.server_id == gtid.server_id && g.seq >= gtid.seq)
}

/// `pos` (one entry per domain) is at or past `target` in every domain of `target`.
pub fn reaches(pos: &MariaGtidList, target: &MariaGtidList) -> bool {
    target.domains().all(|d| pos.domain_seq(d).unwrap_or(0) >= target.domain_seq(d).unwrap_or(0))
}
