//! Starting and signalling the sandbox's own processes, by PID.

use crate::SandboxError;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Start `mariadbd --defaults-file=CNF` in its own process group (a Ctrl-C
/// in the terminal that ran `sandbox up` must not reach it). Returns its PID.
pub fn spawn_server(server: &Path, cnf: &Path, netns: Option<&str>) -> Result<u32, SandboxError> {
    // `ip netns exec` execs the server in place: the PID is the server's.
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(server);
            c
        }
        None => Command::new(server),
    };
    cmd.arg(format!("--defaults-file={}", cnf.display()));
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--user=root");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).process_group(0);
    let mut child = cmd.spawn().map_err(|e| SandboxError::Setup(format!("cannot start {}: {e}", server.display())))?;
    let pid = child.id();
    // Reap it when it exits, so a killed server does not linger as a zombie
    // in a long-running parent (the test harness).
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    Ok(pid)
}

fn stat_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The state follows the parenthesised command name.
    stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next())
}

/// Running or stopped, not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(stat_state(pid), Some(s) if s != 'Z' && s != 'X')
}

pub fn paused(pid: u32) -> bool {
    matches!(stat_state(pid), Some('T'))
}

/// The process was started with `marker` (our defaults file) on its command
/// line: the PID still belongs to us, not to a stranger that reused it.
pub fn owned(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).map(|c| String::from_utf8_lossy(&c).contains(marker)).unwrap_or(false)
}

pub fn signal(pid: u32, sig: libc::c_int) -> Result<(), SandboxError> {
    let pid_t = libc::pid_t::try_from(pid).map_err(|_| SandboxError::Setup(format!("pid {pid} out of range")))?;
    // SAFETY: kill(2) with a positive pid signals exactly that process.
    if unsafe { libc::kill(pid_t, sig) } != 0 {
        return Err(SandboxError::Setup(format!("cannot signal pid {pid}: {}", std::io::Error::last_os_error())));
    }
    Ok(())
}

pub fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().filter(|l| !l.contains("max_open_files")).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
