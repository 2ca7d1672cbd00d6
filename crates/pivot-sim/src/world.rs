//! Everything that outlives a pivot process: the servers, the network, the
//! clients, the state store, simulated time, the seeded random source, the
//! trace and the facts the invariants are checked against.
//!
//! No global state: a [`World`] is made per run, and everything random is
//! drawn from its one generator, so a seed replays exactly.

use crate::clients::Clients;
use crate::config::Config;
use crate::faults::FaultState;
use crate::hooks::HookCall;
use crate::invariants::Book;
use crate::network::Network;
use crate::report::Failure;
use crate::server::Server;
use crate::store::Store;
use crate::trace::Trace;
use pivot_core::InstanceKey;
use rand::rngs::StdRng;

/// Where wall-clock time starts (unix milliseconds); it moves with the
/// monotonic clock plus the jumps injected.
const WALL_EPOCH_MS: i64 = 1_750_000_000_000;

pub struct World {
    pub seed: u64,
    pub cfg: Config,
    /// Simulated monotonic time: what pivot's core is handed as `Millis`.
    pub now: u64,
    /// Wall clock minus monotonic clock: moved by clock jumps.
    pub wall_offset: i64,
    pub servers: Vec<Server>,
    pub net: Network,
    pub clients: Clients,
    pub store: Store,
    pub rng: StdRng,
    pub trace: Trace,
    /// Every alert pivot raised, with its time.
    pub alerts: Vec<(u64, String)>,
    pub hook_calls: Vec<HookCall>,
    pub book: Book,
    pub faults: FaultState,
    /// The first invariant broken.
    pub failure: Option<Failure>,
    /// The running pivot process's route table (its proxy); `None` while
    /// no pivot runs.
    pub local_routes: Option<pivot_core::routes::RouteTable>,
}

impl World {
    /// Wall-clock milliseconds: only records use them.
    pub fn wall(&self) -> i64 {
        WALL_EPOCH_MS + self.now as i64 + self.wall_offset
    }

    pub fn index_of(&self, key: &InstanceKey) -> Option<usize> {
        self.servers.iter().position(|s| &s.key == key)
    }

    pub fn log(&mut self, text: impl AsRef<str>) {
        let now = self.now;
        self.trace.line(now, text);
    }

    pub fn alert(&mut self, text: String) {
        self.log(format!("ALERT {text}"));
        self.alerts.push((self.now, text));
    }

    /// The proxy's write target now, as a server index.
    pub fn route_target(&self) -> Option<usize> {
        self.local_routes.as_ref().and_then(|t| t.write_target()).and_then(|k| self.index_of(k))
    }

    /// The running process's hub: take `table` unless it is of an older epoch.
    pub fn publish_routes(&mut self, table: pivot_core::routes::RouteTable) -> bool {
        let Some(current) = &self.local_routes else { return false };
        if !table.supersedes(current) {
            return false;
        }
        self.local_routes = Some(table.clone());
        crate::invariants::on_routes(self, &table);
        true
    }

    /// Record that invariant `name` broke (the first one wins).
    pub fn fail(&mut self, name: &str, detail: String) {
        if self.failure.is_none() {
            self.log(format!("INVARIANT BROKEN {name}: {detail}"));
            self.failure = Some(Failure {
                seed: self.seed,
                at_ms: self.now,
                invariant: name.to_string(),
                detail,
                trace: self.trace.tail(),
            });
        }
    }
}
