//! The cluster machine's routes: the table every route of this process
//! follows, and the adoption of a primary no recovery put in place.

use super::*;
use crate::routes::RouteTable;

/// Verdicts under which the analysis' primary may be adopted as the
/// epoch's primary: it answers, writable, and is the only one.
const ADOPTABLE: [Code; 2] = [Code::Healthy, Code::AllReplicasNotReplicating];

impl ClusterMachine {
    /// The table the routes follow now.
    pub fn route_table(&self) -> RouteTable {
        RouteTable::derive(self.store.epoch.as_ref(), &self.view, self.holding(), self.settings.route_max_lag_s)
    }

    /// New write connections wait: a recovery runs and its promotion is not
    /// stored as an epoch yet (or was, but not read yet).
    fn holding(&self) -> bool {
        // Not read since the start or since a recovery task failed: whether
        // a recovery runs (and whether its epoch is stored) is unknown, and
        // the stored epoch may name the primary it is replacing.
        if self.store_read_at.is_none() {
            return true;
        }
        if self.awaiting_epoch.is_some() && !self.awaited_epoch_read() {
            return true;
        }
        // An adoption asked for and not read back yet: the stored epoch is
        // about to be replaced.
        if self.adoption_pending() {
            return true;
        }
        let stored = self.store.running.as_ref().filter(|r| self.unrecorded != Some(r.id)).map(|r| r.id);
        let running = match self.task {
            // Its id comes with the next store read.
            RecoveryTask::Running { id } => Some(id.or(stored)),
            RecoveryTask::Idle => self.pending_resume.or(stored).map(Some),
        };
        match running {
            None => false,
            // Its promotion is stored: the routes follow the new primary.
            Some(Some(id)) => self.store.epoch.as_ref().is_none_or(|e| e.recovery_id != Some(id)),
            Some(None) => true,
        }
    }

    /// The epoch a finished recovery's promotion waits for was read: one
    /// naming its primary, or any newer than the newest known when it ended
    /// (its own was never stored, and another took its place).
    fn awaited_epoch_read(&self) -> bool {
        let (Some((p, known)), Some(e)) = (&self.awaiting_epoch, &self.store.epoch) else { return false };
        e.primary == *p || e.number > *known
    }

    /// Hand the shell a new table when it changed; adopt a primary nobody
    /// recovered to.
    pub(super) fn route(&mut self, out: &mut Vec<Command>) {
        if self.awaited_epoch_read() {
            self.awaiting_epoch = None;
        }
        // An adoption asked for holds the routes (see `holding`): that
        // table goes out before the shell stores the new epoch, so no table
        // of this process names the replaced epoch's primary once it is not
        // the newest.
        let mut adoption = Vec::new();
        self.adopt(&mut adoption);
        // The fence list as it is now (fenced a moment ago, or read from
        // the store), not as of the last observation.
        self.view.fenced = self.fenced.keys().cloned().collect();
        let table = self.route_table();
        if self.routes.as_ref() != Some(&table) {
            self.routes = Some(table.clone());
            out.push(Command::PublishRoutes(Box::new(table)));
        }
        out.extend(adoption);
    }

    fn adopt(&mut self, out: &mut Vec<Command>) {
        if self.task != RecoveryTask::Idle
            || self.pending_resume.is_some()
            || self.store.running.is_some()
            || self.store_read_at.is_none()
            || !self.store.file_ok
            // A failed read says no recovery runs without knowing it.
            || self.store.problem.is_some()
            || !ADOPTABLE.contains(&self.analysis.code)
            // Readings from before the last recovery ended show the old
            // shape (a switchover's old primary still writable): never
            // adopt on them.
            || !self.view.observed_since(self.recovered_at)
        {
            return;
        }
        let Some(primary) = self.analysis.primary.clone() else { return };
        let writable = self.view.get(&primary).and_then(|r| r.current_state()).is_some_and(|s| s.writable());
        if !writable || self.fenced.contains_key(&primary) {
            return;
        }
        let expected = self.store.epoch.as_ref().map(|e| e.number);
        if self.store.epoch.as_ref().is_some_and(|e| e.primary == primary) {
            return;
        }
        let ask = (primary.clone(), expected);
        let again = self.adoption_asked.as_ref() == Some(&ask);
        if again && self.adoption_pending() {
            return;
        }
        // As before a recovery: another process (`pivot failover`) may have
        // started one since the last read; decide on what the store says now.
        if self.store_read_at.is_none_or(|t| self.now.since(t) > STORE_FRESH_MS) {
            if !self.wants_fresh_store {
                self.wants_fresh_store = true;
                out.push(Command::ReadStore);
            }
            return;
        }
        self.adoption_asked = Some(ask);
        self.adoption_asked_at = self.now;
        // Said when first asked, not at each retry of a write that failed.
        if !again {
            let text = match &self.store.epoch {
                None => format!("epoch 1: {primary} is the primary (the first pivot sees)"),
                Some(e) => format!(
                    "{primary} is the healthy primary but epoch {} names {}: storing a new epoch for it \
                     (promoted outside pivot?)",
                    e.number, e.primary
                ),
            };
            out.push(Command::Log { level: if expected.is_none() { Level::Info } else { Level::Warn }, text });
        }
        out.push(Command::AdoptPrimary { primary, expected });
    }

    /// An adoption was asked for less than [`ADOPTION_RETRY_MS`] ago and
    /// the store, as last read, still holds the epoch it replaces. Past
    /// that, its write failed (the shell said why): no longer held, and
    /// asked again. Time, not a store read, ends the wait: a read answered
    /// before the write was performed says nothing about it.
    fn adoption_pending(&self) -> bool {
        self.now.since(self.adoption_asked_at) < ADOPTION_RETRY_MS
            && self.adoption_asked.as_ref().is_some_and(|(primary, expected)| {
                self.store.epoch.as_ref().map(|e| e.number) == *expected
                    && self.store.epoch.as_ref().is_none_or(|e| e.primary != *primary)
            })
    }
}

/// How long an adoption holds writes waiting for its epoch to be read
/// back; then it is asked again.
const ADOPTION_RETRY_MS: u64 = 1_000;
