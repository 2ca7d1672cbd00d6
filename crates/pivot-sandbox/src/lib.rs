//! `pivot sandbox`: a throwaway MariaDB replication cluster on this machine.
//!
//! [`Sandbox::up`] starts N `mariadbd` processes (own datadir, socket, port,
//! `server_id`, GTID binary logs, `read_only` replicas), creates the users
//! pivot and applications need, wires GTID replication and writes a
//! `pivot.toml` that `pivot run` accepts as is. Every process is recorded by
//! PID in `DIR/sandbox.json`, and only those PIDs are ever signalled.
//!
//! The same code serves users (`pivot sandbox up`) and pivot's tests, so what
//! the tests exercise is what users run.

mod binaries;
mod files;
mod manifest;
mod netns;
mod ports;
mod process;
mod secrets;
mod setup;
mod template;

pub use binaries::Binaries;
pub use manifest::{Manifest, NodeRecord};
pub use netns::NetnsLab;
pub use setup::{Network, Sandbox, SandboxSpec};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "`{0}` not found: install MariaDB with `apt-get install -y mariadb-server` (Debian/Ubuntu), \
         or put mariadbd and mariadb-install-db on PATH"
    )]
    MissingBinary(&'static str),
    #[error("{0}")]
    Ports(String),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Setup(String),
}

impl SandboxError {
    pub(crate) fn file(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> SandboxError {
        SandboxError::File { path: path.into(), message: e.to_string() }
    }

    pub(crate) fn node(node: &str, message: impl Into<String>) -> SandboxError {
        SandboxError::Node { node: node.to_string(), message: message.into() }
    }
}
