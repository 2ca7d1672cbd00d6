//! `pivot history` and `pivot ack`.

use super::out::emit;
use super::{EXIT_ATTENTION, EXIT_OK};
use crate::clock;
use crate::config::Config;
use crate::render::time_text;
use pivot_state::RecoveryRecord;
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

pub fn history(config_path: &Path, cluster: Option<&str>, json: bool, limit: usize) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    if let Some(c) = cluster {
        super::cluster_of(&config, c)?;
    }
    let (recoveries, events) = match pivot_state::open_existing(&config.pivot.state) {
        Ok(state) => (state.recoveries(cluster, limit)?, state.events(cluster, limit)?),
        // Nothing recorded yet: say so, create nothing.
        Err(pivot_state::StateError::Missing { .. }) => (vec![], vec![]),
        Err(e) => return Err(e.into()),
    };
    if json {
        let v = serde_json::json!({ "recoveries": recoveries, "events": events });
        emit(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
        return Ok(ExitCode::from(EXIT_OK));
    }
    let mut text = String::new();
    if recoveries.is_empty() {
        let _ = writeln!(text, "no recoveries recorded in {}", config.pivot.state.display());
    }
    for r in &recoveries {
        text.push_str(&recovery_text(r));
    }
    if !events.is_empty() {
        let _ = writeln!(text, "recent alerts and events:");
        for e in events.iter().rev() {
            let _ = writeln!(text, "  {}  {}  {:<5}  {}", time_text(e.at), e.cluster, e.level, e.message);
        }
    }
    emit(&text)?;
    Ok(ExitCode::from(EXIT_OK))
}

fn recovery_text(r: &RecoveryRecord) -> String {
    let mut out = String::new();
    let took = r.ended_at.map(|e| format!(", took {:.3} s", (e - r.started_at) as f64 / 1000.0)).unwrap_or_default();
    let _ = writeln!(
        out,
        "recovery {} of {}: {} {} at {}{took}",
        r.id,
        r.cluster,
        r.kind,
        r.status.as_str(),
        time_text(r.started_at)
    );
    let _ = writeln!(
        out,
        "  failed primary {} -> new primary {}",
        r.failed_primary.as_deref().unwrap_or("-"),
        r.new_primary.as_deref().unwrap_or("-")
    );
    if let Some(d) = r.detected_at {
        let _ = writeln!(
            out,
            "  primary first failed to answer {:.3} s before the recovery started",
            (r.started_at - d) as f64 / 1000.0
        );
    }
    let _ = writeln!(out, "  analysis: {}", r.analysis);
    if let Some(s) = &r.summary {
        let _ = writeln!(out, "  outcome: {s}");
    }
    if !r.lost_replicas.is_empty() {
        let _ = writeln!(out, "  lost replicas: {}", r.lost_replicas.join(", "));
    }
    let _ = writeln!(out, "  run by: {}", r.owner);
    for s in &r.steps {
        let at = (s.started_at - r.started_at) as f64 / 1000.0;
        let dur = s.ended_at.map(|e| format!("{} ms", e - s.started_at)).unwrap_or_else(|| "unfinished".into());
        let outcome = s.outcome.as_deref().unwrap_or("interrupted");
        let msg = s.message.as_deref().filter(|m| !m.is_empty()).map(|m| format!(": {m}")).unwrap_or_default();
        let _ = writeln!(out, "  {:>3} +{at:.3}s {:<22} {:<12} {dur:>10}  {}{msg}", s.seq, s.name, outcome, s.detail);
    }
    out
}

pub fn ack(config_path: &Path, cluster: &str) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    super::cluster_of(&config, cluster)?;
    let state = pivot_state::open_existing(&config.pivot.state)?;
    let by = format!(
        "{} ({})",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
        crate::recovery::owner::this_process("pivot ack")
    );
    match state.ack(cluster, &by, clock::wall_ms())? {
        Some(block) => {
            let _ = state.event(
                cluster,
                clock::wall_ms(),
                "info",
                &format!("acknowledged by {by}: automatic recovery allowed again"),
            );
            println!(
                "cluster {cluster}: recovery {} acknowledged; automatic recovery is allowed again (it was blocked until {})",
                block.recovery_id.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
                time_text(block.blocked_until)
            );
            Ok(ExitCode::from(EXIT_OK))
        }
        None => {
            println!("cluster {cluster}: nothing to acknowledge (automatic recovery is not blocked)");
            Ok(ExitCode::from(EXIT_ATTENTION))
        }
    }
}
