//! Hooks on real processes: data as argv and environment, timeouts, failures.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

/// Whether `cond` becomes true within 5 s (checked every 10 ms): a
/// condition waited for, not a sleep.
fn comes_true(cond: impl Fn() -> bool) -> bool {
    (0..500).any(|_| {
        let now = cond();
        if !now {
            std::thread::sleep(Duration::from_millis(10));
        }
        now
    })
}

fn data() -> HookData {
    HookData {
        cluster: "main".into(),
        failed_primary: Some("127.0.0.1:3306".parse().unwrap()),
        new_primary: Some("127.0.0.1:3307".parse().unwrap()),
        lost_replicas: vec!["127.0.0.1:3309".parse().unwrap()],
        recovery_id: Some(7),
        analysis: "dead_primary".into(),
        // Shell metacharacters must arrive as plain data.
        signal: "x'; touch /tmp/pivot-hook-pwned; echo '".into(),
        outcome: String::new(),
        new_primary_user: Some("pivot".into()),
        new_primary_password: Some(Secret::new("s3cret")),
        alert_env: Vec::new(),
    }
}

#[tokio::test]
async fn data_arrives_as_argv_and_environment_never_through_a_shell() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let s = script(
        dir.path(),
        "hook",
        &format!("printf '%s\\n' \"$@\" > {o}; env | grep '^PIVOT_' | sort >> {o}", o = out.display()),
    );
    let hooks = HooksConfig { pre_failover: Some(vec![s, "--mine".into()]), ..HooksConfig::default() };
    let argv = command_for(&hooks, HookPoint::PreFailover, &data()).unwrap();
    let r = run(&argv, HookPoint::PreFailover, &data(), Duration::from_secs(5)).await;
    assert!(r.ok(), "{r:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    for want in [
        "--mine\n",
        "--hook=pre_failover\n",
        "--cluster=main\n",
        "--failed-primary=127.0.0.1:3306\n",
        "--new-primary=127.0.0.1:3307\n",
        "--recovery-id=7\n",
        "PIVOT_FAILED_PRIMARY_PORT=3306\n",
        "PIVOT_LOST_REPLICAS=127.0.0.1:3309\n",
        "PIVOT_SIGNAL=x'; touch /tmp/pivot-hook-pwned; echo '\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert!(!std::path::Path::new("/tmp/pivot-hook-pwned").exists(), "a value was interpreted by a shell");
}

#[tokio::test]
async fn mha_script_gets_mha_arguments_and_the_password_only_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let s = script(
        dir.path(),
        "master_ip_failover",
        &format!("echo \"$@\" >> {o}; echo \"pw=$PIVOT_NEW_MASTER_PASSWORD\" >> {o}", o = out.display()),
    );
    let hooks = HooksConfig { mha_master_ip_failover: Some(s), ..HooksConfig::default() };
    for point in [HookPoint::MhaStop, HookPoint::MhaStart] {
        let argv = command_for(&hooks, point, &data()).unwrap();
        assert!(!argv.iter().any(|a| a.contains("s3cret")), "no password in argv: {argv:?}");
        assert!(run(&argv, point, &data(), Duration::from_secs(5)).await.ok());
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "--command=stop --orig_master_host=127.0.0.1 --orig_master_ip=127.0.0.1 --orig_master_port=3306"
    );
    assert_eq!(
        lines[2],
        "--command=start --orig_master_host=127.0.0.1 --orig_master_ip=127.0.0.1 --orig_master_port=3306 \
         --new_master_host=127.0.0.1 --new_master_ip=127.0.0.1 --new_master_port=3307 --new_master_user=pivot"
    );
    assert_eq!(lines[3], "pw=s3cret");
}

#[tokio::test]
async fn failures_timeouts_and_missing_programs_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let fail = script(dir.path(), "fail", "echo 'no VIP here' >&2; exit 3");
    let r = run(&[fail], HookPoint::PreFailover, &data(), Duration::from_secs(5)).await;
    assert_eq!(r, HookResult::Failed { code: Some(3), output: "no VIP here".into() });
    assert_eq!(r.describe(), "exit 3; output: no VIP here");

    // A hang, with a child that would keep the pipes open: both are killed.
    let child_pid = dir.path().join("child.pid");
    let hang = script(dir.path(), "hang", &format!("sleep 30 & echo $! > {}; sleep 30", child_pid.display()));
    let r = run(&[hang], HookPoint::Fence, &data(), Duration::from_millis(300)).await;
    assert!(matches!(r, HookResult::TimedOut { after_ms, .. } if after_ms < 30_000), "{r:?}");
    let pid: i32 = std::fs::read_to_string(&child_pid).unwrap().trim().parse().unwrap();
    let gone = comes_true(|| {
        !std::fs::read(format!("/proc/{pid}/stat")).is_ok_and(|s| !String::from_utf8_lossy(&s).contains(") Z "))
    });
    assert!(gone, "the hook's children were killed with it");

    let r = run(&["/nonexistent/hook".into()], HookPoint::PostFailover, &data(), Duration::from_secs(1)).await;
    assert!(matches!(r, HookResult::NotStarted { .. }), "{r:?}");
}

/// Issue 6, item 8: a hook that prints its environment must not put the
/// password in the audit log. Only the MHA `start` call gets it, and every
/// hook's output is scrubbed of it.
#[tokio::test]
async fn only_the_mha_start_call_gets_the_password_and_no_output_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let leak = script(dir.path(), "leak", "env; echo \"from config: s3cret\"");
    let hooks = HooksConfig {
        pre_failover: Some(vec![leak.clone()]),
        post_failover: Some(vec![leak.clone()]),
        post_unsuccessful_failover: Some(vec![leak.clone()]),
        fence: Some(vec![leak.clone()]),
        alert: Some(vec![leak.clone()]),
        mha_master_ip_failover: Some(leak),
        ..HooksConfig::default()
    };
    for point in [
        HookPoint::PreFailover,
        HookPoint::PostFailover,
        HookPoint::PostUnsuccessfulFailover,
        HookPoint::Fence,
        HookPoint::Alert,
        HookPoint::MhaStop,
        HookPoint::MhaStart,
    ] {
        let argv = command_for(&hooks, point, &data()).unwrap();
        let r = run(&argv, point, &data(), Duration::from_secs(5)).await;
        let HookResult::Succeeded { output } = &r else { panic!("{point:?}: {r:?}") };
        assert!(!output.contains("s3cret"), "{point:?} output keeps the password: {output}");
        assert!(output.contains("from config: <redacted>"), "{point:?}: {output}");
        let has_env = output.contains("PIVOT_NEW_MASTER_PASSWORD=");
        assert_eq!(has_env, point == HookPoint::MhaStart, "{point:?}: {output}");
    }
    assert_eq!(scrub("a s3cret b", Some(&Secret::new("s3cret"))), "a <redacted> b");
    assert_eq!(scrub("a b", Some(&Secret::new(""))), "a b");
}

/// Hostile review, finding 11: a password printed right at the output
/// limit is scrubbed whole, not cut first and kept in part.
#[tokio::test]
async fn a_password_at_the_output_limit_is_scrubbed_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let pad = "x".repeat(4090);
    let s = script(dir.path(), "long", &format!("printf '%s' '{pad}'; echo 's3cret-and-more'"));
    let mut d = data();
    d.new_primary_password = Some(Secret::new("s3cret-and-more"));
    let r = run(&[s], HookPoint::PostFailover, &d, Duration::from_secs(5)).await;
    let HookResult::Succeeded { output } = r else { panic!("{r:?}") };
    assert!(!output.contains("s3cr"), "no part of the password is kept: ...{}", &output[output.len() - 20..]);
    assert!(output.len() <= 4096);
}

/// A child left running in the background with the output pipes open does
/// not hold the hook's result (nor its step) for long.
#[tokio::test]
async fn a_background_child_holding_the_pipes_does_not_hold_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("child-done");
    let s =
        script(dir.path(), "bg", &format!("echo started; setsid sh -c 'sleep 3; touch {}' & exit 0", done.display()));
    let r = run(&[s], HookPoint::Fence, &data(), Duration::from_secs(10)).await;
    assert_eq!(r, HookResult::Succeeded { output: "started".into() });
    assert!(!done.exists(), "the result came while the background child still held the pipes");
}

/// A hook dropped before it exited (pivot stopping, its task aborted) is
/// killed with its whole process group.
#[tokio::test]
async fn a_dropped_hook_is_killed_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("child-survived");
    let s = script(dir.path(), "slow", &format!("(sleep 2; touch {}) & sleep 30", marker.display()));
    let (pid_tx, pid_rx) = std::sync::mpsc::channel();
    let d = data();
    let task = tokio::spawn(async move {
        run_noting(&[s], HookPoint::PreFailover, &d, Duration::from_secs(60), move |pgid| {
            let _ = pid_tx.send(pgid);
        })
        .await
    });
    let pgid = tokio::task::spawn_blocking(move || pid_rx.recv().unwrap()).await.unwrap();
    task.abort();
    let _ = task.await;
    // The group is gone: signal 0 to it fails.
    // SAFETY: probing (signal 0) the process group of a child we spawned.
    let gone = comes_true(|| unsafe { libc::kill(-(pgid as libc::pid_t), 0) } != 0);
    assert!(gone, "the hook's process group was killed");
}
