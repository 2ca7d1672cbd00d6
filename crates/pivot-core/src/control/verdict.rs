//! Rejoin or quarantine: what a fenced former primary may do next, judged by
//! GTID-set inclusion (per domain and server, not sequence numbers alone).

use crate::gtid::GtidSet;
use crate::instance::InstanceKey;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Everything it holds is on the current primary: it can replicate from it.
    CanRejoin { primary: InstanceKey },
    /// It holds transactions the current primary lacks.
    Quarantine { primary: InstanceKey, diverged: GtidSet },
    /// No current primary to compare with.
    Unknown,
}

impl Verdict {
    pub fn status(&self) -> &'static str {
        match self {
            Verdict::CanRejoin { .. } | Verdict::Unknown => "read_only",
            Verdict::Quarantine { .. } => "quarantined",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Verdict::CanRejoin { primary } => format!("all its GTIDs are on {primary}: it can rejoin as a replica"),
            Verdict::Quarantine { primary, diverged } => {
                format!("diverged: {diverged} are not on {primary}: rebuild it or reconcile by hand before it rejoins")
            }
            Verdict::Unknown => "no current primary known to compare with".into(),
        }
    }
}

/// Whether a fence entry's detail carries a verdict already (rejoin or
/// quarantine), as [`Verdict::describe`] words them.
pub fn judged(detail: &str) -> bool {
    detail.contains("it can rejoin as a replica") || detail.contains("diverged: ")
}

/// Judge a former primary holding `executed` against the current primary.
pub fn judge(executed: &GtidSet, primary: Option<(&InstanceKey, &GtidSet)>) -> Verdict {
    let Some((p, theirs)) = primary else { return Verdict::Unknown };
    let diverged = executed.subtract(theirs);
    if diverged.is_empty() {
        Verdict::CanRejoin { primary: p.clone() }
    } else {
        Verdict::Quarantine { primary: p.clone(), diverged }
    }
}

/// As [`judge`], against the primary's reading `state`. A former primary
/// that replicates from the primary (`follows_primary`: the old active of a
/// dual-primary ring restarts replicating from the new active) can hold the
/// primary's newest writes before pivot's last reading of the primary does:
/// then the transactions that originate from the primary itself are not
/// counted. What it wrote itself, or got from anyone else, still counts.
pub fn judge_against(
    executed: &GtidSet,
    primary: Option<(&InstanceKey, &crate::observation::InstanceState)>,
    follows_primary: bool,
) -> Verdict {
    let Some((p, state)) = primary else { return Verdict::Unknown };
    let theirs = state.gtid.executed.clone();
    match judge(executed, Some((p, &theirs))) {
        Verdict::Quarantine { primary, diverged } if follows_primary => {
            let diverged = diverged.without_origin(state.server_id, state.server_uuid.as_deref());
            if diverged.is_empty() {
                Verdict::CanRejoin { primary }
            } else {
                Verdict::Quarantine { primary, diverged }
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::{key, maria};

    #[test]
    fn the_primarys_own_newest_writes_are_no_divergence() {
        use crate::fixture::state;
        let p = key("10.0.0.2:3306");
        // The primary is server 2; its reading says 0-2-100, the former
        // primary (server 1) replicated on to 0-2-103 meanwhile.
        let primary = state(2, "0-1-50,0-2-100").build();
        let v = judge_against(&maria("0-1-50,0-2-103"), Some((&p, &primary)), true);
        assert_eq!(v.status(), "read_only", "{v:?}");
        let v = judge_against(&maria("0-1-50,0-2-103"), Some((&p, &primary)), false);
        assert_eq!(v.status(), "quarantined", "only one that replicates from the primary: {v:?}");
        // Its own extra transaction still counts.
        let v = judge_against(&maria("0-1-51,0-2-103"), Some((&p, &primary)), true);
        assert_eq!(v.status(), "quarantined", "{v:?}");
        assert!(v.describe().contains("0-1-51") && !v.describe().contains("0-2-103"), "{}", v.describe());
        assert_eq!(judge_against(&maria("0-1-50"), None, true).status(), "read_only");
    }

    #[test]
    fn verdict_table() {
        let p = key("10.0.0.2:3306");
        let cases = [
            ("same", "0-1-100", Some("0-1-100"), "read_only", "can rejoin"),
            ("behind", "0-1-90", Some("0-1-100,0-2-5"), "read_only", "can rejoin"),
            ("ahead in its own server id", "0-1-101", Some("0-1-100,0-2-5"), "quarantined", "0-1-101"),
            ("another domain", "0-1-100,1-1-3", Some("0-1-100"), "quarantined", "1-1-3"),
            ("nothing to compare", "0-1-100", None, "read_only", "no current primary"),
        ];
        for (name, mine, theirs, status, words) in cases {
            let theirs = theirs.map(maria);
            let v = judge(&maria(mine), theirs.as_ref().map(|t| (&p, t)));
            assert_eq!(v.status(), status, "{name}: {v:?}");
            assert!(v.describe().contains(words), "{name}: {}", v.describe());
            assert_eq!(judged(&v.describe()), status == "quarantined" || words == "can rejoin", "{name}");
        }
    }
}
