//! The schema, created on first open.

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS recoveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    detected_at INTEGER,
    ended_at INTEGER,
    failed_primary TEXT,
    new_primary TEXT,
    analysis TEXT NOT NULL,
    plan TEXT,
    lost_replicas TEXT,
    summary TEXT,
    owner TEXT NOT NULL,
    lease_until INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS one_running_recovery_per_cluster ON recoveries(cluster) WHERE status = 'running';
CREATE TABLE IF NOT EXISTS recovery_steps (
    recovery_id INTEGER NOT NULL REFERENCES recoveries(id),
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    detail TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    outcome TEXT,
    message TEXT,
    PRIMARY KEY (recovery_id, seq)
);
CREATE TABLE IF NOT EXISTS blocks (
    cluster TEXT PRIMARY KEY,
    recovery_id INTEGER,
    blocked_until INTEGER NOT NULL,
    acked_at INTEGER,
    acked_by TEXT
);
CREATE TABLE IF NOT EXISTS fenced (
    cluster TEXT NOT NULL,
    instance TEXT NOT NULL,
    recovery_id INTEGER,
    since INTEGER NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (cluster, instance)
);
CREATE TABLE IF NOT EXISTS epochs (
    cluster TEXT NOT NULL,
    number INTEGER NOT NULL,
    primary_instance TEXT NOT NULL,
    recovery_id INTEGER,
    since INTEGER NOT NULL,
    PRIMARY KEY (cluster, number)
);
CREATE UNIQUE INDEX IF NOT EXISTS one_epoch_per_recovery ON epochs(cluster, recovery_id) WHERE recovery_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cluster TEXT NOT NULL,
    at INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
";

/// Columns added after the first release: (table, column, DDL), applied to
/// older state files when they are opened.
pub const MIGRATIONS: &[(&str, &str, &str)] =
    &[("recoveries", "lease_until", "ALTER TABLE recoveries ADD COLUMN lease_until INTEGER;")];
