//! The monitor's state-store calls: each off the runtime's worker, and
//! the store's contents turned into what the cluster machine reads.

use super::Monitor;
use crate::clock;
use crate::recovery::owner;
use pivot_core::control::cluster::{BlockInfo, FenceEntry, RunningRecovery, StoreView};
use pivot_core::routes::EpochRecord;
use pivot_state::{FencedInstance, StateStore};

impl Monitor {
    /// A state-store call from the (synchronous) handlers, moved off the
    /// runtime's worker so other tasks keep running.
    pub(super) fn store<T>(&self, f: impl FnOnce(&dyn StateStore) -> T) -> T {
        let state = self.env.state.clone();
        tokio::task::block_in_place(move || f(state.as_ref()))
    }

    /// What the store says, as the machine needs it.
    pub(super) fn read_store(&self) -> StoreView {
        let (name, me) = (self.cfg.name.clone(), self.env.owner.clone());
        let now = clock::now();
        self.store(|s| {
            let wall = clock::wall_ms();
            let mut problems = Vec::new();
            let file_ok = match s.check_file() {
                Ok(()) => true,
                Err(e) => {
                    problems
                        .push(format!("{e}: pivot keeps its fence list in memory; restore the file or restart pivot"));
                    false
                }
            };
            let running = match s.running_recovery(&name) {
                Ok(r) => r.map(|r| RunningRecovery {
                    id: r.id,
                    ours: r.owner == me,
                    owner_gone: r.lease_until.is_none_or(|l| l <= wall) || owner::certainly_gone(&r.owner, &me),
                    owner: r.owner,
                }),
                Err(e) => {
                    problems.push(format!("cannot read the state file: {e}"));
                    None
                }
            };
            let block = match s.block_of(&name) {
                // Handed over unless acknowledged: whether it is over is decided
                // in monotonic time by the machine (a wall clock that jumps
                // forward must not end it).
                Ok(b) => b.filter(|b| b.acked_at.is_none()).map(|b| BlockInfo {
                    until: now.plus((b.blocked_until - wall).max(0) as u64),
                    until_wall: b.blocked_until,
                    recovery_id: b.recovery_id,
                }),
                Err(e) => {
                    problems.push(format!("cannot read the state file: {e}"));
                    None
                }
            };
            let fenced = match s.fenced(&name) {
                Ok(list) => list
                    .into_iter()
                    .filter_map(|f| {
                        Some(FenceEntry { instance: f.instance.parse().ok()?, status: f.status, detail: f.detail })
                    })
                    .collect(),
                Err(e) => {
                    problems.push(format!("cannot read the fence list: {e}"));
                    Vec::new()
                }
            };
            let epoch = match s.epoch(&name) {
                Ok(e) => e.and_then(|e| {
                    Some(EpochRecord {
                        number: e.number,
                        primary: e.primary.parse().ok()?,
                        recovery_id: e.recovery_id,
                        since_ms: e.since,
                    })
                }),
                Err(e) => {
                    problems.push(format!("cannot read the epoch: {e}"));
                    None
                }
            };
            let problem = (!problems.is_empty()).then(|| problems.join("; "));
            StoreView { running, block, fenced, problem, file_ok, epoch }
        })
    }

    pub(super) fn record_fence(&self, entry: &FenceEntry) -> Result<(), String> {
        let (name, key) = (self.cfg.name.clone(), entry.instance.to_string());
        self.store(|s| {
            let exists = s.fenced(&name)?.iter().any(|f| f.instance == key);
            if exists {
                s.fence_update(&name, &key, &entry.status, &entry.detail)
            } else {
                s.fence_register(&FencedInstance {
                    cluster: name.clone(),
                    instance: key.clone(),
                    recovery_id: None,
                    since: clock::wall_ms(),
                    status: entry.status.clone(),
                    detail: entry.detail.clone(),
                })
            }
        })
        .map_err(|e| e.to_string())
    }
}
