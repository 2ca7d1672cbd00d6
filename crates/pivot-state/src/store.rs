//! The SQLite-backed store.

use crate::records::*;
use crate::schema::SCHEMA;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state file {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("a recovery of cluster `{cluster}` is already running (recovery {id}, run by {owner})")]
    AlreadyRunning { cluster: String, id: RecoveryId, owner: String },
    #[error("no recovery {0}")]
    NoSuchRecovery(RecoveryId),
}

pub struct StateStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl StateStore {
    /// Open (creating if needed) the state file.
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
        let err = |source| StateError::Sqlite { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(rusqlite::Error::ToSqlConversionFailure(Box::new(e))))?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(StateStore { path: path.to_path_buf(), conn: Mutex::new(conn) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|source| StateError::Sqlite { path: self.path.clone(), source })
    }

    // ---- recoveries ------------------------------------------------------------

    /// Start a recovery, or fail if one of this cluster is already running.
    pub fn begin_recovery(&self, r: &NewRecovery) -> Result<RecoveryId, StateError> {
        let inserted = self.with(|c| {
            c.execute(
                "INSERT INTO recoveries (cluster, kind, status, started_at, detected_at, failed_primary, analysis, owner) \
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7)",
                params![r.cluster, r.kind, r.at, r.detected_at, r.failed_primary, r.analysis, r.owner],
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

    pub fn set_plan(&self, id: RecoveryId, new_primary: &str, plan_json: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE recoveries SET new_primary = ?2, plan = ?3 WHERE id = ?1",
                params![id, new_primary, plan_json],
            )
            .map(|_| ())
        })
    }

    /// Take over a running recovery (after a restart): record the new owner.
    pub fn adopt(&self, id: RecoveryId, owner: &str) -> Result<(), StateError> {
        self.with(|c| c.execute("UPDATE recoveries SET owner = ?2 WHERE id = ?1", params![id, owner]).map(|_| ()))
    }

    /// Record that a step starts. A step restarted after a pivot restart
    /// keeps its row, with the new start and a note.
    pub fn step_started(&self, id: RecoveryId, seq: i64, name: &str, detail: &str, at: i64) -> Result<(), StateError> {
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

    pub fn step_finished(
        &self,
        id: RecoveryId,
        seq: i64,
        outcome: &str,
        message: &str,
        at: i64,
    ) -> Result<(), StateError> {
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

    pub fn finish_recovery(
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

    pub fn recovery(&self, id: RecoveryId) -> Result<RecoveryRecord, StateError> {
        self.recoveries_where("id = ?1", params![id], 1)?.pop().ok_or(StateError::NoSuchRecovery(id))
    }

    pub fn running_recovery(&self, cluster: &str) -> Result<Option<RecoveryRecord>, StateError> {
        Ok(self.recoveries_where("cluster = ?1 AND status = 'running'", params![cluster], 1)?.pop())
    }

    pub fn running_recoveries(&self) -> Result<Vec<RecoveryRecord>, StateError> {
        self.recoveries_where("status = 'running'", params![], 1000)
    }

    /// The newest recoveries first, of one cluster or all.
    pub fn recoveries(&self, cluster: Option<&str>, limit: usize) -> Result<Vec<RecoveryRecord>, StateError> {
        match cluster {
            Some(c) => self.recoveries_where("cluster = ?1", params![c], limit),
            None => self.recoveries_where("1 = 1", params![], limit),
        }
    }

    fn recoveries_where(
        &self,
        filter: &str,
        args: impl rusqlite::Params,
        limit: usize,
    ) -> Result<Vec<RecoveryRecord>, StateError> {
        let sql = format!(
            "SELECT id, cluster, kind, status, started_at, ended_at, failed_primary, new_primary, analysis, plan, \
             lost_replicas, summary, owner, detected_at FROM recoveries WHERE {filter} ORDER BY id DESC LIMIT {limit}"
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

    // ---- anti-flapping -----------------------------------------------------------

    pub fn block(&self, cluster: &str, recovery_id: RecoveryId, until: i64) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO blocks (cluster, recovery_id, blocked_until) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(cluster) DO UPDATE SET recovery_id = ?2, blocked_until = ?3, acked_at = NULL, acked_by = NULL",
                params![cluster, recovery_id, until],
            )
            .map(|_| ())
        })
    }

    pub fn block_of(&self, cluster: &str) -> Result<Option<Block>, StateError> {
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
    pub fn ack(&self, cluster: &str, by: &str, at: i64) -> Result<Option<Block>, StateError> {
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

    pub fn fence_register(&self, f: &FencedInstance) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO fenced (cluster, instance, recovery_id, since, status, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT(cluster, instance) DO UPDATE SET recovery_id = ?3, since = ?4, status = ?5, detail = ?6",
                params![f.cluster, f.instance, f.recovery_id, f.since, f.status, f.detail],
            )
            .map(|_| ())
        })
    }

    pub fn fence_update(&self, cluster: &str, instance: &str, status: &str, detail: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute(
                "UPDATE fenced SET status = ?3, detail = ?4 WHERE cluster = ?1 AND instance = ?2",
                params![cluster, instance, status, detail],
            )
            .map(|_| ())
        })
    }

    pub fn fence_remove(&self, cluster: &str, instance: &str) -> Result<(), StateError> {
        self.with(|c| {
            c.execute("DELETE FROM fenced WHERE cluster = ?1 AND instance = ?2", params![cluster, instance]).map(|_| ())
        })
    }

    pub fn fenced(&self, cluster: &str) -> Result<Vec<FencedInstance>, StateError> {
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

    // ---- events --------------------------------------------------------------------

    pub fn event(&self, cluster: &str, at: i64, level: &str, message: &str) -> Result<(), StateError> {
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

    pub fn events(&self, cluster: Option<&str>, limit: usize) -> Result<Vec<Event>, StateError> {
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
mod tests {
    use super::*;

    fn recovery(cluster: &str) -> NewRecovery {
        NewRecovery {
            cluster: cluster.into(),
            kind: "automatic_failover".into(),
            failed_primary: Some("db1:3306".into()),
            analysis: "dead_primary".into(),
            owner: "test".into(),
            at: 1000,
            detected_at: Some(900),
        }
    }

    #[test]
    fn one_running_recovery_per_cluster_even_across_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let a = StateStore::open(&path).unwrap();
        let b = StateStore::open(&path).unwrap();
        let id = a.begin_recovery(&recovery("main")).unwrap();
        let err = b.begin_recovery(&recovery("main")).unwrap_err();
        assert!(matches!(err, StateError::AlreadyRunning { id: running, .. } if running == id), "{err}");
        b.begin_recovery(&recovery("other")).expect("another cluster is independent");
        a.finish_recovery(id, RecoveryStatus::Succeeded, "done", &["db3:3306".into()], 2000).unwrap();
        let again = b.begin_recovery(&recovery("main")).expect("allowed once the first ended");
        assert_ne!(again, id);
        let r = a.recovery(id).unwrap();
        assert_eq!((r.status, r.lost_replicas.clone()), (RecoveryStatus::Succeeded, vec!["db3:3306".to_string()]));
    }

    #[test]
    fn steps_record_start_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(&dir.path().join("s.db")).unwrap();
        let id = s.begin_recovery(&recovery("main")).unwrap();
        s.step_started(id, 1, "stop_io", "db2:3306", 10).unwrap();
        s.step_finished(id, 1, "ok", "", 11).unwrap();
        s.step_started(id, 2, "promote", "db2:3306", 12).unwrap();
        let r = s.running_recovery("main").unwrap().unwrap();
        assert_eq!(r.steps.len(), 2);
        assert_eq!(r.steps[0].outcome.as_deref(), Some("ok"));
        assert_eq!(r.steps[1].outcome, None, "an unfinished step stays visible as such");
    }

    #[test]
    fn blocks_and_acks() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(&dir.path().join("s.db")).unwrap();
        assert!(s.ack("main", "ops", 0).unwrap().is_none(), "nothing to acknowledge");
        s.block("main", 7, 5000).unwrap();
        assert!(s.block_of("main").unwrap().unwrap().active(4999));
        assert!(!s.block_of("main").unwrap().unwrap().active(5000));
        let lifted = s.ack("main", "ops", 100).unwrap().unwrap();
        assert_eq!(lifted.recovery_id, Some(7));
        assert!(!s.block_of("main").unwrap().unwrap().active(200));
        s.block("main", 8, 9000).unwrap();
        assert!(s.block_of("main").unwrap().unwrap().active(200), "a new recovery blocks again");
    }

    #[test]
    fn fenced_instances_and_events() {
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(&dir.path().join("s.db")).unwrap();
        let f = FencedInstance {
            cluster: "main".into(),
            instance: "db1:3306".into(),
            recovery_id: Some(1),
            since: 10,
            status: "pending".into(),
            detail: "unreachable at failover".into(),
        };
        s.fence_register(&f).unwrap();
        s.fence_update("main", "db1:3306", "read_only", "made read-only").unwrap();
        assert_eq!(s.fenced("main").unwrap()[0].status, "read_only");
        s.event("main", 5, "error", "all replicas down").unwrap();
        assert_eq!(s.events(Some("main"), 10).unwrap()[0].message, "all replicas down");
        assert!(s.events(Some("other"), 10).unwrap().is_empty());
    }
}
