//! What a planned switchover does to the servers beyond a failover's
//! actions: check for long transactions, let open ones end, wait for the
//! candidate to apply the old primary's last GTID, and turn the old primary
//! into a replica of the new one.

use crate::actions::{self, end_sessions};
use crate::credentials::Credentials;
use crate::errors::SessionError;
use crate::session::Session;
use pivot_core::{GtidSet, InstanceKey};
use std::time::{Duration, Instant};

/// How often open transactions are counted during the grace period.
const GRACE_POLL: Duration = Duration::from_millis(5);

/// The oldest open transaction but ours: (connection id, seconds open).
pub async fn oldest_transaction(s: &mut Session) -> Result<Option<(u64, u64)>, SessionError> {
    let sql = s.dialect.oldest_transaction_query();
    let rows = s.rows(&sql).await?;
    let field = |r: &pivot_dialect::TextRow, name: &str| r.get(name).cloned().flatten().and_then(|v| v.parse().ok());
    Ok(rows.first().and_then(|r| Some((field(r, "id")?, field(r, "seconds")?))))
}

/// Wait up to `grace` for open transactions to end, then end every client
/// session that remains. Returns (transactions still open at the deadline,
/// sessions ended).
pub async fn end_transactions(s: &mut Session, grace: Duration) -> Result<(u64, usize), SessionError> {
    let deadline = Instant::now() + grace;
    let sql = s.dialect.open_transactions_query();
    let mut open;
    loop {
        let rows = s.rows(&sql).await?;
        open = rows.first().and_then(|r| r.get("n").cloned().flatten()).and_then(|v| v.parse().ok()).unwrap_or(0);
        if open == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(GRACE_POLL).await;
    }
    let own = s.connection_id();
    let sessions = s.dialect.application_sessions_query();
    let ended = end_sessions(s, &sessions, &[own]).await?;
    Ok((open, ended))
}

/// Wait until `candidate` applied everything `source` executed; `source`
/// must be read-only (its set is final). Returns that set.
pub async fn wait_caught_up(
    candidate: &mut Session,
    source: &mut Session,
    timeout: Duration,
) -> Result<GtidSet, SessionError> {
    let (target, writable) = actions::executed_and_writable(source).await?;
    if writable {
        return Err(SessionError::Unexpected(format!(
            "{} is writable again: its last transaction is not final",
            source.key
        )));
    }
    actions::wait_for_gtid(candidate, &target, timeout).await?;
    Ok(target)
}

/// The old primary (read-only) replicates from `to`, positioned from its own
/// binary log, its semi-sync primary side off (and its replica side on when
/// `semi_sync`: the new primary waits for acknowledgements).
pub async fn demote(
    s: &mut Session,
    to: &InstanceKey,
    semi_sync: bool,
    replication: &Credentials,
) -> Result<(), SessionError> {
    let d = s.dialect.clone();
    actions::make_read_only(s).await?;
    s.exec(&d.stop_replica()).await?;
    s.exec(&d.set_semi_sync_primary(false)).await?;
    if semi_sync {
        s.exec(&d.set_semi_sync_replica(true)).await?;
    }
    if let Some(sql) = d.position_from_own_binlog() {
        s.exec(&sql).await?;
    }
    actions::repoint(s, to, Some(replication)).await
}
