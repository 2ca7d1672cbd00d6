//! Data moving between servers, one tick at a time: IO threads connect (or
//! fail to) and read their source's binary log into the relay log, SQL
//! threads apply the relay log, and semi-sync primaries release the commits
//! a replica acknowledged.
//!
//! What MariaDB does that matters here:
//! * a (re)connection asks for what follows its position; a source that
//!   lacks the position answers with fatal error 1236 (IO thread stopped);
//! * a crashed source resets the connection at once (IO thread
//!   `Connecting`); a hung or cut-off source just goes silent, and the IO
//!   thread notices only after `slave_net_timeout`;
//! * heartbeats arrive every period while the source is reachable;
//! * `AFTER_SYNC`: a commit is in the source's binary log (readable by
//!   replicas) before its client is answered; the answer waits for one
//!   semi-sync replica to have received it, or for the timeout after which
//!   semi-sync falls off.

use crate::config::Timing;
use crate::network::{Network, Party};
use crate::server::{Event, Liveness, Server};
use pivot_core::gtid::MariaGtid;
use pivot_core::observation::{IoThread, ReplicationError};

/// A client commit answered by a server.
#[derive(Clone, Debug)]
pub struct Answered {
    pub server: usize,
    pub attempt: u64,
    pub gtid: MariaGtid,
    /// The replica whose acknowledgement released it (`None`: answered
    /// without one: semi-sync off or fallen off).
    pub acker: Option<usize>,
}

fn error(number: u32, message: impl Into<String>) -> Option<ReplicationError> {
    Some(ReplicationError { number, message: message.into() })
}

/// Whether replica `r` is connected to its source and reading now.
pub fn connected_to(servers: &[Server], net: &Network, r: usize, source: usize) -> bool {
    let s = &servers[r];
    s.up()
        && s.channel.as_ref().is_some_and(|c| c.source == source && c.io == IoThread::Running && c.cursor.is_some())
        && servers[source].up()
        && net.connected(Party::Server(r), Party::Server(source))
}

/// Semi-sync replicas that could acknowledge a commit of `source` now.
pub fn semi_clients(servers: &[Server], net: &Network, source: usize) -> Vec<usize> {
    (0..servers.len())
        .filter(|&r| r != source && servers[r].semi_replica && connected_to(servers, net, r, source))
        .collect()
}

pub fn tick(servers: &mut [Server], net: &Network, now: u64, t: &Timing) -> Vec<Answered> {
    for r in 0..servers.len() {
        io_thread(servers, net, r, now, t);
    }
    for s in servers.iter_mut() {
        sql_thread(s, now);
    }
    let mut answered = Vec::new();
    for p in 0..servers.len() {
        semi_sync(servers, net, p, now, &mut answered);
    }
    answered
}

fn io_thread(servers: &mut [Server], net: &Network, r: usize, now: u64, t: &Timing) {
    if servers[r].liveness != Liveness::Up {
        return;
    }
    let Some(c) = servers[r].channel.as_ref() else { return };
    let src = c.source;
    let reachable = net.connected(Party::Server(r), Party::Server(src));
    let src_state = servers[src].liveness;
    match c.io {
        IoThread::Stopped => {}
        IoThread::Connecting => {
            if now < c.retry_at {
                return;
            }
            if src == r {
                let c = servers[r].channel.as_mut().expect("checked");
                c.io = IoThread::Stopped;
                c.io_error = error(1593, "master and slave have equal server ids");
                return;
            }
            if !reachable || src_state != Liveness::Up {
                let c = servers[r].channel.as_mut().expect("checked");
                c.io_error = if src_state == Liveness::Crashed && reachable {
                    error(2003, format!("Can't connect to server on '{}' (111 \"Connection refused\")", src + 1))
                } else {
                    error(2003, format!("Can't connect to server on '{}' (110 \"Connection timed out\")", src + 1))
                };
                c.retry_at = now + t.connect_retry_ms;
                return;
            }
            connect(servers, r, src, now);
        }
        IoThread::Running => {
            let silent = now.saturating_sub(c.last_heard);
            let c = servers[r].channel.as_mut().expect("checked");
            if src_state == Liveness::Crashed && reachable {
                c.io = IoThread::Connecting;
                c.io_error = error(2013, "Lost connection to server during query");
                c.cursor = None;
                c.retry_at = now;
                return;
            }
            if !reachable || src_state != Liveness::Up {
                if silent >= t.slave_net_timeout_ms {
                    c.io = IoThread::Connecting;
                    c.io_error = error(2013, "Lost connection to server during query (slave_net_timeout)");
                    c.cursor = None;
                    c.retry_at = now;
                }
                return;
            }
            read(servers, r, src, now, t);
        }
    }
}

/// A connection: find the replica's position in the source's binary log.
fn connect(servers: &mut [Server], r: usize, src: usize, now: u64) {
    let pos = servers[r].channel.as_ref().expect("connecting").received.to_position();
    let mut start: Option<usize> = None;
    let mut missing = None;
    for g in pos.iter() {
        match servers[src].index.get(&g) {
            Some(&i) => start = Some(start.map_or(i + 1, |s: usize| s.min(i + 1))),
            None => missing = Some(g),
        }
    }
    let c = servers[r].channel.as_mut().expect("connecting");
    if let Some(g) = missing {
        c.io = IoThread::Stopped;
        c.cursor = None;
        c.io_error = error(
            1236,
            format!(
                "Got fatal error 1236 from master when reading data from binary log: \
                 connecting slave requested to start from GTID {g}, which is not in the master's binlog"
            ),
        );
        return;
    }
    c.io = IoThread::Running;
    c.io_error = None;
    c.cursor = Some(start.unwrap_or(0));
    c.last_heard = now;
    c.next_heartbeat = now;
}

fn read(servers: &mut [Server], r: usize, src: usize, now: u64, t: &Timing) {
    let (cursor, pos) = {
        let c = servers[r].channel.as_ref().expect("reading");
        (c.cursor.expect("running"), c.received.to_position())
    };
    let new: Vec<Event> = servers[src].binlog[cursor.min(servers[src].binlog.len())..]
        .iter()
        .filter(|e| pos.domain_seq(e.gtid.domain).is_none_or(|s| e.gtid.seq > s))
        .copied()
        .collect();
    let end = servers[src].binlog.len();
    let c = servers[r].channel.as_mut().expect("reading");
    c.cursor = Some(end);
    if !new.is_empty() {
        c.last_heard = now;
    }
    for e in new {
        c.received.insert(e.gtid);
        c.log_pos += 1;
        c.relay.push_back(e);
    }
    if now >= c.next_heartbeat {
        c.heartbeats += 1;
        c.last_heard = now;
        c.next_heartbeat = now + t.heartbeat_ms;
    }
}

fn sql_thread(s: &mut Server, now: u64) {
    if s.liveness != Liveness::Up || now < s.apply_stalled_until {
        return;
    }
    let per_tick = s.apply_per_tick;
    let mut applied = Vec::new();
    if let Some(c) = s.channel.as_mut().filter(|c| c.sql_running && c.sql_error.is_none()) {
        for _ in 0..per_tick {
            let Some(e) = c.relay.pop_front() else { break };
            applied.push(e);
        }
    }
    for e in applied {
        if !s.has(&e.gtid) {
            s.append(e, true);
        }
    }
}

/// Release the commits of `p` that a connected semi-sync replica received;
/// fall off to asynchronous after the timeout (or at once with no replica and
/// `wait_no_slave` off); switch back on once a replica caught up.
fn semi_sync(servers: &mut [Server], net: &Network, p: usize, now: u64, out: &mut Vec<Answered>) {
    if servers[p].liveness != Liveness::Up {
        return;
    }
    let clients = semi_clients(servers, net, p);
    let s = &servers[p];
    if s.semi.enabled && !s.semi.active {
        let last = s.binlog.last().map(|e| e.gtid);
        if clients.iter().any(|&r| last.is_none_or(|g| servers[r].holds(&g))) {
            servers[p].semi.active = true;
        }
    }
    if servers[p].pending.is_empty() {
        return;
    }
    let pending = std::mem::take(&mut servers[p].pending);
    let mut keep = Vec::new();
    for w in pending {
        let s = &servers[p];
        if !s.semi.active {
            out.push(Answered { server: p, attempt: w.attempt, gtid: w.gtid, acker: None });
            continue;
        }
        if let Some(&r) = clients.iter().find(|&&r| servers[r].holds(&w.gtid)) {
            out.push(Answered { server: p, attempt: w.attempt, gtid: w.gtid, acker: Some(r) });
            continue;
        }
        let timed_out = s.semi.timeout_ms.is_some_and(|t| now.saturating_sub(w.since) >= t);
        let nobody = !s.semi.wait_no_replica && clients.is_empty();
        if timed_out || nobody {
            servers[p].semi.active = false;
            out.push(Answered { server: p, attempt: w.attempt, gtid: w.gtid, acker: None });
            continue;
        }
        keep.push(w);
    }
    servers[p].pending = keep;
}
