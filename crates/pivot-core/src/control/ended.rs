//! How a step ended, as recorded.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    Ok,
    /// A restarted pivot found the step's effect already in place.
    AlreadyDone,
    /// Deliberately not run (a hook that is not configured, an unreachable
    /// instance that the fence list covers).
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

    /// Read a recorded outcome; anything unknown counts as a failure.
    pub fn parse(s: &str) -> Ended {
        match s {
            "ok" => Ended::Ok,
            "already_done" => Ended::AlreadyDone,
            "skipped" => Ended::Skipped,
            _ => Ended::Failed,
        }
    }

    pub fn succeeded(self) -> bool {
        !matches!(self, Ended::Failed)
    }
}
