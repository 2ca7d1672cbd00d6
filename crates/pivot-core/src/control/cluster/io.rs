//! What goes in and out of the cluster machine: the events the shell feeds
//! it, the commands it answers with, and the values they carry.

use crate::analysis::{ClusterAnalysis, Code, DetectionSettings};
use crate::gtid::GtidSet;
use crate::instance::InstanceKey;
use crate::observation::Observation;
use crate::routes::{EpochRecord, RouteTable};
use crate::time::Millis;
use crate::view::ClusterView;
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    pub name: String,
    pub seeds: Vec<InstanceKey>,
    pub detection: DetectionSettings,
    pub automatic: bool,
    pub max_instances: usize,
    /// Replicas lagging more leave the read routes.
    pub route_max_lag_s: u64,
    /// Make a fenced former primary whose GTIDs the primary holds a replica
    /// of it (see `control::rejoin`).
    pub auto_rejoin: bool,
    /// At most one replication-health alert per instance and kind this often
    /// (see `control::health_alerts`).
    pub alert_interval_ms: u64,
    /// Active/passive dual primaries: with two instances, close the ring
    /// again (the active replicates from the read-only passive) after a
    /// failover or switchover (see `control::ring`).
    pub dual_primary: bool,
}

/// A recovery the state store says is running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningRecovery {
    pub id: i64,
    pub owner: String,
    /// This process owns it.
    pub ours: bool,
    /// Its owner's lease has expired, or its process is certainly gone.
    pub owner_gone: bool,
}

/// The anti-flapping block, in this process's monotonic time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub until: Millis,
    /// The same moment in wall time, for display.
    pub until_wall: i64,
    pub recovery_id: Option<i64>,
}

/// One entry of the fence list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceEntry {
    pub instance: InstanceKey,
    /// `pending`, `read_only`, `quarantined`.
    pub status: String,
    pub detail: String,
}

/// What the shell read from the state store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreView {
    pub running: Option<RunningRecovery>,
    pub block: Option<BlockInfo>,
    pub fenced: Vec<FenceEntry>,
    /// The store cannot be read, or its file was deleted or replaced.
    pub problem: Option<String>,
    /// The file is the one opened (not deleted or replaced): the fence list
    /// read from it is the truth; otherwise the list in memory is kept.
    pub file_ok: bool,
    /// The newest epoch.
    pub epoch: Option<EpochRecord>,
}

/// How a recovery task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecoveryEnd {
    /// It ended (or parked); `promoted`: a new primary is in place.
    Ended {
        id: i64,
        /// The instance it promoted (taken off the fence list if it was on it).
        new_primary: Option<InstanceKey>,
        parked: bool,
        alert: Option<String>,
        unrecorded: Option<String>,
    },
    /// Another process holds the recovery's lease.
    HeldElsewhere,
    /// It could not start (the store refused, e.g. another recovery runs).
    NotStarted { reason: String },
    /// The task failed (a panic): resume from the store.
    TaskFailed { reason: String },
}

/// What fencing an instance came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceResult {
    pub instance: InstanceKey,
    pub result: Result<Fenced, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fenced {
    pub sessions_ended: usize,
    pub executed: GtidSet,
    pub took_ms: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    Observed(Observation),
    Store(StoreView),
    RecoveryEnded(RecoveryEnd),
    Fence(FenceResult),
    /// The connection kept waiting on `instance` ended.
    WatchEnded(InstanceKey),
    /// The periodic timer (about once a second).
    Tick,
    MayAct(bool),
    /// An operator asked for a planned switchover (`to`: the replica to
    /// promote, else the best one); answered with
    /// [`Command::StartSwitchover`] or [`Command::RefuseSwitchover`].
    SwitchoverRequested {
        request: u64,
        to: Option<InstanceKey>,
    },
    /// A rejoin asked for ([`Command::Rejoin`]) ended: what was done, or
    /// why not.
    Rejoined {
        instance: InstanceKey,
        result: Result<String, String>,
    },
    /// The extra transactions of a quarantined instance were saved
    /// ([`Command::SaveExtra`]): the file, or why not.
    ExtraSaved {
        instance: InstanceKey,
        result: Result<String, String>,
    },
    /// Closing a dual-primary ring ([`Command::RestoreRing`]) ended.
    RingRestored {
        active: InstanceKey,
        passive: InstanceKey,
        result: Result<String, String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Start probing an instance.
    Watch(InstanceKey),
    /// Stop probing it.
    Unwatch(InstanceKey),
    ProbeNow(InstanceKey),
    /// How often to probe each instance from now on.
    SetPace(Pace),
    /// Keep a connection waiting on the primary (see the shell's crash watch).
    WatchPrimary(InstanceKey),
    /// Read the state store and report it ([`Event::Store`]).
    ReadStore,
    /// Start an automatic failover of the analysis' primary, on this view.
    StartRecovery {
        analysis: Box<ClusterAnalysis>,
        view: Box<ClusterView>,
    },
    /// Start the planned switchover asked for by `request`, from `primary`.
    StartSwitchover {
        request: u64,
        primary: InstanceKey,
        to: Option<InstanceKey>,
        view: Box<ClusterView>,
    },
    /// Tell whoever asked (`request`) why no switchover starts now.
    RefuseSwitchover {
        request: u64,
        reason: String,
    },
    /// Take over the running recovery `id` (resume it from the store).
    ResumeRecovery {
        id: i64,
        view: Box<ClusterView>,
    },
    /// Write the end of a recovery again (it could not be written).
    RetryUnrecorded,
    /// The state file was deleted or replaced: open it again at its path and
    /// write these fence entries back (pivot kept them in memory).
    ReopenStore {
        fenced: Vec<FenceEntry>,
    },
    /// Keep trying to connect to a former primary; fence it when it answers.
    WatchFormerPrimary(InstanceKey),
    /// Fence an instance that answers now.
    FenceNow(InstanceKey),
    /// Stop the replication IO thread of a replica that still follows a
    /// fenced former primary (lost at a failover, back since): its
    /// acknowledgements must not let that former primary acknowledge writes.
    DetachReplica(InstanceKey),
    /// Make a replica found writable read-only (its sessions stay): a write
    /// on it would be an errant transaction. A configuration file with
    /// `read_only=OFF` makes a restarted replica writable, such as the old
    /// primary of a switchover.
    EnforceReadOnly(InstanceKey),
    /// Every route of this process (proxy, DNS, health checks) follows this
    /// table from now on; the shell never lets an older epoch replace a newer.
    PublishRoutes(Box<RouteTable>),
    /// Store a new epoch with `primary`, a healthy primary no recovery put
    /// in place (the first one pivot sees, or one an operator promoted by
    /// hand): only if the newest epoch is still `expected`. Answered with a
    /// store read.
    AdoptPrimary {
        primary: InstanceKey,
        expected: Option<u64>,
    },
    /// Add (or replace) an entry of the fence list.
    RecordFence(FenceEntry),
    /// Replace an entry of the fence list, only if it is still there: a
    /// verdict or a fence result never puts back an entry another step or
    /// process removed meanwhile (a switchover's released old primary, a
    /// rejoin by hand).
    UpdateFence(FenceEntry),
    /// Raise an alert (logged, recorded, the alert hook).
    Alert {
        text: String,
        code: Option<Code>,
        primary: Option<InstanceKey>,
    },
    /// A replication-health alert (an instance's IO or SQL thread, lag or
    /// reachability changed): logged, recorded, the alert hook, the webhook.
    HealthAlert(Box<crate::control::health_alerts::HealthAlert>),
    Log {
        level: Level,
        text: String,
    },
    /// Make the fenced former primary `instance` a replica of `primary`:
    /// re-judged on fresh readings first (`control::rejoin::check`), kept
    /// read-only, confirmed replicating. Answered with [`Event::Rejoined`].
    Rejoin {
        instance: InstanceKey,
        primary: InstanceKey,
    },
    /// Save the transactions a quarantined `instance` holds beyond the
    /// primary's (`extra`) to a file for review, reading its binary log
    /// from `start` (one GTID per domain). Answered with [`Event::ExtraSaved`].
    SaveExtra {
        instance: InstanceKey,
        extra: GtidSet,
        start: GtidSet,
    },
    /// Take an instance off the fence list (it rejoined).
    ClearFence(InstanceKey),
    /// Record a line in the cluster's history (no alert hook).
    Record {
        text: String,
    },
    /// Close a dual-primary ring: make `active` replicate from `passive`,
    /// re-checked on fresh readings first (the passive read-only and
    /// replicating from the active, caught up with it), nothing made
    /// writable. Answered with [`Event::RingRestored`].
    RestoreRing {
        active: InstanceKey,
        passive: InstanceKey,
    },
}

/// How often one instance is probed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speed {
    Fast,
    Normal,
    Slow,
}

/// Which instances are probed faster or slower than the poll interval
/// ([`Command::SetPace`]); every other one at the poll interval.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pace {
    /// The suspect primary and its replicas, whose confirmation counts:
    /// at the fast interval while the primary does not answer. Never the
    /// others: unreachable seeds probed fast would crowd them out.
    pub fast: BTreeSet<InstanceKey>,
    /// Instances that never answered since pivot watches them and failed as
    /// many probes as discovery gives up after (a bogus or
    /// decommissioned seed): at the slow interval, so that hundreds of them
    /// cannot starve the probes of the cluster's members.
    pub slow: BTreeSet<InstanceKey>,
}

impl Pace {
    pub fn speed(&self, key: &InstanceKey) -> Speed {
        if self.fast.contains(key) {
            Speed::Fast
        } else if self.slow.contains(key) {
            Speed::Slow
        } else {
            Speed::Normal
        }
    }
}
