//! Probing one server: what pivot's `Prober` reads (`InstanceState`), or how
//! the probe fails: refused by a crashed server, timed out on a hung or
//! cut-off one, or too slow.

use crate::network::Party;
use crate::replication::semi_clients;
use crate::server::Server;
use crate::world::World;
use pivot_core::gtid::MariaGtidList;
use pivot_core::observation::{
    FailureKind, GtidState, IoThread, ProbeFailure, ProbeOutcome, ReplicationFilters, ReplicationStatus, SemiSyncState,
};
use pivot_core::{GtidSet, InstanceState, Millis, Observation, ServerVersion};

fn set(list: &MariaGtidList) -> GtidSet {
    GtidSet::MariaDb(list.clone())
}

/// What the server reports now.
pub fn snapshot(w: &World, i: usize) -> InstanceState {
    let s: &Server = &w.servers[i];
    let now = w.now;
    let replication = s.channel.as_ref().map(|c| {
        let running = c.io == IoThread::Running && c.sql_running;
        ReplicationStatus {
            channel: String::new(),
            source: w.servers[c.source].key.clone(),
            source_server_id: Some(w.servers[c.source].server_id),
            io_thread: c.io,
            sql_running: c.sql_running,
            io_state: match c.io {
                IoThread::Running => "Waiting for master to send event",
                IoThread::Connecting => "Reconnecting after a failed master event read",
                IoThread::Stopped => "",
            }
            .into(),
            sql_state: if c.relay.is_empty() {
                "Slave has read all relay log; waiting for more updates".into()
            } else {
                "Reading event from the relay log".into()
            },
            io_error: c.io_error.clone(),
            sql_error: c.sql_error.clone(),
            seconds_behind: running.then(|| c.relay.front().map_or(0, |e| now.saturating_sub(e.at) / 1000)),
            sql_delay_s: 0,
            using_gtid: true,
            received: set(&c.received.to_position()),
            source_log_file: "mariadb-bin.000001".into(),
            source_log_pos: c.log_pos,
            heartbeats: Some(c.heartbeats),
            heartbeat_period_ms: Some(w.cfg.timing.heartbeat_ms),
            connect_retry_s: (w.cfg.timing.connect_retry_ms / 1000) as u32,
            filters: ReplicationFilters::default(),
        }
    });
    let connected = semi_clients(&w.servers, &w.net, i);
    let replicas: Vec<_> = (0..w.servers.len())
        .filter(|&r| r != i && crate::replication::connected_to(&w.servers, &w.net, r, i))
        .map(|r| w.servers[r].key.clone())
        .collect();
    InstanceState {
        server_id: s.server_id,
        server_uuid: None,
        version: ServerVersion::parse("10.11.19-MariaDB-log", "").expect("a MariaDB version"),
        read_only: s.read_only,
        super_read_only: None,
        log_bin: true,
        log_replica_updates: true,
        gtid: GtidState {
            executed: set(&s.executed),
            applied: set(&s.executed.to_position()),
            binlog_pos: Some(set(&s.executed.to_position())),
            replica_pos: Some(set(&s.slave_pos.to_position())),
            strict_mode: Some(true),
        },
        replication,
        semi_sync: SemiSyncState {
            available: true,
            primary_enabled: s.semi.enabled,
            primary_active: s.semi.active,
            primary_clients: connected.len() as u32,
            primary_waiting_sessions: s.pending.len() as u32,
            primary_timeout_ms: s.semi.timeout_ms,
            primary_wait_point: Some("AFTER_SYNC".into()),
            primary_wait_no_replica: Some(s.semi.wait_no_replica),
            replica_enabled: s.semi_replica,
            replica_active: s.semi_replica && s.channel.as_ref().is_some_and(|c| c.io == IoThread::Running),
        },
        registered_replicas: replicas.clone(),
        dump_thread_hosts: replicas.iter().map(|k| k.host.clone()).collect(),
        // The simulator does not model pivot's heartbeat table.
        heartbeat: None,
    }
}

/// Whether a probe of `i` by pivot gets an answer now (within `timeout_ms`).
pub fn answers(w: &World, i: usize, timeout_ms: u64) -> bool {
    w.net.connected(Party::Pivot, Party::Server(i))
        && w.servers[i].up()
        && w.net.probe_extra_ms(i, w.now) + 1 < timeout_ms
}

/// Probe `i` now: the observation (taken at the start) and when it is in.
pub fn probe(w: &World, i: usize, timeout_ms: u64) -> (u64, Observation) {
    let now = w.now;
    let s = &w.servers[i];
    let fail =
        |kind: FailureKind, message: String| ProbeOutcome::Unreachable { failure: ProbeFailure { kind, message } };
    let timeout = || fail(FailureKind::Timeout, format!("no answer within {timeout_ms} ms"));
    let reachable = w.net.connected(Party::Pivot, Party::Server(i));
    let extra = w.net.probe_extra_ms(i, now);
    let (latency, outcome) = if !reachable {
        (timeout_ms, timeout())
    } else {
        match s.liveness {
            crate::server::Liveness::Crashed => (
                1,
                fail(
                    FailureKind::Refused,
                    format!("Can't connect to server on '{}' (111 \"Connection refused\")", s.key),
                ),
            ),
            crate::server::Liveness::Hung => (timeout_ms, timeout()),
            crate::server::Liveness::Up if extra + 1 >= timeout_ms => (timeout_ms, timeout()),
            crate::server::Liveness::Up => (1 + extra, ProbeOutcome::Reachable { state: Box::new(snapshot(w, i)) }),
        }
    };
    let obs = Observation { instance: s.key.clone(), at: Millis(now), latency_us: latency * 1000, outcome };
    (latency, obs)
}
