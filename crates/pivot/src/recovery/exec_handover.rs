//! Performing the steps only a planned switchover has (see
//! `pivot_core::plan::switchover_plan`).

use super::blocking;
use super::exec::{end, Performer};
use pivot_core::control::{Ended, StepEnd};
use pivot_core::plan::Step;
use pivot_server::{actions, handover, Session};
use std::time::Duration;

impl Performer {
    pub(super) async fn handover_step(&mut self, step: &Step, check_first: bool) -> StepEnd {
        // Protocol-mode proxy sessions finish their transactions while the
        // old primary is still writable (one that changed rows cannot commit after).
        let proxied = match step {
            Step::MakeReadOnly { instance } => super::proxy_drain::let_proxy_sessions_finish(&self.env, instance).await,
            _ => String::new(),
        };
        match step {
            Step::CheckTransactions { instance, limit_s } => {
                let s = match self.session(instance).await {
                    Ok(s) => s,
                    Err(e) => return end(Ended::Failed, e),
                };
                match handover::oldest_transaction(s).await {
                    Ok(Some((id, secs))) if secs > *limit_s => end(
                        Ended::Failed,
                        format!(
                            "transaction of connection {id} on {instance} has run {secs} s (limit {limit_s} s, \
                             max_transaction): let it end or end it, then switch over"
                        ),
                    ),
                    Ok(Some((_, secs))) => end(Ended::Ok, format!("oldest open transaction: {secs} s")),
                    Ok(None) => end(Ended::Ok, "no open transaction"),
                    Err(e) => end(Ended::Failed, e.to_string()),
                }
            }
            Step::MakeReadOnly { instance } => match self.session(instance).await {
                Ok(s) => match actions::make_read_only(s).await {
                    Ok(()) => end(Ended::Ok, format!("{instance} is read-only{proxied}")),
                    Err(e) => end(Ended::Failed, e.to_string()),
                },
                Err(e) => end(Ended::Failed, e),
            },
            Step::EndTransactions { instance, grace_ms } => match self.session(instance).await {
                Ok(s) => match handover::end_transactions(s, Duration::from_millis(*grace_ms)).await {
                    Ok((open, ended)) => end(
                        Ended::Ok,
                        format!(
                            "{open} transaction(s) still open after the grace period; {ended} client session(s) ended"
                        ),
                    ),
                    Err(e) => end(Ended::Failed, e.to_string()),
                },
                Err(e) => end(Ended::Failed, e),
            },
            Step::WaitCaughtUp { instance, source, timeout_ms } => {
                let timeout = Duration::from_millis(*timeout_ms);
                let creds = self.env.cluster.credentials.clone();
                let mut src = match Session::connect(source, &creds, self.step_timeout()).await {
                    Ok(s) => s,
                    Err(e) => return end(Ended::Failed, format!("cannot connect to {source}: {e}")),
                };
                let r = match self.session(instance).await {
                    Ok(c) => handover::wait_caught_up(c, &mut src, timeout).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(set) => end(Ended::Ok, format!("{instance} applied {set}")),
                    Err(e) => end(Ended::Failed, e),
                }
            }
            Step::ConfirmFrozen { instance, candidate } => {
                let creds = self.env.cluster.credentials.clone();
                let mut old = match Session::connect(instance, &creds, self.step_timeout()).await {
                    Ok(s) => s,
                    Err(e) => return end(Ended::Failed, format!("cannot connect to {instance}: {e}")),
                };
                let theirs = actions::executed_and_writable(&mut old).await;
                let mine = match self.session(candidate).await {
                    Ok(c) => actions::executed_and_writable(c).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match (theirs, mine) {
                    (Ok((_, true)), _) => end(Ended::Failed, format!("{instance} is writable again")),
                    (Ok((theirs, false)), Ok((mine, _))) if mine.reaches(&theirs) => {
                        end(Ended::Ok, format!("{instance} has {theirs}, all on {candidate}"))
                    }
                    (Ok((theirs, false)), Ok((mine, _))) => end(
                        Ended::Failed,
                        format!(
                            "{instance} took writes after it was made read-only (it has {theirs}, {candidate} {mine}): \
                             an account with READ_ONLY ADMIN or SUPER writes through read_only; rolled back"
                        ),
                    ),
                    (Err(e), _) => end(Ended::Failed, format!("{instance}: {e}")),
                    (_, Err(e)) => end(Ended::Failed, e),
                }
            }
            Step::Demote { instance, to, semi_sync } => {
                let s = match self.session(instance).await {
                    Ok(s) => s,
                    Err(e) => return end(Ended::Failed, e),
                };
                if check_first && actions::replication_status(s).await.is_ok_and(|r| r.is_some_and(|r| r.source == *to))
                {
                    return end(Ended::AlreadyDone, format!("already replicates from {to}"));
                }
                let Some(repl) = self.env.cluster.replication.clone() else {
                    return end(
                        Ended::Failed,
                        "no [cluster.replication] credentials to replicate with; it stays read-only",
                    );
                };
                let s = match self.session(instance).await {
                    Ok(s) => s,
                    Err(e) => return end(Ended::Failed, e),
                };
                match handover::demote(s, to, *semi_sync, &repl).await {
                    Ok(()) => end(Ended::Ok, format!("{instance} replicates from {to}, read-only")),
                    Err(e) => end(Ended::Failed, format!("{e}; it stays read-only on the fence list")),
                }
            }
            Step::ReleaseFence { instance, primary } => {
                let timeout = self.step_timeout();
                let confirmed = match self.session(instance).await {
                    Ok(s) => actions::confirm_replicating(s, primary, timeout).await.map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                if let Err(e) = confirmed {
                    return end(Ended::Failed, format!("kept on the fence list (read-only): {e}"));
                }
                let (cluster, key) = (self.env.cluster.name.clone(), instance.to_string());
                match blocking(&self.env, move |s| s.fence_remove(&cluster, &key)).await {
                    Ok(()) => end(Ended::Ok, format!("{instance} replicates from {primary}: off the fence list")),
                    Err(e) => end(Ended::Failed, e),
                }
            }
            other => unreachable!("{} is not a switchover step", other.name()),
        }
    }
}
