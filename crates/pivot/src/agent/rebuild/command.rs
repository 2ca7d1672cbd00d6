//! Running the rebuild's programs: argv only (no shell), every one with a
//! timeout, the end of its output kept for the error message, and the
//! backup account's password in a private option file, never in argv.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Lines of output kept for an error message.
const TAIL_LINES: usize = 8;
/// Characters kept of one line.
const LINE_CHARS: usize = 300;

/// The last lines a program wrote (bounded).
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    pub fn push(&self, line: &str) {
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line.chars().take(LINE_CHARS).collect());
    }

    pub fn text(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join(" | ")
    }

    /// Read `from` line by line into the tail until it ends.
    pub fn follow(&self, from: impl AsyncRead + Unpin + Send + 'static) -> tokio::task::JoinHandle<()> {
        let tail = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(from).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                tail.push(&l);
            }
        })
    }
}

/// Run `argv` to its end within `timeout` (killed past it). `Err` names the
/// program, the exit status and the end of its output.
pub async fn run(what: &str, argv: &[String], timeout: Duration) -> Result<(), String> {
    let Some((program, args)) = argv.split_first() else { return Err(format!("{what}: no program")) };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{what} `{program}` cannot be started: {e}"))?;
    let tail = Tail::default();
    let readers = [child.stdout.take().map(|o| tail.follow(o)), child.stderr.take().map(|e| tail.follow(e))];
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(s) => s.map_err(|e| format!("{what} `{program}`: {e}"))?,
        Err(_) => {
            let _ = child.kill().await;
            return Err(format!(
                "{what} `{}` did not end within {}: killed; its output: {}",
                argv.join(" "),
                humantime::format_duration(timeout),
                tail.text()
            ));
        }
    };
    // A daemon it started may hold the pipes: do not wait for them long.
    for r in readers.into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
    }
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} `{}` failed ({status}): {}", argv.join(" "), tail.text()))
    }
}

/// A private directory (mode 0700) removed on drop, holding the backup
/// account's option file (mode 0600) for `--defaults-extra-file`.
pub struct PrivateDir {
    pub path: PathBuf,
}

impl PrivateDir {
    pub fn create(prefix: &str) -> Result<PrivateDir, String> {
        use std::os::unix::fs::DirBuilderExt;
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create the private directory {}: {e}", path.display()))?;
        Ok(PrivateDir { path })
    }

    /// `[client]` with the account and the local instance, mode 0600.
    pub fn client_option_file(&self, user: &str, password: &str, host: &str, port: u16) -> Result<PathBuf, String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path.join("client.cnf");
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let text = format!(
            "[client]\nuser = \"{}\"\npassword = \"{}\"\nhost = {host}\nport = {port}\nprotocol = TCP\n",
            quote(user),
            quote(password)
        );
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all(text.as_bytes()).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// About what a backup of `dir` streams: the files under it, without the
/// binary and relay logs its `*.index` files list, the redo log and the
/// temporary tablespace (mariabackup copies none of them whole).
pub fn backup_size(dir: &Path) -> u64 {
    let mut skip: std::collections::BTreeSet<std::ffi::OsString> = std::collections::BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let n = name.to_string_lossy();
            if n.ends_with(".index") {
                for line in std::fs::read_to_string(e.path()).unwrap_or_default().lines() {
                    if let Some(f) = Path::new(line.trim()).file_name() {
                        skip.insert(f.to_os_string());
                    }
                }
                skip.insert(name.clone());
            }
            if n.starts_with("ib_logfile") || n.starts_with("ibtmp") {
                skip.insert(name);
            }
        }
    }
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() && !(d == dir && skip.contains(&e.file_name())) => {
                    total += e.metadata().map_or(0, |m| m.len())
                }
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_estimate_leaves_out_logs_the_backup_does_not_copy() {
        let dir = std::env::temp_dir().join(format!("pivot-size-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("db")).unwrap();
        for (name, len) in [
            ("ibdata1", 100),
            ("db/t.ibd", 10),
            ("mariadb-bin.000001", 1000),
            ("mariadb-bin.index", 0),
            ("relay-bin.000002", 1000),
            ("ib_logfile0", 1000),
            ("aria_log.00000001", 5),
        ] {
            std::fs::write(dir.join(name), vec![0u8; len]).unwrap();
        }
        std::fs::write(dir.join("mariadb-bin.index"), "./mariadb-bin.000001\n").unwrap();
        std::fs::write(dir.join("relay-bin.index"), "./relay-bin.000002\n").unwrap();
        assert_eq!(super::backup_size(&dir), 115);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
