//! A quarantined former primary's extra transactions, saved for review.
//!
//! The file is `<state dir>/quarantine/<cluster>-<host>_<port>-<time>.sql`:
//! the text output of Debian's `mariadb-binlog --read-from-remote-server
//! --verbose` from the instance's binary log, starting after the last GTID
//! the primary holds in each diverged domain (`control::rejoin::extra_start`)
//! and only those domains: every transaction there is one the primary lacks.
//! Row events appear as `BINLOG '...'` with their rows decoded in `### INSERT
//! INTO ...` comments. The replication account reads the binary log
//! (`REPLICATION SLAVE`); its password goes in `MYSQL_PWD`, never in argv.
//! Bounded: [`TIMEOUT`] and [`MAX_BYTES`] (the file says where it was cut).

use crate::config::ClusterConfig;
use pivot_core::{GtidSet, InstanceKey};
use pivot_server::{actions, Session};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The program that reads the binary log.
pub const PROGRAM: &str = "mariadb-binlog";
/// Bound on reading the binary log.
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on the file's size.
pub const MAX_BYTES: u64 = 64 << 20;
/// Bound on the program's error output kept for the message.
const MAX_STDERR: u64 = 4_096;

/// The directory quarantine files go to, next to the state file.
pub fn directory(state_file: &Path) -> PathBuf {
    state_file.parent().unwrap_or(Path::new(".")).join("quarantine")
}

/// Save the transactions `instance` holds beyond the primary (`extra`),
/// reading its binary log from `start`. Returns the file's path.
pub async fn save(
    cfg: &ClusterConfig,
    state_file: &Path,
    instance: &InstanceKey,
    extra: &GtidSet,
    start: &GtidSet,
) -> Result<PathBuf, String> {
    if let GtidSet::MySql(_) = extra {
        return Err(format!(
            "saving extra transactions is implemented for MariaDB; on MySQL read them with mysqlbinlog \
             --exclude-gtids='{start}' from {instance}'s binary logs"
        ));
    }
    let account = cfg.replication.as_ref().unwrap_or(&cfg.credentials);
    let mut s = Session::connect(instance, &cfg.credentials, cfg.failover.step_timeout)
        .await
        .map_err(|e| format!("cannot connect to {instance}: {e}"))?;
    let first = actions::binary_logs(&mut s)
        .await
        .map_err(|e| format!("cannot list the binary logs of {instance}: {e}"))?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{instance} has no binary log"))?;
    let dir = directory(state_file);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string().replace(':', "");
    let path = dir.join(format!("{}-{}_{}-{stamp}.sql", cfg.name, instance.host, instance.port));
    let domains = domains_of(extra);
    let mut cmd = tokio::process::Command::new(PROGRAM);
    cmd.arg("--read-from-remote-server")
        .arg(format!("--host={}", instance.host))
        .arg(format!("--port={}", instance.port))
        .arg(format!("--user={}", account.user))
        .arg("--to-last-log")
        .arg("--verbose")
        .arg(format!("--start-position={start}"))
        .arg(&first)
        .env("MYSQL_PWD", account.password.expose())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !domains.is_empty() {
        cmd.arg(format!("--do-domain-ids={domains}"));
    }
    let header = format!(
        "-- pivot: transactions {instance} holds beyond the primary: {extra}\n-- read with: {PROGRAM} \
         --read-from-remote-server --to-last-log --verbose --start-position={start} --do-domain-ids={domains} {first}\n"
    );
    match tokio::time::timeout(TIMEOUT, run(cmd, &path, &header)).await {
        Ok(r) => r.map(|()| path),
        Err(_) => Err(format!(
            "{PROGRAM} did not finish within {} s; partial output in {}",
            TIMEOUT.as_secs(),
            path.display()
        )),
    }
}

fn domains_of(set: &GtidSet) -> String {
    match set {
        GtidSet::MariaDb(l) => l.domains().map(|d| d.to_string()).collect::<Vec<_>>().join(","),
        GtidSet::MySql(_) => String::new(),
    }
}

async fn run(mut cmd: tokio::process::Command, path: &Path, header: &str) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut file = tokio::fs::File::from_std(file);
    file.write_all(header.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {PROGRAM} (package mariadb-client): {e}"))?;
    let mut stdout = child.stdout.take().expect("piped").take(MAX_BYTES);
    let mut stderr = child.stderr.take().expect("piped");
    // Error output is drained on its own (the first bytes kept), so a
    // chatty program never blocks on a full pipe while stdout is copied.
    let errors = tokio::spawn(async move {
        let mut kept = Vec::new();
        let _ = (&mut stderr).take(MAX_STDERR).read_to_end(&mut kept).await;
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        kept
    });
    let copied =
        tokio::io::copy(&mut stdout, &mut file).await.map_err(|e| format!("writing {}: {e}", path.display()))?;
    let cut = copied >= MAX_BYTES;
    if cut {
        let _ = child.start_kill();
        let note = format!("\n-- pivot: cut at {MAX_BYTES} bytes\n");
        file.write_all(note.as_bytes()).await.map_err(|e| e.to_string())?;
    }
    file.flush().await.map_err(|e| e.to_string())?;
    let status = child.wait().await.map_err(|e| e.to_string())?;
    let err = errors.await.unwrap_or_default();
    if !status.success() && !cut {
        return Err(format!("{PROGRAM} failed ({status}): {}", String::from_utf8_lossy(&err).trim()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("sh");
        c.args(["-c", script]).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        c
    }

    #[tokio::test]
    async fn output_goes_to_a_private_file_after_the_header_and_failures_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sql");
        run(sh("echo '### INSERT INTO t'; echo noise >&2"), &path, "-- header\n").await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "-- header\n### INSERT INTO t\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let e = run(sh("echo boom >&2; exit 3"), &dir.path().join("y.sql"), "").await.unwrap_err();
        assert!(e.contains("failed") && e.contains("boom"), "{e}");
        let e = run(sh("true"), &path, "").await.unwrap_err();
        assert!(e.contains("cannot create"), "an existing file is never overwritten: {e}");
        assert_eq!(directory(Path::new("/var/lib/pivot/pivot.db")), PathBuf::from("/var/lib/pivot/quarantine"));
    }

    #[tokio::test]
    async fn a_chatty_error_output_does_not_block_the_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.sql");
        // 1 MiB of error output, well past the pipe's buffer and the kept part.
        run(sh("head -c 1048576 /dev/zero >&2; echo done"), &path, "").await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "done\n");
    }
}
