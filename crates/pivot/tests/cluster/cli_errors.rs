//! Bad input to the CLI gets a clear error and a meaningful exit code.

use crate::support::*;
use serde_json::Value;
use std::net::TcpListener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn bad_config_files_are_rejected_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("unknown.toml", "[[cluster]]\nname = \"a\"\nseedz = [\"x:1\"]\n", "unknown.toml:3:", "unknown field `seedz`"),
        ("type.toml", "[[cluster]]\nname = \"a\"\nseeds = \"x:1\"\n", "type.toml:3:", "invalid type"),
        (
            "noseeds.toml",
            "[[cluster]]\nname = \"a\"\nseeds = []\n[cluster.credentials]\nuser = \"u\"\npassword = \"p\"\n",
            "noseeds.toml:3:",
            "has no seeds",
        ),
        (
            "pwfile.toml",
            "[[cluster]]\nname = \"a\"\nseeds = [\"x:1\"]\n[cluster.credentials]\nuser = \"u\"\npassword_file = \"missing.pw\"\n",
            "pwfile.toml:6:",
            "cannot be read",
        ),
    ];
    for (name, text, location, reason) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        for command in ["status", "run"] {
            let out = run_pivot(&[command, "--config", path.to_str().unwrap()]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{command} {name}: {err}");
            assert!(err.contains(location) && err.contains(reason), "{command} {name}: {err}");
        }
    }
    let out = run_pivot(&["status", "--config", dir.path().join("absent.toml").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the configuration file"));
}

#[test]
fn password_files_others_can_read_are_refused_like_ssh_keys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pivot.password");
    std::fs::write(&pw, "hunter2\n").unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("pivot.toml");
    std::fs::write(
        &config,
        "[pivot]\nhttp = \"off\"\n[[cluster]]\nname = \"a\"\nseeds = [\"127.0.0.1:1\"]\n\
         [cluster.credentials]\nuser = \"pivot\"\npassword_file = \"pivot.password\"\n",
    )
    .unwrap();
    for command in ["status", "run"] {
        let out = run_pivot(&[command, "--config", config.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(err.contains("pivot.toml:8:"), "{command}: {err}");
        assert!(err.contains(&format!("`{}` has mode 0644, readable by group or others", pw.display())), "{err}");
        assert!(err.contains(&format!("run `chmod 600 {}`", pw.display())), "{command}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

/// A TCP server on a free port of 127.0.0.1 that greets every connection with
/// `banner` (nothing at all if empty) and keeps it open, reading what comes:
/// an SSH server, an HTTP server waiting for a request, anything but MySQL.
async fn not_mysql(banner: &'static [u8]) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = conn.write_all(banner).await;
                let mut sink = [0u8; 1024];
                while matches!(conn.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn seeds_that_are_not_mysql_servers_are_named_as_such() {
    let ssh = not_mysql(b"SSH-2.0-OpenSSH_9.2\r\n").await;
    let http = not_mysql(b"").await;
    let garbage = not_mysql(b"\xde\xad\xbe\xef\x00\x01").await;
    // A header MySQL could send (sequence 0) on a packet that never completes.
    let truncated = not_mysql(b"\x10\x00\x00\x00garbage").await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pivot.toml");
    let seeds = [&ssh, &http, &garbage, &truncated].map(|s| format!("\"{s}\"")).join(", ");
    std::fs::write(
        &config,
        format!(
            "[pivot]\nhttp = \"off\"\nstate = \"pivot.db\"\n[[cluster]]\nname = \"a\"\nseeds = [{seeds}]\n\
             probe_timeout = \"1s\"\n[cluster.credentials]\nuser = \"pivot\"\npassword = \"x\"\n"
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || run_pivot(&["status", "--json", "--config", &path])).await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failure = |key: &str| instance(&all[0], key).unwrap_or_else(|| panic!("{key} in {all:#}"))["failure"].clone();
    let not_mysql = |key: &str, sent: &str| {
        let f = failure(key);
        let expected =
            format!("{key} is not a MySQL server: it sent \"{sent}\" where a MySQL server sends its greeting");
        assert!(f["message"].as_str().unwrap().starts_with(&expected), "{expected}\n{f:#}");
        assert!(f["message"].as_str().unwrap().ends_with("(is the port right?)"), "{f:#}");
        assert_eq!(f["kind"], "network", "{f:#}");
    };
    not_mysql(&ssh, "SSH-2.0-OpenSSH_9.2");
    not_mysql(&garbage, "\\xde\\xad\\xbe\\xef\\x00\\x01");
    not_mysql(&truncated, "\\x10\\x00\\x00\\x00garbage");
    let f = failure(&http);
    assert_eq!(f["kind"], "timeout", "as silent as a hung server: {f:#}");
    let expected =
        "accepted the connection but sent no MySQL greeting within 1s: is it a MySQL server (or a hung one)?";
    assert_eq!(f["message"], format!("{http} {expected}"), "{f:#}");

    // The text output says it in the problem line of each instance.
    let path = config.to_str().unwrap().to_string();
    let out = tokio::task::spawn_blocking(move || run_pivot(&["status", "--config", &path])).await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = format!("! unreachable: {ssh} is not a MySQL server: it sent \"SSH-2.0-OpenSSH_9.2\"");
    assert!(text.contains(&line), "{text}");
}

#[test]
fn sandbox_refuses_bad_requests_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = holder.local_addr().unwrap().port();
    let sb_dir = dir.path().join("sb");
    let out = run_pivot(&[
        "sandbox",
        "up",
        "--dir",
        sb_dir.to_str().unwrap(),
        "--nodes",
        "1",
        "--base-port",
        &busy.to_string(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("port {busy} on 127.0.0.1 is already in use")), "{err}");

    let out = run_pivot(&["sandbox", "up", "--dir", sb_dir.to_str().unwrap(), "--nodes", "12"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--nodes 12 is out of range"));

    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("precious.txt"), "x").unwrap();
    let out = run_pivot(&["sandbox", "up", "--dir", full.to_str().unwrap(), "--nodes", "1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty and holds no sandbox"));
    assert!(full.join("precious.txt").exists(), "nothing lost");

    let out = run_pivot(&["sandbox", "kill", "--dir", dir.path().to_str().unwrap(), "node1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is this a sandbox directory?"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_stonith_accepts_the_arguments_pivot_gives_a_fence_hook() {
    let mut sb = pivot_drill::TestSandbox::up(1, false).await;
    let key = key_of(&sb, "node1");
    let out = run_pivot(&[
        "sandbox",
        "stonith",
        "--dir",
        sb.dir.to_str().unwrap(),
        "--hook=fence",
        "--cluster=sandbox",
        &format!("--failed-primary={key}"),
        "--new-primary=127.0.0.1:1",
        "--recovery-id=3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("killed: fenced"));
    sb.manifest = pivot_sandbox::Manifest::load(&sb.dir).unwrap();
    assert!(sb.live_pid("node1").unwrap().is_none(), "node1 is dead");
    let again =
        run_pivot(&["sandbox", "stonith", "--dir", sb.dir.to_str().unwrap(), &format!("--failed-primary={key}")]);
    assert_eq!(again.status.code(), Some(0), "already dead counts as fenced");
    let stranger =
        run_pivot(&["sandbox", "stonith", "--dir", sb.dir.to_str().unwrap(), "--failed-primary=127.0.0.1:1"]);
    assert_eq!(stranger.status.code(), Some(1), "an address the sandbox does not own is not fenced");
}
