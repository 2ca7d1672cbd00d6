//! Durable state in one SQLite file.
//!
//! * recoveries and their steps: every step is written before it runs and
//!   again when it ends, so a restarted pivot knows exactly where it stopped;
//! * one running recovery per cluster, enforced by a unique index, so two
//!   processes (the daemon and a `pivot failover` in a shell) cannot both act;
//! * blocks (anti-flapping) and operator acknowledgements;
//! * fenced former primaries, which must be made read-only whenever they reappear;
//! * alerts and other events, for `pivot history`.
//!
//! [`StateStore`] is the interface; [`SqliteStore`] the embedded default. The
//! file is created with mode 0600 (SQLite gives its WAL and shared-memory
//! files the same mode). Ownership of a running recovery is a lease with an
//! expiry the owner renews, not a process id.
//!
//! The file is opened in WAL mode so the CLI can read while the daemon writes.
//! `synchronous=NORMAL`: a killed pivot loses nothing; a power cut may lose
//! the last writes, which the resume logic tolerates because it re-reads the
//! servers' real state before acting.

mod records;
mod schema;
mod sqlite;
mod store;

pub use records::*;
pub use sqlite::SqliteStore;
pub use store::{StateError, StateStore};

use std::path::Path;
use std::sync::Arc;

/// Open (creating if needed) the embedded SQLite store at `path`.
pub fn open(path: &Path) -> Result<Arc<dyn StateStore>, StateError> {
    Ok(Arc::new(SqliteStore::open(path)?))
}

/// Open an existing store for reading; never creates one.
pub fn open_existing(path: &Path) -> Result<Arc<dyn StateStore>, StateError> {
    Ok(Arc::new(SqliteStore::open_existing(path)?))
}
