//! Bad input to the CLI gets a clear error and a meaningful exit code.

use crate::support::*;
use std::net::TcpListener;

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
