//! Replication itself: reachability, one writable primary, threads, server
//! ids, binary logs, formats, GTIDs, filters, dual primaries, a candidate.

use super::{primary_state, reachable, replicas};
use crate::analysis::{errant_gtids, Code};
use crate::candidate::{choose, ChoiceRequest};
use crate::check::{CheckInput, Finding};
use crate::instance::InstanceKey;
use crate::observation::{InstanceState, IoThread};
use crate::version::Flavor;
use std::collections::BTreeMap;

pub(crate) fn collect(input: &CheckInput, out: &mut Vec<Finding>) {
    for (key, rec) in &input.view.records {
        if let Some(failure) = rec.latest.failure() {
            out.push(Finding::new(
                "PVT-E001",
                vec![key.clone()],
                format!("does not answer: {}", failure.message),
                None,
            ));
        }
    }
    if matches!(input.analysis.code, Code::NoPrimary | Code::SplitBrain | Code::NoWritablePrimary) {
        let writers: Vec<InstanceKey> =
            reachable(input).filter(|(_, s)| s.writable()).map(|(k, _)| k.clone()).collect();
        out.push(Finding::new(
            "PVT-E002",
            writers,
            format!("{}: {}", input.analysis.code, input.analysis.signal),
            None,
        ));
    }
    threads(input, out);
    versions(input, out);
    server_ids(input, out);
    let primary = input.analysis.primary.as_ref();
    for (key, st) in replicas(input) {
        let promotable = !input.failover.rules.never_promote.contains(key);
        if promotable && !st.log_bin {
            out.push(Finding::new("PVT-E005", vec![key.clone()], "binary log off: it cannot be promoted".into(), None));
        }
        if promotable && st.log_bin && !st.log_replica_updates {
            out.push(Finding::new(
                "PVT-E006",
                vec![key.clone()],
                "log_slave_updates off: promoted, it could not serve the other replicas what it received".into(),
                None,
            ));
        }
        if st.writable() {
            out.push(Finding::new("PVT-E008", vec![key.clone()], "read_only is OFF on a replica".into(), None));
        }
        if let Some((_, p)) = primary_state(input) {
            errant(key, st, p, out);
        }
        lag(input, key, st, out);
    }
    for (key, st) in reachable(input) {
        if st.log_bin {
            if let Some(f) = input.var(key, "binlog_format").filter(|f| !f.eq_ignore_ascii_case("ROW")) {
                out.push(Finding::new("PVT-E007", vec![key.clone()], format!("binlog_format is {f}"), None));
            }
        }
        if st.gtid.strict_mode == Some(false) {
            out.push(Finding::new(
                "PVT-W001",
                vec![key.clone()],
                "gtid_strict_mode is OFF: out-of-order GTIDs can hide diverged data".into(),
                None,
            ));
        }
    }
    filters(input, out);
    dual_primaries(input, out);
    candidate(input, primary, out);
}

fn threads(input: &CheckInput, out: &mut Vec<Finding>) {
    for (key, st) in reachable(input) {
        let Some(r) = &st.replication else { continue };
        let mut what = Vec::new();
        if r.io_thread != IoThread::Running {
            what.push(format!("IO thread {}", format!("{:?}", r.io_thread).to_lowercase()));
        }
        if let Some(e) = &r.io_error {
            what.push(format!("IO error {}: {}", e.number, e.message));
        }
        if !r.sql_running {
            what.push("SQL thread stopped".to_string());
        }
        if let Some(e) = &r.sql_error {
            what.push(format!("SQL error {}: {}", e.number, e.message));
        }
        if !what.is_empty() {
            let text = format!("replication from {} broken: {}", r.source, what.join("; "));
            out.push(Finding::new("PVT-E003", vec![key.clone()], text, None));
        }
    }
}

/// A replica older than its source may not understand what it is sent.
fn versions(input: &CheckInput, out: &mut Vec<Finding>) {
    for (key, st) in reachable(input) {
        let Some(r) = &st.replication else { continue };
        let Some(source) = input.view.get(&r.source).and_then(|rec| rec.last_state()) else { continue };
        let order = st.version.cmp_same_flavor(&source.version);
        if order.is_none() || order == Some(std::cmp::Ordering::Less) {
            out.push(Finding::new(
                "PVT-E018",
                vec![key.clone(), r.source.clone()],
                format!("{key} runs {} and replicates from {} which runs {}", st.version, r.source, source.version),
                None,
            ));
        }
    }
}

/// A replica lagging or delayed is skipped as a candidate.
fn lag(input: &CheckInput, key: &InstanceKey, st: &InstanceState, out: &mut Vec<Finding>) {
    let Some(r) = &st.replication else { return };
    if input.failover.rules.never_promote.contains(key) {
        return;
    }
    let limit = input.failover.rules.max_lag_s;
    let mut why = Vec::new();
    if let Some(s) = r.seconds_behind.filter(|s| *s > limit) {
        why.push(format!("lags {s} s (failover.max_candidate_lag {limit} s)"));
    }
    if r.sql_delay_s > 0 {
        why.push(format!("applies {} s late (MASTER_DELAY)", r.sql_delay_s));
    }
    if !why.is_empty() {
        let text = format!("{}: a failover now would not promote it", why.join(" and "));
        out.push(Finding::new("PVT-W011", vec![key.clone()], text, None));
    }
}

fn server_ids(input: &CheckInput, out: &mut Vec<Finding>) {
    let mut by_id: BTreeMap<u32, Vec<InstanceKey>> = BTreeMap::new();
    for (key, st) in reachable(input) {
        by_id.entry(st.server_id).or_default().push(key.clone());
    }
    for (id, keys) in by_id.into_iter().filter(|(_, k)| k.len() > 1) {
        out.push(Finding::new("PVT-E004", keys, format!("server_id {id} is used more than once"), None));
    }
}

fn errant(key: &InstanceKey, st: &InstanceState, primary: &InstanceState, out: &mut Vec<Finding>) {
    let gtids = errant_gtids(st, primary);
    if gtids.is_empty() {
        return;
    }
    let fix = match st.version.flavor {
        // MariaDB logs no empty transaction (`BEGIN; COMMIT` under a set
        // gtid_seq_no leaves the binary log as it was), and a logged one
        // would stop this replica in gtid_strict_mode (the GTID is in its
        // binary log already): the replica forgets them instead.
        Flavor::MariaDb => format!(
            "if they are not wanted: on {key}, run STOP SLAVE; RESET MASTER; START SLAVE; (its binary log \
             forgets them, gtid_slave_pos stays; the rows they changed stay: check them; first let any replica \
             of {key} catch up) or rebuild {key}: pivot rebuild"
        ),
        Flavor::MySql => format!(
            "if they are not wanted: on the primary, for each GTID of {gtids}, run \
             SET gtid_next='GTID'; BEGIN; COMMIT; SET gtid_next=AUTOMATIC; (or rebuild {key}: pivot rebuild)"
        ),
    };
    out.push(Finding::new(
        "PVT-E009",
        vec![key.clone()],
        format!("errant GTIDs the primary never had: {gtids}"),
        Some(fix),
    ));
}

fn filters(input: &CheckInput, out: &mut Vec<Finding>) {
    let reps: Vec<_> =
        replicas(input).into_iter().filter_map(|(k, s)| s.replication.as_ref().map(|r| (k, &r.filters))).collect();
    let Some((_, first)) = reps.first() else { return };
    if reps.iter().all(|(_, f)| f == first) {
        return;
    }
    let keys: Vec<InstanceKey> = reps.iter().map(|(k, _)| (*k).clone()).collect();
    let each: Vec<String> = reps.iter().map(|(k, f)| format!("{k}: {}", describe(f))).collect();
    out.push(Finding::new("PVT-E010", keys, format!("replication filters differ: {}", each.join("; ")), None));
}

/// Two instances replicating from each other: both can take writes.
fn dual_primaries(input: &CheckInput, out: &mut Vec<Finding>) {
    let source = |k: &InstanceKey| {
        input.view.get(k).and_then(|r| r.current_state()).and_then(|s| s.replication.as_ref()).map(|r| r.source.clone())
    };
    for (a, _) in reachable(input) {
        let Some(b) = source(a) else { continue };
        if a >= &b || source(&b).as_ref() != Some(a) {
            continue;
        }
        let num = |k: &InstanceKey, n: &str| input.var(k, n).and_then(|v| v.trim().parse::<u64>().ok());
        let (Some(inc_a), Some(off_a), Some(inc_b), Some(off_b)) = (
            num(a, "auto_increment_increment"),
            num(a, "auto_increment_offset"),
            num(&b, "auto_increment_increment"),
            num(&b, "auto_increment_offset"),
        ) else {
            continue;
        };
        let safe = inc_a == inc_b && inc_a >= 2 && off_a % inc_a != off_b % inc_b;
        if !safe {
            out.push(Finding::new(
                "PVT-E016",
                vec![a.clone(), b.clone()],
                format!(
                    "{a} and {b} replicate from each other with auto_increment_increment/offset {inc_a}/{off_a} and \
                     {inc_b}/{off_b}: both can generate the same key"
                ),
                None,
            ));
        }
    }
}

/// Would a failover find someone to promote?
fn candidate(input: &CheckInput, primary: Option<&InstanceKey>, out: &mut Vec<Finding>) {
    let Some(primary) = primary else { return };
    if !matches!(input.analysis.code, Code::Healthy | Code::AllReplicasNotReplicating | Code::SemiSyncPrimaryStuck) {
        return;
    }
    let request = ChoiceRequest {
        view: input.view,
        topology: &input.analysis.topology,
        failed_primary: primary,
        rules: &input.failover.rules,
        target: None,
        force: false,
    };
    if let Err(refusal) = choose(&request) {
        let keys = input.analysis.topology.replicas(primary).to_vec();
        let text = refusal.to_string().replace('\n', " ").split_whitespace().collect::<Vec<_>>().join(" ");
        out.push(Finding::new("PVT-E017", keys, format!("if {primary} failed now: {text}"), None));
    }
}

fn describe(f: &crate::observation::ReplicationFilters) -> String {
    let fields = [
        ("replicate_do_db", &f.do_db),
        ("replicate_ignore_db", &f.ignore_db),
        ("replicate_do_table", &f.do_table),
        ("replicate_ignore_table", &f.ignore_table),
        ("replicate_wild_do_table", &f.wild_do_table),
        ("replicate_wild_ignore_table", &f.wild_ignore_table),
        ("do_domain_ids", &f.do_domain_ids),
        ("ignore_domain_ids", &f.ignore_domain_ids),
    ];
    let set: Vec<String> = fields.iter().filter(|(_, v)| !v.is_empty()).map(|(n, v)| format!("{n}={v}")).collect();
    if set.is_empty() {
        "none".to_string()
    } else {
        set.join(" ")
    }
}
