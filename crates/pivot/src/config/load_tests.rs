//! Bad configuration files are rejected with the file, the line and the reason.

use super::*;

const GOOD: &str = r#"
[pivot]
state = "state/pivot.db"
http = "127.0.0.1:19099"

[[cluster]]
name = "main"
seeds = ["127.0.0.1:3306", "db2:3307"]
poll_interval = "100ms"

[cluster.credentials]
user = "pivot"
password = "inline-secret"

[cluster.failover]
preferred = ["db2:3307"]
block_period = "5m"
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/pivot/pivot.toml"), text)
}

fn error(text: &str) -> String {
    parse(text).expect_err("should be rejected").to_string()
}

#[test]
fn good_file_with_defaults() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.pivot.state, PathBuf::from("/etc/pivot/state/pivot.db"), "relative to the file");
    assert_eq!(c.pivot.http, Some("127.0.0.1:19099".parse().unwrap()));
    let cl = &c.clusters[0];
    assert_eq!(cl.seeds.len(), 2);
    assert_eq!(cl.poll_interval, Duration::from_millis(100));
    assert_eq!(cl.probe_timeout, Duration::from_secs(1));
    assert_eq!(cl.credentials.password.expose(), "inline-secret");
    assert_eq!(cl.detection.unreachable_after, 1);
    assert!(cl.failover.automatic);
    assert_eq!(cl.failover.block_period, Duration::from_secs(300));
    assert_eq!(cl.failover.preferred, vec!["db2:3307".parse().unwrap()]);
    assert!(!format!("{c:?}").contains("inline-secret"), "passwords never print");
}

#[test]
fn unknown_key_names_line_and_key() {
    let text = GOOD.replace("poll_interval = \"100ms\"", "pol_interval = \"100ms\"");
    let e = error(&text);
    assert!(e.starts_with("/etc/pivot/pivot.toml:9:"), "{e}");
    assert!(e.contains("unknown field `pol_interval`"), "{e}");
}

#[test]
fn wrong_type_names_line() {
    let e = error(&GOOD.replace(r#"seeds = ["127.0.0.1:3306", "db2:3307"]"#, "seeds = 3306"));
    assert!(e.starts_with("/etc/pivot/pivot.toml:8:"), "{e}");
    assert!(e.contains("invalid type"), "{e}");
}

#[test]
fn missing_and_empty_seeds() {
    let e = error(&GOOD.replace("seeds = [\"127.0.0.1:3306\", \"db2:3307\"]\n", ""));
    assert!(e.contains("missing field `seeds`"), "{e}");
    let e = error(&GOOD.replace(r#"["127.0.0.1:3306", "db2:3307"]"#, "[]"));
    assert!(e.contains(":8:") && e.contains("has no seeds"), "{e}");
    let e = error(&GOOD.replace("db2:3307\"]", "db2\"]"));
    assert!(e.contains(":8:") && e.contains("`db2` is not an instance address"), "{e}");
}

#[test]
fn bad_values() {
    let e = error(&GOOD.replace("\"100ms\"", "\"fast\""));
    assert!(e.contains(":9:") && e.contains("`fast` is not a duration"), "{e}");
    let e = error(&GOOD.replace("\"100ms\"", "\"1ms\""));
    assert!(e.contains("poll_interval 1ms is out of range"), "{e}");
    let e = error(&GOOD.replace("127.0.0.1:19099", "localhost"));
    assert!(e.contains(":4:") && e.contains("is not an address"), "{e}");
    let e = error(&format!("{GOOD}\n[[cluster]]\nname = \"main\"\nseeds = [\"a:1\"]\n[cluster.credentials]\nuser = \"u\"\npassword = \"p\"\n"));
    assert!(e.contains("defined twice"), "{e}");
    let e = error(
        &GOOD.replace("preferred = [\"db2:3307\"]", "preferred = [\"db2:3307\"]\nnever_promote = [\"db2:3307\"]"),
    );
    assert!(e.contains("both preferred and never_promote"), "{e}");
    let e = error("[pivot]\nstate = \"x.db\"\n");
    assert!(e.contains("no [[cluster]] table"), "{e}");
}

#[test]
fn password_sources() {
    let e = error(&GOOD.replace("password = \"inline-secret\"", "password_file = \"/nonexistent/pivot.password\""));
    assert!(e.contains(":13:") && e.contains("`/nonexistent/pivot.password` cannot be read"), "{e}");
    let e = error(&GOOD.replace("password = \"inline-secret\"", "password = \"a\"\npassword_env = \"B\""));
    assert!(e.contains("exactly one of password, password_file or password_env"), "{e}");
    let e = error(&GOOD.replace("password = \"inline-secret\"", "password_env = \"PIVOT_TEST_SURELY_UNSET_VAR\""));
    assert!(e.contains("`PIVOT_TEST_SURELY_UNSET_VAR` is not set"), "{e}");

    let dir = tempfile::tempdir().unwrap();
    write_private(&dir.path().join("pw"), "from-file\n");
    let text = GOOD.replace("password = \"inline-secret\"", "password_file = \"pw\"");
    let c = Config::parse(&dir.path().join("pivot.toml"), &text).unwrap();
    assert_eq!(c.clusters[0].credentials.password.expose(), "from-file", "relative path, newline trimmed");
}

fn write_private(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn password_files_others_can_read_or_write_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    let text = GOOD.replace("password = \"inline-secret\"", "password_file = \"pw\"");
    for (mode, open_to) in [
        (0o644, "readable by group or others"),
        (0o640, "readable by group or others"),
        (0o604, "readable by group or others"),
        (0o620, "writable by group or others"),
        (0o666, "readable and writable by group or others"),
    ] {
        write_private(&pw, "secret\n");
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = Config::parse(&dir.path().join("pivot.toml"), &text).expect_err("refused").to_string();
        assert!(e.contains(":13:"), "{e}");
        assert!(e.contains(&format!("password_file `{}` has mode {mode:04o}, {open_to}", pw.display())), "{e}");
        assert!(e.contains(&format!("run `chmod 600 {}`", pw.display())), "{e}");
        assert!(!e.contains("secret"), "the password never shows: {e}");
    }
    for mode in [0o600, 0o400] {
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(mode)).unwrap();
        Config::parse(&dir.path().join("pivot.toml"), &text).unwrap_or_else(|e| panic!("{mode:o}: {e}"));
    }
}

#[test]
fn hooks_must_be_executable_argv() {
    let e = error(&format!("{GOOD}\n[cluster.hooks]\npre_failover = []\n"));
    assert!(e.contains("hook pre_failover is empty"), "{e}");
    let e = error(&format!("{GOOD}\n[cluster.hooks]\npre_failover = [\"/nonexistent/hook\"]\n"));
    assert!(e.contains(":20:") && e.contains("/nonexistent/hook"), "{e}");
    let e = error(&format!("{GOOD}\n[cluster.hooks]\npost_failover = \"/bin/true --x\"\n"));
    assert!(e.contains("invalid type"), "a shell string is not accepted: {e}");
    let c =
        parse(&format!("{GOOD}\n[cluster.hooks]\npost_failover = [\"/bin/true\", \"x\"]\ntimeout = \"2s\"\n")).unwrap();
    assert_eq!(c.clusters[0].hooks.post_failover.as_deref(), Some(&["/bin/true".to_string(), "x".to_string()][..]));
    assert_eq!(c.clusters[0].hooks.timeout, Duration::from_secs(2));
}

#[test]
fn example_config_in_the_repository_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pivot.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // The example reads its password from the environment.
    std::env::set_var("PIVOT_EXAMPLE_PASSWORD", "x");
    let c = Config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.clusters.is_empty());
}

#[test]
fn proxy_settings_and_their_errors() {
    let c = parse(&format!("{GOOD}\n[cluster.proxy]\nwrite = \"127.0.0.1:6033\"\n")).unwrap();
    let p = c.clusters[0].proxy.clone().expect("a proxy");
    assert_eq!(p.write, Some("127.0.0.1:6033".parse().unwrap()));
    assert_eq!((p.read, p.required, p.hold_queue, p.threads), (None, true, 1024, 1), "defaults");
    assert_eq!(p.hold_timeout, Duration::from_secs(10));
    let read_only = parse(&format!("{GOOD}\n[cluster.proxy]\nread = \"127.0.0.1:6034\"\n")).unwrap();
    assert!(!read_only.clusters[0].proxy.as_ref().unwrap().required, "a read port alone is not required");
    assert_eq!(c.clusters[0].read_max_lag, Duration::from_secs(10), "read_max_lag defaults to lag_threshold");
    for (table, want) in [
        ("[cluster.proxy]\nhold_queue = 10\n", "[cluster.proxy] of cluster `main` has neither write nor read"),
        ("[cluster.proxy]\nwrite = \"6033\"\n", ":20: proxy write `6033` is not an address"),
        (
            "[cluster.proxy]\nwrite = \"127.0.0.1:1\"\nread = \"127.0.0.1:1\"\n",
            ":21: proxy write and read are the same address",
        ),
        ("[cluster.proxy]\nwrite = \"127.0.0.1:1\"\nthreads = 0\n", "proxy threads 0 is out of range"),
        ("[cluster.proxy]\nwrite = \"127.0.0.1:1\"\nhold_timeout = \"1h\"\n", "proxy hold_timeout 1h is out of range"),
        ("[cluster.proxy]\nwrite = \"127.0.0.1:1\"\nwrte = \"x\"\n", "unknown field `wrte`"),
    ] {
        let e = error(&format!("{GOOD}\n{table}"));
        assert!(e.contains(want), "{table}: {e}");
    }
}

#[test]
fn switchover_settings_and_the_api_token() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.clusters[0].switchover, pivot_core::plan::SwitchoverLimits::default());
    assert!(c.pivot.api_token.is_none(), "no token: the API is read-only");
    let c = parse(&format!(
        "{GOOD}\n[cluster.switchover]\nmax_transaction = \"30s\"\ngrace = \"0s\"\ncatch_up_timeout = \"2s\"\n"
    ))
    .unwrap();
    let s = c.clusters[0].switchover;
    assert_eq!((s.max_transaction_s, s.grace_ms, s.catch_up_ms), (30, 0, 2_000));
    let e = error(&format!("{GOOD}\n[cluster.switchover]\ngrace = \"forever\"\n"));
    assert!(e.contains("pivot.toml:") && e.contains("forever"), "{e}");
    let e = error(&format!("{GOOD}\n[cluster.switchover]\ncatch_up_timeout = \"1ms\"\n"));
    assert!(e.contains("catch_up_timeout"), "{e}");
    let e = error(&format!("{GOOD}\n[cluster.switchover]\nwait = \"1s\"\n"));
    assert!(e.contains("unknown field"), "{e}");
    // The token file: 0600 and long enough, or a clear refusal naming it.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("api.token");
    std::fs::write(&token, "0123456789abcdef0123\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let with_token = GOOD.replace("[pivot]\n", &format!("[pivot]\napi_token_file = \"{}\"\n", token.display()));
    let e = error(&with_token);
    assert!(e.contains("chmod 600") && e.contains("api_token_file"), "{e}");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = parse(&with_token).unwrap();
    assert_eq!(c.pivot.api_token.unwrap().expose(), "0123456789abcdef0123");
    std::fs::write(&token, "short\n").unwrap();
    assert!(error(&with_token).contains("at least"));
}

#[test]
fn auto_rejoin_is_on_unless_turned_off() {
    assert!(parse(GOOD).unwrap().clusters[0].auto_rejoin, "on by default");
    let off = GOOD.replace("poll_interval = \"100ms\"\n", "poll_interval = \"100ms\"\nauto_rejoin = false\n");
    assert!(!parse(&off).unwrap().clusters[0].auto_rejoin);
    let bad = GOOD.replace("poll_interval = \"100ms\"\n", "poll_interval = \"100ms\"\nauto_rejoin = \"yes\"\n");
    assert!(error(&bad).contains("pivot.toml:10: invalid type: string \"yes\", expected a boolean"), "{}", error(&bad));
}

#[test]
fn dual_primary_is_off_unless_asked_and_needs_two_seeds_and_a_replication_account() {
    assert!(!parse(GOOD).unwrap().clusters[0].dual_primary, "off by default");
    let repl = "\n[cluster.replication]\nuser = \"repl\"\npassword = \"r\"\n";
    let on = GOOD.replace("poll_interval = \"100ms\"\n", "poll_interval = \"100ms\"\ndual_primary = true\n");
    assert!(parse(&format!("{on}{repl}")).unwrap().clusters[0].dual_primary);
    let e = error(&on);
    assert!(e.contains("pivot.toml:") && e.contains("needs [cluster.replication]"), "{e}");
    let three = on.replace("\"db2:3307\"]", "\"db2:3307\", \"db3:3306\"]");
    let e = error(&format!("{three}{repl}"));
    assert!(e.contains("pivot.toml:") && e.contains("lists 3 seeds"), "{e}");
    let bad = GOOD.replace("poll_interval = \"100ms\"\n", "poll_interval = \"100ms\"\ndual_primary = 1\n");
    assert!(error(&bad).contains("expected a boolean"), "{}", error(&bad));
}

#[test]
fn proxy_protocol_mode_and_its_errors() {
    let plain = parse(&format!("{GOOD}\n[cluster.proxy]\nwrite = \"127.0.0.1:6033\"\n")).unwrap();
    let p = plain.clusters[0].proxy.clone().unwrap();
    assert_eq!((p.mode, p.transaction_grace), (crate::config::ProxyMode::Tcp, Duration::from_secs(2)), "defaults");
    let c = parse(&format!(
        "{GOOD}\n[cluster.proxy]\nwrite = \"127.0.0.1:6033\"\nmode = \"mysql\"\ntransaction_grace = \"500ms\"\n"
    ))
    .unwrap();
    let p = c.clusters[0].proxy.clone().unwrap();
    assert_eq!((p.mode, p.transaction_grace), (crate::config::ProxyMode::Mysql, Duration::from_millis(500)));
    for (table, want) in [
        ("mode = \"http\"\n", ":21: proxy mode `http` is unknown: write \"tcp\" or \"mysql\""),
        ("transaction_grace = \"2h\"\n", "proxy transaction_grace 2h is out of range"),
    ] {
        let e = error(&format!("{GOOD}\n[cluster.proxy]\nwrite = \"127.0.0.1:1\"\n{table}"));
        assert!(e.contains(want), "{table}: {e}");
    }
}

#[test]
fn heartbeat_is_off_unless_enabled_and_names_are_checked() {
    let c = parse(GOOD).unwrap();
    assert!(c.clusters[0].heartbeat.is_none(), "off by default");
    let off = format!("{GOOD}\n[cluster.heartbeat]\nschema = \"hb\"\n");
    assert!(parse(&off).unwrap().clusters[0].heartbeat.is_none(), "a table without enabled = true is off");
    let on = format!("{GOOD}\n[cluster.heartbeat]\nenabled = true\ninterval = \"2s\"\n");
    let hb = parse(&on).unwrap().clusters[0].heartbeat.clone().unwrap();
    assert_eq!(hb.interval, std::time::Duration::from_secs(2));
    // 3 x max(interval 2s, poll 100ms) + probe_timeout 1s.
    assert_eq!(hb.stale_after, std::time::Duration::from_secs(7));
    assert_eq!(hb.table.grant("pivot"), "GRANT SELECT, INSERT, UPDATE, CREATE ON `pivot`.* TO 'pivot'@'%'");
    let bad = format!("{GOOD}\n[cluster.heartbeat]\nenabled = true\nschema = \"pivot`; DROP\"\n");
    let e = error(&bad);
    assert!(e.contains("pivot.toml:") && e.contains("heartbeat schema") && e.contains("plain identifier"), "{e}");
    let e = error(&format!("{GOOD}\n[cluster.heartbeat]\nenabled = true\ninterval = \"10ms\"\n"));
    assert!(e.contains("heartbeat interval"), "{e}");
    let e = error(&format!("{GOOD}\n[cluster.heartbeat]\nenable = true\n"));
    assert!(e.contains("enable"), "{e}");
}
