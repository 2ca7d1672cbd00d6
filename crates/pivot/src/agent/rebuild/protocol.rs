//! What pivot and the agents say to each other about a rebuild (JSON, the
//! bearer token on every request).
//!
//! | request | agent | does |
//! |---|---|---|
//! | `GET /v1/rebuild/status` | target | [`RebuildStatus`]: configured?, the current or last job |
//! | `POST /v1/rebuild` ([`RebuildRequest`]) | target | checks the donor agent, then stops the server, moves the datadir aside, pulls and prepares the backup, starts the server; 200 with the job, 409 refused (no `[rebuild]`, a job running, the donor refused or unreachable) |
//! | `GET /v1/backup/check` | donor | 200 with [`BackupCheck`] (the backup's estimated size) if it can serve a backup, 409 naming what is missing |
//! | `POST /v1/backup/stream` | donor | the `mariabackup --stream=xbstream` output as the body; the body ends in an error if the backup fails |
//! | `GET /v1/backup/last` | donor | [`BackupOutcome`] of the last backup (exit status, the end of its stderr) |

use serde::{Deserialize, Serialize};

/// `POST /v1/rebuild` on the target's agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildRequest {
    /// The donor's agent (`host:port`).
    pub donor_agent: String,
    /// The donor instance, for messages.
    pub donor: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Stopping,
    Streaming,
    Preparing,
    Starting,
    /// A step failed: the old datadir goes back and the server starts on it.
    Restoring,
    Done,
    Failed,
}

impl Phase {
    pub fn ended(self) -> bool {
        matches!(self, Phase::Done | Phase::Failed)
    }
}

/// One rebuild, as the target's agent reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub donor: String,
    pub phase: Phase,
    /// Bytes of the backup stream received so far.
    pub bytes: u64,
    /// The donor's datadir size (the stream is about that long), if known.
    pub total_bytes: Option<u64>,
    /// Bytes per second since the stream began.
    pub rate_bps: u64,
    pub elapsed_ms: u64,
    /// Where the old datadir was moved (kept, never deleted by pivot).
    pub old_datadir: Option<String>,
    /// What failed, if it did.
    pub error: Option<String>,
    /// After a failure: the old datadir is back and the server was started on it.
    pub restored: bool,
    /// `xtrabackup_slave_info` of the backup, once prepared.
    pub slave_info: Option<String>,
    /// `xtrabackup_binlog_info` of the backup, once prepared.
    pub binlog_info: Option<String>,
}

/// `GET /v1/rebuild/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RebuildStatus {
    pub instance: String,
    /// `None` when the agent has a `[rebuild]` section; else why it cannot rebuild.
    pub unconfigured: Option<String>,
    pub job: Option<Job>,
}

/// `GET /v1/backup/last` on the donor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupOutcome {
    pub running: bool,
    /// `None` while running or never run.
    pub ok: Option<bool>,
    pub message: String,
}

/// `GET /v1/backup/check` on the donor: it can serve a backup of about this size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupCheck {
    pub estimate_bytes: u64,
}

/// The header with the donor's datadir size on the stream's answer.
pub const TOTAL_HEADER: &str = "x-pivot-datadir-bytes";
