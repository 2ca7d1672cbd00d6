//! Table tests of the donor choice and of the backup's recorded position.

use super::backup_info::{resume_position, PositionSource};
use super::*;
use crate::version::Flavor;

fn k(s: &str) -> InstanceKey {
    s.parse().unwrap()
}

fn g(s: &str) -> GtidSet {
    if s.is_empty() {
        return GtidSet::empty(Flavor::MariaDb);
    }
    GtidSet::parse(Flavor::MariaDb, s).unwrap()
}

/// A healthy replica of db1 at `0-1-seq`.
fn replica(key: &str, seq: u64) -> Replica {
    Replica {
        key: k(key),
        reachable: true,
        source: Some(k("db1:3306")),
        threads_running: true,
        uses_gtid: true,
        lag_s: Some(0),
        executed: Some(g(&format!("0-1-{seq}"))),
        errant: false,
        never_promote: false,
    }
}

fn input(target: &str, from: Option<&str>, replicas: Vec<Replica>) -> RebuildInput {
    let mut known = vec![k("db1:3306")];
    known.extend(replicas.iter().map(|r| r.key.clone()));
    if !known.contains(&k(target)) {
        known.push(k("db9:3306")); // a fenced former primary pivot knows
    }
    RebuildInput {
        target: k(target),
        from: from.map(k),
        primary: Some(k("db1:3306")),
        recovery_running: false,
        known,
        replicas,
        max_lag_s: 10,
    }
}

#[test]
fn the_donor_choice() {
    let down = Replica { reachable: false, ..replica("db3:3306", 90) };
    let stopped = Replica { threads_running: false, ..replica("db3:3306", 90) };
    let lagging = Replica { lag_s: Some(11), ..replica("db3:3306", 90) };
    let no_lag = Replica { lag_s: None, ..replica("db3:3306", 90) };
    let errant = Replica { errant: true, ..replica("db3:3306", 90) };
    let elsewhere = Replica { source: Some(k("db2:3306")), ..replica("db3:3306", 90) };
    let alone = Replica { source: None, ..replica("db3:3306", 90) };
    let by_file = Replica { uses_gtid: false, ..replica("db3:3306", 90) };
    let unknown_pos = Replica { executed: None, ..replica("db3:3306", 90) };
    let spare = Replica { never_promote: true, ..replica("db4:3306", 50) };
    type Want = Result<&'static str, Refusal>;
    let cases: Vec<(&str, RebuildInput, Want)> = vec![
        (
            "most advanced of two candidates, the other stays a candidate",
            input("db9:3306", None, vec![replica("db2:3306", 80), replica("db3:3306", 90)]),
            Ok("db3:3306"),
        ),
        (
            "equal positions: the smaller key, stable",
            input("db9:3306", None, vec![replica("db3:3306", 90), replica("db2:3306", 90)]),
            Ok("db2:3306"),
        ),
        (
            "the target itself is never its donor",
            input("db3:3306", None, vec![replica("db2:3306", 80), replica("db3:3306", 90), replica("db4:3306", 70)]),
            Ok("db2:3306"),
        ),
        (
            "the only candidate is not picked by default",
            input("db9:3306", None, vec![replica("db2:3306", 80)]),
            Err(Refusal::OnlyCandidate(k("db2:3306"))),
        ),
        (
            "the only candidate besides the target is not picked by default",
            input("db3:3306", None, vec![replica("db2:3306", 80), replica("db3:3306", 90)]),
            Err(Refusal::OnlyCandidate(k("db2:3306"))),
        ),
        (
            "a never_promote replica is picked even though it is behind: the candidate stays free",
            input("db9:3306", None, vec![replica("db2:3306", 80), spare.clone()]),
            Ok("db4:3306"),
        ),
        (
            "a never_promote replica alone: no candidate to protect",
            input("db9:3306", None, vec![spare.clone()]),
            Ok("db4:3306"),
        ),
        (
            "named with --from, the only candidate is accepted",
            input("db9:3306", Some("db2:3306"), vec![replica("db2:3306", 80)]),
            Ok("db2:3306"),
        ),
        (
            "named with --from, a less advanced replica is accepted",
            input("db9:3306", Some("db2:3306"), vec![replica("db2:3306", 80), replica("db3:3306", 90)]),
            Ok("db2:3306"),
        ),
        (
            "unhealthy replicas are skipped by default",
            input("db9:3306", None, vec![replica("db2:3306", 80), down.clone(), replica("db5:3306", 1)]),
            Ok("db2:3306"),
        ),
        ("no healthy replica at all", input("db9:3306", None, vec![down.clone()]), Err(Refusal::NoDonor)),
        ("no replica at all", input("db9:3306", None, vec![]), Err(Refusal::NoDonor)),
        (
            "the primary is never a donor",
            input("db9:3306", Some("db1:3306"), vec![replica("db2:3306", 80)]),
            Err(Refusal::DonorIsPrimary(k("db1:3306"))),
        ),
        (
            "not from itself",
            input("db2:3306", Some("db2:3306"), vec![replica("db2:3306", 80)]),
            Err(Refusal::DonorIsTarget(k("db2:3306"))),
        ),
    ];
    for (name, inp, want) in cases {
        let got = decide(&inp).map(|c| c.donor.to_string());
        match (&got, &want) {
            (Ok(d), Ok(w)) => assert_eq!(d, w, "{name}"),
            (Err(e), Err(w)) => assert_eq!(e, w, "{name}"),
            _ => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
    for (name, bad, why) in [
        ("down", down, "does not answer"),
        ("stopped", stopped, "not both running"),
        ("lagging", lagging, "lags 11 s, more than 10 s"),
        ("no lag", no_lag, "reports no lag"),
        ("errant", errant, "errant GTIDs"),
        ("elsewhere", elsewhere, "replicates from db2:3306"),
        ("alone", alone, "does not replicate"),
        ("by file", by_file, "by file and position"),
        ("unknown position", unknown_pos, "GTID position is unknown"),
    ] {
        let named = decide(&input("db9:3306", Some("db3:3306"), vec![replica("db2:3306", 1), bad.clone()]));
        match named {
            Err(Refusal::DonorUnhealthy { donor, why: w }) => {
                assert_eq!(donor, k("db3:3306"), "{name}");
                assert!(w.contains(why), "{name}: {w}");
            }
            other => panic!("{name}: {other:?}"),
        }
        let only = decide(&input("db9:3306", None, vec![bad]));
        assert_eq!(only, Err(Refusal::NoDonor), "{name} is not chosen by default");
    }
    let at_threshold = Replica { lag_s: Some(10), ..replica("db3:3306", 90) };
    let ok = decide(&input("db9:3306", Some("db3:3306"), vec![replica("db2:3306", 1), at_threshold]));
    assert_eq!(ok.map(|c| c.donor), Ok(k("db3:3306")), "a lag of exactly lag_threshold is healthy");
    let absent = decide(&input("db9:3306", Some("db7:3306"), vec![replica("db2:3306", 1)]));
    assert!(matches!(absent, Err(Refusal::DonorUnhealthy { why, .. }) if why.contains("does not see it")));
}

#[test]
fn refusals_before_any_donor() {
    let base = input("db9:3306", Some("db2:3306"), vec![replica("db2:3306", 80), replica("db3:3306", 90)]);
    let cases: Vec<(&str, RebuildInput, Refusal)> = vec![
        ("recovery running", RebuildInput { recovery_running: true, ..base.clone() }, Refusal::RecoveryRunning),
        ("no primary", RebuildInput { primary: None, ..base.clone() }, Refusal::NoPrimary),
        (
            "the primary is never rebuilt",
            RebuildInput { target: k("db1:3306"), ..base.clone() },
            Refusal::TargetIsPrimary(k("db1:3306")),
        ),
        (
            "an instance the cluster does not have",
            RebuildInput { target: k("db8:3306"), ..base.clone() },
            Refusal::UnknownTarget { target: k("db8:3306"), known: base.known.clone() },
        ),
    ];
    for (name, inp, want) in cases {
        assert_eq!(decide(&inp), Err(want), "{name}");
    }
    let ok = decide(&base).unwrap();
    assert_eq!((ok.target, ok.donor, ok.primary), (k("db9:3306"), k("db2:3306"), k("db1:3306")));
}

#[test]
fn refusals_say_what_to_do() {
    let texts = [
        (Refusal::RecoveryRunning, "recovery of the cluster is running"),
        (Refusal::NoPrimary, "no identifiable primary"),
        (Refusal::TargetIsPrimary(k("db1:3306")), "never rebuilds the primary"),
        (Refusal::UnknownTarget { target: k("db8:3306"), known: vec![k("db1:3306")] }, "known: db1:3306"),
        (Refusal::DonorIsPrimary(k("db1:3306")), "never used as a donor"),
        (Refusal::DonorIsTarget(k("db2:3306")), "from itself"),
        (Refusal::DonorUnhealthy { donor: k("db2:3306"), why: "x".into() }, "(x): name another with --from"),
        (Refusal::NoDonor, "no healthy replica"),
        (Refusal::OnlyCandidate(k("db2:3306")), "--from db2:3306 to use it anyway"),
    ];
    for (r, want) in texts {
        assert!(r.to_string().contains(want), "{r:?}: {r}");
    }
}

#[test]
fn the_recorded_position() {
    let slave = "SET GLOBAL gtid_slave_pos = '0-1-42';\nCHANGE MASTER TO master_use_gtid = slave_pos;\n";
    let two_domains = "SET GLOBAL gtid_slave_pos = '0-2-7,1-3-9';\n";
    let by_file = "CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=330;\n";
    let binlog = "mariadb-bin.000001\t699\t0-1-2\n";
    let binlog_empty = "mariadb-bin.000001\t330\t\n";
    let binlog_two_fields = "mariadb-bin.000001\t330\n";
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Result<(&'a str, PositionSource), &'a str>);
    let cases: Vec<Case> = vec![
        ("the slave info wins", Some(slave), Some(binlog), Ok(("0-1-42", PositionSource::SlaveInfo))),
        ("several domains", Some(two_domains), None, Ok(("0-2-7,1-3-9", PositionSource::SlaveInfo))),
        (
            "file and position only: the binlog's GTID",
            Some(by_file),
            Some(binlog),
            Ok(("0-1-2", PositionSource::BinlogInfo)),
        ),
        ("no slave info: the binlog's GTID", None, Some(binlog), Ok(("0-1-2", PositionSource::BinlogInfo))),
        (
            "upper case and no spaces",
            Some("SET GLOBAL GTID_SLAVE_POS='0-1-5';"),
            None,
            Ok(("0-1-5", PositionSource::SlaveInfo)),
        ),
        (
            "an empty position falls back",
            Some("SET GLOBAL gtid_slave_pos = '';\n"),
            Some(binlog),
            Ok(("0-1-2", PositionSource::BinlogInfo)),
        ),
        (
            "a new cluster: nothing applied, nothing logged",
            Some(by_file),
            Some(binlog_empty),
            Ok(("", PositionSource::Nothing)),
        ),
        ("no slave info and an empty GTID", None, Some(binlog_empty), Err("recorded no GTID position")),
        ("file and position, no binlog info", Some(by_file), None, Err("recorded no GTID position")),
        ("two fields", None, Some(binlog_two_fields), Err("recorded no GTID position")),
        (
            "two fields after a file-and-position slave info",
            Some(by_file),
            Some(binlog_two_fields),
            Err("recorded no GTID position"),
        ),
        ("an empty binlog info after one", Some(by_file), Some("\n"), Err("recorded no GTID position")),
        ("an empty binlog file", None, Some(""), Err("recorded no GTID position")),
        ("no files", None, None, Err("neither xtrabackup_slave_info nor")),
        ("garbage position", Some("SET GLOBAL gtid_slave_pos = 'x-y';"), None, Err("not a MariaDB GTID position")),
        ("unterminated quote", Some("SET GLOBAL gtid_slave_pos = '0-1-5"), None, Err("no quoted position")),
        ("garbage binlog GTID", None, Some("f\t1\tnope\n"), Err("xtrabackup_binlog_info: `nope`")),
        (
            "a mention without assignment is skipped",
            Some("-- gtid_slave_pos\nSET GLOBAL gtid_slave_pos = '0-1-3';"),
            None,
            Ok(("0-1-3", PositionSource::SlaveInfo)),
        ),
    ];
    for (name, s, b, want) in cases {
        let got = resume_position(s, b);
        match (got, want) {
            (Ok((set, src)), Ok((w, wsrc))) => {
                assert_eq!(set, g(w), "{name}");
                assert_eq!(src, wsrc, "{name}");
            }
            (Err(e), Err(w)) => assert!(e.contains(w), "{name}: `{e}` should contain `{w}`"),
            (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
        }
    }
}
