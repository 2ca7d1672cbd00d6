//! The imperative shell's hands on the database servers.
//!
//! * [`Session`]: one connection to one instance, every call bounded by a timeout,
//!   its statements worded by the instance's [`pivot_dialect::Dialect`].
//! * [`Prober`]: probes one instance on demand and returns an
//!   [`Observation`](pivot_core::Observation); keeps its connection between probes.
//! * [`discover`]: walks a topology from seed instances once.
//! * [`actions`]: the replication changes a recovery is made of.
//! * [`HeartbeatWriter`]: the heartbeat write on the primary (`[cluster.heartbeat]`).
//!
//! Architecture invariant: nothing here decides anything. What to probe, whom
//! to promote and in which order come from `pivot-core`; this crate only does
//! it and reports what happened.

pub mod actions;
mod check;
mod credentials;
mod discover;
mod errors;
mod greeting;
pub mod handover;
mod heartbeat;
mod privileges;
mod probe;
mod session;

pub use check::read_check_extra;
pub use credentials::{Credentials, Secret};
pub use discover::{discover, referenced_instances};
pub use errors::{classify, SessionError};
pub use heartbeat::{HeartbeatWriteError, HeartbeatWriter};
pub use privileges::{check_privileges, missing_privileges};
pub use probe::{probe_all, probe_all_with_heartbeat, HeartbeatProbe, Prober};
pub use session::Session;
