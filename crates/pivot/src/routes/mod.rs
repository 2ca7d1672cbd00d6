//! The routes this process serves: the hub each cluster's route table is
//! published to (by its monitor, and by a recovery's `route_local` step),
//! and what follows it: the built-in proxy, the health checks.

pub mod dns;
mod hub;
pub mod kv;
pub mod vip;

pub use hub::RouteHub;
