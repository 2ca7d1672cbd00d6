//! Problems of single instances, listed for status output and alerts.

use super::{DetectionSettings, Problem, ProblemKind};
use crate::instance::InstanceKey;
use crate::observation::{InstanceState, IoThread};
use crate::topology::Topology;
use crate::view::ClusterView;

pub(super) fn collect(view: &ClusterView, topology: &Topology, settings: &DetectionSettings) -> Vec<Problem> {
    let primary_state = topology.primary.as_ref().and_then(|p| view.get(p)).and_then(|r| r.last_state());
    let mut out = Vec::new();
    for (key, rec) in &view.records {
        let mut push = |kind: ProblemKind| out.push(problem(key, kind));
        let Some(state) = rec.current_state() else {
            let failure = rec.latest.failure().expect("unreachable record holds a failure").clone();
            push(ProblemKind::Unreachable { failure });
            continue;
        };
        let is_primary = topology.primary.as_ref() == Some(key);
        if !state.log_bin {
            push(ProblemKind::BinlogOff);
        }
        match &state.replication {
            Some(repl) => {
                match repl.io_thread {
                    IoThread::Stopped => push(ProblemKind::IoThreadStopped),
                    IoThread::Connecting => push(ProblemKind::IoThreadConnecting),
                    IoThread::Running => {}
                }
                if let Some(error) = &repl.io_error {
                    push(ProblemKind::IoError { error: error.clone() });
                }
                if !repl.sql_running {
                    push(ProblemKind::SqlThreadStopped);
                }
                if let Some(error) = &repl.sql_error {
                    push(ProblemKind::SqlError { error: error.clone() });
                }
                // The heartbeat's lag when measured, else the server's own figure.
                let lag = crate::heartbeat::lag_of(view, topology.primary.as_ref(), key).and_then(|l| l.seconds());
                if let Some(seconds) = lag.filter(|s| *s > settings.lag_threshold_s) {
                    push(ProblemKind::Lagging { seconds, threshold: settings.lag_threshold_s });
                }
                if repl.sql_delay_s > 0 {
                    push(ProblemKind::Delayed { seconds: repl.sql_delay_s });
                }
                if state.writable() && !is_primary {
                    push(ProblemKind::WritableReplica);
                }
                if let Some(p) = primary_state.filter(|_| !is_primary) {
                    let errant = errant_gtids(state, p);
                    if !errant.is_empty() {
                        push(ProblemKind::ErrantGtids { gtids: errant });
                    }
                }
            }
            None if state.writable() && !is_primary && topology.primary.is_some() => {
                push(ProblemKind::WritableNonPrimary)
            }
            None => {}
        }
    }
    out
}

/// Transactions in `replica`'s binary log that the primary never had, ignoring
/// those the primary itself wrote (the replica may simply have been probed later).
pub fn errant_gtids(replica: &InstanceState, primary: &InstanceState) -> String {
    let extra = replica.gtid.executed.subtract(&primary.gtid.executed);
    let errant = extra.without_origin(primary.server_id, primary.server_uuid.as_deref());
    errant.to_string()
}

fn problem(key: &InstanceKey, kind: ProblemKind) -> Problem {
    let text = match &kind {
        ProblemKind::Unreachable { failure } => format!("unreachable: {}", failure.message),
        ProblemKind::IoThreadStopped => "IO thread stopped".to_string(),
        ProblemKind::IoThreadConnecting => "IO thread connecting (not connected to its source)".to_string(),
        ProblemKind::IoError { error } => format!("IO error {}: {}", error.number, error.message),
        ProblemKind::SqlThreadStopped => "SQL thread stopped".to_string(),
        ProblemKind::SqlError { error } => format!("SQL error {}: {}", error.number, error.message),
        ProblemKind::Lagging { seconds, threshold } => {
            format!("lagging {seconds}s (threshold {threshold}s)")
        }
        ProblemKind::Delayed { seconds } => format!("delayed replica (applies {seconds}s late)"),
        ProblemKind::ErrantGtids { gtids } => {
            format!("errant GTIDs the primary never had: {gtids}")
        }
        ProblemKind::WritableReplica => "writable replica (read_only is OFF)".to_string(),
        ProblemKind::WritableNonPrimary => "writable but not the primary".to_string(),
        ProblemKind::BinlogOff => "binary log off".to_string(),
    };
    Problem { instance: key.clone(), kind, text }
}
