//! The SQLite store, call by call.

use super::*;
use crate::store::StateStore;

fn recovery(cluster: &str) -> NewRecovery {
    NewRecovery {
        cluster: cluster.into(),
        kind: "automatic_failover".into(),
        failed_primary: Some("db1:3306".into()),
        analysis: "dead_primary".into(),
        owner: "test".into(),
        lease_until: 5000,
        at: 1000,
        detected_at: Some(900),
    }
}

#[test]
fn one_running_recovery_per_cluster_even_across_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    let id = a.begin_recovery(&recovery("main")).unwrap();
    let err = b.begin_recovery(&recovery("main")).unwrap_err();
    assert!(matches!(err, StateError::AlreadyRunning { id: running, .. } if running == id), "{err}");
    b.begin_recovery(&recovery("other")).expect("another cluster is independent");
    a.finish_recovery(id, RecoveryStatus::Succeeded, "done", &["db3:3306".into()], 2000).unwrap();
    let again = b.begin_recovery(&recovery("main")).expect("allowed once the first ended");
    assert_ne!(again, id);
    let r = a.recovery(id).unwrap();
    assert_eq!((r.status, r.lost_replicas.clone()), (RecoveryStatus::Succeeded, vec!["db3:3306".to_string()]));
}

#[test]
fn steps_record_start_and_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let id = s.begin_recovery(&recovery("main")).unwrap();
    s.step_started(id, 1, "stop_io", "db2:3306", 10).unwrap();
    s.step_finished(id, 1, "ok", "", 11).unwrap();
    s.step_started(id, 2, "promote", "db2:3306", 12).unwrap();
    let r = s.running_recovery("main").unwrap().unwrap();
    assert_eq!(r.steps.len(), 2);
    assert_eq!(r.steps[0].outcome.as_deref(), Some("ok"));
    assert_eq!(r.steps[1].outcome, None, "an unfinished step stays visible as such");
}

#[test]
fn blocks_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    assert!(s.ack("main", "ops", 0).unwrap().is_none(), "nothing to acknowledge");
    s.block("main", 7, 5000).unwrap();
    assert!(s.block_of("main").unwrap().unwrap().active(4999));
    assert!(!s.block_of("main").unwrap().unwrap().active(5000));
    let lifted = s.ack("main", "ops", 100).unwrap().unwrap();
    assert_eq!(lifted.recovery_id, Some(7));
    assert!(!s.block_of("main").unwrap().unwrap().active(200));
    s.block("main", 8, 9000).unwrap();
    assert!(s.block_of("main").unwrap().unwrap().active(200), "a new recovery blocks again");
}

#[test]
fn fenced_instances_and_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let f = FencedInstance {
        cluster: "main".into(),
        instance: "db1:3306".into(),
        recovery_id: Some(1),
        since: 10,
        status: "pending".into(),
        detail: "unreachable at failover".into(),
    };
    s.fence_register(&f).unwrap();
    s.fence_update("main", "db1:3306", "read_only", "made read-only").unwrap();
    assert_eq!(s.fenced("main").unwrap()[0].status, "read_only");
    s.event("main", 5, "error", "all replicas down").unwrap();
    assert_eq!(s.events(Some("main"), 10).unwrap()[0].message, "all replicas down");
    assert!(s.events(Some("other"), 10).unwrap().is_empty());
}

#[test]
fn leases_decide_who_may_take_a_recovery_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    let id = s.begin_recovery(&recovery("main")).unwrap();
    assert!(!s.adopt(id, "other", 4_999, 9_000).unwrap(), "the lease runs until 5000");
    assert!(s.renew_lease(id, "test", 8_000).unwrap());
    assert!(!s.adopt(id, "other", 7_999, 9_000).unwrap(), "renewed");
    assert!(s.adopt(id, "other", 8_000, 12_000).unwrap(), "expired: taken over");
    assert!(!s.renew_lease(id, "test", 20_000).unwrap(), "the old owner lost it");
    assert!(s.adopt(id, "other", 0, 13_000).unwrap(), "an owner may always re-adopt its own");
    s.finish_recovery(id, RecoveryStatus::Aborted, "x", &[], 9).unwrap();
    assert!(!s.adopt(id, "third", 99_999, 100_000).unwrap(), "an ended recovery is not adopted");
}

#[test]
fn the_file_is_private_never_created_by_readers_and_its_replacement_is_noticed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/s.db");
    let err = SqliteStore::open_existing(&path).err().unwrap();
    assert!(err.to_string().contains("nothing has been recorded yet"), "{err}");
    assert!(!path.exists(), "a reader creates nothing");
    let s = SqliteStore::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    s.event("main", 1, "info", "x").unwrap();
    assert_eq!(s.check_file(), Ok(()));
    std::fs::remove_file(&path).unwrap();
    assert!(s.check_file().unwrap_err().contains("No such file"));
    std::fs::write(&path, b"").unwrap();
    assert!(s.check_file().unwrap_err().contains("replaced"));
    std::fs::remove_file(&path).unwrap();
    s.reopen().unwrap();
    assert_eq!(s.check_file(), Ok(()), "a fresh file at the same path");
    s.event("main", 2, "info", "after").unwrap();
    assert_eq!(s.events(None, 10).unwrap().len(), 1, "the new file holds only what came after");
}

#[test]
fn epochs_grow_once_per_recovery_and_adoption_is_compare_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    assert_eq!(s.epoch("main").unwrap(), None);
    // An adoption expecting a newer epoch than there is writes nothing.
    assert_eq!(s.epoch_advance("main", "a:1", None, Some(Some(3)), 1).unwrap(), None);
    let first = s.epoch_advance("main", "a:1", None, Some(None), 1).unwrap().unwrap();
    assert_eq!((first.number, first.primary.as_str(), first.recovery_id), (1, "a:1", None));
    // A second adoption that expected "no epoch" lost the race.
    assert_eq!(s.epoch_advance("main", "b:1", None, Some(None), 2).unwrap(), None);
    let promoted = s.epoch_advance("main", "b:1", Some(7), None, 3).unwrap().unwrap();
    assert_eq!(promoted.number, 2);
    // Asked again (a resumed recovery), the same epoch, nothing new.
    let again = s.epoch_advance("main", "c:1", Some(7), None, 4).unwrap().unwrap();
    assert_eq!(again, promoted);
    assert_eq!(s.epoch("main").unwrap().unwrap(), promoted);
    assert_eq!(s.epoch_of_recovery("main", 7).unwrap().unwrap(), promoted);
    assert_eq!(s.epoch_of_recovery("main", 8).unwrap(), None);
    // Clusters are apart.
    assert_eq!(s.epoch_advance("other", "z:1", Some(7), None, 5).unwrap().unwrap().number, 1);
    assert_eq!(s.epoch("main").unwrap().unwrap().number, 2);
}
