//! Taking over a recovery a stopped, killed or failed pivot left running:
//! the stored plan and step records decide what runs next.

use super::*;

/// One step as a stopped pivot recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedStep {
    pub seq: i64,
    /// `None`: started, never ended (pivot stopped in the middle of it).
    pub ended: Option<Ended>,
}

impl RecoveryMachine {
    /// Take over a recovery a stopped pivot left running. `plan` is the
    /// stored plan document, `steps` the step records, `view` fresh readings.
    /// Nothing is repeated blindly: ended steps are not run again, an
    /// interrupted step is run again or checked first as it declares, and a
    /// plan that cannot be read is left for an operator.
    pub fn resume(
        failed: InstanceKey,
        plan: Option<&str>,
        steps: &[RecordedStep],
        view: ClusterView,
        settings: FailoverSettings,
        request: FailoverRequest,
    ) -> (Option<RecoveryMachine>, Command) {
        let leave = |summary: String, block: bool| {
            Command::Finish(Finish {
                status: Status::Interrupted,
                summary,
                new_primary: None,
                lost: vec![],
                block,
                alert: true,
            })
        };
        let doc = match plan.map(PlanDoc::from_json) {
            None if steps.is_empty() => {
                return (None, leave("pivot stopped before the first step: nothing was changed".into(), false))
            }
            None => return (None, leave(unreadable("no plan was stored"), true)),
            Some(Err(e)) => return (None, leave(unreadable(&e), true)),
            Some(Ok(doc)) => doc,
        };
        if doc.failed_primary != failed {
            return (None, leave(unreadable("the plan names another failed primary"), true));
        }
        let mut m = RecoveryMachine::with_doc(doc, view, settings, request);
        m.request.force = m.doc.force;
        m.resumed = true;
        for r in steps {
            let Some(i) = PlanDoc::index_of(r.seq).filter(|i| *i < m.doc.steps.len()) else {
                return (None, leave(unreadable(&format!("step {} is not in the plan", r.seq)), true));
            };
            if !m.started.contains(&i) {
                m.started.push(i);
            }
            m.ends[i] = r.ended;
        }
        m.abandoned = m.doc.steps.iter().any(|s| s.step.is_undo()).then(|| "abandoned before a pivot restart".into());
        // Steps run one after the other: a step before one that started had
        // ended, even if its end record was lost (a failed write, a crash
        // between the end and its record). It is never run again.
        if let Some(last) = m.started.iter().max().copied() {
            for i in 0..last {
                if m.ends[i].is_none() {
                    m.ends[i] = Some(Ended::Ok);
                    if !m.started.contains(&i) {
                        m.started.push(i);
                    }
                }
            }
        }
        if let Some(p) = m.doc.promote_index() {
            m.promoted = m.abandoned.is_none() && m.ends[p].is_some_and(Ended::succeeded);
        }
        // Replay what ended, in order, the way it was decided then.
        let mut next = 0;
        while next < m.doc.steps.len() {
            let Some(how) = m.ends[next] else { break };
            let planned = &m.doc.steps[next];
            if !how.succeeded() {
                if planned.vetoes && !m.promoted && m.abandoned.is_none() {
                    // Stopped between the failure and the abandon.
                    let why = format!("{} failed before a pivot restart", planned.step.name());
                    let cmd = m.abandon(why);
                    return (Some(m), cmd);
                }
                m.errors.push(format!("{} failed before a pivot restart", planned.step.name()));
            }
            if matches!(planned.step, Step::Observe { .. }) && m.doc.choice.is_none() && m.abandoned.is_none() {
                // The readings were not kept: take them again.
                m.ends[next] = None;
                break;
            }
            next += 1;
        }
        m.next = next;
        m.interrupted = m.started.contains(&next).then_some(next);
        if m.doc.kind == crate::plan::PlanKind::Switchover && !m.promoted && m.abandoned.is_none() {
            // Nothing was promoted: the old primary (read-only since, maybe)
            // is still the only one that can be the writer. Roll back.
            let why = "pivot restarted during the switchover, before the promotion: switchover rolled back".into();
            let cmd = m.abandon(why);
            return (Some(m), cmd);
        }
        let failed_answers = m.view.get(&m.doc.failed_primary).is_some_and(|r| r.reachable());
        let failed_writable =
            m.view.get(&m.doc.failed_primary).and_then(|r| r.current_state()).is_some_and(|s| s.writable());
        if !m.promoted && m.abandoned.is_none() && m.fenced_live_primary() && failed_writable {
            // Fenced by this plan, writable again now: someone repaired the
            // cluster by hand meanwhile. Do not promote over it.
            let why = format!(
                "pivot restarted before the promotion and {} is writable again (the cluster was changed since): \
                 failover abandoned",
                m.doc.failed_primary
            );
            let cmd = m.abandon(why);
            return (Some(m), cmd);
        }
        if !m.promoted && m.abandoned.is_none() && failed_answers && !m.fenced_live_primary() {
            let why = format!(
                "pivot restarted before the promotion and {} answers again: failover abandoned",
                m.doc.failed_primary
            );
            let cmd = m.abandon(why);
            return (Some(m), cmd);
        }
        let cmd = m.advance();
        (Some(m), cmd)
    }
}

fn unreadable(why: &str) -> String {
    format!(
        "the stored plan cannot be followed ({why}): on this restart pivot changed nothing and left the cluster \
         for an operator (steps run before it, in `pivot history`, may have stopped replication); check `pivot \
         status`, then `pivot ack`"
    )
}
