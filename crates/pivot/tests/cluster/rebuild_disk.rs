//! A target without room for the backup beside its datadir is refused
//! before it is stopped; one whose disk fills up while the backup streams
//! in (something else wrote there meanwhile) gets the error named
//! (mbstream's "No space left on device"), what was pulled removed and the
//! server on its old datadir again, replicating.

use crate::rebuild_agents::*;
use crate::support::*;
use pivot_drill::{eventually, TestSandbox};
use std::process::Command;

/// A tmpfs of `size_kib` mounted on `dir` (root); unmounted on drop.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size_kib: u64) -> SmallDisk {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "mount a tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr));
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_on_the_target_is_named_and_its_old_datadir_restored() {
    let mut sb = TestSandbox::up(3, false).await;
    exec(&sb, "node1", &["CREATE TABLE test.marker (id INT PRIMARY KEY)", "INSERT INTO test.marker VALUES (7)"]).await;
    let node1 = key_of(&sb, "node1");
    let node2_key = sb.key("node2").unwrap();
    let creds = sb.credentials("admin").unwrap();
    eventually(WAIT, "the marker on node2", || async {
        let mut s = pivot_server::Session::connect(&node2_key, &creds, std::time::Duration::from_secs(2))
            .await
            .map_err(|e| e.to_string())?;
        let rows = s.rows(&pivot_dialect::Sql::plain("SELECT id FROM test.marker")).await.map_err(|e| e.to_string())?;
        (rows.len() == 1).then_some(()).ok_or("not yet".to_string())
    })
    .await;

    // node2's directory on a disk with room for its datadir and about 6 MiB
    // more: not for the backup beside it (about 17 MiB).
    sb.stop("node2").unwrap();
    let dir = sb.dir.join("node2");
    let copy = sb.dir.join("node2.copy");
    sh(&format!("cp -a '{}' '{}'", dir.display(), copy.display()));
    // The temporary tablespace would take 12 MiB of it, an extension 64.
    sh(&format!(
        "printf 'innodb_temp_data_file_path = ibtmp1:1M:autoextend\\ninnodb_autoextend_increment = 1\\n' >> '{}/my.cnf'",
        copy.display()
    ));
    let used_kib: u64 = sh(&format!("du -sk '{}'", copy.display())).split_whitespace().next().unwrap().parse().unwrap();
    let disk = SmallDisk::mount(&dir, used_kib + 6 * 1024);
    sh(&format!("cp -a '{}/.' '{}/'", copy.display(), dir.display()));
    sb.start("node2").await.unwrap();
    let admin_pw = std::fs::read_to_string(sb.dir.join("secrets/admin.password")).unwrap();
    // Something else fills the disk up to about 6 MiB free once the server
    // stopped (after the agent checked the room).
    let filler = dir.join("filler");
    let fill = format!(
        "avail=$(df -k --output=avail '{d}' | tail -1); dd if=/dev/zero of='{f}' bs=1k count=$((avail - 6144)) 2>/dev/null; true",
        d = dir.display(),
        f = filler.display()
    );
    let agents = TestAgents::start(
        &sb,
        &[
            AgentSpec { name: "node2", node: "node2", backup_password: Some(admin_pw.clone()), after_stop: None },
            AgentSpec {
                name: "node2-filled",
                node: "node2",
                backup_password: Some(admin_pw.clone()),
                after_stop: Some(&fill),
            },
            AgentSpec { name: "node3", node: "node3", backup_password: Some(admin_pw), after_stop: None },
        ],
    )
    .await;
    let rebuild = |agent: &str| {
        let map = [("node2", agents.addr(agent)), ("node3", agents.addr("node3"))];
        let (config, _) = write_config(&sb, ConfigOptions { extra: cluster_rebuild(&sb, &map), ..Default::default() });
        pivot_async(vec![
            "rebuild".into(),
            key_of(&sb, "node2"),
            "--from".into(),
            key_of(&sb, "node3"),
            "--config".into(),
            config.display().to_string(),
        ])
    };
    let pid = sb.live_pid("node2").unwrap();
    let out = rebuild("node2").await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains("not enough room beside"), "{said}");
    assert_eq!(sb.live_pid("node2").unwrap(), pid, "refused before the stop");

    // Room enough when asked; filled up once stopped.
    sh(&format!("mount -o remount,size={}k '{}'", used_kib + 40 * 1024, dir.display()));
    let out = rebuild("node2-filled").await;
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("mbstream") && said.contains("No space left on device"), "{said}");
    assert!(said.contains("runs on its old datadir again"), "{said}");
    assert!(kept_datadirs(&sb, "node2").is_empty(), "the old datadir is back in place");
    let mut s = sb.admin("node2").await.unwrap();
    let rows = s.rows(&pivot_dialect::Sql::plain("SELECT id FROM test.marker")).await.unwrap();
    assert_eq!(rows.len(), 1, "node2 has its own data again");
    eventually(WAIT, "node2 replicating from node1 again", || async {
        let mut s = sb.admin("node2").await.map_err(|e| e.to_string())?;
        let r = pivot_server::actions::replication_status(&mut s)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no replication")?;
        (r.source.to_string() == node1 && r.sql_running && r.io_thread == pivot_core::observation::IoThread::Running)
            .then_some(())
            .ok_or(format!("{r:?}"))
    })
    .await;
    assert!(filler.exists(), "the filler was there: the disk was full");
    drop(s);
    // Servers stop before the disk goes.
    drop(agents);
    drop(disk);
}
