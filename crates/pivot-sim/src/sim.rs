//! The simulation loop. Every tick, in a fixed order: faults (and their
//! healing), pivot (probes in and out, decisions, recovery commands),
//! servers (client writes, replication, semi-sync), then the invariants.
//! The loop is bounded by the run's duration; everything it does is drawn
//! from one seeded generator, so a seed replays exactly.

use crate::clients::{Clients, Target};
use crate::config::Config;
use crate::faults::{self, FaultState};
use crate::invariants::{self, Book};
use crate::network::Network;
use crate::pivot::Pivot;
use crate::replication;
use crate::report::{Failure, Report};
use crate::server::{Event, Liveness, Server};
use crate::store::Store;
use crate::trace::Trace;
use crate::world::World;
use pivot_core::gtid::MariaGtid;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub struct Sim {
    pub world: World,
    pivot: Option<Pivot>,
    incarnations: u32,
    pivot_restart_at: Option<u64>,
    /// The operator's switchover requests, drawn apart from the faults so
    /// that a seed's faults stay the same with or without them.
    operator: StdRng,
}

impl Sim {
    /// A healthy cluster: s1 the primary, the others its replicas, every
    /// server holding the same first transactions; pivot starting.
    pub fn new(seed: u64, cfg: &Config) -> Sim {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut operator = StdRng::seed_from_u64(seed ^ 0x5317_c40e_u64);
        let mut cfg = if cfg.randomize { cfg.vary(&mut rng) } else { cfg.clone() };
        if cfg.randomize {
            cfg.hooks.configured.pre_switchover = operator.random_bool(0.3);
            cfg.hooks.configured.post_switchover = operator.random_bool(0.3);
        }
        let n = cfg.servers.max(2);
        let mut servers: Vec<Server> = (0..n).map(Server::new).collect();
        for seq in 1..=10 {
            let gtid = MariaGtid { domain: 0, server_id: 1, seq };
            for (i, s) in servers.iter_mut().enumerate() {
                s.append(Event { gtid, at: 0 }, i != 0);
            }
        }
        servers[0].read_only = false;
        servers[0].config_read_only = false;
        servers[0].semi = crate::server::SemiSync {
            enabled: cfg.semi_sync,
            active: cfg.semi_sync,
            timeout_ms: cfg.semi_sync_timeout_ms,
            wait_no_replica: cfg.wait_no_replica,
        };
        for s in servers.iter_mut().skip(1) {
            s.repoint(0, 0);
            s.semi_replica = cfg.semi_sync;
            s.semi.timeout_ms = cfg.semi_sync_timeout_ms;
            s.semi.wait_no_replica = cfg.wait_no_replica;
        }
        if cfg.dual_primary && n == 2 {
            // The ring: the active replicates from the passive; neither is
            // writable by its option file (pivot makes the active writable).
            servers[0].repoint(1, 0);
            servers[0].semi_replica = cfg.semi_sync;
            servers[0].config_read_only = true;
        }
        let mut targets = Vec::new();
        if cfg.writer {
            targets.push(Target::FollowPrimary);
        }
        if cfg.stubborn_writer {
            targets.push(Target::Fixed(0));
        }
        if cfg.routed_writer {
            targets.push(Target::Routed);
        }
        let clients = Clients::new(&targets, 500, cfg.write_every_ms, cfg.client_timeout_ms);
        let trace = Trace::new(cfg.trace_tail, cfg.full_trace);
        let faults = FaultState::new(&cfg.faults);
        let world = World {
            seed,
            cfg,
            now: 0,
            wall_offset: 0,
            servers,
            net: Network::default(),
            clients,
            store: Store::default(),
            rng,
            trace,
            alerts: Vec::new(),
            hook_calls: Vec::new(),
            book: Book::default(),
            faults,
            failure: None,
            local_routes: None,
        };
        let mut sim = Sim { world, pivot: None, incarnations: 0, pivot_restart_at: None, operator };
        // Replicas connected before pivot's first look.
        let w = &mut sim.world;
        replication::tick(&mut w.servers, &w.net, 0, &w.cfg.timing);
        sim.world.log(format!(
            "seed {seed}: {n} servers, semi-sync {}{}, hooks {:?}{}",
            sim.world.cfg.semi_sync,
            sim.world.cfg.semi_sync_timeout_ms.map(|t| format!(" (timeout {t} ms)")).unwrap_or_default(),
            sim.world.cfg.hooks.configured,
            if sim.world.cfg.hooks.stonith { " (fence hook is STONITH)" } else { "" }
        ));
        sim.start_pivot();
        sim
    }

    fn start_pivot(&mut self) {
        self.incarnations += 1;
        self.world.log(format!("pivot #{} starts", self.incarnations));
        // A new process: its proxy knows no epoch until its machine publishes one.
        self.world.local_routes = Some(pivot_core::routes::RouteTable::default());
        self.pivot = Some(Pivot::start(&mut self.world, self.incarnations));
        self.pivot_restart_at = None;
    }

    /// Kill pivot now (SIGKILL: nothing is written); it restarts after `down_ms`.
    pub fn kill_pivot(&mut self, down_ms: Option<u64>) {
        if let Some(p) = self.pivot.take() {
            self.world.log(format!("pivot #{} killed", p.incarnation));
        }
        // Its proxy dies with it: every routed connection is cut.
        self.world.local_routes = None;
        self.pivot_restart_at = down_ms.map(|d| self.world.now + d);
    }

    pub fn restart_pivot(&mut self) {
        if self.pivot.is_none() {
            self.start_pivot();
        }
    }

    /// An operator runs `pivot switchover` against the running pivot.
    pub fn request_switchover(&mut self) {
        let request = self.world.now;
        if let Some(p) = self.pivot.as_mut() {
            self.world.log(format!("SCRIPT an operator asks pivot #{} for a switchover", p.incarnation));
            p.request_switchover(&mut self.world, request);
        }
    }

    pub fn pivot_running(&self) -> bool {
        self.pivot.is_some()
    }

    pub fn recovery_running(&self) -> bool {
        self.pivot.as_ref().is_some_and(Pivot::recovery_running)
    }

    pub fn failed(&self) -> Option<&Failure> {
        self.world.failure.as_ref()
    }

    /// One tick.
    pub fn step(&mut self) {
        let w = &mut self.world;
        w.now += w.cfg.timing.tick_ms;
        let f = faults::tick(w, self.pivot.as_ref().is_some_and(Pivot::recovery_running));
        if f.kill {
            let down = self.world.rng.random_range(0..5_000);
            self.kill_pivot(Some(down));
        }
        if self.pivot.is_none() && (f.restart || self.pivot_restart_at.is_some_and(|t| self.world.now >= t)) {
            self.start_pivot();
        }
        let asks = self.world.faults.active(self.world.now)
            && self.operator.random_bool(self.world.cfg.faults.switchover_p.clamp(0.0, 1.0));
        if let (true, Some(p)) = (asks, self.pivot.as_mut()) {
            let request = self.world.now;
            self.world.log(format!("an operator asks pivot #{} for a switchover", p.incarnation));
            self.world.faults.count("switchover");
            p.request_switchover(&mut self.world, request);
        }
        if let Some(p) = self.pivot.as_mut() {
            p.tick(&mut self.world);
            if p.killed {
                let down = self.world.rng.random_range(0..5_000);
                self.kill_pivot(Some(down));
            }
        }
        let w = &mut self.world;
        let answered = replication::tick(&mut w.servers, &w.net, w.now, &w.cfg.timing);
        let before = w.clients.acks.len();
        w.clients.on_answered(&answered, w.now);
        let route = w.route_target();
        w.clients.tick(&mut w.servers, w.now, route);
        let acked = (w.clients.acks.len() - before) as u64;
        w.trace.count(acked);
        invariants::tick(w, self.pivot.is_some());
    }

    /// One tick; a panic (an assertion of pivot's core) is a failure with the trace.
    fn checked_step(&mut self) -> Result<(), Failure> {
        let stepped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step()));
        if let Err(panic) = stepped {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic".into());
            self.world.fail("no panic", what);
        }
        match &self.world.failure {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    /// Run until `t` (simulated ms) or an invariant breaks.
    pub fn run_until(&mut self, t: u64) -> Result<(), Failure> {
        let ticks = t.saturating_sub(self.world.now) / self.world.cfg.timing.tick_ms.max(1);
        for _ in 0..ticks {
            self.checked_step()?;
        }
        Ok(())
    }

    /// Run until `cond` holds, at most `within` simulated ms; whether it held.
    pub fn run_while_not(&mut self, within: u64, cond: impl Fn(&Sim) -> bool) -> Result<bool, Failure> {
        let ticks = within / self.world.cfg.timing.tick_ms.max(1);
        for _ in 0..ticks {
            if cond(self) {
                return Ok(true);
            }
            self.checked_step()?;
        }
        Ok(cond(self))
    }

    /// To the configured duration, then the end checks.
    pub fn run_to_end(&mut self) -> Result<(), Failure> {
        let until = self.world.cfg.duration_ms;
        self.run_until(until)?;
        invariants::at_end(&mut self.world);
        match &self.world.failure {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    /// The whole run, and its report.
    pub fn run(mut self) -> Result<Report, Failure> {
        self.run_to_end()?;
        Ok(self.report())
    }

    pub fn report(&self) -> Report {
        let w = &self.world;
        Report {
            seed: w.seed,
            faults: w.faults.counts.clone(),
            recovery_times_ms: w.book.recovery_times.clone(),
            recoveries: w.book.recoveries,
            promotions: w.book.promotions.values().sum::<u32>() as usize,
            acknowledged_writes: w.clients.acks.len(),
            events: w.trace.events,
            simulated_ms: w.now,
            fingerprint: w.trace.fingerprint(),
            trace: w.trace.full().map(<[String]>::to_vec),
        }
    }

    // ---- scripted faults -----------------------------------------------------------

    pub fn crash(&mut self, i: usize) {
        if i == self.world.book.primary {
            invariants::on_primary_fault(&mut self.world);
        }
        self.world.servers[i].crash();
        self.world.log(format!("SCRIPT s{} crashed", i + 1));
    }

    pub fn hang(&mut self, i: usize) {
        if i == self.world.book.primary {
            invariants::on_primary_fault(&mut self.world);
        }
        self.world.servers[i].liveness = Liveness::Hung;
        self.world.log(format!("SCRIPT s{} hung", i + 1));
    }

    pub fn resume(&mut self, i: usize) {
        self.world.servers[i].liveness = Liveness::Up;
        self.world.log(format!("SCRIPT s{} resumed", i + 1));
    }

    /// Started again; its configuration makes it writable if it was the first primary.
    pub fn restart(&mut self, i: usize) {
        let now = self.world.now;
        self.world.servers[i].restart(now);
        self.world.log(format!("SCRIPT s{} restarted (read_only={})", i + 1, self.world.servers[i].read_only));
    }

    /// `LOCK TABLES ... WRITE` held on a replica until `until`: its SQL thread applies nothing.
    pub fn stall_apply(&mut self, i: usize, until: u64) {
        self.world.servers[i].apply_stalled_until = until;
        self.world.log(format!("SCRIPT s{} applies nothing until {until} ms", i + 1));
    }

    /// An operator's `SET GLOBAL read_only = ...`.
    pub fn set_read_only(&mut self, i: usize, on: bool) {
        self.world.servers[i].read_only = on;
        self.world.log(format!("SCRIPT s{} read_only={on}", i + 1));
    }

    /// A local transaction in `domain` (an errant one on a replica).
    pub fn local_write(&mut self, i: usize, domain: u32) -> MariaGtid {
        let s = &mut self.world.servers[i];
        let gtid = s.next_gtid(domain);
        s.append(Event { gtid, at: self.world.now }, false);
        self.world.log(format!("SCRIPT local write {gtid} on s{}", i + 1));
        gtid
    }

    /// The wall clock jumps by `ms` (NTP step, VM resume); monotonic time does not.
    pub fn jump_wall(&mut self, ms: i64) {
        self.world.wall_offset += ms;
        self.world.log(format!("SCRIPT wall clock jumps {ms} ms"));
    }

    /// The clients stop writing (to let replicas catch up before a fault).
    pub fn stop_writers(&mut self) {
        self.world.clients.stop();
        self.world.log("SCRIPT clients stop writing");
    }

    /// What pivot's analysis says now (`None` while no pivot runs).
    pub fn analysis(&self) -> Option<pivot_core::ClusterAnalysis> {
        self.pivot.as_ref().map(Pivot::analysis)
    }

    /// Servers that are up and writable.
    pub fn writable(&self) -> Vec<usize> {
        (0..self.world.servers.len())
            .filter(|&i| self.world.servers[i].up() && self.world.servers[i].writable())
            .collect()
    }

    /// Acknowledged writes (by any server) missing from server `i`.
    pub fn missing_on(&self, i: usize) -> Vec<MariaGtid> {
        self.world.clients.acks.iter().filter(|a| !self.world.servers[i].has(&a.gtid)).map(|a| a.gtid).collect()
    }
}
