//! Former primaries: fenced when they answer, judged (rejoin or quarantine),
//! re-watched when they go silent; split-brain intruders; replicas that still
//! follow a fenced former primary.

use super::*;

impl ClusterMachine {
    pub(super) fn on_fence(&mut self, f: FenceResult, out: &mut Vec<Command>) {
        self.fencing.remove(&f.instance);
        if !self.fenced.contains_key(&f.instance) {
            // Taken off the list meanwhile (a switchover's old primary that
            // replicates from the new one): the result must not put it back.
            out.push(Command::Log {
                level: Level::Info,
                text: format!("{} left the fence list meanwhile: its fence result is dropped", f.instance),
            });
            return;
        }
        let report = match f.result {
            Err(e) => {
                out.push(Command::Log { level: Level::Error, text: format!("fencing {} failed: {e}", f.instance) });
                // Tried again on the next observation that finds it writable.
                return;
            }
            Ok(r) => r,
        };
        let primary = self.analysis.primary.clone().filter(|p| *p != f.instance);
        let primary_state = primary.as_ref().and_then(|p| self.view.get(p)).and_then(|r| r.last_state()).cloned();
        let follows = primary.as_ref().is_some_and(|p| self.follows(&f.instance, p));
        let v = verdict::judge_against(&report.executed, primary.as_ref().zip(primary_state.as_ref()), follows);
        let mut detail = format!(
            "made read-only in {} ms, {} client session(s) ended; {}",
            report.took_ms,
            report.sessions_ended,
            v.describe()
        );
        if let verdict::Verdict::Quarantine { primary, diverged } = &v {
            let acked = self.quarantined(&f.instance, diverged, primary, out);
            detail = format!("{detail}; {acked}");
            self.alert_once(
                &format!("quarantine:{}", f.instance),
                format!("former primary {} is quarantined: {}; {acked}", f.instance, v.describe()),
                None,
                out,
            );
        }
        let entry = FenceEntry { instance: f.instance.clone(), status: v.status().into(), detail };
        out.push(Command::Log {
            level: Level::Warn,
            text: format!("former primary {}: {}: {}", f.instance, entry.status, entry.detail),
        });
        out.push(Command::UpdateFence(entry.clone()));
        self.fenced.insert(f.instance, entry);
    }

    /// Former primaries made read-only without a verdict (no primary was
    /// known then, or the failover's own fence step did it) are judged as
    /// soon as a primary and their own GTIDs are known.
    pub(super) fn judge_fenced(&mut self, out: &mut Vec<Command>) {
        // The fence list as the last recovery left it (a switchover takes its
        // old primary off it): a verdict must not write back an entry it
        // removed.
        if !self.store_read_since_recovery() {
            return;
        }
        // Judged on readings of both taken since the last recovery ended.
        let fresh = |k: &InstanceKey| self.view.get(k).is_some_and(|r| r.latest.at >= self.recovered_at);
        let Some(primary) = self.analysis.primary.clone().filter(|p| fresh(p)) else { return };
        let Some(theirs) = self.view.get(&primary).and_then(|r| r.current_state()).cloned() else {
            return;
        };
        let unjudged: Vec<InstanceKey> = self
            .fenced
            .values()
            .filter(|f| f.status == "read_only" && f.instance != primary && !verdict::judged(&f.detail))
            .filter(|f| fresh(&f.instance))
            .map(|f| f.instance.clone())
            .collect();
        for key in unjudged {
            let Some(mine) = self.view.get(&key).and_then(|r| r.current_state()).map(|s| s.gtid.executed.clone())
            else {
                continue;
            };
            let follows = self.follows(&key, &primary);
            let v = verdict::judge_against(&mine, Some((&primary, &theirs)), follows);
            let mut entry = FenceEntry {
                instance: key.clone(),
                status: v.status().into(),
                detail: format!("read-only; {}", v.describe()),
            };
            if let verdict::Verdict::Quarantine { primary, diverged } = &v {
                let acked = self.quarantined(&key, diverged, primary, out);
                entry.detail = format!("{}; {acked}", entry.detail);
                self.alert_once(
                    &format!("quarantine:{key}"),
                    format!("former primary {key} is quarantined: {}; {acked}", v.describe()),
                    None,
                    out,
                );
            }
            out.push(Command::Log {
                level: Level::Warn,
                text: format!("former primary {key}: {}: {}", entry.status, entry.detail),
            });
            out.push(Command::UpdateFence(entry.clone()));
            self.fenced.insert(key, entry);
        }
    }

    /// Repairs of the cluster's shape: a fenced former primary found
    /// writable is fenced again, split-brain intruders are fenced, replicas
    /// still following a fenced former primary are cut off from it. Never
    /// while a recovery runs (here or in another process), and only on a
    /// store read fresh enough to know that none started since: another
    /// process's recovery (`pivot switchover --local`, `pivot failover`)
    /// passes through shapes that look like a split brain. Without such a
    /// read, one is asked for; this runs again when it comes.
    pub(super) fn repair(&mut self, out: &mut Vec<Command>) {
        if self.recovering_anywhere() {
            return;
        }
        // Readings from before the last recovery ended show its start's
        // shape (a switchover's old primary writable, the replicas on it):
        // against the new primary's fresh reading that looks like a split
        // brain, and the new primary would be fenced.
        if !self.view.observed_since(self.recovered_at) {
            return;
        }
        let writable_fenced: Vec<InstanceKey> = self
            .fenced
            .keys()
            .filter(|k| !self.fencing.contains(*k))
            .filter(|k| self.view.get(k).and_then(|r| r.current_state()).is_some_and(|s| s.writable()))
            .cloned()
            .collect();
        let split = match split_brain::resolve(&self.view, &self.analysis) {
            Some(Resolution::Fence { intruders, reason, .. }) => Some((intruders, reason)),
            _ => None,
        };
        // A split brain is confirmed on readings of every instance taken
        // after it was first seen: readings taken at different moments can
        // show two writers that never were at once (another process's
        // switchover between two of them).
        let split = match (split, self.split_seen_at) {
            (None, _) => {
                self.split_seen_at = None;
                None
            }
            (Some(s), Some(t)) if self.view.observed_since(t) => Some(s),
            (Some(_), seen) => {
                if seen.is_none() {
                    self.split_seen_at = Some(self.now.plus(1));
                    for key in self.view.keys() {
                        out.push(Command::ProbeNow(key.clone()));
                    }
                }
                None
            }
        };
        let keys: Vec<InstanceKey> = self.view.keys().cloned().collect();
        let detach: Vec<(InstanceKey, InstanceKey)> =
            keys.iter().filter_map(|k| self.fenced_source(k).map(|s| (k.clone(), s))).collect();
        self.detached.retain(|k| detach.iter().any(|(d, _)| d == k));
        // Writable replicas (not fenced: those are fenced again above; not
        // a split brain's intruder: fenced below).
        let intruders: Vec<InstanceKey> = split.as_ref().map(|(i, _)| i.clone()).unwrap_or_default();
        let writable_replicas: Vec<InstanceKey> = keys
            .iter()
            .filter(|k| !self.fenced.contains_key(*k) && !intruders.contains(*k) && !self.enforcing.contains(*k))
            .filter(|k| self.analysis.primary.as_ref() != Some(*k))
            .filter(|k| {
                self.view
                    .get(k)
                    .and_then(|r| r.current_state())
                    .is_some_and(|s| s.writable() && s.replication.is_some())
            })
            .cloned()
            .collect();
        let detach: Vec<(InstanceKey, InstanceKey)> =
            detach.into_iter().filter(|(k, _)| !self.detached.contains(k)).collect();
        if writable_fenced.is_empty() && split.is_none() && detach.is_empty() && writable_replicas.is_empty() {
            return;
        }
        let fresh = self.store_read_at.is_some_and(|t| self.now.since(t) <= STORE_FRESH_MS);
        if !fresh || !self.store_read_since_recovery() {
            if !self.wants_fresh_store {
                self.wants_fresh_store = true;
                out.push(Command::ReadStore);
            }
            return;
        }
        for key in writable_fenced {
            out.push(Command::Log {
                level: Level::Error,
                text: format!("former primary {key} is writable: making it read-only"),
            });
            self.fencing.insert(key.clone());
            out.push(Command::FenceNow(key));
        }
        if let Some((intruders, reason)) = split {
            self.split_seen_at = None;
            self.fence_intruders(intruders, &reason, out);
        }
        for (replica, source) in detach {
            self.detach_from_fenced(replica, source, out);
        }
        for key in writable_replicas {
            self.enforcing.insert(key.clone());
            let text = format!(
                "replica {key} is writable (its configuration file says read_only=OFF?): making it read-only; a \
                 write on it would be an errant transaction"
            );
            self.alert_once(&format!("writable_replica:{key}"), text, None, out);
            out.push(Command::EnforceReadOnly(key));
        }
    }

    /// `key`'s last known state replicates from `primary` (a dual-primary
    /// ring's old active, which restarts replicating from the new active).
    fn follows(&self, key: &InstanceKey, primary: &InstanceKey) -> bool {
        self.view
            .get(key)
            .and_then(|r| r.last_state())
            .and_then(|s| s.replication.as_ref())
            .is_some_and(|r| &r.source == primary)
    }

    /// Another process runs a recovery under a live lease. One whose owner
    /// is gone (and that cannot be taken over, say the state file cannot be
    /// written) does not hold back keeping former primaries read-only.
    pub(super) fn recovering_elsewhere(&self) -> bool {
        self.store.running.as_ref().is_some_and(|r| !r.owner_gone && !r.ours)
    }

    /// A recovery runs in this process or, under a live lease, in another.
    pub(super) fn recovering_anywhere(&self) -> bool {
        self.task != RecoveryTask::Idle || self.recovering_elsewhere()
    }

    /// The store was read after the last recovery ended (its fence list
    /// and epoch are the recovery's result, not what was there before).
    fn store_read_since_recovery(&self) -> bool {
        self.store_read_at.is_some_and(|t| t >= self.recovered_at)
    }

    /// The fenced former primary `key` still receives from, if any.
    fn fenced_source(&self, key: &InstanceKey) -> Option<InstanceKey> {
        let state = self.view.get(key).and_then(|r| r.current_state())?;
        let source = state
            .replication
            .as_ref()
            .filter(|r| r.io_thread != crate::observation::IoThread::Stopped)
            .map(|r| r.source.clone())?;
        (self.fenced.contains_key(&source) && self.analysis.primary.as_ref() != Some(&source)).then_some(source)
    }

    /// A replica lost at a failover that comes back still replicating from
    /// the fenced former primary is cut off from it (IO thread stopped) and
    /// reported: it must not acknowledge that server's writes.
    fn detach_from_fenced(&mut self, observed: InstanceKey, source: InstanceKey, out: &mut Vec<Command>) {
        if !self.detached.insert(observed.clone()) {
            return;
        }
        let text = format!(
            "replica {observed} still replicates from the fenced former primary {source}: its IO thread is stopped; \
             repoint it to {} (or rebuild it)",
            self.analysis.primary.as_ref().map_or("the primary".to_string(), ToString::to_string)
        );
        self.alert_once(&format!("detached:{observed}:{source}"), text, None, out);
        out.push(Command::DetachReplica(observed.clone()));
    }

    pub(super) fn fence_intruders(&mut self, intruders: Vec<InstanceKey>, reason: &str, out: &mut Vec<Command>) {
        for key in intruders {
            if !self.fencing.insert(key.clone()) {
                continue;
            }
            let entry = FenceEntry { instance: key.clone(), status: "pending".into(), detail: reason.to_string() };
            out.push(Command::RecordFence(entry.clone()));
            self.fenced.insert(key.clone(), entry);
            self.alert_once(&format!("split_brain:{key}"), reason.to_string(), Some(Code::SplitBrain), out);
            out.push(Command::FenceNow(key));
        }
    }
}
