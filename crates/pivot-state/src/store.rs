//! The state store as the rest of pivot sees it: a trait, so the embedded
//! SQLite file and (later) etcd fit the same callers.
//!
//! Calls block (disk, network): async callers run them off the runtime's
//! threads (`tokio::task::spawn_blocking`).

use crate::records::*;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("state file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no state file at {path}: nothing has been recorded yet (`pivot run` creates it)")]
    Missing { path: PathBuf },
    #[error("a recovery of cluster `{cluster}` is already running (recovery {id}, run by {owner})")]
    AlreadyRunning { cluster: String, id: RecoveryId, owner: String },
    #[error("no recovery {0}")]
    NoSuchRecovery(RecoveryId),
}

pub trait StateStore: Send + Sync {
    /// Where the state lives, for messages.
    fn path(&self) -> &Path;

    /// Whether the store is still the one opened (not deleted or replaced).
    fn check_file(&self) -> Result<(), String>;

    /// Open the store at its path again (creating it if it was deleted);
    /// what the old one held is not carried over.
    fn reopen(&self) -> Result<(), StateError>;

    // ---- recoveries: one running per cluster, owned under a lease ----------------

    /// Start a recovery, or fail with [`StateError::AlreadyRunning`].
    fn begin_recovery(&self, r: &NewRecovery) -> Result<RecoveryId, StateError>;
    fn set_plan(&self, id: RecoveryId, new_primary: &str, plan_json: &str) -> Result<(), StateError>;
    /// Take a running recovery over if its owner's lease ended at `now` (or
    /// `owner` already owns it). Compare-and-set: false if another holds it.
    fn adopt(&self, id: RecoveryId, owner: &str, now: i64, until: i64) -> Result<bool, StateError>;
    /// Extend `owner`'s lease; false if it no longer owns the recovery.
    fn renew_lease(&self, id: RecoveryId, owner: &str, until: i64) -> Result<bool, StateError>;
    /// Record that a step starts. A step restarted after a pivot restart
    /// keeps its row, with the new start and a note.
    fn step_started(&self, id: RecoveryId, seq: i64, name: &str, detail: &str, at: i64) -> Result<(), StateError>;
    fn step_finished(&self, id: RecoveryId, seq: i64, outcome: &str, message: &str, at: i64) -> Result<(), StateError>;
    /// Add a note to a running step's message (a hook's process group).
    fn step_note(&self, id: RecoveryId, seq: i64, note: &str) -> Result<(), StateError>;
    fn finish_recovery(
        &self,
        id: RecoveryId,
        status: RecoveryStatus,
        summary: &str,
        lost: &[String],
        at: i64,
    ) -> Result<(), StateError>;
    fn recovery(&self, id: RecoveryId) -> Result<RecoveryRecord, StateError>;
    fn running_recovery(&self, cluster: &str) -> Result<Option<RecoveryRecord>, StateError>;
    fn running_recoveries(&self) -> Result<Vec<RecoveryRecord>, StateError>;
    /// The newest recoveries first, of one cluster or all.
    fn recoveries(&self, cluster: Option<&str>, limit: usize) -> Result<Vec<RecoveryRecord>, StateError>;

    // ---- anti-flapping -----------------------------------------------------------

    fn block(&self, cluster: &str, recovery_id: RecoveryId, until: i64) -> Result<(), StateError>;
    fn block_of(&self, cluster: &str) -> Result<Option<Block>, StateError>;
    /// Acknowledge the last recovery: automatic recovery is allowed again.
    /// Returns the block that was lifted, if one was active.
    fn ack(&self, cluster: &str, by: &str, at: i64) -> Result<Option<Block>, StateError>;

    // ---- fencing -------------------------------------------------------------------

    fn fence_register(&self, f: &FencedInstance) -> Result<(), StateError>;
    fn fence_update(&self, cluster: &str, instance: &str, status: &str, detail: &str) -> Result<(), StateError>;
    fn fence_remove(&self, cluster: &str, instance: &str) -> Result<(), StateError>;
    fn fenced(&self, cluster: &str) -> Result<Vec<FencedInstance>, StateError>;

    // ---- epochs --------------------------------------------------------------------

    /// Store a new epoch with `primary`. For a recovery it is stored once:
    /// asked again, the same epoch comes back. `expected` (an adoption):
    /// only if the newest epoch is still that number (`None`: no epoch yet);
    /// otherwise nothing is written and `None` comes back.
    fn epoch_advance(
        &self,
        cluster: &str,
        primary: &str,
        recovery_id: Option<RecoveryId>,
        expected: Option<Option<u64>>,
        at: i64,
    ) -> Result<Option<Epoch>, StateError>;
    /// The newest epoch of `cluster`.
    fn epoch(&self, cluster: &str) -> Result<Option<Epoch>, StateError>;
    /// The epoch recovery `id` stored, if it did.
    fn epoch_of_recovery(&self, cluster: &str, id: RecoveryId) -> Result<Option<Epoch>, StateError>;

    // ---- events --------------------------------------------------------------------

    fn event(&self, cluster: &str, at: i64, level: &str, message: &str) -> Result<(), StateError>;
    fn events(&self, cluster: Option<&str>, limit: usize) -> Result<Vec<Event>, StateError>;
}
