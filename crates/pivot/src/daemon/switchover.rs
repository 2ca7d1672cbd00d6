//! Switchover requests from the HTTP API (or `pivot switchover`, which goes
//! through it) to a cluster's monitor, and their answers. The monitor turns
//! a request into an event for the cluster machine, which passes it through
//! the gate; the answer comes back when the switchover ended or was refused.

use crate::recovery::Outcome;
use pivot_core::InstanceKey;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

/// Requests waiting for a monitor; more are refused at once (busy).
pub const QUEUE: usize = 4;

pub struct SwitchoverAsk {
    pub to: Option<InstanceKey>,
    pub reply: oneshot::Sender<SwitchoverReply>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SwitchoverReply {
    /// Refused before anything changed (the gate).
    Refused { reason: String },
    /// It ran (or was refused by the recovery machine before any step):
    /// see the outcome's status.
    Ended { outcome: Outcome },
    /// It could not be recorded, or its task failed (it is resumed from the
    /// state file).
    Failed { reason: String },
}

pub type AskSender = mpsc::Sender<SwitchoverAsk>;
pub type AskReceiver = mpsc::Receiver<SwitchoverAsk>;

pub fn channel() -> (AskSender, AskReceiver) {
    mpsc::channel(QUEUE)
}
