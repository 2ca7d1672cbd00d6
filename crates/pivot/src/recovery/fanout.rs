//! One operation on several instances at once, each on its own connection.

use pivot_core::InstanceKey;
use pivot_server::{Credentials, Session, SessionError};
use std::future::Future;
use std::time::Duration;

/// Run `op` on every instance in parallel; each gets a fresh session whose
/// calls are bounded by `timeout`. Returns each instance's result in order.
pub async fn on_each<F, Fut>(
    keys: &[InstanceKey],
    creds: &Credentials,
    timeout: Duration,
    op: F,
) -> Vec<(InstanceKey, Result<String, String>)>
where
    F: Fn(Session) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<String, SessionError>> + Send,
{
    let tasks: Vec<_> = keys
        .iter()
        .map(|key| {
            let (key, creds, op) = (key.clone(), creds.clone(), op.clone());
            tokio::spawn(async move {
                let result = match Session::connect(&key, &creds, timeout).await {
                    Ok(session) => op(session).await.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("cannot connect: {e}")),
                };
                (key, result)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for (key, t) in keys.iter().zip(tasks) {
        out.push(t.await.unwrap_or_else(|e| (key.clone(), Err(format!("task failed: {e}")))));
    }
    out
}

/// `a, b: error` for the failures of a fan-out.
pub fn failures(results: &[(InstanceKey, Result<String, String>)]) -> Vec<(InstanceKey, String)> {
    results.iter().filter_map(|(k, r)| r.as_ref().err().map(|e| (k.clone(), e.clone()))).collect()
}
