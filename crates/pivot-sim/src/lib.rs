//! A deterministic simulator of pivot, in the spirit of FoundationDB's and
//! TigerBeetle's: simulated MariaDB servers, network, clients, state store,
//! time and pivot restarts around pivot's real core (the `ClusterMachine`
//! and the `RecoveryMachine` the daemon runs: analysis, gate, plans,
//! candidate choice), with faults drawn from a
//! seed and the safety invariants checked after every event.
//!
//! Why: the integration tests run each failure scenario once, on real
//! servers, in seconds. The simulator runs thousands of runs a minute, each
//! a different interleaving of crashes, hangs, partitions, pivot restarts
//! and failing writes, and a failing seed replays exactly.
//!
//! Nothing here does I/O, reads a clock or spawns a thread. Time is a
//! number of milliseconds the simulator advances; randomness is one
//! generator seeded from the seed; the same seed gives the same run.
//!
//! Map:
//! * [`server`], [`replication`]: the MariaDB model and data moving between servers;
//! * [`network`]: links cut between parties, slow probes;
//! * [`clients`]: writers and the acknowledged writes;
//! * [`store`]: pivot's state store (survives pivot);
//! * [`hooks`]: hooks that succeed, fail or hang;
//! * [`pivot`]: a pivot process (monitor, recovery driver, step performer);
//! * [`faults`]: the random faults and their healing;
//! * [`invariants`]: what must hold, checked against the simulated world;
//! * [`sim`]: the loop; [`world`]: its state; [`trace`], [`report`]: its output.
//!
//! What is modelled, and what is not:
//! * servers: binary log, `gtid_binlog_state`, `gtid_slave_pos`, relay log,
//!   IO thread (connect, error 1236 on a missing position, silence until
//!   `slave_net_timeout` on a hung or cut-off source, heartbeats), SQL thread
//!   (stalls like a held `LOCK TABLES`), `read_only`, semi-sync `AFTER_SYNC`
//!   with `wait_no_slave` and a timeout (none by default, as in the sandbox),
//!   crash (binary log kept), hang, restart (read-only as configured,
//!   replication started); one replication channel; domain 0 for clients;
//! * pivot: the daemon's cluster machine (`ClusterMachine`: discovery,
//!   probe speed, the gate with backoff, block and freshness, resumes,
//!   fence enforcement, split brain, alerts) driven by a shell that performs
//!   its commands as `pivot::daemon::monitor` does: probers on their own
//!   schedules, the connection kept waiting on the primary (its end heard at
//!   once on a crash, at its bound on a hang or a cut), store reads, fence
//!   watches, a timer once a second; the recovery driver with start and end
//!   records, `needs_record`, three attempts to record the end (block
//!   first), retried unrecorded ends, takeover (`adopt`) and
//!   `RecoveryMachine::resume`; every step with the statements, timeouts and
//!   outcomes of `pivot::recovery::exec`. Not modelled: leases and several
//!   pivot nodes (one process runs at a time, so an owner that is not this
//!   process is gone), graceful stop (park), a deleted or replaced state
//!   file, alert hooks' delivery, routes and proxies;
//! * faults: see [`faults`]; clients always reach every server (the worst
//!   case for split brain).
//!
//! Findings (bugs the simulator found in pivot) are reproduced, one
//! `#[ignore]`d test each while open, in `tests/findings.rs`; the random runs of
//! [`Config::default`] keep away from the triggers of the frequent ones
//! ([`Config::expose_known`] reaches them). A failing seed replays exactly:
//! `cargo run -p pivot-sim --example trace -- SEED` prints all it did.
//!
//! ```
//! let report = pivot_sim::run_seed(7, &pivot_sim::Config::default()).unwrap();
//! assert_eq!(report.seed, 7);
//! ```

pub mod clients;
pub mod config;
pub mod faults;
pub mod hooks;
pub mod invariants;
pub mod network;
pub mod pivot;
pub mod replication;
pub mod report;
pub mod server;
pub mod sim;
pub mod store;
pub mod trace;
pub mod world;

pub use config::{Config, FaultConfig, HookBehaviour, HookConfig, Timing};
pub use report::{Failure, Report};
pub use sim::Sim;

/// Run one seed to its end. `Err`: an invariant broke (or pivot's core
/// panicked); the failure names the seed and the last events.
pub fn run_seed(seed: u64, cfg: &Config) -> Result<Report, Failure> {
    Sim::new(seed, cfg).run()
}
