//! The readings `pivot check` adds to a probe: variables the preflight rules
//! judge, pivot's privileges, and the server's clock against pivot's.

use crate::credentials::Credentials;
use crate::errors::SessionError;
use crate::privileges::missing_privileges;
use crate::session::Session;
use pivot_core::check::{ClockReading, InstanceExtra, PrivilegeFact};
use pivot_core::InstanceKey;
use std::time::Duration;

/// Read `key`'s extra facts; `wall_ms` is pivot's wall clock (unix ms).
pub async fn read_check_extra(
    key: &InstanceKey,
    creds: &Credentials,
    timeout: Duration,
    wall_ms: fn() -> i64,
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
    let sent = wall_ms();
    let rows = s.rows(&d.clock_query()).await?;
    let received = wall_ms();
    let clock = d.clock_ms(&rows).map(|server| ClockReading::from_exchange(sent, server, received));
    Ok(InstanceExtra { variables, privileges, clock })
}
