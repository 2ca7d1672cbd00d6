//! The MariaDB model against what MariaDB does, one behaviour per test: the
//! simulator's verdicts are only as good as these.

use pivot_core::gtid::MariaGtid;
use pivot_core::observation::IoThread;
use pivot_sim::config::Timing;
use pivot_sim::network::{Network, Party};
use pivot_sim::replication::{tick, Answered};
use pivot_sim::server::{Event, Liveness, Pending, SemiSync, Server};

fn gtid(server_id: u32, seq: u64) -> MariaGtid {
    MariaGtid { domain: 0, server_id, seq }
}

/// s1 primary with `n` transactions, s2 its replica (not connected yet).
fn pair(n: u64) -> Vec<Server> {
    let mut servers = vec![Server::new(0), Server::new(1)];
    for seq in 1..=n {
        servers[0].append(Event { gtid: gtid(1, seq), at: 0 }, false);
    }
    servers[0].read_only = false;
    servers[1].repoint(0, 0);
    servers
}

fn run(servers: &mut [Server], net: &Network, from: u64, to: u64) -> Vec<Answered> {
    let t = Timing::default();
    let mut out = Vec::new();
    let mut now = from;
    while now < to {
        out.extend(tick(servers, net, now, &t));
        now += t.tick_ms;
    }
    out
}

#[test]
fn a_replica_connects_receives_and_applies() {
    let mut s = pair(5);
    run(&mut s, &Network::default(), 0, 50);
    let c = s[1].channel.as_ref().expect("replicates");
    assert_eq!(c.io, IoThread::Running);
    assert!(s[1].has(&gtid(1, 5)) && c.relay.is_empty());
    assert_eq!(s[1].slave_pos.to_position().to_string(), "0-1-5");
}

#[test]
fn a_stalled_sql_thread_keeps_the_relay_log() {
    let mut s = pair(5);
    s[1].apply_stalled_until = 1_000;
    run(&mut s, &Network::default(), 0, 50);
    assert!(!s[1].has(&gtid(1, 1)) && s[1].holds(&gtid(1, 5)), "received, not applied");
    run(&mut s, &Network::default(), 1_000, 1_050);
    assert!(s[1].has(&gtid(1, 5)));
}

#[test]
fn a_position_the_source_lacks_stops_the_io_thread_with_1236() {
    let mut s = pair(5);
    s[1].append(Event { gtid: gtid(1, 9), at: 0 }, true);
    s[1].repoint(0, 0);
    run(&mut s, &Network::default(), 0, 50);
    let c = s[1].channel.as_ref().expect("replicates");
    assert_eq!(c.io, IoThread::Stopped);
    assert_eq!(c.io_error.as_ref().map(|e| e.number), Some(1236));
}

#[test]
fn a_crashed_source_is_noticed_at_once_a_hung_one_after_slave_net_timeout() {
    let net = Network::default();
    let mut s = pair(1);
    run(&mut s, &net, 0, 50);
    s[0].liveness = Liveness::Crashed;
    run(&mut s, &net, 50, 70);
    assert_eq!(s[1].channel.as_ref().map(|c| c.io), Some(IoThread::Connecting));

    let mut s = pair(1);
    run(&mut s, &net, 0, 50);
    s[0].liveness = Liveness::Hung;
    run(&mut s, &net, 50, 1_500);
    let c = s[1].channel.as_ref().expect("replicates");
    assert_eq!(c.io, IoThread::Running, "silence alone does not disconnect");
    let beats = c.heartbeats;
    run(&mut s, &net, 1_500, 2_500);
    let c = s[1].channel.as_ref().expect("replicates");
    assert_eq!((c.io, c.heartbeats), (IoThread::Connecting, beats), "after slave_net_timeout, no heartbeat meanwhile");
}

fn semi(timeout_ms: Option<u64>) -> SemiSync {
    SemiSync { enabled: true, active: true, timeout_ms, wait_no_replica: true }
}

#[test]
fn semi_sync_answers_a_commit_once_a_replica_received_it() {
    let mut s = pair(1);
    s[0].semi = semi(None);
    s[1].semi_replica = true;
    run(&mut s, &Network::default(), 0, 50);
    s[0].append(Event { gtid: gtid(1, 2), at: 50 }, false);
    s[0].pending.push(Pending { gtid: gtid(1, 2), since: 50, attempt: 7 });
    let answered = run(&mut s, &Network::default(), 50, 70);
    assert_eq!(answered.len(), 1);
    assert_eq!((answered[0].attempt, answered[0].acker), (7, Some(1)));
}

#[test]
fn semi_sync_without_a_replica_waits_forever_or_falls_off_after_its_timeout() {
    let mut net = Network::default();
    net.cut(Party::Server(0), Party::Server(1), u64::MAX);
    for (timeout, want) in [(None, 0), (Some(500), 1)] {
        let mut s = pair(1);
        s[0].semi = semi(timeout);
        s[1].semi_replica = true;
        s[0].append(Event { gtid: gtid(1, 2), at: 0 }, false);
        s[0].pending.push(Pending { gtid: gtid(1, 2), since: 0, attempt: 1 });
        let answered = run(&mut s, &net, 0, 5_000);
        assert_eq!(answered.len(), want, "timeout {timeout:?}");
        if want == 1 {
            assert_eq!(answered[0].acker, None, "answered without an acknowledgement");
            assert!(!s[0].semi.active, "semi-sync fell off");
        }
    }
}

#[test]
fn change_master_discards_the_relay_log_and_resumes_from_the_applied_position() {
    let mut s = pair(5);
    s[1].apply_stalled_until = u64::MAX;
    run(&mut s, &Network::default(), 0, 50);
    s[1].repoint(0, 50);
    let c = s[1].channel.as_ref().expect("replicates");
    assert!(c.relay.is_empty() && c.received.is_empty(), "relay log discarded, Gtid_IO_Pos = gtid_slave_pos");
}
