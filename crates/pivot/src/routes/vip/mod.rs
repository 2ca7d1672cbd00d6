//! The virtual IP route (`[cluster.vip]`): an address that follows the
//! primary of the newest epoch, put up and taken down by `pivot agent` on
//! each database host (or by keepalived, whose check asks the agent), and
//! never on two hosts at once.
//!
//! The primary's agent holds the address under a lease pivot renews (every
//! third of it). An agent whose lease is not renewed takes the address down
//! by itself, and the kernel does too even if the agent is frozen or
//! killed: the agent puts the address up with a lifetime of one lease
//! (`ip addr replace ... valid_lft`), renewed with the lease. Every command
//! carries the epoch; an agent refuses an epoch older than one it has seen.
//!
//! Moving the address ([`VipMover::round`]): release it on every other
//! agent; lease it to the primary's agent only once every other agent
//! certainly holds nothing ([`book`]: confirmed, or its last possible
//! lease certainly over). The same round runs as the failover's
//! `route_vip` step ([`step`]) and, in `pivot run`, every third of the
//! lease from the follower ([`follow`]), which renews the lease and puts
//! the address back after an adoption or a step that failed.

pub mod book;
pub mod client;
pub mod follow;
pub mod protocol;

use crate::config::{ClusterConfig, VipConfig};
use crate::routes::RouteHub;
use book::{Book, Bounds, Decision, Sample};
use client::{AgentClient, Answer};
use pivot_core::routes::{EpochRecord, RouteKind, RouteSpec, RouteTable};
use pivot_core::InstanceKey;
use protocol::{LeaseRequest, ReleaseRequest, Reply, TableRequest, VipSpec};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What one cluster's routes in this process know about the agents.
pub type SharedBook = Arc<Mutex<Book>>;

pub fn new_book() -> SharedBook {
    Arc::new(Mutex::new(Book::new(Instant::now())))
}

/// How long another pivot process may renew an older epoch after this one
/// learned of a newer one: it reads the state file every second.
pub const OTHER_PROCESS: Duration = Duration::from_millis(1500);
/// From the end of a lease until the kernel has removed the address (it
/// checks lifetimes at most a second apart; measured: within 0.25 s).
pub const KERNEL_AFTER: Duration = Duration::from_millis(1500);
/// From the end of a lease until keepalived has taken the address down:
/// its check runs every second with a timeout of one (`pivot
/// keepalived-config`), then it leaves MASTER.
pub const KEEPALIVED_AFTER: Duration = Duration::from_millis(2500);
/// Between two attempts to reach an agent that did not answer.
const RETRY: Duration = Duration::from_millis(250);

/// The VIP route a cluster's configuration asks for, if any.
pub fn route_spec(c: &ClusterConfig) -> Option<RouteSpec> {
    c.vip.as_ref().map(|v| RouteSpec { kind: RouteKind::Vip, required: v.required })
}

/// The bounds the decisions of `cfg` are made with.
pub fn bounds_of(cfg: &VipConfig) -> Bounds {
    Bounds {
        validity: cfg.timeout,
        lease: cfg.lease,
        after: if cfg.keepalived { KEEPALIVED_AFTER } else { KERNEL_AFTER },
        other_process: OTHER_PROCESS,
    }
}

/// What a round did.
#[derive(Clone, Debug)]
pub enum Moved {
    /// The primary's agent holds the lease.
    Leased {
        instance: InstanceKey,
        agent: InstanceKey,
        /// Agents that confirmed they hold nothing.
        released: Vec<InstanceKey>,
        /// Agents that did not answer: their leases certainly ended.
        expired: Vec<InstanceKey>,
        /// Since the round started.
        took: Duration,
    },
    /// These agents may still hold a lease, until `until`.
    Waiting { until: Instant, holders: Vec<InstanceKey> },
}

/// Moves one cluster's address.
pub struct VipMover {
    cluster: String,
    cfg: VipConfig,
    book: SharedBook,
    bounds: Bounds,
    agents: Vec<(InstanceKey, AgentClient)>,
}

impl VipMover {
    pub fn new(cluster: &str, cfg: &VipConfig, book: SharedBook) -> VipMover {
        let agents = cfg
            .agents
            .iter()
            .map(|(i, a)| (i.clone(), AgentClient::new(a.clone(), cfg.token.clone(), cfg.timeout)))
            .collect();
        VipMover { cluster: cluster.to_string(), cfg: cfg.clone(), book, bounds: bounds_of(cfg), agents }
    }

    pub fn config(&self) -> &VipConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address for the agents to handle; `None` when keepalived does.
    fn spec(&self) -> Option<VipSpec> {
        (!self.cfg.keepalived)
            .then(|| VipSpec { address: self.cfg.address.to_string(), interface: self.cfg.interface.clone() })
    }

    fn lease_ms(&self) -> u64 {
        self.cfg.lease.as_millis() as u64
    }

    fn note(&self, agent: &InstanceKey, r: &Reply) {
        let s = Sample { boot: r.state.boot.clone(), agent_ms: r.state.clock_ms, at: Instant::now() };
        self.lock().sample(agent, s, &self.bounds);
    }

    /// One round toward `table`: every other agent released, the lease to
    /// the primary's agent once no other may hold one. Waits (retrying the
    /// releases) until `wait_until` at most; `None`: not at all.
    /// `still_current`: asked right before a lease is sent; false stops the
    /// round (the table it works from is no longer the current one).
    pub async fn round(
        &self,
        table: &RouteTable,
        wait_until: Option<Instant>,
        still_current: &(dyn Fn() -> bool + Sync),
    ) -> Result<Moved, String> {
        let started = Instant::now();
        let epoch = table.epoch;
        let Some(primary) = table.primary.clone().filter(|_| epoch > 0) else {
            return Err("the route table names no primary: the address stays where it is until its lease ends".into());
        };
        {
            let mut book = self.lock();
            if !book.observe_epoch(epoch, started, &self.bounds) {
                return Err(format!("epoch {epoch} is older than epoch {}, which this process routes", book.epoch()));
            }
        }
        let table = Arc::new(table.clone());
        let target = self.agents.iter().find(|(i, _)| *i == primary).map(|(_, c)| c.clone());
        let others: Vec<AgentClient> =
            self.agents.iter().filter(|(i, _)| *i != primary).map(|(_, c)| c.clone()).collect();
        let Some(target) = target else {
            self.release(&others, epoch, &table).await;
            return Err(format!(
                "the primary {primary} has no agent in [cluster.vip] agents: the address goes nowhere"
            ));
        };
        let other_addrs: Vec<InstanceKey> = others.iter().map(|c| c.addr.clone()).collect();
        let mut released_once = false;
        loop {
            let decision = self.lock().decide(&other_addrs, Instant::now(), &self.bounds);
            match decision {
                Decision::Lease => {
                    if !still_current() {
                        return Err(format!("the route table moved on from epoch {epoch}: no lease sent"));
                    }
                    let lease = if released_once {
                        self.lease(&target, &table).await
                    } else {
                        tokio::join!(self.lease(&target, &table), self.release(&others, epoch, &table)).0
                    };
                    lease?;
                    let book = self.lock();
                    let (released, expired) = other_addrs.iter().cloned().partition(|a| book.released(a));
                    return Ok(Moved::Leased {
                        instance: primary,
                        agent: target.addr.clone(),
                        released,
                        expired,
                        took: started.elapsed(),
                    });
                }
                Decision::Wait { until, holders } => {
                    if !released_once {
                        self.release(&others, epoch, &table).await;
                        released_once = true;
                        continue;
                    }
                    let now = Instant::now();
                    let Some(limit) = wait_until.filter(|w| now < *w) else {
                        return Ok(Moved::Waiting { until, holders });
                    };
                    tokio::time::sleep_until(until.min(limit).min(now + RETRY).into()).await;
                    let again: Vec<AgentClient> =
                        others.iter().filter(|c| holders.contains(&c.addr)).cloned().collect();
                    self.release(&again, epoch, &table).await;
                }
            }
        }
    }

    /// Lease the address to `target`: its clock read first if this
    /// process has no reading of it; one more attempt if it refuses (it
    /// restarted, or the lease arrived late by its clock).
    async fn lease(&self, target: &AgentClient, table: &Arc<RouteTable>) -> Result<String, String> {
        let addr = &target.addr;
        let mut refusal = String::new();
        for _ in 0..2 {
            if self.lock().valid_until(addr, Instant::now(), self.bounds.validity).is_none() {
                let st = target.state().await?;
                let s = Sample { boot: st.boot, agent_ms: st.clock_ms, at: Instant::now() };
                self.lock().sample(addr, s, &self.bounds);
            }
            let (boot, valid_until_ms) = {
                let now = Instant::now();
                let mut book = self.lock();
                let v = book.valid_until(addr, now, self.bounds.validity).expect("sampled above");
                book.lease_sent(addr, now, &self.bounds);
                v
            };
            let req = LeaseRequest {
                epoch: table.epoch,
                boot,
                valid_until_ms,
                lease_ms: self.lease_ms(),
                vip: self.spec(),
                table: (**table).clone(),
            };
            match target.command("/v1/lease", &req).await {
                Answer::Done(r) => {
                    self.note(addr, &r);
                    return Ok(r.message);
                }
                Answer::Refused(r) => {
                    self.note(addr, &r);
                    refusal = format!("agent {addr} refused the lease: {}", r.message);
                }
                Answer::Failed(e) => return Err(e),
            }
        }
        Err(refusal)
    }

    /// Release on each of `agents` at once; confirmations go in the book.
    async fn release(&self, agents: &[AgentClient], epoch: u64, table: &Arc<RouteTable>) -> Vec<(InstanceKey, String)> {
        let req =
            Arc::new(ReleaseRequest { epoch, lease_ms: self.lease_ms(), vip: self.spec(), table: (**table).clone() });
        let mut tasks = tokio::task::JoinSet::new();
        for c in agents {
            let (c, req) = (c.clone(), req.clone());
            tasks.spawn(async move { (c.addr.clone(), c.command("/v1/release", &*req).await) });
        }
        let mut failed = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let Ok((addr, answer)) = done else { continue };
            match answer {
                Answer::Done(r) => {
                    self.note(&addr, &r);
                    self.lock().release_confirmed(&addr, epoch, &self.bounds);
                }
                Answer::Refused(r) => {
                    self.note(&addr, &r);
                    failed.push((addr, r.message));
                }
                Answer::Failed(e) => failed.push((addr, e)),
            }
        }
        if !failed.is_empty() {
            let list: Vec<String> = failed.iter().map(|(_, e)| e.clone()).collect();
            tracing::debug!(cluster = %self.cluster, "vip: not released: {}", list.join("; "));
        }
        failed
    }

    /// Only the table, to every agent (writes are held: no lease moves).
    pub async fn push_tables(&self, table: &RouteTable) {
        let req = Arc::new(TableRequest { lease_ms: self.lease_ms(), table: table.clone() });
        let mut tasks = tokio::task::JoinSet::new();
        for (_, c) in &self.agents {
            let (c, req) = (c.clone(), req.clone());
            tasks.spawn(async move { (c.addr.clone(), c.command("/v1/table", &*req).await) });
        }
        while let Some(done) = tasks.join_next().await {
            if let Ok((addr, Answer::Done(r) | Answer::Refused(r))) = done {
                self.note(&addr, &r);
            }
        }
    }

    /// A round's outcome in words, for the step's record and the logs.
    pub fn describe(&self, epoch: u64, m: &Moved) -> String {
        let list = |v: &[InstanceKey]| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match m {
            Moved::Leased { instance, agent, released, expired, took } => {
                let address = &self.cfg.address;
                let mut s = if self.cfg.keepalived {
                    format!(
                        "epoch {epoch}: the agent {agent} of {instance} answers keepalived's check; keepalived moves \
                         {address} there"
                    )
                } else {
                    format!("{address} on {instance} (agent {agent}, epoch {epoch})")
                };
                if !released.is_empty() {
                    s.push_str(&format!("; released by {}", list(released)));
                }
                if !expired.is_empty() {
                    s.push_str(&format!(
                        "; no answer from {}: waited until any lease it had certainly ended ({:.1} s)",
                        list(expired),
                        took.as_secs_f64()
                    ));
                }
                s
            }
            Moved::Waiting { until, holders } => format!(
                "waiting for {} (no answer): a lease it may hold ends within {:.1} s",
                list(holders),
                until.saturating_duration_since(Instant::now()).as_secs_f64()
            ),
        }
    }
}

/// The `route_vip` step: move the address to the primary of `epoch`,
/// waiting (bounded) for agents that do not answer. `hub`: this process's
/// routes (`pivot run`); the table pushed to the agents comes from it.
pub async fn step(
    cluster: &ClusterConfig,
    hub: Option<&RouteHub>,
    epoch: &EpochRecord,
    failed: Option<&InstanceKey>,
) -> Result<String, String> {
    let Some(cfg) = &cluster.vip else {
        return Err("no [cluster.vip] in the configuration: the address was not moved".into());
    };
    let table = match hub {
        Some(h) => {
            let current = h.current();
            if current.epoch > epoch.number {
                return Ok(format!("epoch {} is newer than {}: the address follows it", current.epoch, epoch.number));
            }
            if current.epoch == epoch.number && !current.hold {
                (*current).clone()
            } else {
                current.after_promotion(epoch, failed)
            }
        }
        None => RouteTable::default().after_promotion(epoch, failed),
    };
    let book = hub.map(RouteHub::vip_book).unwrap_or_else(new_book);
    let mover = VipMover::new(&cluster.name, cfg, book);
    let bounds = bounds_of(cfg);
    let deadline = Instant::now() + bounds.after_new_epoch() + cfg.timeout * 3;
    let number = epoch.number;
    let still = move || hub.is_none_or(|h| h.current().epoch <= number);
    loop {
        let last = match mover.round(&table, Some(deadline), &still).await {
            Ok(m @ Moved::Leased { .. }) => return Ok(mover.describe(number, &m)),
            Ok(m @ Moved::Waiting { .. }) => mover.describe(number, &m),
            Err(e) => e,
        };
        if Instant::now() + RETRY >= deadline {
            return Err(format!("{} not moved to {}: {last}", cfg.address, epoch.primary));
        }
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests;
