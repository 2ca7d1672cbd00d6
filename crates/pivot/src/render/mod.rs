//! Presenting clusters: the snapshot model shared by the CLI and the API, and
//! its text form.

mod snapshot;
mod tree;

pub use snapshot::{snapshot, ClusterSnapshot, FormerPrimary, InstanceSnapshot, Opinion, RecoveryState, Role};
pub use tree::cluster_text;

/// A unix-ms time as local-independent text (UTC, second precision).
pub fn time_text(unix_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
