//! `pivot status`: discover and probe every cluster once, print it.

use super::out::emit;
use super::{EXIT_ATTENTION, EXIT_OK};
use crate::clock;
use crate::config::ClusterConfig;
use crate::config::Config;
use crate::render::{cluster_text, snapshot, ClusterSnapshot, InstanceSnapshot};
use crate::render::{FormerPrimary, RecoveryState};
use pivot_core::observation::FailureKind;
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
    let state = match pivot_state::open_existing(&config.pivot.state) {
        Ok(s) => Some(s),
        Err(pivot_state::StateError::Missing { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mut snapshots: Vec<ClusterSnapshot> = Vec::new();
    let mut privilege_problems = 0;
    for c in clusters {
        let (view, analysis) = super::observe(c, state.as_deref()).await;
        let mut snap = snapshot(&c.name, &view, &analysis);
        privilege_problems += add_privilege_problems(&mut snap, c).await;
        if let Some(st) = &state {
            snap = snap.with_recovery(recovery_state(st.as_ref(), c)?);
        }
        snapshots.push(snap);
    }
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&snapshots)?))?;
    } else {
        emit(&snapshots.iter().map(cluster_text).collect::<String>())?;
    }
    let all_healthy =
        privilege_problems == 0 && snapshots.iter().all(|s| s.code == Code::Healthy && s.problems.is_empty());
    Ok(ExitCode::from(if all_healthy { EXIT_OK } else { EXIT_ATTENTION }))
}

/// Check pivot's privileges on every instance pivot can log in to (at once:
/// reachable, or failing a query, perhaps for want of a privilege) and add a
/// problem to each that lacks some. Returns how many were added.
async fn add_privilege_problems(snap: &mut ClusterSnapshot, c: &ClusterConfig) -> usize {
    let mut checks = tokio::task::JoinSet::new();
    let logged_in =
        |inst: &InstanceSnapshot| inst.reachable || inst.failure.as_ref().is_some_and(|f| f.kind == FailureKind::Query);
    for (i, inst) in snap.instances.iter().enumerate().filter(|(_, inst)| logged_in(inst)) {
        let (key, creds, timeout) = (inst.instance.clone(), c.credentials.clone(), c.probe_timeout);
        checks.spawn(async move { (i, pivot_server::check_privileges(&key, &creds, timeout).await) });
    }
    let mut added = 0;
    while let Some(done) = checks.join_next().await {
        let Ok((i, result)) = done else { continue };
        let problem = match result {
            Ok(report) if report.is_complete() => continue,
            Ok(report) => format!("user {}: {report}", c.credentials.user),
            Err(e) => format!("privileges not checked: {e}"),
        };
        snap.instances[i].problems.push(problem);
        added += 1;
    }
    added
}

fn recovery_state(state: &dyn StateStore, c: &ClusterConfig) -> anyhow::Result<RecoveryState> {
    let now = clock::wall_ms();
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
        discovery_limit: None,
        control_problems: Vec::new(),
    })
}
