//! Durability: what a crash of the primary or a replica keeps.

use super::reachable;
use crate::check::{CheckInput, Finding};
use crate::version::Flavor;

fn on(v: Option<&str>) -> bool {
    v.is_some_and(|v| matches!(v.trim().to_ascii_uppercase().as_str(), "ON" | "1"))
}

pub(crate) fn collect(input: &CheckInput, out: &mut Vec<Finding>) {
    for (key, st) in reachable(input) {
        if st.log_bin {
            if let Some(v) = input.var(key, "sync_binlog").filter(|v| v.trim() != "1") {
                out.push(Finding::new("PVT-W007", vec![key.clone()], format!("sync_binlog is {v}"), None));
            }
        }
        if let Some(v) = input.var(key, "innodb_flush_log_at_trx_commit").filter(|v| v.trim() != "1") {
            out.push(Finding::new(
                "PVT-W008",
                vec![key.clone()],
                format!("innodb_flush_log_at_trx_commit is {v}"),
                None,
            ));
        }
        let Some(r) = &st.replication else { continue };
        let recovery = on(input.var(key, "relay_log_recovery"));
        let unsafe_position = match st.version.flavor {
            // With GTID the position lives in mysql.gtid_slave_pos, updated
            // with each transaction; without it, only relay_log_recovery helps.
            Flavor::MariaDb => !r.using_gtid && !recovery,
            Flavor::MySql => {
                !recovery
                    || input.var(key, "relay_log_info_repository").is_some_and(|v| !v.eq_ignore_ascii_case("TABLE"))
            }
        };
        if unsafe_position && input.extra.contains_key(key) {
            out.push(Finding::new(
                "PVT-W009",
                vec![key.clone()],
                format!(
                    "relay_log_recovery {}{}: after a crash the replica can re-apply or skip events",
                    if recovery { "ON" } else { "OFF" },
                    if r.using_gtid { "" } else { " and no GTID positioning" }
                ),
                None,
            ));
        }
    }
}
