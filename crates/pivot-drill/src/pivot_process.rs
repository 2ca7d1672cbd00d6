use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `pivot run` as a child process; killed on drop. Its log goes to a file.
pub struct PivotProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl PivotProcess {
    pub fn start(binary: &Path, config: &Path, log: &Path) -> PivotProcess {
        PivotProcess::start_with_env(binary, config, log, &[])
    }

    /// As [`PivotProcess::start`], with extra environment variables.
    pub fn start_with_env(binary: &Path, config: &Path, log: &Path, env: &[(&str, &str)]) -> PivotProcess {
        let out = std::fs::File::create(log).expect("log file");
        let child = Command::new(binary)
            .envs(env.iter().copied())
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,pivot=debug,mysql_async=warn")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("start pivot");
        PivotProcess { child: Some(child), log: log.to_path_buf() }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL, as in a crash of pivot itself.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: a clean stop.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child by its PID.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `bound` for the exit status (killed past it).
    pub fn terminate(&mut self, bound: std::time::Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.as_ref()?.id();
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        let status = self.wait_exit(bound);
        if status.is_none() {
            self.kill();
        }
        status
    }

    /// Wait up to `bound` for the process to end by itself; its exit status.
    pub fn wait_exit(&mut self, bound: std::time::Duration) -> Option<std::process::ExitStatus> {
        let start = std::time::Instant::now();
        while start.elapsed() < bound {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// The exit status if the process has ended (it is then reaped).
    pub fn try_exit_status(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for PivotProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
