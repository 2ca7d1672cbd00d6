//! Former primaries after the verdict: rejoined as replicas when they can
//! (asked of the shell once each, retried with a backoff), quarantined with
//! their extra transactions named, judged "acknowledged or not" and saved
//! to a file when they cannot. Also what the machine remembers of each
//! primary's semi-sync, which that judgement needs.

use super::*;
use crate::control::acknowledged;
use crate::control::rejoin;
use crate::gtid::GtidSet;

/// Text of a fence entry's detail once its extra transactions are saved.
pub const SAVED_TO: &str = "extra transactions saved to ";

impl ClusterMachine {
    /// Fold one observation of `observed` into what is known of its
    /// semi-sync if it was the primary until now; and the latest reading of
    /// the primary the analysis names now, if not folded yet: the reading
    /// that was taken before the analysis first named it (the first probes
    /// of a cluster, a new primary) counts too, since a commit may start
    /// waiting before the next one.
    pub(super) fn note_semi_sync(
        &mut self,
        observed: &InstanceKey,
        reading: acknowledged::SemiSyncReading,
        was_primary: bool,
    ) {
        // Bounded: primaries only, and only those still in the view.
        self.semi_seen.retain(|k, _| self.view.get(k).is_some());
        if was_primary {
            self.semi_seen.entry(observed.clone()).or_default().observed(
                reading.at,
                reading.state.as_ref(),
                reading.refused,
            );
        }
        let Some(primary) = self.analysis.primary.clone() else { return };
        let Some(latest) = self.view.get(&primary).map(|r| acknowledged::SemiSyncReading::of(&r.latest)) else {
            return;
        };
        let seen = self.semi_seen.entry(primary).or_default();
        if seen.last.as_ref().is_none_or(|(at, _)| *at < latest.at) {
            seen.observed(latest.at, latest.state.as_ref(), latest.refused);
        }
    }

    /// A former primary judged diverged: the words for its entry and alert
    /// (whether its extra transactions could have been acknowledged), and
    /// the shell asked to save them to a file, once: judged again (fenced
    /// again), the file already saved is named again, not saved anew.
    pub(super) fn quarantined(
        &mut self,
        key: &InstanceKey,
        diverged: &GtidSet,
        primary: &InstanceKey,
        out: &mut Vec<Command>,
    ) -> String {
        let theirs = self.view.get(primary).and_then(|r| r.last_state()).map(|s| s.gtid.executed.clone());
        let Some(theirs) = theirs else { return String::new() };
        let replicas: Vec<(InstanceKey, GtidSet)> = self
            .view
            .keys()
            .filter(|k| *k != key && *k != primary)
            .filter_map(|k| {
                let s = self.view.get(k)?.last_state()?;
                let received = s.replication.as_ref().map(|r| r.received.clone());
                Some((k.clone(), received.map_or_else(|| s.gtid.executed.clone(), |r| s.gtid.executed.union(&r))))
            })
            .collect();
        let verdict = acknowledged::acknowledged(diverged, &theirs, self.semi_seen.get(key), &replicas);
        let saved = self.fenced.get(key).and_then(|f| f.detail.find(SAVED_TO).map(|i| f.detail[i..].to_string()));
        if let Some(saved) = saved {
            return format!("{}; {saved}", verdict.describe());
        }
        if self.saving.insert(key.clone()) {
            out.push(Command::SaveExtra {
                instance: key.clone(),
                extra: diverged.clone(),
                start: rejoin::extra_start(diverged, &theirs),
            });
        }
        verdict.describe()
    }

    /// Ask the shell to rejoin every fenced instance that is due. Called only
    /// while this process runs no recovery task; one waiting to be resumed
    /// or run elsewhere (the store says) holds rejoins back too.
    pub(super) fn consider_rejoins(&mut self, out: &mut Vec<Command>) {
        debug_assert_eq!(self.task, RecoveryTask::Idle);
        let running = self.pending_resume.is_some() || self.store.running.is_some();
        let primary = self.analysis.primary.clone();
        let epoch_primary = self.store.epoch.as_ref().map(|e| e.primary.clone());
        let cluster = rejoin::Cluster {
            auto_rejoin: self.settings.auto_rejoin,
            primary: primary.as_ref(),
            epoch_primary: epoch_primary.as_ref(),
            recovering: running,
            may_act: self.may_act,
            now: self.now,
        };
        let fenced: Vec<rejoin::Fenced> = self
            .fenced
            .values()
            .map(|f| rejoin::Fenced {
                instance: &f.instance,
                can_rejoin: rejoin::judged_able(&f.status, &f.detail),
                answering_read_only: self
                    .view
                    .get(&f.instance)
                    .and_then(|r| r.current_state())
                    .is_some_and(|s| !s.writable()),
                busy: self.fencing.contains(&f.instance) || self.rejoining.contains(&f.instance),
                retry_at: self.rejoin_failures.get(&f.instance).map(|(_, at)| *at),
            })
            .collect();
        let due: Vec<InstanceKey> = rejoin::due(&cluster, &fenced).into_iter().cloned().collect();
        let Some(primary) = primary else { return };
        for key in due {
            self.rejoining.insert(key.clone());
            out.push(Command::Log {
                level: Level::Info,
                text: format!("former primary {key}: rejoining it as a replica of {primary}"),
            });
            out.push(Command::Rejoin { instance: key, primary: primary.clone() });
        }
    }

    pub(super) fn on_rejoined(&mut self, key: InstanceKey, result: Result<String, String>, out: &mut Vec<Command>) {
        self.rejoining.remove(&key);
        match result {
            Ok(text) => {
                self.rejoin_failures.remove(&key);
                self.fenced.remove(&key);
                out.push(Command::ClearFence(key.clone()));
                let text = format!("former primary {key} rejoined: {text}");
                out.push(Command::Log { level: Level::Info, text: text.clone() });
                out.push(Command::Record { text });
                out.push(Command::ProbeNow(key));
            }
            Err(e) => {
                let failures = self.rejoin_failures.get(&key).map_or(0, |(n, _)| *n) + 1;
                let wait = rejoin::retry_wait_ms(failures);
                self.rejoin_failures.insert(key.clone(), (failures, self.now.plus(wait)));
                self.alert_once(
                    &format!("rejoin:{key}:{e}"),
                    format!("former primary {key} did not rejoin: {e}; pivot tries again in {} s", wait / 1_000),
                    None,
                    out,
                );
            }
        }
    }

    pub(super) fn on_extra_saved(&mut self, key: InstanceKey, result: Result<String, String>, out: &mut Vec<Command>) {
        self.saving.remove(&key);
        let Some(entry) = self.fenced.get(&key).cloned() else { return };
        let (text, detail) = match result {
            Ok(path) => (
                format!(
                    "former primary {key} is quarantined; its {SAVED_TO}{path} (mariadb-binlog text output): review \
                     it, then rebuild the instance"
                ),
                format!("{}; {SAVED_TO}{path}", entry.detail),
            ),
            Err(e) => (
                format!("former primary {key} is quarantined; its extra transactions could not be saved: {e}"),
                format!("{}; extra transactions not saved: {e}", entry.detail),
            ),
        };
        self.alert_once(&format!("quarantine_file:{key}"), text, None, out);
        let entry = FenceEntry { detail, ..entry };
        out.push(Command::UpdateFence(entry.clone()));
        self.fenced.insert(key, entry);
    }
}
