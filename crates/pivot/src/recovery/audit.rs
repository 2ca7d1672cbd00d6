//! Every step written to the state file before and after it runs.

use crate::clock;
use pivot_state::{RecoveryId, StateError, StateStore};

pub struct Audit<'a> {
    pub state: &'a StateStore,
    pub id: RecoveryId,
}

/// How a step ended, as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Ok,
    /// A restarted pivot found the step's effect already in place.
    AlreadyDone,
    /// Deliberately not run (e.g. a hook interrupted by a restart).
    Skipped,
    Failed,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Ok => "ok",
            Ended::AlreadyDone => "already_done",
            Ended::Skipped => "skipped",
            Ended::Failed => "failed",
        }
    }

    pub fn succeeded(self) -> bool {
        !matches!(self, Ended::Failed)
    }
}

impl Audit<'_> {
    pub fn started(&self, seq: i64, name: &str, detail: &str) -> Result<(), StateError> {
        self.state.step_started(self.id, seq, name, detail, clock::now().0 as i64)
    }

    pub fn ended(&self, seq: i64, how: Ended, message: &str) -> Result<(), StateError> {
        self.state.step_finished(self.id, seq, how.as_str(), message, clock::now().0 as i64)
    }
}
