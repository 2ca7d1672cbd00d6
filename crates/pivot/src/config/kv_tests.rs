//! `[cluster.etcd]` and `[cluster.consul]`: defaults, values, and bad
//! values rejected with the file, the line and the reason.

use super::super::Config;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const BASE: &str = r#"
[[cluster]]
name = "main"
seeds = ["127.0.0.1:3306"]

[cluster.credentials]
user = "pivot"
password = "inline-secret"
"#;

/// Lines 1-9 are [`BASE`]; the tables under test start at line 10.
fn parse_in(dir: &Path, tables: &str) -> Result<Config, String> {
    Config::parse(&dir.join("pivot.toml"), &format!("{BASE}\n{tables}")).map_err(|e| e.to_string())
}

fn parse(tables: &str) -> Result<Config, String> {
    parse_in(Path::new("/etc/pivot"), tables)
}

fn error(tables: &str) -> String {
    parse(tables).expect_err("should be rejected")
}

#[test]
fn absent_means_no_kv_route() {
    let c = parse("").unwrap();
    assert!(c.clusters[0].etcd.is_none() && c.clusters[0].consul.is_none());
    assert_eq!(crate::routes::kv::route_specs(&c.clusters[0]), vec![]);
}

#[test]
fn empty_tables_take_the_defaults() {
    let c = parse("[cluster.etcd]\n[cluster.consul]\n").unwrap();
    let e = c.clusters[0].etcd.clone().unwrap();
    assert_eq!(e.endpoints, vec!["http://127.0.0.1:2379".to_string()]);
    assert_eq!((e.prefix.as_str(), e.timeout, e.required), ("", Duration::from_secs(2), false));
    let k = c.clusters[0].consul.clone().unwrap();
    assert_eq!((k.host.as_str(), k.port, k.address()), ("127.0.0.1", 8500, "http://127.0.0.1:8500".to_string()));
    assert_eq!(
        (k.prefix.as_str(), k.timeout, k.required, k.token.is_none()),
        ("", Duration::from_secs(2), false, true)
    );
}

#[test]
fn values_and_the_routes_they_make() {
    let c = parse(
        "[cluster.etcd]\nendpoints = [\"http://10.0.0.1:2379\", \"http://etcd2:2379/\"]\nprefix = \"pivot\"\n\
         timeout = \"500ms\"\nrequired = true\n\
         [cluster.consul]\naddress = \"http://[::1]:8501\"\nprefix = \"dc1/db/\"\n",
    )
    .unwrap();
    let cl = &c.clusters[0];
    let e = cl.etcd.clone().unwrap();
    assert_eq!(e.endpoints, vec!["http://10.0.0.1:2379".to_string(), "http://etcd2:2379".into()]);
    assert_eq!((e.prefix.as_str(), e.timeout, e.required), ("pivot/", Duration::from_millis(500), true));
    let k = cl.consul.clone().unwrap();
    assert_eq!((k.host.as_str(), k.port, k.prefix.as_str()), ("::1", 8501, "dc1/db/"));
    assert_eq!(k.address(), "http://[::1]:8501");
    use pivot_core::routes::{RouteKind, RouteSpec};
    assert_eq!(
        crate::routes::kv::route_specs(cl),
        vec![
            RouteSpec { kind: RouteKind::Etcd, required: true },
            RouteSpec { kind: RouteKind::Consul, required: false }
        ]
    );
    let kinds: Vec<RouteKind> = crate::recovery::settings(cl).routes.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, vec![RouteKind::Local, RouteKind::Etcd, RouteKind::Consul], "the plan's order");
    let c = parse("[cluster.etcd]\nprefix = \"/\"\n").unwrap();
    assert_eq!(c.clusters[0].etcd.as_ref().unwrap().prefix, "/", "confd's etcd backend reads /mysql/...");
}

#[test]
fn bad_values_name_the_line() {
    // (tables, line, message)
    let cases: &[(&str, usize, &str)] = &[
        ("[cluster.etcd]\nendpoint = [\"http://a:1\"]\n", 11, "unknown field `endpoint`"),
        ("[cluster.consul]\nadress = \"http://a:1\"\n", 11, "unknown field `adress`"),
        ("[cluster.etcd]\nendpoints = []\n", 11, "etcd endpoints is empty"),
        ("[cluster.etcd]\nendpoints = [\"127.0.0.1:2379\"]\n", 11, "must be a URL like http://127.0.0.1:2379"),
        ("[cluster.etcd]\nendpoints = [\"https://e:2379\"]\n", 11, "https is not supported"),
        ("[cluster.etcd]\nendpoints = [\"http://e:2379/v3\"]\n", 11, "only scheme, host and port"),
        ("[cluster.etcd]\nendpoints = [\"http://e\"]\n", 11, "not a host:port"),
        ("[cluster.consul]\naddress = \"http://c:0\"\n", 11, "not a host:port"),
        ("[cluster.etcd]\nprefix = \"a//b\"\n", 11, "etcd prefix `a//b` may only have"),
        ("[cluster.etcd]\nprefix = \"a b\"\n", 11, "may only have"),
        ("[cluster.consul]\nprefix = \"/pivot\"\n", 11, "must not begin with `/`"),
        ("[cluster.etcd]\ntimeout = \"1ms\"\n", 11, "etcd timeout 1ms is out of range"),
        ("[cluster.consul]\ntimeout = \"2h\"\n", 11, "consul timeout 2h is out of range"),
        ("[cluster.etcd]\nrequired = \"yes\"\n", 11, "invalid type"),
        (
            "[cluster.consul]\ntoken_file = \"/nonexistent/token\"\n",
            11,
            "token_file `/nonexistent/token` cannot be read",
        ),
    ];
    for (tables, line, message) in cases {
        let e = error(tables);
        assert!(e.starts_with(&format!("/etc/pivot/pivot.toml:{line}:")), "{tables}: {e}");
        assert!(e.contains(message), "{tables}: `{e}` should contain `{message}`");
    }
}

#[test]
fn the_token_file_must_be_private_and_the_token_never_prints() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("consul.token");
    std::fs::write(&file, "s3cr3t-t0ken\n").unwrap();
    let table = "[cluster.consul]\ntoken_file = \"consul.token\"\n";
    for (mode, open_to) in [(0o644, true), (0o640, true), (0o602, true), (0o600, false), (0o400, false)] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        match parse_in(dir.path(), table) {
            Ok(c) => {
                assert!(!open_to, "mode {mode:o} accepted");
                let k = c.clusters[0].consul.clone().unwrap();
                assert_eq!(k.token.as_ref().unwrap().expose(), "s3cr3t-t0ken", "relative to the file, newline dropped");
                assert!(!format!("{c:?}").contains("s3cr3t"), "the token never prints");
            }
            Err(e) => {
                assert!(open_to, "mode {mode:o}: {e}");
                assert!(e.contains(":11:") && e.contains(&format!("mode {mode:04o}")), "{e}");
                assert!(e.contains("chmod 600"), "{e}");
                assert!(!e.contains("s3cr3t"), "{e}");
            }
        }
    }
    std::fs::write(&file, "\n").unwrap();
    let e = parse_in(dir.path(), table).unwrap_err();
    assert!(e.contains("must hold one line"), "{e}");
}

#[test]
fn the_examples_commented_tables_are_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pivot.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let at = text.find("# [cluster.etcd]").expect("the example shows [cluster.etcd]");
    // The etcd and Consul tables, up to the blank line after them.
    let block = text[at..].split("\n\n").next().unwrap_or_default();
    let tables: String = block
        .lines()
        .filter(|l| !l.contains("token_file"))
        .map(|l| format!("{}\n", l.strip_prefix("# ").unwrap_or(l)))
        .collect();
    let c = parse(&tables).unwrap_or_else(|e| panic!("{e}\n{tables}"));
    assert!(c.clusters[0].etcd.is_some() && c.clusters[0].consul.is_some());
}
