//! `pivot rejoin HOST:PORT`: make a fenced former primary a replica of the
//! current primary by hand, through the same code and the same re-judgement
//! as the daemon's automatic rejoin (`crate::rejoin::perform`).
//!
//! `--discard-extra` is accepted only for a quarantined instance whose
//! extra transactions were saved to a file, and then refused with the
//! reason: pivot cannot take a diverged instance's extra row changes out of
//! its tables by GTID, and replicating on top of them would leave an
//! instance whose data differs from the primary's while looking healthy.
//! Rebuild it (README, "Rejoin and quarantine").

use super::{EXIT_ATTENTION, EXIT_OK};
use crate::config::Config;
use crate::recovery::{owner, RecoveryEnv};
use pivot_core::control::cluster::SAVED_TO;
use pivot_core::InstanceKey;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn run(
    config_path: &Path,
    instance: &InstanceKey,
    cluster: Option<&str>,
    discard_extra: bool,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let state = pivot_state::open(&config.pivot.state)?;
    let key = instance.to_string();
    let c = match cluster {
        Some(name) => super::cluster_of(&config, name)?,
        None => {
            let mut named = Vec::new();
            for c in &config.clusters {
                if state.fenced(&c.name)?.iter().any(|f| f.instance == key) {
                    named.push(c);
                }
            }
            match named.as_slice() {
                [one] => *one,
                [] => anyhow::bail!("{key} is on no cluster's fence list; name the cluster with --cluster"),
                _ => anyhow::bail!("{key} is on the fence list of several clusters; name one with --cluster"),
            }
        }
    };
    let entry = state.fenced(&c.name)?.into_iter().find(|f| f.instance == key);
    let refuse = |why: String| -> anyhow::Result<ExitCode> {
        eprintln!("refused: {why}");
        Ok(ExitCode::from(EXIT_ATTENTION))
    };
    let file = entry.as_ref().and_then(|e| saved_file(&e.detail));
    if discard_extra {
        let Some(e) = entry.as_ref().filter(|e| e.status == "quarantined") else {
            return refuse(format!("--discard-extra is only for a quarantined instance; {key} is not quarantined"));
        };
        let Some(file) = file.filter(|f| Path::new(f).exists()) else {
            return refuse(format!(
                "the extra transactions of {key} were not saved to a file ({}); nothing is discarded unread",
                e.detail
            ));
        };
        return refuse(format!(
            "pivot does not discard {key}'s extra transactions: their row changes stay in its tables whatever \
             replication position is set, so it would replicate with data the primary does not have (and, with \
             gtid_strict_mode, stop at the first conflicting sequence number). Review {file}, re-apply on the \
             primary what must be kept, then rebuild {key} from a replica (mariadb-backup) and start it as a \
             replica; pivot takes it off the fence list with `pivot rejoin {key}` once its GTIDs are on the primary"
        ));
    }
    let env = RecoveryEnv {
        cluster: Arc::new(c.clone()),
        state: state.clone(),
        owner: owner::this_process("pivot rejoin"),
        routes: None,
    };
    match crate::rejoin::perform(&env, instance, None).await {
        Ok(done) => {
            state.fence_remove(&c.name, &key)?;
            let text = format!("former primary {key} rejoined by hand: {done}");
            state.event(&c.name, crate::clock::wall_ms(), "info", &text)?;
            println!("{text}");
            Ok(ExitCode::from(EXIT_OK))
        }
        Err(why) => match file {
            Some(f) => refuse(format!("{why}; its extra transactions are saved in {f}")),
            None => refuse(why),
        },
    }
}

/// The quarantine file a fence entry's detail names.
fn saved_file(detail: &str) -> Option<String> {
    let rest = &detail[detail.find(SAVED_TO)? + SAVED_TO.len()..];
    // The path is the entry's last part (or followed by "; ").
    Some(rest.split("; ").next().unwrap_or(rest).trim().to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_saved_file_is_read_from_the_detail() {
        let d = "read-only; diverged: 0-1-5 are not on x; none of these...; extra transactions saved to /q/a b.sql";
        assert_eq!(super::saved_file(d).as_deref(), Some("/q/a b.sql"));
        let d = "made read-only; extra transactions saved to /q/s-1_2-2026.sql; more";
        assert_eq!(super::saved_file(d).as_deref(), Some("/q/s-1_2-2026.sql"));
        assert_eq!(super::saved_file("read-only; it can rejoin as a replica"), None);
    }
}
