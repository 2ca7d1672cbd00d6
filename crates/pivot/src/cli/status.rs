//! `pivot status`: discover and probe every cluster once, print it.

use super::{EXIT_ATTENTION, EXIT_OK};
use crate::clock;
use crate::config::ClusterConfig;
use crate::config::Config;
use crate::render::{cluster_text, snapshot, ClusterSnapshot};
use crate::render::{FormerPrimary, RecoveryState};
use pivot_core::Code;
use pivot_state::StateStore;
use std::path::Path;
use std::process::ExitCode;

pub async fn run(config_path: &Path, only: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let clusters: Vec<_> = match only {
        Some(name) => vec![super::cluster_of(&config, name)?],
        None => config.clusters.iter().collect(),
    };
    // Recovery state, if pivot has run here before.
    let state = config.pivot.state.exists().then(|| pivot_state::StateStore::open(&config.pivot.state)).transpose()?;
    let mut snapshots: Vec<ClusterSnapshot> = Vec::new();
    for c in clusters {
        let (view, analysis) = super::observe(c).await;
        let mut snap = snapshot(&c.name, &view, &analysis);
        if let Some(st) = &state {
            snap = snap.with_recovery(recovery_state(st, c)?);
        }
        snapshots.push(snap);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&snapshots)?);
    } else {
        for s in &snapshots {
            print!("{}", cluster_text(s));
        }
    }
    let all_healthy = snapshots.iter().all(|s| s.code == Code::Healthy && s.problems.is_empty());
    Ok(ExitCode::from(if all_healthy { EXIT_OK } else { EXIT_ATTENTION }))
}

fn recovery_state(state: &StateStore, c: &ClusterConfig) -> anyhow::Result<RecoveryState> {
    let now = clock::now().0 as i64;
    Ok(RecoveryState {
        blocked_until: state.block_of(&c.name)?.filter(|b| b.active(now)).map(|b| b.blocked_until),
        running_recovery: state.running_recovery(&c.name)?.map(|r| r.id),
        automatic: c.failover.automatic,
        fenced: state
            .fenced(&c.name)?
            .into_iter()
            .filter_map(|f| {
                Some(FormerPrimary { instance: f.instance.parse().ok()?, status: f.status, detail: f.detail })
            })
            .collect(),
    })
}
