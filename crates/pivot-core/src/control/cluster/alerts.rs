//! What the cluster machine tells operators: control problems and alerts,
//! each raised once, and the analysis as it changes.

use super::*;

impl ClusterMachine {
    pub(super) fn problem(&mut self, key: &'static str, text: String, out: &mut Vec<Command>) {
        if self.problems.get(key) != Some(&text) {
            self.alert_once(&format!("control:{key}:{text}"), text.clone(), None, out);
            self.problems.insert(key, text);
        }
    }

    pub(super) fn alert_once(&mut self, key: &str, text: String, code: Option<Code>, out: &mut Vec<Command>) {
        if self.raised.iter().any(|k| k == key) {
            return;
        }
        if self.raised.len() == ALERTS_REMEMBERED {
            self.raised.pop_front();
        }
        self.raised.push_back(key.to_string());
        out.push(Command::Alert { text, code, primary: None });
    }

    pub(super) fn log_analysis(&mut self, out: &mut Vec<Command>) {
        let a = &self.analysis;
        if self.last_code == Some(a.code) {
            return;
        }
        // Problems present when pivot first sees the whole cluster; later ones
        // are logged as the changes that caused them.
        if matches!(self.last_code, None | Some(Code::Incomplete)) && a.code != Code::Incomplete {
            for p in &a.problems {
                out.push(Command::Log { level: Level::Warn, text: format!("{}: {}", p.instance, p.text) });
            }
        }
        self.last_code = Some(a.code);
        let level = if a.code.alerting() { Level::Warn } else { Level::Info };
        out.push(Command::Log { level, text: format!("analysis {}: {}", a.code, a.signal) });
    }
}

/// The shell's note of a problem it met performing a command (a state store
/// that cannot be written): recorded and alerted once.
impl ClusterMachine {
    pub fn shell_problem(&mut self, key: &'static str, text: String) -> Vec<Command> {
        let mut out = Vec::new();
        self.problem(key, text, &mut out);
        out
    }
}

/// Replication-health alerts (`control::health_alerts`): the machine's side.
impl ClusterMachine {
    /// The source `instance` replicates from is unreachable (its IO thread's
    /// trouble is the source's, said by the source's own alert).
    fn source_down(&self, instance: &InstanceKey) -> bool {
        let source = self.view.get(instance).and_then(|r| r.current_state()).and_then(|s| s.replication.as_ref());
        source.is_some_and(|r| self.view.get(&r.source).is_some_and(|s| !s.reachable()))
    }

    pub(super) fn health_observed(&mut self, instance: &InstanceKey, out: &mut Vec<Command>) {
        let Some(rec) = self.view.get(instance) else { return };
        // The lag the analysis and the read routes judge by: the heartbeat's
        // when measured, else the server's own figure.
        let lag = crate::heartbeat::lag_of(&self.view, self.analysis.primary.as_ref(), instance);
        let lag_s = lag.and_then(|l| l.seconds());
        let mut readings =
            super::super::health_alerts::readings(&rec.latest, lag_s, self.settings.detection.lag_threshold_s);
        // An instance that never answered since pivot watches it (a wrong or
        // decommissioned seed, hundreds of them maybe) is no alert each: it
        // shows in status and in `pivot check` (PVT-E001). Only one that
        // answered and stopped is.
        if rec.last_reachable.is_none() {
            readings.retain(|(kind, _)| *kind != super::super::health_alerts::HealthKind::Reachability);
        }
        // Whether a recovery runs was told after the last event (`health_tick`);
        // nothing before this point of an observation changes it.
        let source_down = self.source_down(instance);
        for a in self.health.observe(instance, readings, source_down, self.now) {
            out.push(Command::HealthAlert(Box::new(a)));
        }
    }

    /// After every event: the recovery state (its end starts the quiet
    /// time); on the timer, problems held back that are due now.
    pub(super) fn health_tick(&mut self, tick: bool, out: &mut Vec<Command>) {
        self.health.set_recovering(self.recovering_anywhere(), self.now);
        if !tick {
            return;
        }
        let view = &self.view;
        self.health.retain(|k| view.get(k).is_some());
        let down: BTreeSet<InstanceKey> = view.keys().filter(|k| self.source_down(k)).cloned().collect();
        for a in self.health.tick(self.now, |k| down.contains(k)) {
            out.push(Command::HealthAlert(Box::new(a)));
        }
    }
}
