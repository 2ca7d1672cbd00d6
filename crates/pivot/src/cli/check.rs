//! `pivot check`: preflight findings with stable codes (the table is
//! `pivot_core::check::CODES`, and the README's), and `pivot check
//! --simulate`: a dry run of the next failover. Reads only; changes nothing.
//!
//! Exit codes: 0 nothing found or warnings only (for `--simulate`: a
//! replica would be promoted); 3 at least one error finding (for
//! `--simulate`: no replica would be promoted, or not without an operator:
//! a step or hook would fail for real (`blockers`), or automatic recovery is
//! off, blocked or busy (`not_automatic`)); 1 could not check (bad
//! configuration, no instance answers, wrong credentials everywhere; the
//! other clusters are still reported).

use super::check_gather::{gather, Gathered};
use super::out::emit;
use super::{EXIT_ATTENTION, EXIT_OK};
use crate::config::Config;
use pivot_core::check::{self, CheckInput, FailureMode, Finding, Severity, Simulation};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Clock skew tolerated between pivot and an instance.
const MAX_SKEW_MS: u64 = 1_000;

/// `--simulate`'s failure modes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulateMode {
    Dead,
    Hung,
    Partitioned,
}

impl From<SimulateMode> for FailureMode {
    fn from(m: SimulateMode) -> FailureMode {
        match m {
            SimulateMode::Dead => FailureMode::Dead,
            SimulateMode::Hung => FailureMode::Hung,
            SimulateMode::Partitioned => FailureMode::Partitioned,
        }
    }
}

#[derive(Serialize)]
struct ClusterReport {
    cluster: String,
    primary: Option<String>,
    verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    findings: Option<Vec<Finding>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    simulation: Option<Simulation>,
    notes: Vec<String>,
    /// Why this cluster could not be checked (the others still are).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn run(
    config_path: &Path,
    only: Option<&str>,
    json: bool,
    simulate: Option<SimulateMode>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let clusters: Vec<_> = match only {
        Some(name) => vec![super::cluster_of(&config, name)?],
        None => config.clusters.iter().collect(),
    };
    let mut reports = Vec::new();
    // One cluster that cannot be checked does not hide the others' reports.
    let could_not = |name: &str, why: String| ClusterReport {
        cluster: name.to_string(),
        primary: None,
        verdict: "could not check".to_string(),
        findings: None,
        simulation: None,
        notes: Vec::new(),
        error: Some(why),
    };
    for c in clusters {
        let g = match gather(&config, c).await {
            Ok(g) => g,
            Err(e) => {
                reports.push(could_not(&c.name, format!("{e:#}")));
                continue;
            }
        };
        let failover = crate::recovery::settings(c);
        let mut report = ClusterReport {
            cluster: c.name.clone(),
            primary: g.analysis.primary.as_ref().map(ToString::to_string),
            verdict: format!("{}: {}", g.analysis.code, g.analysis.signal),
            findings: None,
            simulation: None,
            notes: g.notes.clone(),
            error: None,
        };
        match simulate {
            Some(mode) => {
                let Some(primary) = g.analysis.primary.clone() else {
                    let why = format!(
                        "could not simulate a failover of cluster `{}`: no primary identified ({})",
                        c.name, g.analysis.signal
                    );
                    reports.push(could_not(&c.name, why));
                    continue;
                };
                let now = crate::clock::now();
                // Every step is simulated as ended well: the findings say
                // which would fail for real (a missing privilege, a hook).
                let found = findings(&g, &failover, c.detection.confirm_window_ms);
                let sim = check::simulate(&g.view, &primary, &failover, mode.into(), now)
                    .with_blockers(&found)
                    .with_not_automatic(g.not_automatic.clone());
                report.simulation = Some(sim);
            }
            None => report.findings = Some(findings(&g, &failover, c.detection.confirm_window_ms)),
        }
        reports.push(report);
    }
    if json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&serde_json::json!({ "clusters": reports }))?))?;
    } else {
        emit(&reports.iter().filter(|r| r.error.is_none()).map(text).collect::<String>())?;
    }
    let failed: Vec<&String> = reports.iter().filter_map(|r| r.error.as_ref()).collect();
    if !failed.is_empty() {
        for why in failed {
            eprintln!("error: {why}");
        }
        return Ok(ExitCode::from(super::EXIT_FAILURE));
    }
    let attention = reports.iter().any(|r| {
        r.findings.as_ref().is_some_and(|f| f.iter().any(|f| f.severity == Severity::Error))
            || r.simulation.as_ref().is_some_and(|s| !s.would_promote())
    });
    Ok(ExitCode::from(if attention { EXIT_ATTENTION } else { EXIT_OK }))
}

fn findings(g: &Gathered, failover: &pivot_core::control::FailoverSettings, confirm_window_ms: u64) -> Vec<Finding> {
    check::check(&CheckInput {
        view: &g.view,
        analysis: &g.analysis,
        extra: &g.extra,
        failover,
        confirm_window_ms,
        hooks: &g.hooks,
        routes: &g.routes,
        max_skew_ms: MAX_SKEW_MS,
    })
}

fn text(r: &ClusterReport) -> String {
    let mut out = String::new();
    let primary = r.primary.as_deref().unwrap_or("none identified");
    let _ = writeln!(out, "cluster {}: primary {primary} ({})", r.cluster, r.verdict);
    if let Some(findings) = &r.findings {
        findings_text(&mut out, findings);
    }
    if let Some(s) = &r.simulation {
        simulation_text(&mut out, s);
    }
    for n in &r.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}

fn findings_text(out: &mut String, findings: &[Finding]) {
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    for (severity, title) in [(Severity::Error, "errors"), (Severity::Warning, "warnings")] {
        if count(severity) == 0 {
            continue;
        }
        let _ = writeln!(out, "  {title}:");
        for f in findings.iter().filter(|f| f.severity == severity) {
            let on = if f.instances.is_empty() {
                "configuration".to_string()
            } else {
                f.instances.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            let _ = writeln!(out, "    {} {} [{on}] {} -- fix: {}", f.code, f.severity.as_str(), f.text, f.fix);
        }
    }
    let _ = writeln!(
        out,
        "  {} error(s), {} warning(s){}",
        count(Severity::Error),
        count(Severity::Warning),
        if findings.is_empty() { ": nothing found" } else { "; codes are explained in the README (pivot check)" }
    );
}

fn simulation_text(out: &mut String, s: &Simulation) {
    let _ = writeln!(out, "  if {} were {} now (simulated, nothing changed):", s.failed_primary, s.mode.as_str());
    match &s.winner {
        Some(w) if s.blockers.is_empty() => {
            let _ = writeln!(out, "    would promote {w}");
        }
        Some(w) => {
            let _ = writeln!(out, "    would try to promote {w}, but the failover would fail:");
            for f in &s.blockers {
                let on = f.instances.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                let on = if on.is_empty() { "configuration".to_string() } else { on };
                let _ = writeln!(out, "      {} [{on}] {} -- fix: {}", f.code, f.text, f.fix);
            }
        }
        None => {
            let _ = writeln!(out, "    would promote nobody");
        }
    }
    for why in &s.not_automatic {
        let _ = writeln!(out, "    but pivot would not start it by itself: {why}");
    }
    let _ = writeln!(out, "    outcome: {}", s.summary);
    if !s.replicas.is_empty() {
        let _ = writeln!(out, "    replicas:");
        for r in &s.replicas {
            let mark = if r.chosen { "winner" } else { "other " };
            let received = if r.received.is_empty() { "-" } else { &r.received };
            let _ = writeln!(out, "      {mark} {} (received {received}): {}", r.instance, r.why);
        }
    }
    if !s.steps.is_empty() {
        let _ = writeln!(out, "    steps:");
        for (i, step) in s.steps.iter().enumerate() {
            let _ = writeln!(out, "      {:>2}. {}: {}", i + 1, step.name, step.detail);
        }
    }
    let hooks = if s.hooks.is_empty() { "none configured".to_string() } else { s.hooks.join(", ") };
    let _ = writeln!(out, "    hooks that would run: {hooks}");
    let loss = match s.data_loss.as_deref() {
        None => "unknown: pivot has no reading of the primary's binary log".to_string(),
        Some("") => "none: the most advanced replica received everything the primary had logged when read".to_string(),
        Some(gtids) => format!("the GTIDs {gtids} that no replica received"),
    };
    let _ = writeln!(out, "    data-loss bound: {loss}");
    for n in &s.notes {
        let _ = writeln!(out, "    note: {n}");
    }
}

#[cfg(test)]
mod tests {
    /// The README's table is the code table: every code with its severity
    /// and its description.
    #[test]
    fn readme_documents_every_code() {
        let readme = include_str!("../../../../README.md");
        for c in pivot_core::check::CODES {
            let row = format!("| `{}` | {} | {} |", c.code, c.severity.as_str(), c.what);
            assert!(readme.contains(&row), "README lacks the row starting `{row}`");
        }
    }
}
