//! Prometheus text exposition of the latest snapshots.

use crate::render::{ClusterSnapshot, Role};
use std::fmt::Write;
use std::sync::Arc;

struct Family {
    name: &'static str,
    help: &'static str,
    samples: Vec<(String, f64)>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn render(clusters: &[Arc<ClusterSnapshot>]) -> String {
    let mut fams: Vec<Family> = [
        ("pivot_cluster_healthy", "1 when the cluster analysis is healthy."),
        ("pivot_cluster_alerting", "1 when the cluster analysis needs an operator."),
        ("pivot_cluster_analysis", "The current analysis code of the cluster (value always 1)."),
        ("pivot_cluster_recovery_running", "1 while a recovery of the cluster runs or waits to be resumed."),
        ("pivot_cluster_automatic_recovery_blocked", "1 while automatic recovery is blocked (anti-flapping)."),
        ("pivot_cluster_fenced_instances", "Former primaries pivot keeps read-only."),
        ("pivot_cluster_control_problems", "Problems that keep pivot from acting safely (see the API)."),
        ("pivot_cluster_max_instances_reached", "1 when max_instances was reached: some instances are not watched."),
        ("pivot_instance_up", "1 when pivot's last probe of the instance succeeded."),
        ("pivot_instance_read_only", "1 when the instance is read-only."),
        ("pivot_instance_replication_lag_seconds", "Seconds behind the source, when known."),
        ("pivot_instance_io_thread_running", "1 when the replication IO thread is connected."),
        ("pivot_instance_sql_thread_running", "1 when the replication SQL thread runs."),
        ("pivot_instance_probe_latency_seconds", "Duration of the last probe."),
        ("pivot_instance_consecutive_probe_failures", "Failed probes in a row."),
        (
            "pivot_replica_lag_seconds",
            "Replica lag by source: \"server\" (Seconds_Behind_Master) or \"heartbeat\" (pivot's heartbeat, against the primary's clock).",
        ),
    ]
    .into_iter()
    .map(|(name, help)| Family { name, help, samples: Vec::new() })
    .collect();
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    for c in clusters {
        let cl = format!("cluster=\"{}\"", escape(&c.cluster));
        fams[0].samples.push((cl.clone(), b(c.code == pivot_core::Code::Healthy)));
        fams[1].samples.push((cl.clone(), b(c.alerting)));
        fams[2].samples.push((format!("{cl},code=\"{}\"", c.code.as_str()), 1.0));
        if let Some(r) = &c.recovery {
            fams[3].samples.push((cl.clone(), b(r.running_recovery.is_some())));
            fams[4].samples.push((cl.clone(), b(r.blocked_until.is_some())));
            fams[5].samples.push((cl.clone(), r.fenced.len() as f64));
            fams[6].samples.push((cl.clone(), r.control_problems.len() as f64));
            fams[7].samples.push((cl.clone(), b(r.discovery_limit.is_some())));
        }
        for i in &c.instances {
            let role = match i.role {
                Role::Primary => "primary",
                Role::Replica => "replica",
                Role::Detached => "detached",
                Role::FormerPrimary => "former_primary",
                Role::Unknown => "unknown",
            };
            let labels = format!("{cl},instance=\"{}\",role=\"{role}\"", escape(&i.instance.to_string()));
            fams[8].samples.push((labels.clone(), b(i.reachable)));
            if let Some(ms) = i.probe_latency_ms {
                fams[13].samples.push((labels.clone(), ms / 1000.0));
            }
            fams[14].samples.push((labels.clone(), f64::from(i.consecutive_failures)));
            if let Some(lag) = &i.lag {
                if let Some(s) = lag.seconds_behind_master {
                    fams[15].samples.push((format!("{labels},source=\"server\""), s as f64));
                }
                if let Some(s) = lag.heartbeat_lag {
                    fams[15].samples.push((format!("{labels},source=\"heartbeat\""), s));
                }
            }
            let Some(st) = i.state.as_ref().filter(|_| i.reachable) else { continue };
            fams[9].samples.push((labels.clone(), b(!st.writable())));
            if let Some(r) = &st.replication {
                if let Some(lag) = r.seconds_behind {
                    fams[10].samples.push((labels.clone(), lag as f64));
                }
                fams[11].samples.push((labels.clone(), b(r.io_thread == pivot_core::observation::IoThread::Running)));
                fams[12].samples.push((labels.clone(), b(r.sql_running)));
            }
        }
    }
    let mut out = String::new();
    for f in fams {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE {} gauge", f.name);
        for (labels, v) in f.samples {
            let _ = writeln!(out, "{}{{{labels}}} {v}", f.name);
        }
    }
    out
}

/// The webhook's counters (`[pivot.webhook]`).
pub fn webhook(w: &crate::daemon::webhook::WebhookStats) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    for (name, help, v) in [
        ("pivot_webhook_sent_total", "Alerts the webhook accepted (2xx).", &w.sent),
        ("pivot_webhook_failed_total", "Alerts not delivered after every attempt.", &w.failed),
        ("pivot_webhook_retries_total", "Attempts after a failed one.", &w.retried),
        (
            "pivot_webhook_dropped_total",
            "Alerts dropped unsent because the queue was full (the oldest go).",
            &w.dropped,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Relaxed));
    }
    out
}
