//! What a hostile tester found (issue 6), each on real servers: interrupted
//! veto hooks, a typo'd forced target, a panicking recovery, a disk that
//! fills under the state file, SIGTERM mid-recovery, bogus seeds.

use crate::support::*;
use pivot_drill::{eventually, missing_writes, PivotProcess};
use std::time::Duration;

/// Issue 6, item 1: a fence (STONITH) hook that sleeps, then fails, is
/// running when pivot is SIGKILLed. On restart it is asked again (its verdict
/// was never given): its failure vetoes, nothing is promoted.
#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_fence_hook_is_asked_again_and_its_failure_still_vetoes() {
    let mut rig = Rig::start(3, false, |sb| {
        let (calls, pid) = (sb.dir.join("fence.calls"), sb.dir.join("fence.pid"));
        // The first call hangs (pivot is killed meanwhile); every call fails.
        let fence = script(
            sb,
            "fence",
            &format!(
                "echo call >> {c}; [ ! -e {p} ] && {{ echo $$ > {p}; sleep 30; }}; echo 'STONITH failed' >&2; exit 1",
                c = calls.display(),
                p = pid.display()
            ),
        );
        format!("[cluster.hooks]\nfence = [\"{}\"]\ntimeout = \"60s\"\n", fence.display())
    })
    .await;
    rig.sb.kill("node1").unwrap();
    wait_step_running(&rig, "hook_fence").await;
    // The hook itself runs (its step record comes a moment before it starts).
    let hook_pid = wait_pid_file(&rig, "fence.pid").await;
    rig.pivot.kill();
    assert!(std::path::Path::new(&format!("/proc/{hook_pid}")).exists(), "the hook outlives a SIGKILLed pivot");
    restart_daemon(&mut rig);
    // The restarted pivot ends the orphaned hook before asking again.
    eventually(WAIT, "the orphaned hook ended", || async {
        let gone = !std::path::Path::new(&format!("/proc/{hook_pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{hook_pid}/cmdline")).map_or(true, |c| c.is_empty());
        gone.then_some(()).ok_or("still running".to_string())
    })
    .await;
    let h = wait_recovery_status(&rig, "aborted").await;
    let r = last_recovery(&h);
    let s = steps(r);
    assert!(s.contains(&"hook_fence=failed".to_string()), "the hook was asked again and failed: {s:?}");
    assert!(!s.iter().any(|s| s.starts_with("promote")), "never promoted on a veto: {s:?}");
    assert!(r["summary"].as_str().unwrap().contains("STONITH failed"), "{r:#}");
    assert!(rig.writable_nodes().await.is_empty(), "nothing was made writable");
    let calls = std::fs::read_to_string(rig.sb.dir.join("fence.calls")).unwrap();
    assert!(calls.lines().count() >= 2, "asked again after the restart: {calls}");
}

/// Issue 6, items 1 and 6: SIGTERM while a pre-failover hook runs. The stop
/// is graceful: the running recovery finishes (here the hook vetoes), pivot
/// exits 0, and the veto holds.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_veto_hook_lets_the_recovery_finish_and_the_veto_holds() {
    let mut rig = Rig::start(3, false, |sb| {
        let started = sb.dir.join("pre.started");
        let pre = script(sb, "pre", &format!("touch {}; sleep 2; echo 'not now' >&2; exit 1", started.display()));
        format!("[cluster.hooks]\npre_failover = [\"{}\"]\n", pre.display())
    })
    .await;
    rig.sb.kill("node1").unwrap();
    wait_step_running(&rig, "hook_pre_failover").await;
    let status = rig.pivot.terminate(Duration::from_secs(60)).expect("pivot exits within its grace period");
    assert_eq!(status.code(), Some(0), "the recovery finished before pivot stopped");
    let h = rig.history();
    let r = last_recovery(&h);
    assert_eq!(r["status"], "aborted", "{r:#}");
    assert!(steps(r).contains(&"hook_pre_failover=failed".to_string()), "{:?}", steps(r));
    assert!(rig.writable_nodes().await.is_empty(), "the veto held");
    // The replicas were given back to the old primary, not left frozen.
    for node in ["node2", "node3"] {
        let mut s = rig.sb.admin(node).await.unwrap();
        let st = pivot_server::actions::replication_status(&mut s).await.unwrap().unwrap();
        assert_eq!(st.source.to_string(), rig.key("node1"), "{node}");
        assert_ne!(st.io_thread, pivot_core::observation::IoThread::Stopped, "{node}: IO thread restarted");
    }
}

/// Issue 6, item 6: SIGTERM in the middle of a recovery that can finish:
/// pivot finishes it, then exits 0 with the replicas following the new primary.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_recovery_finishes_it_before_exiting() {
    let mut rig = Rig::start(3, false, |sb| {
        let pre = script(sb, "pre", "sleep 1; exit 0");
        format!("[cluster.hooks]\npre_failover = [\"{}\"]\n", pre.display())
    })
    .await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    wait_step_running(&rig, "hook_pre_failover").await;
    let status = rig.pivot.terminate(Duration::from_secs(60)).expect("pivot exits within its grace period");
    assert_eq!(status.code(), Some(0));
    let h = rig.history();
    let r = last_recovery(&h);
    assert_eq!(r["status"], "succeeded", "{r:#}");
    let new = r["new_primary"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(rig.writable_nodes().await, vec![new.clone()]);
    let other = ["node2", "node3"].into_iter().find(|n| rig.key(n) != new).unwrap();
    let mut s = rig.sb.admin(other).await.unwrap();
    let st = pivot_server::actions::replication_status(&mut s).await.unwrap().unwrap();
    assert_eq!(st.source.to_string(), new, "the other replica follows the new primary");
}

/// Issue 6, item 2: a typo'd target, forced, on a healthy cluster. Refused
/// before anything changes: the primary stays writable and takes writes.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_failover_to_a_typo_changes_nothing() {
    let rig = Rig::start(3, false, |_| "[cluster.failover]\nautomatic = false\n".into()).await;
    let out = cli(&rig, &["failover", "--cluster", "sandbox", "--to", "127.0.0.1:9999", "--force"]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:9999 is not a replica"), "{err}");
    assert_eq!(rig.writable_nodes().await, vec![rig.key("node1")], "the live primary was not fenced");
    let writer = rig.writer(7);
    eventually(WAIT, "writes acknowledged by the primary", || async {
        let n = writer.acks().len();
        (n > 20).then_some(()).ok_or(format!("{n} acknowledged"))
    })
    .await;
    let acks = writer.stop().await;
    let missing = missing_writes(&mut rig.sb.admin("node1").await.unwrap(), &acks).await;
    assert!(missing.is_empty());
    rig.wait_healthy_with_primary(&rig.key("node1")).await;
    let r = last_recovery(&rig.history()).clone();
    assert_eq!(steps(&r), Vec::<String>::new(), "no step ran: {r:#}");
}

/// Issue 6, item 3: a recovery task that panics (a bug) does not leave
/// failover silently off: the control loop resumes the recovery from the
/// state file, and says so.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_recovery_is_resumed_from_the_state_file() {
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    rig.pivot.kill();
    let log = rig.sb.dir.join("pivot-failpoint.log");
    rig.pivot = PivotProcess::start_with_env(
        pivot_bin(),
        &rig.config,
        &log,
        &[("PIVOT_FAILPOINTS", "panic_before_step:promote")],
    );
    rig.wait_healthy_with_primary(&rig.key("node1")).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    assert_eq!(rig.writable_nodes().await, vec![new]);
    let h = wait_recovery_status(&rig, "succeeded").await;
    let all = h["recoveries"].as_array().unwrap();
    assert_eq!(all.len(), 1, "the same recovery, resumed: {h:#}");
    let s = steps(&all[0]);
    assert_eq!(s.iter().filter(|s| s.starts_with("promote=")).count(), 1, "{s:?}");
    let events = h["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["message"].as_str().unwrap_or("").contains("the recovery task failed")),
        "an alert says so: {events:?}"
    );
}

/// Issue 6, item 3: the disk under the state file fills up during a
/// recovery (a post-failover hook fills it), so its end cannot be written.
/// pivot alerts, shows it in status, writes the end once there is room, and
/// the next failure is failed over: failover was never silently off.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_under_the_state_file_is_alerted_and_failover_stays_on() {
    let rig = Rig::start(3, false, |_| String::new()).await;
    let small = TinyDisk::mount(&rig.sb.dir.join("small"));
    let alerts = rig.sb.dir.join("alerts.out");
    let alert = script(&rig.sb, "alert", &format!("echo \"$PIVOT_OUTCOME\" >> {}", alerts.display()));
    let filler = small.dir.join("filler");
    let fill = script(&rig.sb, "fill", &format!("dd if=/dev/zero of={} bs=64k 2>/dev/null; exit 0", filler.display()));
    let text = std::fs::read_to_string(&rig.config).unwrap();
    let text = text.replace(
        &format!("state = \"{}/test-pivot.db\"", rig.sb.dir.display()),
        &format!("state = \"{}/state.db\"", small.dir.display()),
    ) + &format!(
        "[cluster.hooks]\npost_failover = [\"{}\"]\nalert = [\"{}\"]\n[cluster.failover]\nblock_period = \"1h\"\n",
        fill.display(),
        alert.display()
    );
    std::fs::write(&rig.config, text).unwrap();
    let mut rig = rig;
    rig.pivot.kill();
    restart_daemon(&mut rig);
    rig.wait_healthy_with_primary(&rig.key("node1")).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    eventually(WAIT, "the unwritable end is shown in status", || async {
        let c = api_cluster(rig.addr).await?;
        let problems = c["recovery"]["control_problems"].to_string();
        problems.contains("cannot be written").then_some(()).ok_or(problems)
    })
    .await;
    eventually(WAIT, "an alert", || async {
        let text = std::fs::read_to_string(&alerts).unwrap_or_default();
        text.contains("cannot be written").then_some(()).ok_or(text)
    })
    .await;
    std::fs::remove_file(&filler).unwrap();
    let h = wait_recovery_status(&rig, "succeeded").await;
    assert_eq!(last_recovery(&h)["new_primary"], new.as_str());
    eventually(WAIT, "the problem cleared", || async {
        let c = api_cluster(rig.addr).await?;
        let problems = c["recovery"]["control_problems"].as_array().map_or(0, Vec::len);
        (problems == 0).then_some(()).ok_or(c["recovery"].to_string())
    })
    .await;
    // The block was written too; acknowledged, the next failure is failed over.
    let out = cli(&rig, &["ack", "--cluster", "sandbox"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let new_node = rig.sb.nodes().iter().find(|n| rig.key(&n.name) == new).unwrap().name.clone();
    rig.sb.kill(&new_node).unwrap();
    let third = rig.wait_new_primary(&new).await;
    assert_ne!(third, old);
    drop(small);
}

/// Issue 6, item 7: 300 seeds that refuse connections, plus the real
/// primary, with the default max_instances (256). The instances that answer
/// win; the limit is said once; a dead primary is failed over.
#[tokio::test(flavor = "multi_thread")]
async fn bogus_seeds_do_not_starve_discovery() {
    let rig = Rig::start(3, false, |_| String::new()).await;
    let mut seeds: Vec<String> = (0..300).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    seeds.push(rig.key("node1"));
    let (config, addr) = write_config(&rig.sb, ConfigOptions { seeds, ..Default::default() });
    let mut rig = rig;
    rig.pivot.kill();
    rig.config = config;
    rig.addr = addr;
    restart_daemon(&mut rig);
    rig.wait_healthy_with_primary(&rig.key("node1")).await;
    let c = eventually(WAIT, "both replicas watched", || async {
        let c = api_cluster(rig.addr).await?;
        let ok = ["node2", "node3"].iter().all(|n| instance(&c, &rig.key(n)).is_some_and(|i| i["reachable"] == true));
        ok.then(|| c.clone()).ok_or(c["signal"].to_string())
    })
    .await;
    assert!(c["recovery"]["discovery_limit"].as_str().unwrap().contains("max_instances 256 reached"), "{c:#}");
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    rig.wait_new_primary(&old).await;
    let said = rig.pivot.log_text().matches("max_instances (256) reached").count();
    assert_eq!(said, 1, "the limit is said once");
}

/// Issue 6, item 4: a split brain is resolved, not only logged. A replica
/// made writable and detached (nobody follows it, the others follow the
/// primary) is made read-only, recorded in the fence list, and alerted.
#[tokio::test(flavor = "multi_thread")]
async fn a_writable_instance_nobody_follows_is_made_read_only() {
    let rig = Rig::start(3, false, |_| String::new()).await;
    exec(&rig.sb, "node3", &["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = OFF"]).await;
    let node3 = rig.key("node3");
    eventually(WAIT, "node3 made read-only and recorded", || async {
        let c = api_cluster(rig.addr).await?;
        let fenced = c["recovery"]["fenced"].as_array().is_some_and(|f| f.iter().any(|f| f["instance"] == node3));
        (fenced && read_only(&rig.sb, "node3").await == Some(true)).then_some(()).ok_or(c["recovery"].to_string())
    })
    .await;
    assert_eq!(rig.writable_nodes().await, vec![rig.key("node1")], "the primary kept writing");
    let h = rig.history();
    let events = h["events"].to_string();
    assert!(events.contains("split brain") && events.contains(&node3), "{events}");
}

/// Issue 6, item 4: the state file deleted while pivot runs is noticed
/// (status and alert), and after a restart with no fence list the former
/// primary, back writable, is fenced as a split brain.
#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_state_file_is_noticed_and_the_returning_primary_is_still_fenced() {
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    rig.wait_new_primary(&old).await;
    let state = rig.sb.dir.join("test-pivot.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", state.display()));
    }
    // Noticed within a second: the file is opened again and the fence list,
    // kept in memory, written back.
    eventually(WAIT, "the state file back with the fence list", || async {
        let out = cli(&rig, &["history", "--json"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let log = rig.pivot.log_text();
        (state.exists() && log.contains("opened again; writing back 1 fence entries")).then_some(()).ok_or(text)
    })
    .await;
    let fenced = pivot_state::SqliteStore::open_existing(&state).unwrap();
    let list = pivot_state::StateStore::fenced(&fenced, "sandbox").unwrap();
    assert_eq!(list.iter().map(|f| f.instance.clone()).collect::<Vec<_>>(), vec![old.clone()]);
    drop(fenced);
    rig.pivot.kill();
    rig.sb.start("node1").await.unwrap();
    exec(&rig.sb, "node1", &["SET GLOBAL read_only = OFF"]).await;
    restart_daemon(&mut rig);
    eventually(WAIT, "the former primary fenced again", || async {
        let ro = read_only(&rig.sb, "node1").await;
        (ro == Some(true)).then_some(()).ok_or(format!("read_only {ro:?}"))
    })
    .await;
    assert_eq!(rig.writable_nodes().await.len(), 1);
}

/// Issue 6, time: the wall clock stepped back an hour (libfaketime, the
/// monotonic clock untouched, as when an operator or NTP steps the clock)
/// changes no detection: windows and the order of observations run on the
/// monotonic clock.
#[tokio::test(flavor = "multi_thread")]
async fn stepping_the_wall_clock_back_an_hour_changes_no_detection() {
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    assert!(std::path::Path::new(lib).exists(), "libfaketime is installed by scripts/deps.sh");
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    let offset = rig.sb.dir.join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    rig.pivot.kill();
    let log = rig.sb.dir.join("pivot-faketime.log");
    let offset_text = offset.display().to_string();
    rig.pivot = PivotProcess::start_with_env(
        pivot_bin(),
        &rig.config,
        &log,
        &[
            ("LD_PRELOAD", lib),
            ("FAKETIME_TIMESTAMP_FILE", &offset_text),
            ("FAKETIME_NO_CACHE", "1"),
            ("DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let before = rig.wait_healthy_with_primary(&rig.key("node1")).await["at"].as_u64().unwrap();
    std::fs::write(&offset, "-3600\n").unwrap();
    eventually(WAIT, "the daemon's wall clock an hour back", || async {
        let c = api_cluster(rig.addr).await?;
        let at = c["at"].as_u64().unwrap_or(u64::MAX);
        (at + 1_800_000 < before).then_some(()).ok_or(format!("at {at}, before {before}"))
    })
    .await;
    let old = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let new = rig.wait_new_primary(&old).await;
    assert_eq!(rig.writable_nodes().await, vec![new]);
}

/// Simulator finding F3: the failed primary comes back between the
/// observation of the replicas and the promotion (here a pre-failover hook
/// restarts it). It is checked once more right before the promotion: the
/// failover is abandoned, nothing is promoted, it stays the only writer.
#[tokio::test(flavor = "multi_thread")]
async fn a_primary_back_just_before_the_promotion_stops_the_failover() {
    let mut rig = Rig::start(3, false, |sb| {
        let marker = sb.dir.join("restarted");
        let pre = script(
            sb,
            "pre",
            &format!(
                "[ -e {m} ] && exit 0; touch {m}; exec {bin} sandbox start --dir {dir} node1",
                m = marker.display(),
                bin = pivot_bin().display(),
                dir = sb.dir.display()
            ),
        );
        format!("[cluster.hooks]\npre_failover = [\"{}\"]\ntimeout = \"60s\"\n", pre.display())
    })
    .await;
    rig.sb.kill("node1").unwrap();
    let marker = rig.sb.dir.join("restarted");
    eventually(WAIT, "the hook restarted node1", || async {
        marker.exists().then_some(()).ok_or("not yet".to_string())
    })
    .await;
    let h = wait_recovery_status(&rig, "aborted").await;
    // The hook started node1 through the sandbox's files: read them again so
    // the teardown stops that process too.
    let dir = rig.sb.dir.clone();
    *rig.sb = pivot_sandbox::Sandbox::open(&dir).unwrap();
    let r = last_recovery(&h);
    let s = steps(r);
    assert!(s.contains(&"confirm_primary_gone=failed".to_string()), "{s:?}");
    assert!(!s.iter().any(|s| s.starts_with("promote")), "{s:?}");
    assert!(r["summary"].as_str().unwrap().contains("answers again"), "{r:#}");
    rig.wait_healthy_with_primary(&rig.key("node1")).await;
    assert_eq!(rig.writable_nodes().await, vec![rig.key("node1")]);
}

/// Hostile review, finding 1: a former primary that rejoined as a replica is
/// promoted by the next failover. pivot must not fence its own new primary
/// (it leaves the fence list first): the cluster keeps a writer.
#[tokio::test(flavor = "multi_thread")]
async fn a_rejoined_former_primary_promoted_later_stays_writable() {
    let mut rig =
        Rig::start(3, false, |sb| format!("[cluster.failover]\npreferred = [{}]\n", toml_key(sb, "node1"))).await;
    let n1 = rig.key("node1");
    rig.sb.kill("node1").unwrap();
    let second = rig.wait_new_primary(&n1).await;
    rig.sb.start("node1").await.unwrap();
    // pivot fences it the moment it answers (ending every session): let that
    // happen before rejoining it by hand.
    eventually(WAIT, "node1 fenced and judged", || async {
        let c = api_cluster(rig.addr).await?;
        let f = c["recovery"]["fenced"].to_string();
        f.contains("it can rejoin as a replica").then_some(()).ok_or(f)
    })
    .await;
    let (host, port) = second.rsplit_once(':').unwrap();
    exec(
        &rig.sb,
        "node1",
        &[
            "STOP SLAVE",
            "SET GLOBAL read_only = ON",
            "SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos",
            &format!(
                "CHANGE MASTER TO MASTER_HOST = '{host}', MASTER_PORT = {port}, MASTER_USER = 'repl', \
                 MASTER_PASSWORD = '{}', MASTER_USE_GTID = slave_pos",
                std::fs::read_to_string(rig.sb.dir.join("secrets/repl.password")).unwrap().trim()
            ),
            "START SLAVE",
        ],
    )
    .await;
    rig.wait_healthy_with_primary(&second).await;
    let out = cli(&rig, &["ack", "--cluster", "sandbox"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let second_node = rig.sb.node_at(&second.parse().unwrap()).unwrap().name.clone();
    rig.sb.kill(&second_node).unwrap();
    let third = rig.wait_new_primary(&second).await;
    assert_eq!(third, n1, "the preferred former primary is promoted");
    // It stays writable: pivot does not fence its own new primary.
    for _ in 0..5 {
        let c = rig.wait_healthy_with_primary(&n1).await;
        let fenced = c["recovery"]["fenced"].as_array().unwrap();
        assert!(!fenced.iter().any(|f| f["instance"] == n1.as_str()), "{fenced:?}");
        assert_eq!(read_only(&rig.sb, "node1").await, Some(false));
    }
    let s = steps(last_recovery(&rig.history()));
    assert!(s.contains(&"clear_fence=ok".to_string()), "{s:?}");
}

/// Hostile review, findings 3 and 5: `pivot failover` killed in the middle of
/// a forced failover (the primary already fenced). The daemon takes the
/// recovery over (its owner is gone) and finishes it: one writer, not none.
#[tokio::test(flavor = "multi_thread")]
async fn a_killed_manual_failover_is_taken_over_by_the_daemon() {
    let rig = Rig::start(3, false, |sb| {
        let pid = sb.dir.join("pre.pid");
        let pre = script(sb, "pre", &format!("[ -e {p} ] && exit 0; echo $$ > {p}; sleep 30", p = pid.display()));
        format!(
            "[cluster.failover]\nautomatic = false\n[cluster.hooks]\npre_failover = [\"{}\"]\ntimeout = \"60s\"\n",
            pre.display()
        )
    })
    .await;
    let old = rig.key("node1");
    let mut cli_process = std::process::Command::new(pivot_bin())
        .args(["failover", "--cluster", "sandbox", "--force", "--config", rig.config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_step_running(&rig, "hook_pre_failover").await;
    let _ = cli_process.kill();
    let _ = cli_process.wait();
    let hook_pid = wait_pid_file(&rig, "pre.pid").await;
    // SAFETY: the process group of the hook started by this test's pivot.
    unsafe { libc::kill(-hook_pid, libc::SIGKILL) };
    assert_eq!(read_only(&rig.sb, "node1").await, Some(true), "the live primary was fenced first");
    let h = wait_recovery_status(&rig, "succeeded").await;
    let r = last_recovery(&h);
    assert!(r["owner"].as_str().unwrap().contains("pivot run"), "taken over by the daemon: {r:#}");
    let new = r["new_primary"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(rig.writable_nodes().await, vec![new]);
}

/// Crash-only: a cluster's control loop that panics does not leave the
/// process running with that cluster unwatched: pivot alerts and exits
/// non-zero, for its service manager to restart it.
#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_control_loop_makes_pivot_exit_non_zero() {
    let mut rig = Rig::start(3, false, |_| String::new()).await;
    rig.pivot.kill();
    let log = rig.sb.dir.join("pivot-monitor-panic.log");
    rig.pivot =
        PivotProcess::start_with_env(pivot_bin(), &rig.config, &log, &[("PIVOT_FAILPOINTS", "panic_in_monitor")]);
    let status = rig.pivot.wait_exit(WAIT);
    let status = status.expect("pivot exits by itself");
    assert_eq!(status.code(), Some(1), "{}", rig.pivot.log_text());
    assert!(rig.pivot.log_text().contains("stopped unexpectedly"), "{}", rig.pivot.log_text());
}
