//! The machine's side of active/passive dual primaries: closing the ring
//! again once the cluster is a healthy active with a rejoined, read-only
//! passive (`control::ring::restore_due`), asked of the shell once at a
//! time, retried with the rejoin's backoff after a failure.

use super::*;
use crate::control::rejoin;
use crate::control::ring;

impl ClusterMachine {
    /// Called only while this process runs no recovery task.
    pub(super) fn consider_ring(&mut self, out: &mut Vec<Command>) {
        if !self.settings.dual_primary || self.ring_restoring.is_some() || !self.may_act {
            return;
        }
        // Nothing changes the shape while a recovery runs anywhere, and the
        // readings and the fence list must be newer than the last one.
        let recovering = self.pending_resume.is_some() || self.store.running.is_some() || self.recovering_elsewhere();
        let fresh =
            self.view.observed_since(self.recovered_at) && self.store_read_at.is_some_and(|t| t >= self.recovered_at);
        if recovering || !fresh || !self.rejoining.is_empty() {
            return;
        }
        if self.ring_failures.is_some_and(|(_, at)| self.now < at) {
            return;
        }
        let fenced: BTreeSet<InstanceKey> = self.fenced.keys().cloned().collect();
        let Ok(due) = ring::restore_due(&self.view, &self.analysis, &fenced) else { return };
        out.push(Command::Log {
            level: Level::Info,
            text: format!(
                "dual primary: closing the ring: the active {} is to replicate from the passive {}",
                due.active, due.passive
            ),
        });
        out.push(Command::RestoreRing { active: due.active.clone(), passive: due.passive.clone() });
        self.ring_restoring = Some(due);
    }

    pub(super) fn on_ring_restored(
        &mut self,
        active: InstanceKey,
        passive: InstanceKey,
        result: Result<String, String>,
        out: &mut Vec<Command>,
    ) {
        self.ring_restoring = None;
        match result {
            Ok(text) => {
                self.ring_failures = None;
                let text = format!("dual primary: ring closed: {active} replicates from {passive}: {text}");
                out.push(Command::Log { level: Level::Info, text: text.clone() });
                out.push(Command::Record { text });
                out.push(Command::ProbeNow(active));
            }
            Err(e) => {
                let failures = self.ring_failures.map_or(0, |(n, _)| n) + 1;
                let wait = rejoin::retry_wait_ms(failures);
                self.ring_failures = Some((failures, self.now.plus(wait)));
                self.alert_once(
                    &format!("ring:{active}:{passive}:{e}"),
                    format!(
                        "dual primary: the ring was not closed ({active} from {passive}): {e}; pivot tries again in {} s",
                        wait / 1_000
                    ),
                    None,
                    out,
                );
            }
        }
    }
}
