//! The control plane's decisions, as pure state machines.
//!
//! * [`cluster`]: the cluster state machine the daemon's monitor performs:
//!   discovery, probe speed, the gate, resumes, fencing, split brain, alerts;
//! * [`discovery`]: who is watched within `max_instances`;
//! * [`recovery`]: runs a plan one step at a time (commands out, step results
//!   in), abandons and undoes, parks when this process may not act, resumes
//!   after a restart;
//! * [`gate`]: the one gate every action passes (automatic recovery, resume,
//!   fence enforcement, manual failover);
//! * [`backoff`]: the retry backoff after aborted automatic attempts;
//! * [`verdict`]: rejoin or quarantine for a former primary that answers;
//! * [`rejoin`]: when a fenced former primary rejoins, and the re-judgement
//!   on fresh readings at that moment; [`acknowledged`]: whether a diverged
//!   one's extra transactions could have been acknowledged to a client;
//! * [`split_brain`]: which writer to make read-only when two are writable.
//!
//! The daemon, the CLI and the simulator drive these same machines.

pub mod acknowledged;
pub mod backoff;
pub mod cluster;
pub mod discovery;
mod ended;
pub mod gate;
pub mod health_alerts;
pub mod recovery;
pub mod rejoin;
pub mod ring;
pub mod split_brain;
pub mod verdict;

pub use ended::Ended;
pub use recovery::{
    Command, FailoverRequest, FailoverSettings, Finish, RecordedStep, RecoveryMachine, SemiSyncPolicy, Status, StepEnd,
};

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod fencing_tests;
#[cfg(test)]
mod health_alerts_tests;
#[cfg(test)]
mod rejoin_tests;
#[cfg(test)]
mod routing_tests;
#[cfg(test)]
mod switchover_tests;
#[cfg(test)]
mod tests;
