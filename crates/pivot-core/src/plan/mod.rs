//! Plans: the ordered steps that change a cluster, decided here and executed
//! by the shell one at a time.
//!
//! A plan is data ([`PlanDoc`], versioned, stored with the recovery). Each
//! step declares ([`PlannedStep`]) whether its failure vetoes the plan, what a
//! restarted pivot does when it finds it interrupted ([`OnResume`]), and the
//! steps that undo it. The rules every plan keeps, checked by
//! [`PlanDoc::check`] and by tests:
//!
//! * the old primary is registered for fencing (durably) before the promotion;
//! * at most one promotion; nothing after it declares a veto;
//! * before the promotion, a step that declares a veto and fails abandons the
//!   plan: the undo steps of every step that started run in reverse, then the
//!   `post_unsuccessful_failover` hook; `repoint` declares no veto (a replica
//!   that cannot be repointed is lost, not a reason to abandon);
//! * nothing but undo steps and that hook comes after an abandon.
//!
//! A failover plan starts as a prelude ([`failover_prelude`]: fence a primary
//! that still answers when forced, freeze the replicas, observe them again)
//! and is extended once the candidate is chosen ([`extend_failover`]). A
//! planned switchover's plan ([`switchover_plan`]) is whole from the start.

mod doc;
mod failover;
mod step;
mod switchover;

pub use doc::{PlanDoc, PlanKind, PlannedStep, PLAN_VERSION};
pub use failover::{extend_failover, extend_failover_fenced, failover_prelude, undo_steps, HookSet};
pub use step::{HookPoint, OnResume, Step};
pub use switchover::{switchover_plan, SwitchoverLimits};

#[cfg(test)]
mod tests;
