//! `pivot status` as text: each cluster as a tree.

use super::snapshot::{ClusterSnapshot, InstanceSnapshot, Role};
use pivot_core::observation::IoThread;
use std::fmt::Write;

pub fn cluster_text(s: &ClusterSnapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "cluster {}: {} ({})", s.cluster, s.code.as_str().replace('_', " "), s.signal);
    if let Some(r) = &s.recovery {
        if let Some(id) = r.running_recovery {
            let _ = writeln!(out, "  recovery {id} is running");
        }
        if let Some(until) = r.blocked_until {
            let _ = writeln!(
                out,
                "  automatic recovery blocked until {} (lift it with `pivot ack`)",
                super::time_text(until)
            );
        }
        if !r.automatic {
            let _ = writeln!(out, "  automatic recovery is off for this cluster");
        }
        for f in &r.fenced {
            let _ = writeln!(out, "  former primary {}: {} ({})", f.instance, f.status, f.detail);
        }
    }
    let rows: Vec<[String; 7]> = s.instances.iter().enumerate().map(|(i, inst)| row(s, i, inst)).collect();
    let header = ["INSTANCE", "ROLE", "VERSION", "READ_ONLY", "LAG", "IO/SQL", "GTID"].map(String::from);
    let mut widths = [0usize; 7];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String; 7]| {
        let mut l = String::from("  ");
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 6 {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header));
    for (r, inst) in rows.iter().zip(&s.instances) {
        let _ = writeln!(out, "{}", line(r));
        for p in &inst.problems {
            let _ = writeln!(out, "  {}! {p}", " ".repeat(indent(inst) + 3));
        }
    }
    out
}

/// The server's figure, and the heartbeat's when measured: `0s hb 0.4s`.
fn lag_text(server_s: Option<u64>, heartbeat_s: Option<f64>) -> String {
    let server = server_s.map_or("-".to_string(), |l| format!("{l}s"));
    match heartbeat_s {
        Some(h) => format!("{server} hb {h:.1}s"),
        None => server,
    }
}

fn indent(inst: &InstanceSnapshot) -> usize {
    inst.depth * 3
}

fn row(s: &ClusterSnapshot, i: usize, inst: &InstanceSnapshot) -> [String; 7] {
    let prefix = if inst.depth == 0 {
        String::new()
    } else {
        let last_sibling =
            !s.instances[i + 1..].iter().take_while(|o| o.depth >= inst.depth).any(|o| o.depth == inst.depth);
        format!("{}{} ", "   ".repeat(inst.depth - 1), if last_sibling { "└─" } else { "├─" })
    };
    let role = match inst.role {
        Role::Primary => "primary",
        Role::Replica => "replica",
        Role::Detached => "detached",
        Role::FormerPrimary => "former primary",
        Role::Unknown => "unknown",
    };
    let role = if inst.reachable { role.to_string() } else { format!("{role} (down)") };
    let Some(st) = &inst.state else {
        return [
            format!("{prefix}{}", inst.instance),
            role,
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    };
    let stale = if inst.state_is_last_known { " (last known)" } else { "" };
    let (lag, threads) = match &st.replication {
        Some(r) => (
            lag_text(r.seconds_behind, inst.lag.as_ref().and_then(|l| l.heartbeat_lag)),
            format!(
                "{}/{}",
                match r.io_thread {
                    IoThread::Running => "yes",
                    IoThread::Connecting => "connecting",
                    IoThread::Stopped => "no",
                },
                if r.sql_running { "yes" } else { "no" }
            ),
        ),
        None => ("-".into(), "-".into()),
    };
    let read_only = match (st.read_only, st.super_read_only) {
        (_, Some(true)) => "super",
        (true, _) => "ON",
        (false, _) => "OFF",
    };
    [
        format!("{prefix}{}", inst.instance),
        role,
        format!("{}{stale}", st.version),
        read_only.into(),
        lag,
        threads,
        if st.gtid.applied.is_empty() { "-".to_string() } else { st.gtid.applied.to_string() },
    ]
}
