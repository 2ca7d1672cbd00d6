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
