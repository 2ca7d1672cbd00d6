//! `pivot failover`: a manual failover, run by this process.

use super::{EXIT_ATTENTION, EXIT_OK};
use crate::config::Config;
use crate::recovery::{self, owner, RecoveryEnv, Trigger};
use pivot_core::{Code, InstanceKey};
use pivot_state::StateStore;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn run(config_path: &Path, cluster: &str, to: Option<InstanceKey>, force: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let c = super::cluster_of(&config, cluster)?;
    let state = Arc::new(StateStore::open(&config.pivot.state)?);
    let (view, analysis) = super::observe(c).await;
    let Some(primary) = analysis.primary.clone() else {
        anyhow::bail!("cluster `{cluster}` has no identifiable primary to fail over: {}", analysis.signal);
    };
    let primary_answers = view.get(&primary).is_some_and(|r| r.reachable());
    let refuse = |why: String| -> anyhow::Result<ExitCode> {
        eprintln!("refused: {why}");
        Ok(ExitCode::from(EXIT_ATTENTION))
    };
    if primary_answers && !force {
        return refuse(format!(
            "the primary {primary} answers ({}); failing it over would cut off a live primary. \
             Use --force to fence it (read-only, sessions ended) and fail over anyway",
            analysis.signal
        ));
    }
    if analysis.code == Code::PrimaryUnreachableReplicasReplicating && !force {
        return refuse(format!(
            "pivot cannot reach {primary}, but its replicas still receive from it ({}): it is probably alive. \
             Use --force to fail over anyway",
            analysis.signal
        ));
    }
    let env = RecoveryEnv { cluster: Arc::new(c.clone()), state, owner: owner::this_process("pivot failover") };
    let trigger = Trigger { automatic: false, target: to, force };
    let outcome = recovery::failover(&env, &view, &analysis, &trigger).await?;
    println!("recovery {}: {}: {}", outcome.id, outcome.status.as_str(), outcome.summary);
    println!("details: pivot history --config {} --cluster {cluster}", config_path.display());
    Ok(ExitCode::from(if outcome.status.promoted() { EXIT_OK } else { EXIT_ATTENTION }))
}
