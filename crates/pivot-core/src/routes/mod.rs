//! Where clients are sent: the epoch of each promotion, the route table every
//! route (built-in proxy, health checks, DNS, KV, virtual IP) follows, and
//! the answers of the health checks HAProxy asks.
//!
//! A route never decides who is primary: the table's write target is the
//! primary of the newest epoch, and an epoch is only ever stored by a
//! promotion (after the old primary was registered for fencing) or by the
//! cluster machine adopting a healthy primary nobody recovered to. A route
//! never moves back to an older epoch ([`RouteTable::supersedes`]).

mod epoch;
mod health;
mod table;

pub use epoch::{EpochRecord, RouteKind, RouteSpec};
pub use health::{answer, HealthAnswer, HealthCheck};
pub use table::{InstanceRoute, Role, RouteTable};

#[cfg(test)]
mod tests;
