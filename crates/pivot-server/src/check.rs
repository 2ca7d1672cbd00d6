//! The readings `pivot check` adds to a probe: variables the preflight rules
//! judge, pivot's privileges, and the server's clock against pivot's.

use crate::credentials::Credentials;
use crate::errors::SessionError;
use crate::privileges::missing_privileges;
use crate::session::Session;
use pivot_core::check::{ClockReading, InstanceExtra, PrivilegeFact};
use pivot_core::InstanceKey;
use pivot_dialect::HeartbeatTable;
use std::time::Duration;

/// Read `key`'s extra facts; `wall_ms` is pivot's wall clock (unix ms);
/// `heartbeat`: the table when `[cluster.heartbeat]` is on (its grant is checked).
pub async fn read_check_extra(
    key: &InstanceKey,
    creds: &Credentials,
    timeout: Duration,
    wall_ms: fn() -> i64,
    heartbeat: Option<&HeartbeatTable>,
) -> Result<InstanceExtra, SessionError> {
    let mut s = Session::connect(key, creds, timeout).await?;
    let d = s.dialect.clone();
    let variables = d.check_variables(&s.rows(&d.check_variables_query()).await?);
    let privileges = match missing_privileges(&mut s).await {
        Ok(r) if r.is_complete() => PrivilegeFact::Complete,
        Ok(r) => PrivilegeFact::Missing { summary: format!("user {}: {r}", creds.user), grant: r.grant_statement() },
        // SHOW GRANTS for oneself needs no privilege; a failure says nothing.
        Err(_) => PrivilegeFact::Unknown,
    };
    let heartbeat_grant = match heartbeat {
        Some(t) => {
            let missing = t.missing_grants(&s.rows(&d.grants_query()).await?);
            (!missing.is_empty()).then(|| (missing.join(", "), t.grant(&creds.user)))
        }
        None => None,
    };
    let sent = wall_ms();
    let rows = s.rows(&d.clock_query()).await?;
    let received = wall_ms();
    let clock = d.clock_ms(&rows).map(|server| ClockReading::from_exchange(sent, server, received));
    Ok(InstanceExtra { variables, privileges, clock, heartbeat_grant })
}
