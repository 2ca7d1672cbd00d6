//! What a simulation runs with: the cluster, pivot's settings (its
//! defaults), the clients, the hooks, the faults, the bounds the invariants
//! use. Random runs draw a variation of the cluster per seed ([`Config::vary`]).

use pivot_core::analysis::DetectionSettings;
use pivot_core::candidate::PromotionRules;
use pivot_core::control::{FailoverSettings, SemiSyncPolicy};
use pivot_core::plan::{HookPoint, HookSet};
use pivot_core::InstanceKey;
use rand::rngs::StdRng;
use rand::Rng;

/// Durations, in simulated milliseconds. Defaults are pivot's and the sandbox's.
#[derive(Clone, Debug)]
pub struct Timing {
    /// The simulator's step; everything happens on a tick.
    pub tick_ms: u64,
    pub poll_ms: u64,
    /// While the primary does not answer.
    pub fast_poll_ms: u64,
    pub probe_timeout_ms: u64,
    pub step_timeout_ms: u64,
    pub relay_apply_timeout_ms: u64,
    pub hook_timeout_ms: u64,
    pub block_period_ms: u64,
    /// The monitor's timer (`Event::Tick`): the store re-read, an unrecorded end retried.
    pub refresh_ms: u64,
    pub heartbeat_ms: u64,
    pub slave_net_timeout_ms: u64,
    pub connect_retry_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            tick_ms: 10,
            poll_ms: 250,
            fast_poll_ms: 50,
            probe_timeout_ms: 1_000,
            step_timeout_ms: 10_000,
            relay_apply_timeout_ms: 30_000,
            hook_timeout_ms: 10_000,
            block_period_ms: 1_800_000,
            refresh_ms: 1_000,
            heartbeat_ms: 250,
            slave_net_timeout_ms: 2_000,
            connect_retry_ms: 1_000,
        }
    }
}

/// How a hook call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookBehaviour {
    Ok,
    /// Exits non-zero.
    Fail,
    /// Never exits: killed at the hook timeout.
    Hang,
}

#[derive(Clone, Debug, Default)]
pub struct HookConfig {
    pub configured: HookSet,
    /// Outcomes for the next calls of a point, used in order before the random draw.
    pub script: Vec<(HookPoint, HookBehaviour)>,
    pub fail_p: f64,
    pub hang_p: f64,
    pub latency_ms: u64,
    /// The fence hook is STONITH: when it succeeds the old primary is killed.
    pub stonith: bool,
}

/// Random faults (see [`crate::faults`]).
#[derive(Clone, Debug)]
pub struct FaultConfig {
    pub enabled: bool,
    /// Faults are injected in this window; after it everything heals.
    pub from_ms: u64,
    pub until_ms: u64,
    /// Gap between two faults, drawn uniformly.
    pub gap_ms: (u64, u64),
    pub max_pivot_kills: u32,
    /// Chance per tick that pivot is killed while a recovery runs.
    pub kill_in_recovery_p: f64,
    /// Chance that pivot is killed right after a command of a recovery ended.
    pub kill_at_boundary_p: f64,
    /// Links cut at once, at most.
    pub max_cuts: usize,
    /// How far the wall clock may drift from the monotonic one, at most.
    pub max_wall_drift_ms: i64,
    /// Whether the wall clock may jump forward (finding F8: a forward jump
    /// ends the anti-flapping block early: the monitor's store read drops a
    /// block whose wall-clock end has passed).
    pub wall_jump_forward: bool,
    /// Chance per tick, in the fault window, that an operator asks for a
    /// planned switchover (`pivot switchover`).
    pub switchover_p: f64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            enabled: true,
            from_ms: 3_000,
            until_ms: 60_000,
            gap_ms: (500, 9_000),
            max_pivot_kills: 4,
            kill_in_recovery_p: 0.01,
            kill_at_boundary_p: 0.04,
            max_cuts: 3,
            max_wall_drift_ms: 10 * 60 * 1000,
            wall_jump_forward: true,
            switchover_p: 0.0005,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub servers: usize,
    pub semi_sync: bool,
    pub semi_sync_timeout_ms: Option<u64>,
    pub wait_no_replica: bool,
    pub timing: Timing,
    pub detection: DetectionSettings,
    pub rules: PromotionRules,
    pub semi_sync_policy: SemiSyncPolicy,
    pub hooks: HookConfig,
    /// A client that follows whichever server accepts writes.
    pub writer: bool,
    /// A client hard-coded to the first primary (S2's script).
    pub stubborn_writer: bool,
    /// A client that connects only through pivot's proxy write port (the
    /// running pivot process's route table).
    pub routed_writer: bool,
    pub write_every_ms: u64,
    pub client_timeout_ms: u64,
    pub faults: FaultConfig,
    /// Total simulated time.
    pub duration_ms: u64,
    /// Draw a variation of the cluster and its settings from each seed.
    pub randomize: bool,
    /// Let the variation reach the known findings' triggers (see
    /// `tests/findings.rs`): forward wall-clock jumps with a short block
    /// (F8, open); two-server clusters and the `auto` semi-sync policy (F4-F6,
    /// fixed, still reached). Off by default, so random runs look for what
    /// is not known yet.
    pub expose_known: bool,
    /// A dead primary is recovered or alerted within this (pivot running).
    pub recovery_bound_ms: u64,
    /// A fenced former primary that pivot reaches is read-only within this.
    pub fence_bound_ms: u64,
    /// Keep every trace line (for replay comparisons), not only the tail.
    pub full_trace: bool,
    pub trace_tail: usize,
    /// Active/passive dual primaries: with two servers, the first primary
    /// also replicates from the second (a two-node ring), both option files
    /// say `read_only=ON`, and the invariant "no server is writable while it
    /// holds received events from the other it has not applied" is checked
    /// after every event.
    pub dual_primary: bool,
}

impl Default for Config {
    /// Random runs: faults on, a variation of the cluster per seed.
    fn default() -> Self {
        Config {
            servers: 3,
            semi_sync: true,
            semi_sync_timeout_ms: None,
            wait_no_replica: true,
            timing: Timing::default(),
            detection: DetectionSettings::default(),
            rules: PromotionRules { max_lag_s: 120, ..PromotionRules::default() },
            semi_sync_policy: SemiSyncPolicy::Auto,
            hooks: HookConfig { latency_ms: 30, ..HookConfig::default() },
            writer: true,
            stubborn_writer: false,
            routed_writer: true,
            write_every_ms: 20,
            client_timeout_ms: 2_000,
            faults: FaultConfig::default(),
            duration_ms: 110_000,
            randomize: true,
            expose_known: false,
            recovery_bound_ms: 30_000,
            fence_bound_ms: 3_000,
            full_trace: false,
            trace_tail: 40,
            dual_primary: false,
        }
    }
}

impl Config {
    /// Scripted scenarios: three semi-sync servers, no random fault, no variation.
    pub fn scripted() -> Config {
        Config {
            faults: FaultConfig { enabled: false, ..FaultConfig::default() },
            randomize: false,
            duration_ms: 60_000,
            ..Config::default()
        }
    }

    pub fn failover_settings(&self) -> FailoverSettings {
        FailoverSettings {
            rules: self.rules.clone(),
            semi_sync: self.semi_sync_policy,
            hooks: self.hooks.configured,
            lag_threshold_s: self.detection.lag_threshold_s,
            // The proxy of the running pivot process, required.
            routes: vec![pivot_core::routes::RouteSpec { kind: pivot_core::routes::RouteKind::Local, required: true }],
            switchover: Default::default(),
            replication_credentials: true,
        }
    }

    /// A variation drawn from the seed: size, semi-sync, hooks, rules, block.
    pub fn vary(&self, rng: &mut StdRng) -> Config {
        let mut c = self.clone();
        c.servers = match rng.random_range(0..10) {
            0..=1 if self.expose_known => 2,
            0..=6 => 3,
            _ => 4,
        };
        c.semi_sync = rng.random_bool(0.75);
        c.semi_sync_policy = match (self.expose_known, c.semi_sync) {
            (true, _) => SemiSyncPolicy::Auto,
            (false, true) => SemiSyncPolicy::On,
            (false, false) => SemiSyncPolicy::Off,
        };
        c.semi_sync_timeout_ms = (c.semi_sync && rng.random_bool(0.15)).then(|| rng.random_range(500..5_000));
        c.wait_no_replica = rng.random_bool(0.8);
        let mut on = || rng.random_bool(0.3);
        c.hooks.configured = HookSet {
            pre_failover: on(),
            fence: on(),
            mha: on(),
            post_failover: on(),
            post_unsuccessful_failover: on(),
            // Drawn by the operator's generator (`Sim::new`): a seed's
            // faults stay what they were before switchovers existed.
            pre_switchover: false,
            post_switchover: false,
        };
        c.hooks.stonith = c.hooks.configured.fence && rng.random_bool(0.5);
        c.hooks.fail_p = if rng.random_bool(0.5) { 0.1 } else { 0.0 };
        c.hooks.hang_p = if rng.random_bool(0.3) { 0.03 } else { 0.0 };
        c.stubborn_writer = rng.random_bool(0.3);
        if rng.random_bool(0.3) {
            c.timing.block_period_ms = 20_000;
            c.faults.wall_jump_forward = self.expose_known;
        }
        if rng.random_bool(0.2) {
            c.timing.relay_apply_timeout_ms = rng.random_range(1_000..10_000);
        }
        let key = |i: usize| crate::server::key_of(i);
        let pick = |rng: &mut StdRng| -> InstanceKey { key(rng.random_range(1..c.servers)) };
        if c.servers > 2 && rng.random_bool(0.2) {
            c.rules.preferred = vec![pick(rng)];
        }
        if c.servers > 2 && rng.random_bool(0.15) {
            let k = pick(rng);
            if !c.rules.preferred.contains(&k) {
                c.rules.never_promote = vec![k];
            }
        }
        c
    }
}
