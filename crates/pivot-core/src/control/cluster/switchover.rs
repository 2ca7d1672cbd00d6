//! The gate for a planned switchover: the same one a failover passes (no
//! recovery running here or elsewhere, the store readable, this process may
//! act, every instance observed since the last recovery), plus a healthy
//! cluster. What the switchover itself checks (the candidate, long
//! transactions) is the recovery machine's.

use super::*;

impl ClusterMachine {
    pub(super) fn on_switchover_request(&mut self, request: u64, to: Option<InstanceKey>, out: &mut Vec<Command>) {
        match self.switchover_refusal() {
            Some(reason) => {
                out.push(Command::Log { level: Level::Warn, text: format!("switchover refused: {reason}") });
                out.push(Command::RefuseSwitchover { request, reason });
            }
            None => {
                let primary = self.analysis.primary.clone().expect("a healthy cluster has a primary");
                self.task = RecoveryTask::Running { id: None };
                out.push(Command::StartSwitchover { request, primary, to, view: Box::new(self.view.clone()) });
            }
        }
    }

    fn switchover_refusal(&self) -> Option<String> {
        let gate = self.gate();
        if gate.running {
            let id = self.running_recovery().map(|id| format!(" ({id})")).unwrap_or_default();
            return Some(format!("a recovery{id} of this cluster is running; see `pivot history`"));
        }
        if !self.store.file_ok || self.store.problem.is_some() {
            let why = self.store.problem.clone().unwrap_or_else(|| "the state file is gone".into());
            return Some(format!("the state file is not usable: {why}"));
        }
        if !gate.may_act {
            return Some("this pivot process may not act now (another node holds the lease)".into());
        }
        if !self.view.complete() || !gate.fresh {
            return Some("not every instance has been observed since the last recovery: try again in a moment".into());
        }
        if self.analysis.code != Code::Healthy || self.analysis.primary.is_none() {
            return Some(format!("the cluster is not healthy: {}: {}", self.analysis.code, self.analysis.signal));
        }
        None
    }
}
