//! pivot's functional core.
//!
//! Everything here is pure: no I/O, no clock (time is an argument), no async.
//! The shell (`pivot-server`, `pivot`) probes servers and feeds [`Observation`]s
//! into a [`ClusterView`]; [`analyze`] says what they mean; [`candidate`] picks
//! whom to promote and [`plan`] says in which steps. Most of pivot's tests live
//! here, as tables of inputs and expected outputs.
//!
//! Architecture invariant: this crate knows nothing about SQL text, sockets,
//! files, threads or the configuration file format.

pub mod analysis;
pub mod candidate;
pub mod check;
pub mod control;
pub mod fixture;
pub mod gtid;
pub mod heartbeat;
pub mod instance;
pub mod observation;
pub mod plan;
pub mod rebuild;
pub mod routes;
pub mod time;
pub mod topology;
pub mod version;
pub mod view;

pub use analysis::{analyze, ClusterAnalysis, Code, DetectionSettings};
pub use gtid::GtidSet;
pub use instance::InstanceKey;
pub use observation::{InstanceState, Observation};
pub use time::Millis;
pub use topology::Topology;
pub use version::{Flavor, ServerVersion};
pub use view::ClusterView;
