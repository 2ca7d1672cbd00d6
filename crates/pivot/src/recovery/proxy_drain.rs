//! Before a switchover makes the old primary read-only: the built-in
//! proxy's protocol-mode sessions that are in a transaction (or a command)
//! there get up to the proxy's `transaction_grace` to finish, while the
//! routes hold (parked sessions start nothing new there). A transaction
//! that changed rows could not commit once the server is read-only; after
//! this wait, the sessions are idle, parked, and move to the new primary.

use super::RecoveryEnv;
use crate::config::ProxyMode;
use pivot_core::InstanceKey;
use std::time::Duration;
use tokio::time::Instant;

/// How often the proxy's counters are read while waiting (bounded by the grace).
const POLL: Duration = Duration::from_millis(10);

/// A note for the step's record ("" without a protocol-mode proxy here).
pub async fn let_proxy_sessions_finish(env: &RecoveryEnv, instance: &InstanceKey) -> String {
    let Some(hub) = &env.routes else { return String::new() };
    let Some(grace) = env.cluster.proxy.as_ref().filter(|p| p.mode == ProxyMode::Mysql).map(|p| p.transaction_grace)
    else {
        return String::new();
    };
    let started = Instant::now();
    loop {
        let held = hub.current().write_target() != Some(instance);
        let busy = hub.proxy_busy(instance).unwrap_or(0);
        if held && busy == 0 {
            return format!(
                " (the proxy's sessions left their transactions on it within {} ms)",
                started.elapsed().as_millis()
            );
        }
        if started.elapsed() >= grace {
            return format!(
                " (after the proxy's transaction_grace of {} ms: {busy} proxy session(s) still busy on it{})",
                grace.as_millis(),
                if held { "" } else { ", routes not held yet" }
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
