//! The embedded default: one SQLite file.

use crate::records::*;
use crate::schema::{MIGRATIONS, SCHEMA};
use crate::store::{StateError, StateStore};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// (device, inode) of the file when it was opened.
    identity: Mutex<(u64, u64)>,
}

/// Create `path` with mode 0600 if it does not exist.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

fn file_identity(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

impl SqliteStore {
    /// Open the state file, creating it (mode 0600: it holds hook output
    /// and recovery details) if it does not exist.
    pub fn open(path: &Path) -> Result<SqliteStore, StateError> {
        SqliteStore::open_with(path, true)
    }

    /// Open a state file that must exist already (for commands that only
    /// read it): a missing file is [`StateError::Missing`], nothing is created.
    pub fn open_existing(path: &Path) -> Result<SqliteStore, StateError> {
        if !path.exists() {
            return Err(StateError::Missing { path: path.to_path_buf() });
        }
        SqliteStore::open_with(path, false)
    }

    fn open_with(path: &Path, create: bool) -> Result<SqliteStore, StateError> {
        // Two processes creating the same new file at once can meet a
        // "database is locked" while switching it to WAL: try again, bounded.
        let mut attempt = 0;
        loop {
            match SqliteStore::open_once(path, create) {
                Err(StateError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. })
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 20 =>
                {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                other => return other,
            }
        }
    }

    fn open_once(path: &Path, create: bool) -> Result<SqliteStore, StateError> {
        let err = |source| StateError::Sqlite { path: path.to_path_buf(), source };
        let io = |e: std::io::Error| StateError::Io { path: path.to_path_buf(), source: e };
        if create {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            create_private(path).map_err(io)?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        for (table, column, ddl) in MIGRATIONS {
            let has: bool = conn
                .prepare(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = '{column}'"))
                .and_then(|mut s| s.exists([]))
                .map_err(err)?;
            if !has {
                conn.execute_batch(ddl).map_err(err)?;
            }
        }
        let identity = file_identity(path).map_err(io)?;
        Ok(SqliteStore { path: path.to_path_buf(), conn: Mutex::new(conn), identity: Mutex::new(identity) })
    }
}

impl SqliteStore {
    fn recoveries_where(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
        limit: usize,
    ) -> Result<Vec<RecoveryRecord>, StateError> {
        let sql = format!(
            "SELECT id, cluster, kind, status, started_at, ended_at, failed_primary, new_primary, analysis, plan, \
             lost_replicas, summary, owner, detected_at, lease_until FROM recoveries WHERE {filter} ORDER BY id DESC LIMIT {limit}"
        );
        let mut records = self.with(|c| {
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map(args, |r| {
                let lost: Option<String> = r.get(10)?;
                Ok(RecoveryRecord {
                    id: r.get(0)?,
                    cluster: r.get(1)?,
                    kind: r.get(2)?,
                    status: RecoveryStatus::parse(&r.get::<_, String>(3)?),
                    started_at: r.get(4)?,
                    ended_at: r.get(5)?,
                    failed_primary: r.get(6)?,
                    new_primary: r.get(7)?,
                    analysis: r.get(8)?,
                    plan: r.get(9)?,
                    lost_replicas: lost.and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default(),
                    summary: r.get(11)?,
                    owner: r.get(12)?,
                    detected_at: r.get(13)?,
                    lease_until: r.get(14)?,
                    steps: Vec::new(),
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
        })?;
        for rec in &mut records {
            rec.steps = self.steps(rec.id)?;
        }
        Ok(records)
    }

    fn steps(&self, id: RecoveryId) -> Result<Vec<StepRecord>, StateError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT seq, name, detail, started_at, ended_at, outcome, message FROM recovery_steps \
                 WHERE recovery_id = ?1 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![id], |r| {
                Ok(StepRecord {
                    seq: r.get(0)?,
                    name: r.get(1)?,
                    detail: r.get(2)?,
                    started_at: r.get(3)?,
                    ended_at: r.get(4)?,
                    outcome: r.get(5)?,
                    message: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|source| StateError::Sqlite { path: self.path.clone(), source })
    }
}

/// The newest epoch matching `filter`.
fn epoch_where(c: &Connection, filter: &str, p: impl rusqlite::Params) -> rusqlite::Result<Option<Epoch>> {
    c.query_row(
        &format!(
            "SELECT cluster, number, primary_instance, recovery_id, since FROM epochs WHERE {filter} \
             ORDER BY number DESC LIMIT 1"
        ),
        p,
        |r| {
            Ok(Epoch {
                cluster: r.get(0)?,
                number: r.get::<_, i64>(1)? as u64,
                primary: r.get(2)?,
                recovery_id: r.get(3)?,
                since: r.get(4)?,
            })
        },
    )
    .optional()
}

impl StateStore for SqliteStore {
    fn path(&self) -> &Path {
        &self.path
    }

    fn check_file(&self) -> Result<(), String> {
        match file_identity(&self.path) {
            Ok(id) if id == *self.identity.lock().unwrap_or_else(|p| p.into_inner()) => Ok(()),
            Ok(_) => Err(format!("state file {} was replaced while pivot runs", self.path.display())),
            Err(e) => Err(format!("state file {}: {e}", self.path.display())),
        }
    }

    fn reopen(&self) -> Result<(), StateError> {
        let fresh = SqliteStore::open(&self.path)?;
        let conn = fresh.conn.into_inner().unwrap_or_else(|p| p.into_inner());
        let identity = fresh.identity.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = conn;
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = identity;
        Ok(())
    }

    // ---- recoveries ------------------------------------------------------------

    /// Start a recovery, or fail if one of this cluster is already running.
    fn begin_recovery(&self, r: &NewRecovery) -> Result<RecoveryId, StateError> {
        let inserted = self.with(|c| {
            c.execute(
                "INSERT INTO recoveries (cluster, kind, status, started_at, detected_at, failed_primary, analysis, owner, \
                 lease_until) VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7, ?8)",
                params![r.cluster, r.kind, r.at, r.detected_at, r.failed_primary, r.analysis, r.owner, r.lease_until],
            )
            .map(|_| c.last_insert_rowid())
        });
        match inserted {
            Ok(id) => Ok(id),
            Err(StateError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. })
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                let running = self.running_recovery(&r.cluster)?;
                let (id, owner) = running.map(|x| (x.id, x.owner)).unwrap_or((0, "unknown".into()));
                Err(StateError::AlreadyRunning { cluster: r.cluster.clone(), id, owner })
            }
            Err(e) => Err(e),
        }
    }

    fn set_plan(&self, id: RecoveryId, new_primary: &str, plan_json: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE recoveries SET new_primary = ?2, plan = ?3 WHERE id = ?1",
                params![id, new_primary, plan_json],
            )
            .map(|_| ())
        })
    }

    fn adopt(&self, id: RecoveryId, owner: &str, now: i64, until: i64) -> Result<bool, StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE recoveries SET owner = ?2, lease_until = ?4 WHERE id = ?1 AND status = 'running' \
                 AND (owner = ?2 OR lease_until IS NULL OR lease_until <= ?3)",
                params![id, owner, now, until],
            )
            .map(|n| n == 1)
        })
    }

    fn renew_lease(&self, id: RecoveryId, owner: &str, until: i64) -> Result<bool, StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE recoveries SET lease_until = ?3 WHERE id = ?1 AND owner = ?2 AND status = 'running'",
                params![id, owner, until],
            )
            .map(|n| n == 1)
        })
    }

    /// Record that a step starts. A step restarted after a pivot restart
    /// keeps its row, with the new start and a note.
    fn step_started(&self, id: RecoveryId, seq: i64, name: &str, detail: &str, at: i64) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO recovery_steps (recovery_id, seq, name, detail, started_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(recovery_id, seq) DO UPDATE SET started_at = ?5, ended_at = NULL, outcome = NULL, \
                 message = 'interrupted by a pivot restart; resumed'",
                params![id, seq, name, detail, at],
            )
            .map(|_| ())
        })
    }

    fn step_finished(&self, id: RecoveryId, seq: i64, outcome: &str, message: &str, at: i64) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE recovery_steps SET ended_at = ?3, outcome = ?4, \
                 message = CASE WHEN message IS NULL OR message = '' THEN ?5 ELSE message || '; ' || ?5 END \
                 WHERE recovery_id = ?1 AND seq = ?2",
                params![id, seq, at, outcome, message],
            )
            .map(|_| ())
        })
    }

    fn step_note(&self, id: RecoveryId, seq: i64, note: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE recovery_steps SET message = CASE WHEN message IS NULL OR message = '' THEN ?3 \
                 ELSE message || '; ' || ?3 END WHERE recovery_id = ?1 AND seq = ?2",
                params![id, seq, note],
            )
            .map(|_| ())
        })
    }

    fn finish_recovery(
        &self,
        id: RecoveryId,
        status: RecoveryStatus,
        summary: &str,
        lost: &[String],
        at: i64,
    ) -> Result<(), StateError> {
        let lost = serde_json::to_string(lost).expect("strings serialize");
        self.with(|c| {
            c.execute(
                "UPDATE recoveries SET status = ?2, summary = ?3, lost_replicas = ?4, ended_at = ?5 WHERE id = ?1",
                params![id, status.as_str(), summary, lost, at],
            )
            .map(|_| ())
        })
    }

    fn recovery(&self, id: RecoveryId) -> Result<RecoveryRecord, StateError> {
        self.recoveries_where("id = ?1", params![id], 1)?.pop().ok_or(StateError::NoSuchRecovery(id))
    }

    fn running_recovery(&self, cluster: &str) -> Result<Option<RecoveryRecord>, StateError> {
        Ok(self.recoveries_where("cluster = ?1 AND status = 'running'", params![cluster], 1)?.pop())
    }

    fn running_recoveries(&self) -> Result<Vec<RecoveryRecord>, StateError> {
        self.recoveries_where("status = 'running'", params![], 1000)
    }

    /// The newest recoveries first, of one cluster or all.
    fn recoveries(&self, cluster: Option<&str>, limit: usize) -> Result<Vec<RecoveryRecord>, StateError> {
        match cluster {
            Some(c) => self.recoveries_where("cluster = ?1", params![c], limit),
            None => self.recoveries_where("1 = 1", params![], limit),
        }
    }

    // ---- anti-flapping -----------------------------------------------------------

    fn block(&self, cluster: &str, recovery_id: RecoveryId, until: i64) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO blocks (cluster, recovery_id, blocked_until) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(cluster) DO UPDATE SET recovery_id = ?2, blocked_until = ?3, acked_at = NULL, acked_by = NULL",
                params![cluster, recovery_id, until],
            )
            .map(|_| ())
        })
    }

    fn block_of(&self, cluster: &str) -> Result<Option<Block>, StateError> {
        self.with(|c| {
            c.query_row(
                "SELECT cluster, recovery_id, blocked_until, acked_at, acked_by FROM blocks WHERE cluster = ?1",
                params![cluster],
                |r| {
                    Ok(Block {
                        cluster: r.get(0)?,
                        recovery_id: r.get(1)?,
                        blocked_until: r.get(2)?,
                        acked_at: r.get(3)?,
                        acked_by: r.get(4)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Acknowledge the last recovery of `cluster`: automatic recovery is
    /// allowed again. Returns the block that was lifted, if one was active.
    fn ack(&self, cluster: &str, by: &str, at: i64) -> Result<Option<Block>, StateError> {
        let block = self.block_of(cluster)?.filter(|b| b.active(at));
        if block.is_some() {
            self.with(|c| {
                c.execute("UPDATE blocks SET acked_at = ?2, acked_by = ?3 WHERE cluster = ?1", params![cluster, at, by])
                    .map(|_| ())
            })?;
        }
        Ok(block)
    }

    // ---- fencing -------------------------------------------------------------------

    fn fence_register(&self, f: &FencedInstance) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO fenced (cluster, instance, recovery_id, since, status, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT(cluster, instance) DO UPDATE SET recovery_id = ?3, since = ?4, status = ?5, detail = ?6",
                params![f.cluster, f.instance, f.recovery_id, f.since, f.status, f.detail],
            )
            .map(|_| ())
        })
    }

    fn fence_update(&self, cluster: &str, instance: &str, status: &str, detail: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE fenced SET status = ?3, detail = ?4 WHERE cluster = ?1 AND instance = ?2",
                params![cluster, instance, status, detail],
            )
            .map(|_| ())
        })
    }

    fn fence_remove(&self, cluster: &str, instance: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute("DELETE FROM fenced WHERE cluster = ?1 AND instance = ?2", params![cluster, instance]).map(|_| ())
        })
    }

    fn fenced(&self, cluster: &str) -> Result<Vec<FencedInstance>, StateError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT cluster, instance, recovery_id, since, status, detail FROM fenced WHERE cluster = ?1 ORDER BY instance",
            )?;
            let rows = stmt.query_map(params![cluster], |r| {
                Ok(FencedInstance {
                    cluster: r.get(0)?,
                    instance: r.get(1)?,
                    recovery_id: r.get(2)?,
                    since: r.get(3)?,
                    status: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    // ---- epochs --------------------------------------------------------------------

    fn epoch_advance(
        &self,
        cluster: &str,
        primary: &str,
        recovery_id: Option<RecoveryId>,
        expected: Option<Option<u64>>,
        at: i64,
    ) -> Result<Option<Epoch>, StateError> {
        self.with(|c| {
            let tx = rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            if let Some(id) = recovery_id {
                if let Some(e) = epoch_where(&tx, "cluster = ?1 AND recovery_id = ?2", params![cluster, id])? {
                    return Ok(Some(e));
                }
            }
            let newest = epoch_where(&tx, "cluster = ?1", params![cluster])?;
            if expected.is_some_and(|want| want != newest.as_ref().map(|e| e.number)) {
                return Ok(None);
            }
            let number = newest.map_or(1, |e| e.number + 1);
            tx.execute(
                "INSERT INTO epochs (cluster, number, primary_instance, recovery_id, since) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![cluster, number as i64, primary, recovery_id, at],
            )?;
            tx.commit()?;
            Ok(Some(Epoch { cluster: cluster.into(), number, primary: primary.into(), recovery_id, since: at }))
        })
    }

    fn epoch(&self, cluster: &str) -> Result<Option<Epoch>, StateError> {
        self.with(|c| epoch_where(c, "cluster = ?1", params![cluster]))
    }

    fn epoch_of_recovery(&self, cluster: &str, id: RecoveryId) -> Result<Option<Epoch>, StateError> {
        self.with(|c| epoch_where(c, "cluster = ?1 AND recovery_id = ?2", params![cluster, id]))
    }

    // ---- events --------------------------------------------------------------------

    fn event(&self, cluster: &str, at: i64, level: &str, message: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO events (cluster, at, level, message) VALUES (?1, ?2, ?3, ?4)",
                params![cluster, at, level, message],
            )?;
            // Bounded: keep the newest 10,000 events.
            c.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) - 10000 FROM events)", [])?;
            Ok(())
        })
    }

    fn events(&self, cluster: Option<&str>, limit: usize) -> Result<Vec<Event>, StateError> {
        self.with(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT id, cluster, at, level, message FROM events WHERE (?1 IS NULL OR cluster = ?1) \
                 ORDER BY id DESC LIMIT {limit}"
            ))?;
            let rows = stmt.query_map(params![cluster], |r| {
                Ok(Event { id: r.get(0)?, cluster: r.get(1)?, at: r.get(2)?, level: r.get(3)?, message: r.get(4)? })
            })?;
            rows.collect()
        })
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
