//! Rebuilding this agent's instance from another replica's physical backup,
//! and serving such a backup (`[rebuild]` in `agent.toml`):
//!
//! * [`protocol`]: the requests and answers;
//! * [`donor`]: `mariabackup --backup --stream` as an HTTP body;
//! * [`target`]: stop, move the datadir aside (kept), pull, prepare, start,
//!   restore the old datadir on any failure;
//! * [`command`]: programs run with a timeout, the password in a private
//!   option file.

pub mod command;
pub mod donor;
pub mod protocol;
pub mod target;

use crate::config::AgentConfig;
use axum::extract::Request;
use axum::middleware::Next;
use axum::routing::{get, post};
use axum::Router;
use protocol::{BackupOutcome, Job};
use std::sync::{Arc, Mutex};

/// The rebuild side of one agent.
pub struct RebuildAgent {
    pub cfg: AgentConfig,
    /// The last backup this agent served.
    pub backup: Mutex<BackupOutcome>,
    /// The current or last rebuild of this agent's instance.
    pub job: Mutex<Option<Job>>,
}

impl RebuildAgent {
    pub fn new(cfg: AgentConfig) -> RebuildAgent {
        RebuildAgent {
            cfg,
            backup: Mutex::new(BackupOutcome { running: false, ok: None, message: "no backup served yet".into() }),
            job: Mutex::new(None),
        }
    }

    /// Why this agent cannot rebuild or serve a backup.
    pub fn unconfigured(&self) -> String {
        format!(
            "the agent for {} has no [rebuild] section in {}: add one with datadir, stop_command, start_command, \
             backup_user and backup_password_file (see README, `pivot rebuild`)",
            self.cfg.instance,
            self.cfg.path.display()
        )
    }

    pub fn backup_outcome(&self) -> BackupOutcome {
        self.backup.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_backup(&self, ok: bool, message: &str) {
        *self.backup.lock().unwrap_or_else(|p| p.into_inner()) =
            BackupOutcome { running: false, ok: Some(ok), message: message.to_string() };
    }

    /// Change the job (if there is one).
    pub fn update(&self, f: impl FnOnce(&mut Job)) {
        if let Some(j) = self.job.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            f(j);
        }
    }
}

/// The rebuild routes, behind the same token check as the others.
pub fn router(agent: Arc<RebuildAgent>) -> Router {
    let token = agent.cfg.token.clone();
    Router::new()
        .route("/v1/rebuild", post(target::start))
        .route("/v1/rebuild/status", get(target::status))
        .route("/v1/backup/check", get(donor::check))
        .route("/v1/backup/stream", post(donor::stream))
        .route("/v1/backup/last", get(donor::last))
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| {
            let token = token.clone();
            async move { super::server::authenticate(&token, req, next).await }
        }))
        .with_state(agent)
}
