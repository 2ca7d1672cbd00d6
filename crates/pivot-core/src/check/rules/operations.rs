//! pivot's own side: its account's privileges, its hooks, the clocks, the routes.

use super::reachable;
use crate::check::{CheckInput, Finding, PrivilegeFact};

pub(crate) fn collect(input: &CheckInput, out: &mut Vec<Finding>) {
    for (key, _) in reachable(input) {
        let Some(extra) = input.extra.get(key) else { continue };
        if let PrivilegeFact::Missing { summary, grant } = &extra.privileges {
            out.push(Finding::new("PVT-E013", vec![key.clone()], summary.clone(), grant.clone()));
        }
        if let Some((missing, grant)) = &extra.heartbeat_grant {
            let text = format!(
                "[cluster.heartbeat] is on but pivot's account lacks {missing} on the heartbeat schema: no \
                 heartbeat is written here as primary (no heartbeat lag; one alert from pivot run)"
            );
            out.push(Finding::new("PVT-W012", vec![key.clone()], text, Some(grant.clone())));
        }
        if let Some(c) = extra.clock.filter(|c| c.certain_skew_ms() > input.max_skew_ms) {
            out.push(Finding::new(
                "PVT-W010",
                vec![key.clone()],
                format!(
                    "its clock is {} ms {} pivot's (± {} ms): logs, leases and alerts disagree on times",
                    c.offset_ms.unsigned_abs(),
                    if c.offset_ms > 0 { "ahead of" } else { "behind" },
                    c.uncertainty_ms
                ),
                None,
            ));
        }
    }
    for h in input.hooks {
        if let Some(problem) = &h.problem {
            out.push(Finding::new("PVT-E014", vec![], format!("hook {} ({}): {problem}", h.name, h.program), None));
        }
    }
    let Some(primary) = input.analysis.primary.as_ref() else { return };
    if input.view.get(primary).is_none_or(|r| !r.reachable()) {
        return;
    }
    for r in input.routes {
        if r.points_to.as_ref() != Some(primary) {
            let to = r.points_to.as_ref().map_or("nowhere".to_string(), ToString::to_string);
            let mut instances = vec![primary.clone()];
            instances.extend(r.points_to.clone());
            out.push(Finding::new(
                "PVT-E015",
                instances,
                format!("{} points to {to}, the primary is {primary}", r.route),
                None,
            ));
        }
    }
}
