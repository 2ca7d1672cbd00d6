//! Detection: can replicas confirm a failed primary within pivot's confirm
//! window (`analysis/detect.rs`: heartbeats and the IO thread's state)?

use super::replicas;
use crate::check::{CheckInput, Finding};

pub(crate) fn collect(input: &CheckInput, out: &mut Vec<Finding>) {
    let window = input.confirm_window_ms;
    for (key, st) in replicas(input) {
        let Some(r) = &st.replication else { continue };
        let net_timeout_ms =
            input.var(key, "slave_net_timeout").and_then(|v| v.trim().parse::<u64>().ok()).map(|s| s * 1000);
        match r.heartbeat_period_ms.filter(|p| *p > 0) {
            None => out.push(Finding::new(
                "PVT-W005",
                vec![key.clone()],
                format!(
                    "heartbeats off: a hung primary is only confirmed when the IO thread gives up after \
                     slave_net_timeout ({})",
                    net_timeout_ms.map_or("unknown".to_string(), |t| format!("{} s", t / 1000))
                ),
                None,
            )),
            Some(period) => {
                if period.saturating_mul(2) > window {
                    out.push(Finding::new(
                        "PVT-W005",
                        vec![key.clone()],
                        format!(
                            "heartbeat period {period} ms: confirming a hung primary takes two periods \
                             ({} ms), more than the confirm window ({window} ms)",
                            period * 2
                        ),
                        Some(format!(
                            "set MASTER_HEARTBEAT_PERIOD (CHANGE MASTER) to {:.3} s or less",
                            window as f64 / 2000.0
                        )),
                    ));
                }
                if let Some(t) = net_timeout_ms.filter(|t| *t <= period) {
                    out.push(Finding::new(
                        "PVT-E012",
                        vec![key.clone()],
                        format!(
                            "slave_net_timeout {} s is not above the heartbeat period {period} ms: the IO thread \
                             reconnects whenever the primary is idle, which looks like a dead primary",
                            t / 1000
                        ),
                        None,
                    ));
                }
            }
        }
        if u64::from(r.connect_retry_s) * 1000 > window {
            out.push(Finding::new(
                "PVT-W006",
                vec![key.clone()],
                format!(
                    "Connect_Retry {} s is longer than the confirm window ({window} ms): a replica that lost its \
                     connection for a moment stays disconnected that long and may confirm a primary that is alive",
                    r.connect_retry_s
                ),
                None,
            ));
        }
    }
}
