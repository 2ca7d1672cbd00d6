//! The `pivot` program: configuration, CLI, daemon, HTTP surface.
//!
//! This crate is the imperative shell around `pivot-core`: it reads the
//! configuration, runs probes through `pivot-server`, feeds the core, and
//! presents what the core concludes. See ARCHITECTURE.md at the repository root.

pub mod agent;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod failpoint;
pub mod http;
pub mod proxy;
pub mod recovery;
pub mod rejoin;
pub mod render;
pub mod routes;
