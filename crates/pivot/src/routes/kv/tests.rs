//! The pure parts of the KV routes: key layout, values, the epoch decision,
//! and Consul's request and answer formats.

use super::consul::{parse_read, parse_txn, read_path, txn_body};
use super::*;
use serde_json::json;

fn key(s: &str) -> InstanceKey {
    s.parse().unwrap()
}

const V4: Option<Ipv4Addr> = Some(Ipv4Addr::new(10, 0, 0, 2));

#[test]
fn orchestrators_layout_under_a_prefix() {
    for (prefix, base) in
        [("", "mysql/master/main"), ("pivot/", "pivot/mysql/master/main"), ("/", "/mysql/master/main")]
    {
        let l = Layout::new(prefix, "main");
        assert_eq!(l.base(), base);
        assert_eq!(l.epoch_key(), format!("{base}/epoch"));
        let keys: Vec<String> =
            ["", "/hostname", "/port", "/ipv4", "/epoch"].iter().map(|s| format!("{base}{s}")).collect();
        assert_eq!(l.keys(), keys);
    }
    let l = Layout::new("", "main");
    let values = l.values(7, &key("db2:3307"), V4);
    let expect: Vec<(String, String)> = [
        ("mysql/master/main", "db2:3307"),
        ("mysql/master/main/hostname", "db2"),
        ("mysql/master/main/port", "3307"),
        ("mysql/master/main/ipv4", "10.0.0.2"),
        ("mysql/master/main/epoch", "7"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(values, expect);
    let v6 = l.values(1, &key("[fd00::1]:3306"), None);
    assert_eq!(v6[0].1, "[fd00::1]:3306", "host:port as pivot writes instance keys");
    assert_eq!((v6[1].1.as_str(), v6[3].1.as_str()), ("fd00::1", ""), "no IPv4: empty, never stale");
}

fn stored(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (format!("mysql/master/main{k}"), v.to_string())).collect()
}

fn full(epoch: &str, primary: &str, host: &str, port: &str, ipv4: &str) -> BTreeMap<String, String> {
    stored(&[("", primary), ("/hostname", host), ("/port", port), ("/ipv4", ipv4), ("/epoch", epoch)])
}

#[test]
fn the_epoch_decides_and_compares_as_a_number() {
    let l = Layout::new("", "main");
    let p = key("db2:3307");
    let written = |over: Option<u64>| Plan::Write { over, values: l.values(10, &p, V4) };
    // (case, stored, plan for epoch 10 naming db2:3307 at 10.0.0.2)
    let cases: Vec<(&str, BTreeMap<String, String>, Plan)> = vec![
        ("nothing there", BTreeMap::new(), written(None)),
        ("orchestrator's keys, no epoch", stored(&[("", "db1:3306"), ("/port", "3306")]), written(None)),
        ("older epoch", full("9", "db1:3306", "db1", "3306", "10.0.0.1"), written(Some(9))),
        ("'9' sorts after '10' as text, not as a number", full("9", "db1:3306", "db1", "3306", ""), written(Some(9))),
        ("zero-padded older epoch", full("0002", "db1:3306", "db1", "3306", ""), written(Some(2))),
        ("same epoch, same values", full("10", "db2:3307", "db2", "3307", "10.0.0.2"), Plan::Unchanged),
        ("same epoch, a key deleted", stored(&[("", "db2:3307"), ("/epoch", "10")]), written(Some(10))),
        ("same epoch, a key edited", full("10", "db2:3307", "db2", "9999", "10.0.0.2"), written(Some(10))),
        (
            "newer epoch",
            full("11", "db3:3306", "db3", "3306", ""),
            Plan::Newer { epoch: 11, primary: "db3:3306".into() },
        ),
        (
            "much newer epoch",
            full("100", "db3:3306", "db3", "3306", ""),
            Plan::Newer { epoch: 100, primary: "db3:3306".into() },
        ),
    ];
    for (case, s, want) in cases {
        assert_eq!(plan(&l, 10, &p, V4, &s), want, "{case}");
    }
    let refused = |s: BTreeMap<String, String>, says: &str| match plan(&l, 10, &p, V4, &s) {
        Plan::Refuse(why) => assert!(why.contains(says), "`{why}` should contain `{says}`"),
        other => panic!("should be refused: {other:?}"),
    };
    refused(full("10", "db9:3306", "db9", "3306", ""), "another pivot");
    refused(full("ten", "db2:3307", "db2", "3307", ""), "not an epoch number");
    refused(full("-1", "db2:3307", "db2", "3307", ""), "not an epoch number");
}

#[test]
fn a_host_name_is_resolved_once_per_epoch() {
    let l = Layout::new("", "main");
    let p = key("db2:3307");
    let same = full("10", "db2:3307", "db2", "3307", "10.0.0.2");
    assert_eq!(plan(&l, 10, &p, None, &same), Plan::Unchanged, "not blanked by a failed lookup");
    let moved = Some(Ipv4Addr::new(10, 0, 0, 7));
    assert_eq!(plan(&l, 10, &p, moved, &same), Plan::Unchanged, "not followed within the epoch");
    let unresolved = full("10", "db2:3307", "db2", "3307", "");
    match plan(&l, 10, &p, V4, &unresolved) {
        Plan::Write { values, over } => assert_eq!((values[3].1.as_str(), over), ("10.0.0.2", Some(10)), "filled in"),
        other => panic!("{other:?}"),
    }
    let literal = key("10.0.0.2:3307");
    let edited = full("10", "10.0.0.2:3307", "10.0.0.2", "3307", "10.9.9.9");
    match plan(&l, 10, &literal, Some(Ipv4Addr::new(10, 0, 0, 2)), &edited) {
        Plan::Write { values, .. } => assert_eq!(values[3].1, "10.0.0.2", "a literal is its own address"),
        other => panic!("{other:?}"),
    }
    let mut missing_port = same.clone();
    missing_port.remove("mysql/master/main/port");
    match plan(&l, 10, &p, None, &missing_port) {
        Plan::Write { values, .. } => assert_eq!(values[3].1, "10.0.0.2", "repair keeps the address"),
        other => panic!("{other:?}"),
    }
    let older = full("9", "db1:3306", "db1", "3306", "10.0.0.1");
    match plan(&l, 10, &p, None, &older) {
        Plan::Write { values, .. } => assert_eq!(values[3].1, "", "never the old primary's address"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn what_a_publication_says() {
    let l = Layout::new("", "main");
    let p = key("db2:3307");
    let said = |x: Published| x.describe("etcd", &l, 10, &p);
    assert_eq!(said(Published::Written { over: None }), "etcd: mysql/master/main = db2:3307 (epoch 10)");
    assert!(said(Published::Written { over: Some(9) }).contains("was epoch 9"));
    assert!(said(Published::Written { over: Some(10) }).contains("repaired"));
    assert_eq!(
        said(Published::Unchanged),
        "etcd: mysql/master/main = db2:3307 (epoch 10, already there: nothing written)"
    );
    let newer = said(Published::Newer { epoch: 11, primary: "db3:3306".into() });
    assert!(newer.contains("epoch 11 (db3:3306)") && newer.contains("left alone"), "{newer}");
}

#[tokio::test]
async fn ipv4_of_a_literal_without_a_lookup() {
    let bound = Duration::from_millis(200);
    assert_eq!(resolve_ipv4("127.0.0.1", 3306, bound).await, Some(Ipv4Addr::LOCALHOST));
    assert_eq!(resolve_ipv4("::1", 3306, bound).await, None, "IPv6 only");
}

#[test]
fn consul_read_keeps_only_our_keys_and_the_epochs_index() {
    let l = Layout::new("", "main");
    assert_eq!(read_path(&l), "/v1/kv/mysql/master/main?recurse=true");
    assert_eq!(parse_read(404, b"", &l).unwrap(), Snapshot::default(), "404: no key at all");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    use base64::Engine as _;
    let body = json!([
        {"LockIndex": 0, "Key": "mysql/master/main", "Flags": 0, "Value": b64("db2:3307"), "CreateIndex": 5, "ModifyIndex": 40},
        {"LockIndex": 0, "Key": "mysql/master/main/epoch", "Flags": 0, "Value": b64("10"), "CreateIndex": 5, "ModifyIndex": 41},
        {"LockIndex": 0, "Key": "mysql/master/main/ipv4", "Flags": 0, "Value": null, "CreateIndex": 5, "ModifyIndex": 41},
        {"LockIndex": 0, "Key": "mysql/master/main2", "Flags": 0, "Value": b64("other:1"), "CreateIndex": 6, "ModifyIndex": 42},
        {"LockIndex": 0, "Key": "mysql/master/main/extra", "Flags": 0, "Value": b64("x"), "CreateIndex": 6, "ModifyIndex": 42}
    ])
    .to_string();
    let snap = parse_read(200, body.as_bytes(), &l).unwrap();
    assert_eq!(snap.epoch_version, Some(41));
    assert_eq!(snap.values, stored(&[("", "db2:3307"), ("/epoch", "10"), ("/ipv4", "")]));
    let e = parse_read(403, b"Permission denied", &l).unwrap_err();
    assert!(e.contains("HTTP 403: Permission denied") && e.contains("token_file"), "{e}");
    assert!(parse_read(200, b"<html>", &l).unwrap_err().contains("not a list"));
}

#[test]
fn consul_txn_guards_the_epoch_key_first() {
    let values = vec![("k".to_string(), "db2:3307".to_string()), ("k/epoch".to_string(), "10".to_string())];
    assert_eq!(
        txn_body("k/epoch", Some(41), &values),
        json!([
            {"KV": {"Verb": "check-index", "Key": "k/epoch", "Index": 41}},
            {"KV": {"Verb": "set", "Key": "k", "Value": "ZGIyOjMzMDc="}},
            {"KV": {"Verb": "set", "Key": "k/epoch", "Value": "MTA="}}
        ])
    );
    assert_eq!(txn_body("k/epoch", None, &[])[0], json!({"KV": {"Verb": "check-not-exists", "Key": "k/epoch"}}));
    assert_eq!(parse_txn(200, br#"{"Results":[],"Errors":null}"#), Ok(true));
    let lost = br#"{"Results":null,"Errors":[{"OpIndex":0,"What":"failed index check for key \"k/epoch\", current modify index 44 != 41"}]}"#;
    assert_eq!(parse_txn(409, lost), Ok(false), "the guard failed: read again");
    let denied = br#"{"Results":null,"Errors":[{"OpIndex":2,"What":"Permission denied"}]}"#;
    assert!(parse_txn(409, denied).unwrap_err().contains("rolled back: Permission denied"));
    assert!(parse_txn(500, b"rpc error: No cluster leader").unwrap_err().contains("HTTP 500: rpc error"));
}
