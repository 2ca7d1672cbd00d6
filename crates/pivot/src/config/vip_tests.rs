//! `[cluster.vip]`: defaults, values, and bad values rejected with the
//! file, the line and the reason.

use super::super::Config;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const BASE: &str = r#"
[[cluster]]
name = "main"
seeds = ["10.0.0.1:3306"]

[cluster.credentials]
user = "pivot"
password = "inline-secret"
"#;

fn dir_with_token(mode: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("agent.token");
    std::fs::write(&t, "0123456789abcdef0123\n").unwrap();
    std::fs::set_permissions(&t, std::fs::Permissions::from_mode(mode)).unwrap();
    dir
}

/// Lines 1-9 are [`BASE`]; the table under test starts at line 10.
fn parse_in(dir: &Path, table: &str) -> Result<Config, String> {
    Config::parse(&dir.join("pivot.toml"), &format!("{BASE}\n{table}")).map_err(|e| e.to_string())
}

const AGENTS: &str = "agents = { \"10.0.0.1:3306\" = \"10.0.0.1:9190\", \"10.0.0.2:3306\" = \"10.0.0.2:9190\" }\n";

#[test]
fn defaults_and_values() {
    let dir = dir_with_token(0o600);
    let c = parse_in(
        dir.path(),
        &format!("[cluster.vip]\naddress = \"10.0.0.100/24\"\n{AGENTS}token_file = \"agent.token\"\n"),
    )
    .unwrap();
    let v = c.clusters[0].vip.clone().unwrap();
    assert_eq!(v.address.to_string(), "10.0.0.100/24");
    assert_eq!(v.interface, "eth0");
    assert_eq!(
        (v.lease, v.timeout, v.required, v.keepalived),
        (Duration::from_secs(3), Duration::from_secs(1), true, false)
    );
    assert_eq!(v.token.expose(), "0123456789abcdef0123");
    assert_eq!(v.agent_of(&"10.0.0.2:3306".parse().unwrap()), Some(&"10.0.0.2:9190".parse().unwrap()));
    assert_eq!(v.agent_of(&"10.0.0.3:3306".parse().unwrap()), None);
    let c = parse_in(
        dir.path(),
        &format!(
            "[cluster.vip]\naddress = \"10.0.0.100\"\ninterface = \"bond0\"\n{AGENTS}token_file = \"agent.token\"\n\
             lease = \"10s\"\ntimeout = \"500ms\"\nrequired = false\nkeepalived = true\n"
        ),
    )
    .unwrap();
    let v = c.clusters[0].vip.clone().unwrap();
    assert_eq!((v.address.to_string().as_str(), v.interface.as_str()), ("10.0.0.100/32", "bond0"));
    assert_eq!(
        (v.lease, v.timeout, v.required, v.keepalived),
        (Duration::from_secs(10), Duration::from_millis(500), false, true)
    );
    use pivot_core::routes::{RouteKind, RouteSpec};
    assert!(crate::recovery::settings(&c.clusters[0])
        .routes
        .contains(&RouteSpec { kind: RouteKind::Vip, required: false }));
}

#[test]
fn mistakes_are_named_with_their_line() {
    let dir = dir_with_token(0o600);
    let head = "[cluster.vip]\n";
    let ok_rest = format!("{AGENTS}token_file = \"agent.token\"\n");
    let cases: Vec<(String, &str)> = vec![
        (format!("{head}{ok_rest}"), ":10: [cluster.vip] needs address"),
        (format!("{head}address = \"10.0.0.300/24\"\n{ok_rest}"), ":11: vip address `10.0.0.300/24` is not an IPv4"),
        (format!("{head}address = \"10.0.0.1/33\"\n{ok_rest}"), "prefix length must be 1 to 32"),
        (format!("{head}address = \"fd00::1/64\"\n{ok_rest}"), "IPv6 virtual addresses are not supported"),
        (format!("{head}address = \"10.0.0.9/24\"\ntoken_file = \"agent.token\"\n"), "needs agents"),
        (format!("{head}address = \"10.0.0.9/24\"\nagents = {{}}\ntoken_file = \"agent.token\"\n"), ":12: vip agents is empty"),
        (
            format!("{head}address = \"10.0.0.9/24\"\nagents = {{ \"a:1\" = \"x:9\", \"b:1\" = \"x:9\" }}\ntoken_file = \"agent.token\"\n"),
            "vip agent x:9 serves both a:1 and b:1",
        ),
        (format!("{head}address = \"10.0.0.9/24\"\nagents = {{ \"a:1\" = \"x\" }}\n"), "vip agent of a:1"),
        (format!("{head}address = \"10.0.0.9/24\"\n{AGENTS}"), "needs token_file"),
        (format!("{head}address = \"10.0.0.9/24\"\n{ok_rest}lease = \"1500ms\"\n"), ":14: vip lease must be whole seconds"),
        (format!("{head}address = \"10.0.0.9/24\"\n{ok_rest}lease = \"0s\"\n"), "vip lease 0s is out of range"),
        (format!("{head}address = \"10.0.0.9/24\"\n{ok_rest}timeout = \"2s\"\n"), "vip timeout 2s is out of range: use 100ms to 1s 500ms"),
        (format!("{head}address = \"10.0.0.9/24\"\n{ok_rest}interface = \"eth 0\"\n"), "is not an interface name"),
        (format!("{head}address = \"10.0.0.9/24\"\n{ok_rest}vrid = 5\n"), "unknown field `vrid`"),
    ];
    for (table, want) in cases {
        let e = parse_in(dir.path(), &table).expect_err(&table);
        assert!(e.contains(want), "{table}: `{e}` should contain `{want}`");
    }
}

#[test]
fn a_token_file_open_to_others_is_refused() {
    let dir = dir_with_token(0o644);
    let e = parse_in(
        dir.path(),
        &format!("[cluster.vip]\naddress = \"10.0.0.100/24\"\n{AGENTS}token_file = \"agent.token\"\n"),
    )
    .unwrap_err();
    assert!(e.contains(":13: token_file") && e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
}
