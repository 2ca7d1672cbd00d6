//! What the state store says and how a recovery task ended: the cluster
//! machine's bookkeeping of both (fence list, running recovery, block,
//! epoch; the end of a recovery here or in another process).

use super::*;

impl ClusterMachine {
    pub(super) fn on_store(&mut self, store: StoreView, out: &mut Vec<Command>) {
        self.store_read_at = Some(self.now);
        match &store.problem {
            Some(p) => self.problem("state", p.clone(), out),
            None => {
                self.problems.remove("state");
            }
        }
        let stored: BTreeMap<InstanceKey, FenceEntry> =
            store.fenced.iter().map(|f| (f.instance.clone(), f.clone())).collect();
        if store.file_ok && store.problem.is_none() {
            self.fenced = stored;
        } else {
            // The file is gone or replaced: what it said is kept (entries only added).
            self.fenced.extend(stored);
        }
        // Every former primary is probed (kept read-only, judged); one not
        // reached since the failover is also watched by connection attempts.
        let entries: Vec<(InstanceKey, bool)> =
            self.fenced.values().map(|f| (f.instance.clone(), f.status == "pending")).collect();
        for (key, pending) in entries {
            if pending && self.fencing.insert(key.clone()) {
                out.push(Command::Log {
                    level: Level::Info,
                    text: format!("watching former primary {key}: it is made read-only the moment it answers"),
                });
                out.push(Command::WatchFormerPrimary(key.clone()));
            }
            self.offer(key, true, out);
        }
        if self.task == RecoveryTask::Idle && self.pending_resume.is_none() {
            if let Some(r) = &store.running {
                let stale_own = r.ours && self.unrecorded != Some(r.id);
                if r.owner_gone || stale_own {
                    out.push(Command::Log {
                        level: Level::Warn,
                        text: format!(
                            "recovery {} was left running by {}, which no longer runs it: resuming it once every \
                             instance is observed",
                            r.id, r.owner
                        ),
                    });
                    self.pending_resume = Some(r.id);
                }
            }
        }
        let mut store = store;
        if let (Some(new), Some(old)) = (store.block.as_mut(), self.store.block.as_ref()) {
            // A block is converted to monotonic time once, when first read: a
            // wall clock that jumps later neither shortens nor lengthens it.
            if (new.recovery_id, new.until_wall) == (old.recovery_id, old.until_wall) {
                new.until = old.until;
            }
        }
        self.epoch_seen = self.epoch_seen.max(store.epoch.as_ref().map_or(0, |e| e.number));
        // Another process's recovery ended (`pivot switchover --local`,
        // `pivot failover`): as after one of ours, the cluster is judged
        // and repaired on readings taken since, never on the ones before.
        let ended_elsewhere =
            self.store.running.as_ref().is_some_and(|r| !r.ours) && store.running.is_none() && store.problem.is_none();
        if ended_elsewhere {
            self.recovered_at = self.now;
            for key in self.view.keys() {
                out.push(Command::ProbeNow(key.clone()));
            }
        }
        self.store = store;
        self.wants_fresh_store = false;
        // A repair that waited for this read (see `repair`).
        self.repair(out);
        // What the store says may open the gate (a block acknowledged, the
        // file back, another process's recovery ended).
        self.consider(out);
    }

    pub(super) fn on_recovery_end(&mut self, end: RecoveryEnd, out: &mut Vec<Command>) {
        self.task = RecoveryTask::Idle;
        self.recovered_at = self.now;
        match end {
            RecoveryEnd::Ended { id, new_primary, parked, alert, unrecorded } => {
                if let Some(p) = &new_primary {
                    // Writes stay held until its epoch is read.
                    if self.store.epoch.as_ref().is_none_or(|e| e.primary != *p) {
                        self.awaiting_epoch = Some((p.clone(), self.epoch_seen));
                    }
                    // It leaves the fence list (its `clear_fence` step wrote
                    // that; the memory must not wait for the next read).
                    self.fenced.remove(p);
                    self.fencing.remove(p);
                }
                if new_primary.is_some() {
                    self.backoff.reset();
                } else if !parked {
                    self.backoff.aborted(self.now);
                }
                if let Some(text) = alert {
                    self.alert_once(&format!("recovery:{id}"), text, None, out);
                }
                if let Some(e) = unrecorded {
                    self.problem(
                        "unrecorded",
                        format!(
                            "the end of recovery {id} cannot be written to the state file ({e}); retrying every second"
                        ),
                        out,
                    );
                    self.unrecorded = Some(id);
                }
            }
            RecoveryEnd::HeldElsewhere => {
                self.resume_after = self.now.plus(RESUME_RETRY_MS);
                out.push(Command::Log {
                    level: Level::Info,
                    text: "another pivot process holds the running recovery (or it cannot be taken over now)".into(),
                })
            }
            RecoveryEnd::NotStarted { reason } => {
                self.resume_after = self.now.plus(RESUME_RETRY_MS);
                self.backoff.aborted(self.now);
                self.problem("start", format!("recovery not started: {reason}"), out);
            }
            RecoveryEnd::TaskFailed { reason } => {
                // Crash-only: pick the recovery up again from the state file.
                self.backoff.aborted(self.now);
                self.problem(
                    "task",
                    format!("the recovery task failed ({reason}); resuming the recovery from the state file"),
                    out,
                );
                self.store.running = None;
                self.store_read_at = None;
            }
        }
        self.last_alert = None;
        out.push(Command::ReadStore);
        // Judge the new topology on fresh readings only.
        for key in self.view.keys() {
            out.push(Command::ProbeNow(key.clone()));
        }
    }
}
