//! The replication changes a recovery is made of. Each one is safe to run
//! again: it checks or converges rather than assuming the state it left.

use crate::credentials::Credentials;
use crate::errors::SessionError;
use crate::session::Session;
use pivot_core::observation::{IoThread, ReplicationStatus};
use pivot_core::{GtidSet, InstanceKey};
use pivot_dialect::{ChangeSource, ProbeRows, Sql};
use std::time::{Duration, Instant};

/// The instance's current replication status (first channel), if it replicates.
pub async fn replication_status(s: &mut Session) -> Result<Option<ReplicationStatus>, SessionError> {
    let d = s.dialect.clone();
    let variables = s.rows(&d.variables_query()).await?.into_iter().next().unwrap_or_default();
    let replica_status = s.rows(&d.replica_status_query()).await?;
    let rows = ProbeRows { variables, replica_status, ..ProbeRows::default() };
    let state = rows.into_state().map_err(|e| SessionError::Unexpected(e.to_string()))?;
    Ok(state.replication)
}

/// The GTIDs this instance has executed (`gtid_binlog_state` / `gtid_executed`)
/// and whether it is writable.
pub async fn executed_and_writable(s: &mut Session) -> Result<(GtidSet, bool), SessionError> {
    let d = s.dialect.clone();
    let variables = s.rows(&d.variables_query()).await?.into_iter().next().unwrap_or_default();
    let state = ProbeRows { variables, ..ProbeRows::default() }
        .into_state()
        .map_err(|e| SessionError::Unexpected(e.to_string()))?;
    Ok((state.gtid.executed.clone(), state.writable()))
}

/// Stop the IO thread so nothing more arrives from the source.
///
/// A `STOP` alone waits until an IO thread blocked on a hung source gives up
/// (`slave_net_timeout`). Ending the IO thread's connection first unblocks it;
/// after a short pause (the thread must reach its reconnect wait, which a
/// `STOP` interrupts; measured: without the pause the `STOP` often still
/// waits the full 2 s round) the `STOP` returns within milliseconds.
pub async fn stop_io_thread(s: &mut Session) -> Result<(), SessionError> {
    let d = s.dialect.clone();
    // Only a thread connected and reading can be stuck on a hung source; one
    // that is (re)connecting is stopped by STOP at once.
    let reading: Vec<u64> = s
        .rows(&d.io_thread_ids_query())
        .await?
        .iter()
        .filter(|r| r.get("state").cloned().flatten().is_some_and(|st| d.io_thread_reading(&st)))
        .filter_map(|r| r.get("id").cloned().flatten()?.parse().ok())
        .collect();
    for id in &reading {
        kill_tolerant(s, *id).await?;
    }
    if !reading.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.exec(&d.stop_replica_io()).await
}

/// A failover's first step on each replica: as [`stop_io_thread`], but a
/// SQL thread stopped without an error is started first, while the IO
/// thread still runs. MariaDB in GTID mode discards the relay log when a
/// replica whose threads are both stopped is started again (it refetches
/// from `gtid_slave_pos`): a candidate left with a stopped SQL thread and a
/// stopped IO thread would lose what it received from a dead primary (found
/// by the dual-primary chaos test: a passive with a relay-log backlog).
pub async fn stop_io_thread_keep_applying(s: &mut Session) -> Result<(), SessionError> {
    if let Some(r) = replication_status(s).await? {
        if !r.sql_running && r.sql_error.is_none() && r.io_thread != IoThread::Stopped {
            let sql = s.dialect.start_replica_sql();
            s.exec(&sql).await?;
        }
    }
    stop_io_thread(s).await
}

/// Run `sql` on `s`; every 20 ms while it waits, end every other client
/// session from a second connection (opened on first need). Bounded by `s`'s
/// timeout. Returns how many sessions were ended.
async fn exec_ending_sessions(s: &mut Session, creds: &Credentials, sql: &Sql) -> Result<usize, SessionError> {
    let limit = s.timeout();
    let deadline = Instant::now() + limit;
    let (key, own_id) = (s.key.clone(), s.connection_id());
    let mut helper: Option<Session> = None;
    let mut ended = 0;
    let statement = s.exec(sql);
    tokio::pin!(statement);
    loop {
        tokio::select! {
            done = &mut statement => { done?; return Ok(ended); }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if Instant::now() > deadline {
                    return Err(SessionError::Timeout(limit.as_millis() as u64));
                }
                if helper.is_none() {
                    helper = Some(Session::connect(&key, creds, limit).await?);
                }
                let h = helper.as_mut().expect("just connected");
                let helper_id = h.connection_id();
                ended += end_client_sessions(h, &[own_id, helper_id]).await?;
            }
        }
    }
}

async fn ids(s: &mut Session, sql: &Sql) -> Result<Vec<u64>, SessionError> {
    Ok(s.rows(sql)
        .await?
        .iter()
        .filter_map(|r| r.get("id").cloned().flatten())
        .filter_map(|v| v.parse().ok())
        .collect())
}

/// `KILL CONNECTION id`, ignoring a connection that ended meanwhile (1094).
async fn kill_tolerant(s: &mut Session, id: u64) -> Result<bool, SessionError> {
    let sql = s.dialect.kill_connection(id);
    match s.exec(&sql).await {
        Ok(()) => Ok(true),
        Err(e) if e.server_code() == Some(1094) => Ok(false),
        Err(e) => Err(e),
    }
}

pub async fn start_replica(s: &mut Session) -> Result<(), SessionError> {
    let sql = s.dialect.start_replica();
    s.exec(&sql).await
}

/// Wait until everything the replica received is applied. Starts a SQL thread
/// that was stopped without an error; fails if it stopped with one.
/// Returns what was waited for.
pub async fn wait_relay_applied(s: &mut Session, timeout: Duration) -> Result<GtidSet, SessionError> {
    let repl = replication_status(s)
        .await?
        .ok_or_else(|| SessionError::Unexpected(format!("{} does not replicate: no relay log to apply", s.key)))?;
    if let Some(e) = &repl.sql_error {
        return Err(SessionError::Unexpected(format!(
            "SQL thread of {} stopped with error {}: {}; its relay log cannot be applied",
            s.key, e.number, e.message
        )));
    }
    if !repl.sql_running {
        if repl.io_thread == IoThread::Stopped && matches!(repl.received, GtidSet::MariaDb(_)) {
            // Both threads stopped: MariaDB (GTID mode) would discard the
            // relay log at the START. Nothing lost if it is all applied.
            let (executed, _) = executed_and_writable(s).await?;
            if executed.contains(&repl.received) {
                return Ok(repl.received);
            }
            return Err(SessionError::Unexpected(format!(
                "both replication threads of {} are stopped with events received and not applied ({} received, {} \
                 executed): starting its SQL thread now would make MariaDB discard its relay log (GTID mode)",
                s.key, repl.received, executed
            )));
        }
        let sql = s.dialect.start_replica_sql();
        s.exec(&sql).await?;
    }
    wait_for_gtid(s, &repl.received, timeout).await?;
    Ok(repl.received)
}

/// Block until the instance has applied `target`, at most `timeout`.
pub async fn wait_for_gtid(s: &mut Session, target: &GtidSet, timeout: Duration) -> Result<(), SessionError> {
    if target.is_empty() {
        return Ok(());
    }
    let sql = s.dialect.wait_for_gtid(target, timeout.as_secs_f64());
    // The statement itself waits up to `timeout`; give the round trip slack.
    let rows = s.rows_within(&sql, timeout + Duration::from_secs(2)).await?;
    let result = rows
        .first()
        .and_then(|r| r.get("result").cloned().flatten())
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| SessionError::Unexpected("GTID wait returned no result".into()))?;
    if s.dialect.wait_succeeded(result) {
        Ok(())
    } else {
        Err(SessionError::Unexpected(format!("{} did not apply {target} within {} ms", s.key, timeout.as_millis())))
    }
}

/// Replicate from `from` until `until` is applied, then stop replication.
/// Used so a candidate first catches up from a replica that received more.
pub async fn catch_up(
    s: &mut Session,
    from: &InstanceKey,
    until: &GtidSet,
    timeout: Duration,
) -> Result<(), SessionError> {
    let d = s.dialect.clone();
    s.exec(&d.stop_replica()).await?;
    s.exec(&d.change_source(&ChangeSource { source: Some(from.clone()), ..ChangeSource::default() })).await?;
    s.exec(&d.start_replica()).await?;
    let waited = wait_for_gtid(s, until, timeout).await;
    s.exec(&d.stop_replica()).await?;
    waited
}

/// Ready a read-only candidate to serve replicas: replication stopped, the
/// semi-sync primary side on.
pub async fn prepare_candidate(s: &mut Session) -> Result<(), SessionError> {
    let d = s.dialect.clone();
    s.exec(&d.stop_replica()).await?;
    s.exec(&d.set_semi_sync_primary(true)).await
}

/// Make the instance the primary: no replication, semi-sync primary side on
/// when asked, writable last.
pub async fn promote(s: &mut Session, semi_sync: bool) -> Result<(), SessionError> {
    let d = s.dialect.clone();
    s.exec(&d.stop_replica()).await?;
    s.exec(&d.reset_replica_all()).await?;
    if semi_sync {
        s.exec(&d.set_semi_sync_primary(true)).await?;
    }
    for sql in d.set_writable() {
        s.exec(&sql).await?;
    }
    Ok(())
}

/// Make the instance writable (undo of a fence, when a failover is abandoned).
pub async fn make_writable(s: &mut Session) -> Result<(), SessionError> {
    let d = s.dialect.clone();
    for sql in d.set_writable() {
        s.exec(&sql).await?;
    }
    Ok(())
}

/// Make the instance read-only, without ending sessions (an instance with no
/// clients, such as a candidate whose promotion is undone).
pub async fn make_read_only(s: &mut Session) -> Result<(), SessionError> {
    let d = s.dialect.clone();
    for sql in d.set_read_only() {
        s.exec(&sql).await?;
    }
    Ok(())
}

/// Point a replica at a new source with GTID auto-positioning and start it.
/// `replication`: the account to replicate with (needed by an instance whose
/// replication was reset, such as a candidate whose promotion is undone);
/// `None` keeps the one configured on the instance.
pub async fn repoint(s: &mut Session, to: &InstanceKey, replication: Option<&Credentials>) -> Result<(), SessionError> {
    let d = s.dialect.clone();
    s.exec(&d.stop_replica()).await?;
    let change = ChangeSource {
        source: Some(to.clone()),
        user: replication.map(|c| c.user.clone()),
        password: replication.map(|c| c.password.expose().to_string()),
        ..ChangeSource::default()
    };
    s.exec(&d.change_source(&change)).await?;
    s.exec(&d.start_replica()).await
}

/// Make a read-only former primary a replica of `to`, resuming from exactly
/// `position` (what it holds, judged contained in `to`'s set), with `account`
/// as the replication account when given (else the one it has). Nothing here
/// changes `read_only`.
///
/// Why the position is set explicitly: a former primary's `gtid_slave_pos`
/// is stale (where it stood when it last replicated, long before it wrote
/// its own transactions), so `MASTER_USE_GTID=slave_pos` alone would ask for
/// transactions it already holds; `current_pos` would take its binlog
/// position, but also silently any transaction written locally since the
/// check. Setting `gtid_slave_pos` to the position just judged, then
/// `slave_pos`, resumes exactly after what was judged, and nothing else.
pub async fn rejoin_replica(
    s: &mut Session,
    to: &InstanceKey,
    position: &GtidSet,
    account: Option<&Credentials>,
) -> Result<(), SessionError> {
    let d = s.dialect.clone();
    s.exec(&d.stop_replica()).await?;
    if let Some(sql) = d.set_replica_position(position) {
        s.exec(&sql).await?;
    }
    repoint(s, to, account).await
}

/// Point a writable instance (the active of a dual-primary ring) at `to`
/// without starting replication, resuming after exactly what its own binary
/// log holds: `gtid_slave_pos` is set from `gtid_binlog_pos` by the server
/// itself, so no write can fall between reading and setting it (one that
/// commits during the statement makes it fail with 1947: tried again, at
/// most 5 times). Returns the position set, for the caller to make sure `to`
/// holds it before [`start_replica`] (a source asked for a GTID it does not
/// have yet stops the IO thread with error 1236). `None` on MySQL, which
/// positions by the GTID set itself.
pub async fn point_after_own_binlog(
    s: &mut Session,
    to: &InstanceKey,
    account: &Credentials,
) -> Result<Option<GtidSet>, SessionError> {
    let d = s.dialect.clone();
    s.exec(&d.stop_replica()).await?;
    let change = ChangeSource {
        source: Some(to.clone()),
        user: Some(account.user.clone()),
        password: Some(account.password.expose().to_string()),
        ..ChangeSource::default()
    };
    s.exec(&d.change_source(&change)).await?;
    let Some(set) = d.position_from_own_binlog() else { return Ok(None) };
    let mut tries = 0;
    loop {
        match s.exec(&set).await {
            Ok(()) => break,
            Err(e) if e.server_code() == Some(1947) && tries < 5 => tries += 1,
            Err(e) => return Err(e),
        }
    }
    let variables = s.rows(&d.variables_query()).await?.into_iter().next().unwrap_or_default();
    let state = ProbeRows { variables, ..ProbeRows::default() }
        .into_state()
        .map_err(|e| SessionError::Unexpected(e.to_string()))?;
    Ok(state.gtid.replica_pos)
}

/// The instance's binary log files, oldest first.
pub async fn binary_logs(s: &mut Session) -> Result<Vec<String>, SessionError> {
    let sql = s.dialect.binary_logs_query();
    Ok(s.rows(&sql).await?.iter().filter_map(|r| r.get("Log_name").cloned().flatten()).collect())
}

/// Wait until the replica replicates from `source` with both threads running.
pub async fn confirm_replicating(s: &mut Session, source: &InstanceKey, timeout: Duration) -> Result<(), SessionError> {
    let start = Instant::now();
    let mut last = String::from("no replication status");
    while start.elapsed() < timeout {
        if let Some(r) = replication_status(s).await? {
            if &r.source == source && r.io_thread == IoThread::Running && r.sql_running {
                return Ok(());
            }
            last = format!(
                "source {}, IO thread {:?}, SQL thread {}{}",
                r.source,
                r.io_thread,
                if r.sql_running { "running" } else { "stopped" },
                r.io_error.or(r.sql_error).map(|e| format!(", error {}: {}", e.number, e.message)).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(SessionError::Unexpected(format!(
        "{} does not replicate from {source} after {} ms: {last}",
        s.key,
        timeout.as_millis()
    )))
}

/// Make the instance read-only and end its client sessions. Returns how many
/// sessions were ended.
///
/// `SET GLOBAL read_only` waits for commits in progress, and a commit waiting
/// for a semi-sync acknowledgement that will never come would make it wait
/// forever. So the statement is sent first (from then on, new writes queue
/// behind it and then fail), and a second connection ends every client
/// session meanwhile, which releases the waiting commits without
/// acknowledging them to their clients.
pub async fn fence(s: &mut Session, creds: &Credentials) -> Result<usize, SessionError> {
    let d = s.dialect.clone();
    let mut ended = 0;
    for sql in d.set_read_only() {
        ended += exec_ending_sessions(s, creds, &sql).await?;
    }
    // Whatever connected meanwhile is ended too.
    let own = s.connection_id();
    ended += end_client_sessions(s, &[own]).await?;
    Ok(ended)
}

async fn end_client_sessions(s: &mut Session, keep: &[Option<u32>]) -> Result<usize, SessionError> {
    let sql = s.dialect.client_sessions_query();
    end_sessions(s, &sql, keep).await
}

/// End every session `sessions` lists (an `id` column) but `keep`.
pub(crate) async fn end_sessions(s: &mut Session, sessions: &Sql, keep: &[Option<u32>]) -> Result<usize, SessionError> {
    let mut killed = 0;
    for id in ids(s, sessions).await? {
        if keep.iter().flatten().any(|k| u64::from(*k) == id) {
            continue;
        }
        if kill_tolerant(s, id).await? {
            killed += 1;
        }
    }
    Ok(killed)
}
