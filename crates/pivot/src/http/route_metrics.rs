//! Prometheus text for the routes: each cluster's epoch and hold, and the
//! built-in proxy's counters per backend and of its hold queue.

use super::ClusterHandle;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(self.0, "{name}{{{labels}}} {v}");
        }
    }
}

pub fn render(clusters: &[ClusterHandle]) -> String {
    let mut out = Out(String::new());
    let cl = |c: &ClusterHandle| format!("cluster=\"{}\"", escape(&c.name));
    let epochs: Vec<(String, u64)> = clusters.iter().map(|c| (cl(c), c.routes.current().epoch)).collect();
    out.family("pivot_route_epoch", "gauge", "The epoch the routes follow (0: none stored yet).", &epochs);
    let holds: Vec<(String, u64)> = clusters.iter().map(|c| (cl(c), u64::from(c.routes.current().hold))).collect();
    out.family("pivot_route_hold", "gauge", "1 while a recovery holds new write connections.", &holds);
    type Field = fn(&crate::proxy::stats::BackendStats) -> &std::sync::atomic::AtomicU64;
    let backend_families: [(&str, &str, &str, Field); 7] = [
        ("pivot_proxy_backend_active", "gauge", "Proxy connections open to the backend now.", |b| &b.active),
        ("pivot_proxy_backend_connections_total", "counter", "Proxy connections made to the backend.", |b| &b.total),
        ("pivot_proxy_backend_errors_total", "counter", "Connections that failed or ended in an error.", |b| &b.errors),
        ("pivot_proxy_backend_sent_bytes_total", "counter", "Bytes from clients to the backend.", |b| {
            &b.bytes_to_backend
        }),
        ("pivot_proxy_backend_received_bytes_total", "counter", "Bytes from the backend to clients.", |b| {
            &b.bytes_to_client
        }),
        ("pivot_proxy_backend_cut_total", "counter", "Connections closed because the backend left the route.", |b| {
            &b.cut
        }),
        (
            "pivot_proxy_backend_busy",
            "gauge",
            "Protocol mode: sessions in a command or a transaction on it now.",
            |b| &b.busy,
        ),
    ];
    for (name, kind, help, field) in backend_families {
        let mut samples = Vec::new();
        for c in clusters {
            let Some(p) = &c.proxy else { continue };
            for (port, key, stats) in p.snapshot() {
                let labels = format!("{},port=\"{port}\",backend=\"{}\"", cl(c), escape(&key.to_string()));
                samples.push((labels, field(&stats).load(Relaxed)));
            }
        }
        out.family(name, kind, help, &samples);
    }
    type Total = fn(&crate::proxy::stats::ProxyStats) -> &std::sync::atomic::AtomicU64;
    let proxy_families: [(&str, &str, &str, Total); 6] = [
        ("pivot_proxy_held", "gauge", "Connections waiting for a primary now.", |p| &p.held),
        ("pivot_proxy_held_total", "counter", "Connections that waited for a primary.", |p| &p.held_total),
        ("pivot_proxy_hold_timeouts_total", "counter", "Held connections closed: no primary in time.", |p| {
            &p.hold_timeouts
        }),
        ("pivot_proxy_refused_total", "counter", "Connections refused: connection limit or hold queue full.", |p| {
            &p.refused
        }),
        ("pivot_proxy_clients", "gauge", "Client connections open now.", |p| &p.clients),
        (
            "pivot_proxy_sessions_parked",
            "gauge",
            "Protocol mode: idle sessions waiting for the new primary now.",
            |p| &p.parked,
        ),
    ];
    for (name, kind, help, field) in proxy_families {
        let samples: Vec<(String, u64)> =
            clusters.iter().filter_map(|c| c.proxy.as_ref().map(|p| (cl(c), field(p).load(Relaxed)))).collect();
        out.family(name, kind, help, &samples);
    }
    // The write port's protocol mode: sessions moved to a new primary, and
    // those ended at a route change, by reason.
    let migrated: Vec<(String, u64)> =
        clusters.iter().filter_map(|c| c.proxy.as_ref().map(|p| (cl(c), p.migrated.load(Relaxed)))).collect();
    out.family(
        "pivot_proxy_sessions_migrated_total",
        "counter",
        "Protocol mode: idle sessions moved to the new primary without their client noticing.",
        &migrated,
    );
    let mut ended = Vec::new();
    for c in clusters {
        let Some(p) = &c.proxy else { continue };
        for r in crate::proxy::mysql::session::Reason::ALL {
            ended.push((format!("{},reason=\"{}\"", cl(c), r.name()), p.ended(r)));
        }
    }
    out.family(
        "pivot_proxy_sessions_ended_total",
        "counter",
        "Protocol mode: sessions ended at a route change because they could not move, by reason.",
        &ended,
    );
    out.0
}
