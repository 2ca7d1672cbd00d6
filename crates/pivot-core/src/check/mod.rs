//! `pivot check`: preflight findings, each with a stable code (`finding.rs`
//! holds the table), and `pivot check --simulate`, a dry run of the next
//! failover (`simulate.rs`). Pure: the shell gathers a [`CheckInput`].

mod finding;
mod input;
mod rules;
mod simulate;
#[cfg(test)]
mod tests;

pub use finding::{info, CodeInfo, Finding, Severity, CODES};
pub use input::{CheckInput, ClockReading, HookFact, InstanceExtra, PrivilegeFact, RouteFact};
pub use simulate::{simulate, FailureMode, SimStep, SimulatedReplica, Simulation};

/// Every finding, errors first, then by code and instance.
pub fn check(input: &CheckInput) -> Vec<Finding> {
    let mut out = Vec::new();
    rules::replication::collect(input, &mut out);
    rules::semi_sync::collect(input, &mut out);
    rules::detection::collect(input, &mut out);
    rules::durability::collect(input, &mut out);
    rules::operations::collect(input, &mut out);
    out.sort_by(|a, b| (a.severity, &a.code, &a.instances).cmp(&(b.severity, &b.code, &b.instances)));
    out
}
