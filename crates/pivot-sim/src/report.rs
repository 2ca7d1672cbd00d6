//! What a run hands back: figures when every invariant held, the seed and
//! the last events when one broke.

use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub seed: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// For each failure of the primary that ended with a promotion: from the
    /// fault to the new primary writable (simulated milliseconds).
    pub recovery_times_ms: Vec<u64>,
    pub recoveries: usize,
    pub promotions: usize,
    pub acknowledged_writes: usize,
    /// Things that happened: trace lines, observations, writes.
    pub events: u64,
    pub simulated_ms: u64,
    /// A hash of every trace line: equal for two runs of one seed.
    pub fingerprint: u64,
    /// Every trace line, with `Config::full_trace`.
    pub trace: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub seed: u64,
    pub at_ms: u64,
    pub invariant: String,
    pub detail: String,
    /// The last events before it broke.
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {}: invariant `{}` broken at {}.{:03}s: {}",
            self.seed,
            self.invariant,
            self.at_ms / 1000,
            self.at_ms % 1000,
            self.detail
        )?;
        writeln!(f, "last {} events:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        write!(f, "replay: pivot_sim::run_seed({}, &Config::default())", self.seed)
    }
}

impl std::error::Error for Failure {}
