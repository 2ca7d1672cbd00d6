//! Starting a planned switchover: everything is checked on the view before
//! anything changes; the plan is whole from the start (no observe step: the
//! primary is alive and hands over).

use super::*;
use crate::observation::IoThread;
use crate::plan::switchover_plan;

impl RecoveryMachine {
    /// A planned switchover from the live primary `primary` to `request.target`
    /// (or the best candidate). Refused, before anything changes, when the
    /// primary is not a healthy writable primary, when the candidate is
    /// unreachable, not replicating from it with both threads, lagging,
    /// holds errant GTIDs, or breaks a promotion rule.
    pub fn switchover(
        primary: InstanceKey,
        view: ClusterView,
        settings: FailoverSettings,
        request: FailoverRequest,
    ) -> (RecoveryMachine, Command) {
        let request = FailoverRequest { automatic: false, force: false, ..request };
        let mut m = RecoveryMachine::with_doc(
            PlanDoc::new(crate::plan::PlanKind::Switchover, primary.clone(), false),
            view,
            settings,
            request,
        );
        match m.plan_switchover() {
            Ok(doc) => {
                m.ends = vec![None; doc.steps.len()];
                m.doc = doc;
                let cmd = Command::RecordPlan(m.doc.clone());
                (m, cmd)
            }
            Err(why) => {
                m.finished = true;
                let cmd = Command::Finish(Finish {
                    status: Status::Aborted,
                    summary: format!("switchover refused: {why}; nothing was changed"),
                    new_primary: None,
                    lost: vec![],
                    block: false,
                    alert: false,
                });
                m.abandoned = Some(why);
                (m, cmd)
            }
        }
    }

    fn plan_switchover(&self) -> Result<PlanDoc, String> {
        let primary = &self.doc.failed_primary;
        let state = self.view.get(primary).and_then(|r| r.current_state());
        // The active of a dual-primary pair replicates back from its
        // passive: expected. The switchover's demotion keeps it a replica
        // of the passive (the new active), and the candidate applies
        // everything of the old active before it is promoted.
        let ring = crate::topology::Topology::derive(&self.view).ring;
        let ring_return =
            |source: &InstanceKey| ring.as_ref().is_some_and(|r| &r.active == primary && &r.passive == source);
        match state {
            None => return Err(format!("the primary {primary} does not answer: this is a failover, not a switchover")),
            Some(s) if !s.writable() => return Err(format!("{primary} is read-only: it is not the live primary")),
            Some(s)
                if s.replication
                    .as_ref()
                    .is_some_and(|r| r.io_thread != IoThread::Stopped && !ring_return(&r.source)) =>
            {
                let source = s.replication.as_ref().map(|r| r.source.to_string()).unwrap_or_default();
                return Err(format!("{primary} replicates from {source}: it is not the top primary"));
            }
            Some(_) => {}
        }
        if !self.settings.replication_credentials {
            return Err(format!(
                "no replication credentials are configured ([cluster.replication]): {primary} could not be made a \
                 replica of the new primary"
            ));
        }
        if self.request.target.as_ref() == Some(primary) {
            return Err(format!("{primary} is already the primary"));
        }
        // A former primary pivot keeps read-only is no candidate for a
        // planned switchover: it rejoins first.
        if let Some(t) = self.request.target.as_ref().filter(|t| self.view.fenced.contains(*t)) {
            return Err(format!("{t} is a former primary on the fence list: rejoin it as a replica first"));
        }
        let mut rules = self.settings.rules.clone();
        rules.never_promote.extend(self.view.fenced.iter().cloned());
        // A switchover takes no `--force`.
        let choice = self.choose_under(&rules).map_err(|e| e.replace(" (--force overrides what can be)", ""))?;
        let c = &choice.candidate;
        let repl = self
            .view
            .get(c)
            .and_then(|r| r.current_state())
            .and_then(|s| s.replication.as_ref())
            .ok_or_else(|| format!("the candidate {c} does not replicate"))?;
        if repl.io_thread != IoThread::Running || !repl.sql_running {
            return Err(format!(
                "the candidate {c} is not healthy: IO thread {:?}, SQL thread {}",
                repl.io_thread,
                if repl.sql_running { "running" } else { "stopped" }
            ));
        }
        // It catches up while the primary is read-only: no more lag than
        // catch_up_timeout allows.
        let limit = self.settings.rules.max_lag_s.min(self.settings.switchover.catch_up_ms / 1000);
        if let Some(lag) = repl.seconds_behind.filter(|l| *l > limit) {
            return Err(format!(
                "the candidate {c} lags {lag} s (at most {limit} s: catch_up_timeout and max_candidate_lag)"
            ));
        }
        let semi_sync = match self.settings.semi_sync {
            SemiSyncPolicy::On => true,
            SemiSyncPolicy::Off => false,
            SemiSyncPolicy::Auto => state.is_some_and(|s| s.semi_sync.primary_enabled),
        };
        let mut choice = choice;
        // The candidate waits for the old primary itself, read-only: no
        // catch-up from another replica is needed.
        choice.catch_up_from = None;
        Ok(switchover_plan(
            primary,
            choice,
            semi_sync,
            self.settings.hooks,
            &self.settings.routes,
            self.settings.switchover,
        ))
    }
}
