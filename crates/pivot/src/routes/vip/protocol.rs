//! What pivot and `pivot agent` say to each other: JSON over HTTP, every
//! request with `Authorization: Bearer <token>`.
//!
//! | request | does |
//! |---|---|
//! | `GET /v1/state` | the agent's state and clock ([`AgentState`]) |
//! | `POST /v1/lease` ([`LeaseRequest`]) | the agent's instance is the primary of `epoch` for `lease_ms`: it puts the address up (unless keepalived moves it) and answers `/primary` with 200 until the lease ends |
//! | `POST /v1/release` ([`ReleaseRequest`]) | it is not: the lease ends and the address goes, now |
//! | `POST /v1/table` ([`TableRequest`]) | only the route table, for the health checks (while a recovery holds writes) |
//!
//! Every answer is a [`Reply`]: 200 done, 409 refused (an older epoch than
//! one the agent has seen, a command too late by the agent's clock, another
//! boot of the agent), 400 a bad request, 500 the address could not be
//! changed, 401 without the right token.

use pivot_core::routes::RouteTable;
use pivot_core::InstanceKey;
use serde::{Deserialize, Serialize};

/// A lease the agent holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseState {
    pub epoch: u64,
    /// Milliseconds left on the agent's clock.
    pub left_ms: u64,
}

/// The agent as it answers every request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// Changes at every start of the agent: a lease for another boot (sent
    /// before it restarted) is refused.
    pub boot: String,
    /// The agent's clock (`CLOCK_BOOTTIME`, ms) when it answered. pivot
    /// bounds every lease in this clock, so that a late one is refused.
    pub clock_ms: u64,
    /// The newest epoch it has seen: anything older is refused.
    pub epoch: u64,
    /// The instance it answers for.
    pub instance: InstanceKey,
    pub lease: Option<LeaseState>,
    /// The virtual address it put up and holds now, if any.
    pub vip: Option<String>,
    /// How old the last route table from pivot is (ms).
    pub table_age_ms: Option<u64>,
}

/// The virtual address and where it goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipSpec {
    /// `198.18.0.100/24`.
    pub address: String,
    /// pivot's `[cluster.vip] interface`; the agent's own setting wins.
    pub interface: String,
}

/// The agent's instance is the primary of `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRequest {
    pub epoch: u64,
    /// The boot this lease is for ([`AgentState::boot`]).
    pub boot: String,
    /// Refused when the agent's clock is past this (ms, its own clock).
    pub valid_until_ms: u64,
    /// How long the lease lasts without a renewal.
    pub lease_ms: u64,
    /// `None`: keepalived moves the address; the agent touches none.
    pub vip: Option<VipSpec>,
    /// The table of `epoch`: its primary must be the agent's instance.
    pub table: RouteTable,
}

/// The agent's instance is not the primary of `epoch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRequest {
    pub epoch: u64,
    /// The freshness bound of the table for the health checks.
    pub lease_ms: u64,
    /// The address to take down if it is there.
    pub vip: Option<VipSpec>,
    pub table: RouteTable,
}

/// Only the route table (writes are held: no lease changes hands).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRequest {
    pub lease_ms: u64,
    pub table: RouteTable,
}

/// Every answer of the agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    /// What was done, or why not.
    pub message: String,
    pub state: AgentState,
}
