//! `pivot failover`: a manual failover, run by this process through the same
//! recovery machine and gate as the daemon's automatic ones.

use super::out::emit_outcome;
use super::{EXIT_ATTENTION, EXIT_OK};
use crate::config::Config;
use crate::recovery::{self, driver::StopFlag, owner, RecoveryEnv, Trigger};
use pivot_core::{Code, InstanceKey};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn run(config_path: &Path, cluster: &str, to: Option<InstanceKey>, force: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let c = super::cluster_of(&config, cluster)?;
    let state = pivot_state::open(&config.pivot.state)?;
    let (view, analysis) = super::observe(c, Some(state.as_ref())).await;
    let Some(primary) = analysis.primary.clone() else {
        anyhow::bail!("cluster `{cluster}` has no identifiable primary to fail over: {}", analysis.signal);
    };
    let refuse = |why: String| -> anyhow::Result<ExitCode> {
        eprintln!("refused: {why}");
        Ok(ExitCode::from(EXIT_ATTENTION))
    };
    if analysis.code == Code::PrimaryUnreachableReplicasReplicating && !force {
        return refuse(format!(
            "pivot cannot reach {primary}, but its replicas still receive from it ({}): it is probably alive. \
             Use --force to fail over anyway",
            analysis.signal
        ));
    }
    let env =
        RecoveryEnv { cluster: Arc::new(c.clone()), state, owner: owner::this_process("pivot failover"), routes: None };
    // Ctrl-C or SIGTERM: the recovery parks at the next step boundary (its
    // lease released) instead of dying mid-way; whoever may act resumes it.
    let stop = StopFlag::default();
    let on_signal = stop.clone();
    let signals = tokio::spawn(async move {
        super::shutdown_signal().await;
        eprintln!("stopping: the recovery parks at the next step; `pivot run` (or `pivot failover` again) resumes it");
        on_signal.stop();
    });
    // A recovery left running by a process that is gone is taken over; one
    // whose owner still holds its lease is not disturbed.
    let running = env.state.running_recovery(cluster)?;
    let outcome = match running {
        Some(rec) => {
            let lease_over = rec.lease_until.is_none_or(|l| l <= crate::clock::wall_ms());
            if !lease_over && !owner::certainly_gone(&rec.owner, &env.owner) {
                signals.abort();
                return refuse(format!(
                    "recovery {} of `{cluster}` is running, run by {} (its lease runs {} s more); \
                     see `pivot history --cluster {cluster}`",
                    rec.id,
                    rec.owner,
                    (rec.lease_until.unwrap_or(0) - crate::clock::wall_ms()).max(0) / 1000
                ));
            }
            eprintln!("taking over recovery {} left running by {}", rec.id, rec.owner);
            match recovery::resume::resume(&env, rec, &view, stop).await {
                Some(o) => o,
                None => {
                    signals.abort();
                    return refuse("another pivot process took the recovery over first".into());
                }
            }
        }
        None => {
            let trigger = Trigger { automatic: false, target: to, force };
            // Everything else (a live primary without --force, an unknown
            // target) is refused by the recovery machine before anything changes.
            recovery::failover::run(&env, &view, &analysis, &trigger, stop).await?
        }
    };
    signals.abort();
    if outcome.parked {
        eprintln!("parked: {}", outcome.summary);
        return Ok(ExitCode::from(super::EXIT_FAILURE));
    }
    if !outcome.status.promoted() {
        eprintln!("refused: {}", outcome.summary);
    }
    emit_outcome(&outcome, config_path, cluster)?;
    Ok(ExitCode::from(if outcome.status.promoted() { EXIT_OK } else { EXIT_ATTENTION }))
}
