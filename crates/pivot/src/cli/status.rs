//! `pivot status`: discover and probe every cluster once, print it.

use super::{EXIT_ATTENTION, EXIT_OK};
use crate::clock;
use crate::config::Config;
use crate::render::{cluster_text, snapshot, ClusterSnapshot};
use pivot_core::{analyze, Code};
use std::path::Path;
use std::process::ExitCode;

pub async fn run(config_path: &Path, only: Option<&str>, json: bool) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let clusters: Vec<_> = match only {
        Some(name) => vec![config.cluster(name).ok_or_else(|| {
            let known: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
            anyhow::anyhow!("no cluster `{name}` in {}; configured: {}", config_path.display(), known.join(", "))
        })?],
        None => config.clusters.iter().collect(),
    };
    let mut snapshots: Vec<ClusterSnapshot> = Vec::new();
    for c in clusters {
        let view = pivot_server::discover(
            &c.seeds,
            &c.credentials,
            c.probe_timeout,
            c.max_instances,
            c.detection.lag_threshold_s,
            clock::now,
        )
        .await;
        let analysis = analyze(&view, &c.detection, clock::now());
        snapshots.push(snapshot(&c.name, &view, &analysis));
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
