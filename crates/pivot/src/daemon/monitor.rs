//! One task per cluster: the shell around the cluster state machine
//! (`pivot_core::control::cluster`). It turns what happens (observations,
//! recovery tasks ending, fences applied, the store's contents, a timer) into
//! events, performs the commands the machine answers with (probe, fence,
//! record, start or resume a recovery, alert, log), and publishes snapshots.
//! It decides nothing itself.

mod store_calls;

use super::alerts::Alerts;
use super::prober::{self, ProberHandle, Schedule};
use super::switchover::SwitchoverReply;
use crate::clock;
use crate::config::ClusterConfig;
use crate::recovery::driver::StopFlag;
use crate::recovery::fence_watch::{self, Fenced};
use crate::recovery::{self, Outcome, RecoveryEnv, RecoveryError, Trigger};
use crate::render::{snapshot, ClusterSnapshot, FormerPrimary, RecoveryState};
use pivot_core::control::cluster::{
    ClusterMachine, ClusterSettings, Command, Event, FenceResult, Level, Pace, RecoveryEnd,
};
use pivot_core::{InstanceKey, Observation};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

/// Observations waiting to be folded in; probers wait when it is full.
const OBSERVATION_QUEUE: usize = 1024;
/// The machine's timer: the store is re-read (another process may change
/// it), unwritten ends retried.
const TICK: Duration = Duration::from_secs(1);
/// On shutdown, a running recovery may finish within this bound; past it,
/// it parks at the next step boundary, within [`PARK_GRACE`].
pub const FINISH_GRACE: Duration = Duration::from_secs(20);
pub const PARK_GRACE: Duration = Duration::from_secs(10);
/// Events one handler call may cause in turn (commands that answer with an
/// event, such as a store read); a bound, never reached in practice.
const MAX_CHAINED_EVENTS: usize = 64;

type RecoveryTask = JoinHandle<Result<Option<Outcome>, RecoveryError>>;

/// How a monitor stopped.
#[derive(Debug, Default)]
pub struct MonitorExit {
    /// A recovery was left unfinished (parked or cut off).
    pub unfinished: Option<String>,
}

pub struct Monitor {
    cfg: Arc<ClusterConfig>,
    env: RecoveryEnv,
    machine: ClusterMachine,
    probers: BTreeMap<InstanceKey, ProberHandle>,
    pace: Pace,
    tx: mpsc::Sender<Observation>,
    rx: mpsc::Receiver<Observation>,
    limit: Arc<Semaphore>,
    published: watch::Sender<Arc<ClusterSnapshot>>,
    recovery: Option<RecoveryTask>,
    stop: StopFlag,
    /// The last recovery's outcome, kept while its end is not written.
    unrecorded: Option<Outcome>,
    alerts: Alerts,
    fence_tasks: Vec<JoinHandle<()>>,
    fence_tx: mpsc::Sender<Fenced>,
    fence_rx: mpsc::Receiver<Fenced>,
    watch: Option<JoinHandle<()>>,
    watch_tx: mpsc::Sender<InstanceKey>,
    watch_rx: mpsc::Receiver<InstanceKey>,
    /// Ends of the rejoin and quarantine-file tasks.
    task_tx: mpsc::Sender<Event>,
    task_rx: mpsc::Receiver<Event>,
    /// Commands yet to perform, bounded by [`MAX_CHAINED_EVENTS`] per event.
    queue: VecDeque<Command>,
    /// Switchover requests from the API, and who waits for each answer.
    asks: super::switchover::AskReceiver,
    next_ask: u64,
    waiting: BTreeMap<u64, tokio::sync::oneshot::Sender<SwitchoverReply>>,
    /// The request the running recovery task answers, if a switchover.
    answering: Option<u64>,
    /// The heartbeat writer (`[cluster.heartbeat]`), started by `run`.
    heartbeat: Option<super::heartbeat::Heartbeat>,
}

impl Monitor {
    pub fn new(
        env: RecoveryEnv,
        limit: Arc<Semaphore>,
        asks: super::switchover::AskReceiver,
        webhook: Option<super::webhook::Webhook>,
    ) -> (Monitor, watch::Receiver<Arc<ClusterSnapshot>>) {
        let cfg = env.cluster.clone();
        let (tx, rx) = mpsc::channel(OBSERVATION_QUEUE);
        let (fence_tx, fence_rx) = mpsc::channel(64);
        let (watch_tx, watch_rx) = mpsc::channel(8);
        let (task_tx, task_rx) = mpsc::channel(16);
        let settings = ClusterSettings {
            name: cfg.name.clone(),
            seeds: cfg.seeds.clone(),
            detection: cfg.detection.clone(),
            automatic: cfg.failover.automatic,
            max_instances: cfg.max_instances,
            route_max_lag_s: cfg.read_max_lag.as_secs(),
            auto_rejoin: cfg.auto_rejoin,
            alert_interval_ms: cfg.alert_interval.as_millis() as u64,
            dual_primary: cfg.dual_primary,
        };
        let (machine, first) = ClusterMachine::new(settings, clock::now());
        let snap = snapshot(&cfg.name, machine.view(), machine.analysis());
        let (published, subscriber) = watch::channel(Arc::new(snap));
        let alerts = Alerts::new(cfg.clone(), env.state.clone(), webhook);
        let monitor = Monitor {
            cfg,
            env,
            machine,
            probers: BTreeMap::new(),
            pace: Pace::default(),
            tx,
            rx,
            limit,
            published,
            recovery: None,
            stop: StopFlag::default(),
            unrecorded: None,
            alerts,
            fence_tasks: Vec::new(),
            fence_tx,
            fence_rx,
            watch: None,
            watch_tx,
            watch_rx,
            task_tx,
            task_rx,
            queue: first.into(),
            asks,
            next_ask: 0,
            waiting: BTreeMap::new(),
            answering: None,
            heartbeat: None,
        };
        (monitor, subscriber)
    }

    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> MonitorExit {
        tracing::info!(cluster = %self.cfg.name, seeds = ?self.cfg.seeds.iter().map(ToString::to_string).collect::<Vec<_>>(), "watching cluster");
        self.heartbeat = super::heartbeat::Heartbeat::spawn(&self.cfg, self.alerts.clone());
        self.perform_queued();
        let mut tick = tokio::time::interval(TICK);
        loop {
            let event = tokio::select! {
                Some(obs) = self.rx.recv() => Event::Observed(obs),
                Some(f) = self.fence_rx.recv() => Event::Fence(fence_result(f)),
                Some(k) = self.watch_rx.recv() => Event::WatchEnded(k),
                Some(e) = self.task_rx.recv() => e,
                done = wait(&mut self.recovery) => self.recovery_end(done),
                _ = tick.tick() => Event::Tick,
                Some(ask) = self.asks.recv() => {
                    self.next_ask += 1;
                    self.waiting.insert(self.next_ask, ask.reply);
                    Event::SwitchoverRequested { request: self.next_ask, to: ask.to }
                }
                _ = shutdown.changed() => break,
            };
            self.handle(event);
        }
        self.shut_down().await
    }

    fn handle(&mut self, event: Event) {
        if matches!(event, Event::Tick) && crate::failpoint::fires("panic_in_monitor") {
            panic!("failpoint panic_in_monitor (PIVOT_FAILPOINTS)");
        }
        let commands = self.machine.handle(event, clock::now());
        self.queue.extend(commands);
        self.perform_queued();
    }

    fn perform_queued(&mut self) {
        let mut chained = 0;
        while let Some(cmd) = self.queue.pop_front() {
            if let Some(event) = self.perform(cmd) {
                chained += 1;
                assert!(chained <= MAX_CHAINED_EVENTS, "the cluster machine keeps answering itself");
                let more = self.machine.handle(event, clock::now());
                self.queue.extend(more);
            }
        }
        self.publish();
    }

    /// Perform one command; some answer with an event at once.
    fn perform(&mut self, cmd: Command) -> Option<Event> {
        let cluster = self.cfg.name.clone();
        match cmd {
            Command::Watch(key) => {
                let handle = prober::spawn(
                    key.clone(),
                    self.cfg.credentials.clone(),
                    self.schedule(),
                    self.limit.clone(),
                    self.tx.clone(),
                    self.cfg
                        .heartbeat
                        .as_ref()
                        .map(|h| pivot_server::HeartbeatProbe { table: h.table.clone(), stale_after: h.stale_after }),
                );
                handle.set_speed(self.pace.speed(&key));
                self.probers.insert(key, handle);
            }
            Command::Unwatch(key) => {
                self.probers.remove(&key);
            }
            Command::ProbeNow(key) => {
                if let Some(p) = self.probers.get(&key) {
                    p.wake();
                }
            }
            Command::SetPace(pace) => {
                self.probers.iter().for_each(|(k, p)| p.set_speed(pace.speed(k)));
                self.pace = pace;
            }
            Command::WatchPrimary(key) => {
                if let Some(old) = self.watch.take() {
                    old.abort();
                }
                self.watch = Some(super::crash_watch::spawn(
                    key,
                    self.cfg.credentials.clone(),
                    self.cfg.probe_timeout,
                    self.watch_tx.clone(),
                ));
            }
            Command::ReadStore => return Some(Event::Store(self.read_store())),
            Command::StartRecovery { analysis, view } => {
                let (env, stop) = (self.env.clone(), self.stop.clone());
                let trigger = Trigger { automatic: true, target: None, force: false };
                self.recovery = Some(tokio::spawn(async move {
                    recovery::failover::run(&env, &view, &analysis, &trigger, stop).await.map(Some)
                }));
            }
            Command::StartSwitchover { request, primary, to, view } => {
                let (env, stop) = (self.env.clone(), self.stop.clone());
                self.answering = Some(request);
                self.recovery = Some(tokio::spawn(async move {
                    recovery::switchover::run(&env, &view, primary, to, stop).await.map(Some)
                }));
            }
            Command::RefuseSwitchover { request, reason } => {
                if let Some(reply) = self.waiting.remove(&request) {
                    let _ = reply.send(SwitchoverReply::Refused { reason });
                }
            }
            Command::ResumeRecovery { id, view } => match self.store(|s| s.recovery(id)) {
                Ok(record) => {
                    let (env, stop) = (self.env.clone(), self.stop.clone());
                    self.recovery =
                        Some(tokio::spawn(
                            async move { Ok(recovery::resume::resume(&env, record, &view, stop).await) },
                        ));
                }
                Err(e) => return Some(Event::RecoveryEnded(RecoveryEnd::NotStarted { reason: e.to_string() })),
            },
            Command::RetryUnrecorded => self.retry_unrecorded(),
            Command::ReopenStore { fenced } => match self.store(|s| s.reopen()) {
                Ok(()) => {
                    tracing::warn!(%cluster, "state file {} opened again; writing back {} fence entries", self.env.state.path().display(), fenced.len());
                    for entry in &fenced {
                        if let Err(e) = self.record_fence(entry) {
                            tracing::error!(%cluster, "cannot write back {} to the fence list: {e}", entry.instance);
                        }
                    }
                }
                Err(e) => tracing::error!(%cluster, "cannot open the state file again: {e}"),
            },
            Command::WatchFormerPrimary(key) => {
                self.fence_tasks.retain(|t| !t.is_finished());
                self.fence_tasks.push(fence_watch::spawn(key, self.cfg.credentials.clone(), self.fence_tx.clone()));
            }
            Command::FenceNow(key) => {
                self.fence_tasks.retain(|t| !t.is_finished());
                self.fence_tasks.push(fence_watch::fence_now(
                    key,
                    self.cfg.credentials.clone(),
                    self.cfg.probe_timeout,
                    self.fence_tx.clone(),
                ));
            }
            Command::EnforceReadOnly(key) => {
                let (creds, timeout) = (self.cfg.credentials.clone(), self.cfg.failover.step_timeout);
                let cluster = cluster.clone();
                tokio::spawn(async move {
                    let r = match pivot_server::Session::connect(&key, &creds, timeout).await {
                        Ok(mut s) => pivot_server::actions::make_read_only(&mut s).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match r {
                        Ok(()) => tracing::warn!(%cluster, "made the writable replica {key} read-only"),
                        Err(e) => tracing::error!(%cluster, "cannot make the writable replica {key} read-only: {e}"),
                    }
                });
            }
            Command::DetachReplica(key) => {
                let (creds, timeout) = (self.cfg.credentials.clone(), self.cfg.failover.step_timeout);
                let cluster = cluster.clone();
                tokio::spawn(async move {
                    let r = match pivot_server::Session::connect(&key, &creds, timeout).await {
                        Ok(mut s) => pivot_server::actions::stop_io_thread(&mut s).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match r {
                        Ok(()) => {
                            tracing::warn!(%cluster, "stopped the IO thread of {key}: it followed a fenced former primary")
                        }
                        Err(e) => tracing::error!(%cluster, "cannot stop the IO thread of {key}: {e}"),
                    }
                });
            }
            Command::UpdateFence(entry) => {
                let (name, key) = (self.cfg.name.clone(), entry.instance.to_string());
                if let Err(e) = self.store(|s| s.fence_update(&name, &key, &entry.status, &entry.detail)) {
                    let more = self.machine.shell_problem(
                        "fence_list",
                        format!("cannot record {} in the fence list: {e}", entry.instance),
                    );
                    self.queue.extend(more);
                }
            }
            Command::RecordFence(entry) => {
                if let Err(e) = self.record_fence(&entry) {
                    let more = self.machine.shell_problem(
                        "fence_list",
                        format!("cannot record {} in the fence list: {e}", entry.instance),
                    );
                    self.queue.extend(more);
                }
            }
            Command::PublishRoutes(table) => {
                if let Some(hub) = &self.env.routes {
                    hub.offer(*table);
                }
            }
            Command::AdoptPrimary { primary, expected } => {
                let key = primary.to_string();
                match self.store(|s| s.epoch_advance(&cluster, &key, None, Some(expected), clock::wall_ms())) {
                    Ok(Some(e)) => tracing::info!(%cluster, "epoch {}: {} is the primary", e.number, e.primary),
                    Ok(None) => tracing::info!(%cluster, "the epoch changed meanwhile: {primary} not adopted"),
                    Err(e) => tracing::error!(%cluster, "cannot store the epoch of {primary}: {e}"),
                }
                return Some(Event::Store(self.read_store()));
            }
            Command::Alert { text, code, primary } => self.alerts.send(&text, code, primary),
            Command::HealthAlert(a) => self.alerts.health(&a),
            Command::Rejoin { instance, primary } => {
                crate::rejoin::spawn_rejoin(self.env.clone(), instance, primary, self.task_tx.clone())
            }
            Command::SaveExtra { instance, extra, start } => {
                crate::rejoin::spawn_save_extra(self.env.clone(), instance, extra, start, self.task_tx.clone())
            }
            Command::RestoreRing { active, passive } => {
                crate::rejoin::ring::spawn_restore(self.env.clone(), active, passive, self.task_tx.clone())
            }
            Command::ClearFence(key) => {
                if let Err(e) = self.store(|s| s.fence_remove(&cluster, &key.to_string())) {
                    tracing::error!(%cluster, "cannot take {key} off the fence list: {e}");
                }
            }
            Command::Record { text } => {
                if let Err(e) = self.store(|s| s.event(&cluster, clock::wall_ms(), "info", &text)) {
                    tracing::error!(%cluster, "cannot record in the history: {e}");
                }
            }
            Command::Log { level, text } => match level {
                Level::Info => tracing::info!(%cluster, "{text}"),
                Level::Warn => tracing::warn!(%cluster, "{text}"),
                Level::Error => tracing::error!(%cluster, "{text}"),
            },
        }
        None
    }

    fn schedule(&self) -> Schedule {
        Schedule {
            interval: self.cfg.poll_interval,
            fast_interval: self.cfg.poll_interval.min(Duration::from_millis(50)),
            slow_interval: (self.cfg.poll_interval * 10).max(Duration::from_secs(2)),
            timeout: self.cfg.probe_timeout,
        }
    }

    fn recovery_end(&mut self, done: Result<Result<Option<Outcome>, RecoveryError>, tokio::task::JoinError>) -> Event {
        self.recovery = None;
        if let Some(reply) = self.answering.take().and_then(|r| self.waiting.remove(&r)) {
            let _ = reply.send(match &done {
                Ok(Ok(Some(o))) => SwitchoverReply::Ended { outcome: o.clone() },
                Ok(Ok(None)) => SwitchoverReply::Failed { reason: "another pivot process holds the recovery".into() },
                Ok(Err(e)) => SwitchoverReply::Failed { reason: e.to_string() },
                Err(e) => SwitchoverReply::Failed {
                    reason: format!("the switchover task failed ({e}); it is resumed from the state file"),
                },
            });
        }
        let cluster = &self.cfg.name;
        Event::RecoveryEnded(match done {
            Ok(Ok(Some(o))) => {
                tracing::info!(%cluster, recovery = o.id, status = o.status.as_str(), "recovery {} ended: {}", o.id, o.summary);
                let end = RecoveryEnd::Ended {
                    id: o.id,
                    new_primary: o.new_primary.clone().filter(|_| o.status.promoted()),
                    parked: o.parked,
                    alert: o.alert.then(|| format!("recovery {} {}: {}", o.id, o.status.as_str(), o.summary)),
                    unrecorded: o.unrecorded.clone(),
                };
                if o.unrecorded.is_some() {
                    self.unrecorded = Some(o);
                }
                end
            }
            Ok(Ok(None)) => RecoveryEnd::HeldElsewhere,
            Ok(Err(e)) => RecoveryEnd::NotStarted { reason: e.to_string() },
            Err(e) => RecoveryEnd::TaskFailed { reason: e.to_string() },
        })
    }

    fn retry_unrecorded(&mut self) {
        let Some(o) = self.unrecorded.clone() else { return };
        let env = self.env.clone();
        let written = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(recovery::driver::record_end(
                &env,
                o.id,
                o.status,
                &o.summary,
                &o.lost,
                o.block_until,
            ))
        });
        match written {
            Ok(()) => {
                tracing::info!(cluster = %self.cfg.name, recovery = o.id, "the end of recovery {} is recorded now", o.id);
                self.unrecorded = None;
                self.machine.unrecorded_written(o.id);
                self.queue.push_back(Command::ReadStore);
            }
            Err(e) => tracing::debug!(cluster = %self.cfg.name, "still cannot record the end of the recovery: {e}"),
        }
    }

    fn publish(&mut self) {
        let m = &self.machine;
        let snap = snapshot(&self.cfg.name, m.view(), m.analysis()).with_recovery(RecoveryState {
            blocked_until: m.blocked_until().map(|b| b.until_wall),
            running_recovery: m.running_recovery(),
            automatic: self.cfg.failover.automatic,
            fenced: m
                .fenced()
                .map(|f| FormerPrimary {
                    instance: f.instance.clone(),
                    status: f.status.clone(),
                    detail: f.detail.clone(),
                })
                .collect(),
            discovery_limit: m.discovery_limit(),
            control_problems: m.problems().cloned().collect(),
        });
        self.published.send_replace(Arc::new(snap));
        if let Some(hb) = &self.heartbeat {
            hb.follow(m, self.recovery.is_some());
        }
    }

    /// Let a running recovery finish (bounded), else park it (bounded).
    async fn shut_down(mut self) -> MonitorExit {
        let cluster = self.cfg.name.clone();
        if let Some(task) = self.watch.take() {
            task.abort();
        }
        let Some(mut task) = self.recovery.take() else {
            tracing::info!(%cluster, "stopped watching cluster");
            return MonitorExit::default();
        };
        tracing::warn!(%cluster, "stopping: a recovery is running; letting it finish (up to {} s)", FINISH_GRACE.as_secs());
        let done = match tokio::time::timeout(FINISH_GRACE, &mut task).await {
            Ok(done) => Some(done),
            Err(_) => {
                tracing::error!(%cluster, "the recovery did not finish in time: parking it at the next step");
                self.stop.stop();
                tokio::time::timeout(PARK_GRACE, &mut task).await.ok()
            }
        };
        let unfinished = match done {
            Some(Ok(Ok(Some(o)))) if !o.parked => {
                tracing::info!(%cluster, recovery = o.id, "recovery {} finished before stopping: {}", o.id, o.summary);
                None
            }
            Some(Ok(Ok(Some(o)))) => Some(format!("recovery {} parked: {}", o.id, o.summary)),
            Some(Ok(Ok(None))) => None,
            Some(Ok(Err(e))) => Some(format!("recovery not started: {e}")),
            Some(Err(e)) => Some(format!("recovery task failed: {e}")),
            None => {
                task.abort();
                Some("the running step did not end in time; a restarted pivot resumes the recovery".into())
            }
        };
        MonitorExit { unfinished }
    }
}

fn fence_result(f: Fenced) -> FenceResult {
    FenceResult {
        instance: f.instance,
        result: f.result.map(|r| pivot_core::control::cluster::Fenced {
            sessions_ended: r.sessions_ended,
            executed: r.executed,
            took_ms: r.took.as_millis() as u64,
        }),
    }
}

/// Wait for the recovery task if there is one; never resolves otherwise.
async fn wait(
    task: &mut Option<RecoveryTask>,
) -> Result<Result<Option<Outcome>, RecoveryError>, tokio::task::JoinError> {
    match task {
        Some(t) => t.await,
        None => std::future::pending().await,
    }
}
