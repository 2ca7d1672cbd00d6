//! The state store as pivot uses it (`pivot_state::StateStore`): recoveries
//! with their plan and step records, the anti-flapping block, the fence
//! list. It survives pivot being killed; that is what a restarted pivot
//! resumes from. Writes can be made to fail (a full disk, a lost file).
//!
//! Times in records are wall-clock milliseconds, as in the real store.

use pivot_core::control::{Ended, Status};
use pivot_core::InstanceKey;

#[derive(Clone, Debug)]
pub struct StepRecord {
    pub seq: i64,
    pub name: String,
    pub detail: String,
    pub started_wall: i64,
    pub ended_wall: Option<i64>,
    pub outcome: Option<Ended>,
    pub message: String,
}

#[derive(Clone, Debug)]
pub struct RecoveryRecord {
    pub id: i64,
    pub failed_primary: InstanceKey,
    pub automatic: bool,
    pub analysis: String,
    pub plan: Option<String>,
    pub steps: Vec<StepRecord>,
    /// `None`: running.
    pub status: Option<Status>,
    pub summary: String,
    pub started_wall: i64,
    pub ended_wall: Option<i64>,
    /// The pivot process (incarnation) that runs it.
    pub owner: u32,
}

impl RecoveryRecord {
    pub fn step(&self, seq: i64) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.seq == seq)
    }

    /// `name=outcome` of every step, in order (as the integration tests read history).
    pub fn step_outcomes(&self) -> Vec<String> {
        let mut steps: Vec<&StepRecord> = self.steps.iter().collect();
        steps.sort_by_key(|s| s.seq);
        steps.iter().map(|s| format!("{}={}", s.name, s.outcome.map_or("running", Ended::as_str))).collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceEntry {
    pub instance: InstanceKey,
    /// The recovery that registered it; `None` for an intruder of a split brain.
    pub recovery_id: Option<i64>,
    /// `pending`, `read_only` or `quarantined`.
    pub status: String,
    pub detail: String,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub recovery_id: i64,
    pub until_wall: i64,
}

#[derive(Clone, Debug, Default)]
pub struct Store {
    pub recoveries: Vec<RecoveryRecord>,
    pub fences: Vec<FenceEntry>,
    pub block: Option<Block>,
    /// Epochs stored by promotions (and adoptions), oldest first.
    pub epochs: Vec<pivot_core::routes::EpochRecord>,
    /// Every write fails before then.
    pub fail_until: u64,
    /// The next writes fail.
    pub fail_next: u32,
    pub writes_failed: u64,
}

type R<T> = Result<T, String>;

impl Store {
    fn write(&mut self, now: u64) -> R<()> {
        if now < self.fail_until || self.fail_next > 0 {
            self.fail_next = self.fail_next.saturating_sub(1);
            self.writes_failed += 1;
            return Err("disk I/O error (simulated)".into());
        }
        Ok(())
    }

    pub fn recovery(&self, id: i64) -> Option<&RecoveryRecord> {
        self.recoveries.iter().find(|r| r.id == id)
    }

    fn recovery_mut(&mut self, id: i64) -> R<&mut RecoveryRecord> {
        self.recoveries.iter_mut().find(|r| r.id == id).ok_or_else(|| format!("no recovery {id}"))
    }

    pub fn running_recovery(&self) -> Option<&RecoveryRecord> {
        self.recoveries.iter().find(|r| r.status.is_none())
    }

    pub fn last_recovery(&self) -> Option<&RecoveryRecord> {
        self.recoveries.last()
    }

    pub fn begin_recovery(
        &mut self,
        now: u64,
        failed: &InstanceKey,
        automatic: bool,
        analysis: String,
        wall: i64,
        owner: u32,
    ) -> R<i64> {
        self.write(now)?;
        if self.running_recovery().is_some() {
            return Err("UNIQUE constraint failed: one running recovery per cluster".into());
        }
        let id = self.recoveries.len() as i64 + 1;
        self.recoveries.push(RecoveryRecord {
            id,
            failed_primary: failed.clone(),
            automatic,
            analysis,
            plan: None,
            steps: Vec::new(),
            status: None,
            summary: String::new(),
            started_wall: wall,
            ended_wall: None,
            owner,
        });
        Ok(id)
    }

    pub fn set_plan(&mut self, now: u64, id: i64, json: String) -> R<()> {
        self.write(now)?;
        self.recovery_mut(id)?.plan = Some(json);
        Ok(())
    }

    /// Take a recovery over (its lease).
    pub fn adopt(&mut self, now: u64, id: i64, owner: u32) -> R<()> {
        self.write(now)?;
        self.recovery_mut(id)?.owner = owner;
        Ok(())
    }

    /// A step restarted after a pivot restart keeps its row, with the new
    /// start and a note (as the SQLite store does).
    pub fn step_started(&mut self, now: u64, id: i64, seq: i64, name: &str, detail: &str, wall: i64) -> R<()> {
        self.write(now)?;
        let r = self.recovery_mut(id)?;
        match r.steps.iter_mut().find(|s| s.seq == seq) {
            Some(s) => {
                s.started_wall = wall;
                s.ended_wall = None;
                s.outcome = None;
                s.message = "interrupted by a pivot restart; resumed".into();
            }
            None => r.steps.push(StepRecord {
                seq,
                name: name.into(),
                detail: detail.into(),
                started_wall: wall,
                ended_wall: None,
                outcome: None,
                message: String::new(),
            }),
        }
        Ok(())
    }

    pub fn step_finished(&mut self, now: u64, id: i64, seq: i64, how: Ended, message: &str, wall: i64) -> R<()> {
        self.write(now)?;
        let r = self.recovery_mut(id)?;
        if let Some(s) = r.steps.iter_mut().find(|s| s.seq == seq) {
            s.ended_wall = Some(wall);
            s.outcome = Some(how);
            s.message = if s.message.is_empty() { message.into() } else { format!("{}; {message}", s.message) };
        }
        Ok(())
    }

    pub fn finish_recovery(&mut self, now: u64, id: i64, status: Status, summary: &str, wall: i64) -> R<()> {
        self.write(now)?;
        let r = self.recovery_mut(id)?;
        r.status = Some(status);
        r.summary = summary.into();
        r.ended_wall = Some(wall);
        Ok(())
    }

    pub fn set_block(&mut self, now: u64, id: i64, until_wall: i64) -> R<()> {
        self.write(now)?;
        self.block = Some(Block { recovery_id: id, until_wall });
        Ok(())
    }

    /// The epoch of recovery `id`'s promotion: stored once, the same number
    /// when asked again (as `SqliteStore::epoch_advance`).
    pub fn epoch_advance(&mut self, now: u64, primary: &InstanceKey, id: Option<i64>, wall: i64) -> R<u64> {
        if let Some(e) = self.epochs.iter().find(|e| id.is_some() && e.recovery_id == id) {
            return Ok(e.number);
        }
        self.write(now)?;
        let number = self.epochs.last().map_or(1, |e| e.number + 1);
        self.epochs.push(pivot_core::routes::EpochRecord {
            number,
            primary: primary.clone(),
            recovery_id: id,
            since_ms: wall,
        });
        Ok(number)
    }

    /// An adoption: a new epoch only if the newest is still `expected`.
    pub fn epoch_adopt(&mut self, now: u64, primary: &InstanceKey, expected: Option<u64>, wall: i64) -> R<Option<u64>> {
        if self.epochs.last().map(|e| e.number) != expected {
            return Ok(None);
        }
        self.epoch_advance(now, primary, None, wall).map(Some)
    }

    pub fn current_epoch(&self) -> Option<&pivot_core::routes::EpochRecord> {
        self.epochs.last()
    }

    pub fn fence_register(&mut self, now: u64, instance: &InstanceKey, id: i64) -> R<()> {
        self.write(now)?;
        self.fences.retain(|f| &f.instance != instance);
        self.fences.push(FenceEntry {
            instance: instance.clone(),
            recovery_id: Some(id),
            status: "pending".into(),
            detail: format!("failed primary of recovery {id}: made read-only the moment it answers"),
        });
        Ok(())
    }

    pub fn fence_update(&mut self, now: u64, instance: &InstanceKey, status: &str, detail: &str) -> R<()> {
        self.write(now)?;
        if let Some(f) = self.fences.iter_mut().find(|f| &f.instance == instance) {
            f.status = status.into();
            f.detail = detail.into();
        }
        Ok(())
    }

    /// The monitor's record of a fence (`Monitor::record_fence`): the entry
    /// updated if it is there, added otherwise.
    pub fn fence_record(&mut self, now: u64, instance: &InstanceKey, status: &str, detail: &str) -> R<()> {
        self.write(now)?;
        match self.fences.iter_mut().find(|f| &f.instance == instance) {
            Some(f) => {
                f.status = status.into();
                f.detail = detail.into();
            }
            None => self.fences.push(FenceEntry {
                instance: instance.clone(),
                recovery_id: None,
                status: status.into(),
                detail: detail.into(),
            }),
        }
        Ok(())
    }

    pub fn fence_remove(&mut self, now: u64, instance: &InstanceKey) -> R<()> {
        self.write(now)?;
        self.fences.retain(|f| &f.instance != instance);
        Ok(())
    }
}
