//! `DIR/sandbox.json`: what a sandbox is made of and which PIDs it started.

use crate::SandboxError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeRecord {
    /// `node1`, `node2`, ...
    pub name: String,
    pub host: String,
    pub port: u16,
    pub server_id: u32,
    /// The PID pivot started it as; `None` while stopped.
    pub pid: Option<u32>,
    /// The network namespace it runs in, for network drills.
    #[serde(default)]
    pub netns: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub server: PathBuf,
    pub mariadb_version: String,
    pub semi_sync: bool,
    pub http_port: u16,
    pub nodes: Vec<NodeRecord>,
    /// The network lab the nodes run in, if any.
    #[serde(default)]
    pub lab: Option<crate::netns::NetnsLab>,
}

impl Manifest {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("sandbox.json")
    }

    pub fn load(dir: &Path) -> Result<Manifest, SandboxError> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            SandboxError::file(
                &path,
                format!("{e}: is this a sandbox directory? (`pivot sandbox up --dir` creates one)"),
            )
        })?;
        serde_json::from_str(&text).map_err(|e| SandboxError::file(&path, e))
    }

    /// Write atomically, so a crash never leaves a half-written manifest.
    pub fn save(&self, dir: &Path) -> Result<(), SandboxError> {
        let path = Self::path(dir);
        let tmp = dir.join(".sandbox.json.tmp");
        let text = serde_json::to_string_pretty(self).expect("manifest serializes");
        std::fs::write(&tmp, text).map_err(|e| SandboxError::file(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| SandboxError::file(&path, e))
    }
}
