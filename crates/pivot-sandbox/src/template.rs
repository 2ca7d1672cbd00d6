//! The template datadir: initialized once with the sandbox users, then
//! copied to every node.

use crate::binaries::Binaries;
use crate::files::{self, Passwords};
use crate::{process, SandboxError};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// One initialized datadir with the sandbox users, copied to every node.
pub fn make_template(binaries: &Binaries, template: &Path, passwords: &Passwords) -> Result<(), SandboxError> {
    let log = template.with_extension("log");
    // A private tmpdir: bootstraps running side by side collide in /tmp.
    let tmp = template.with_extension("tmp");
    crate::setup::mkdir(&tmp)?;
    let tmpdir = format!("--tmpdir={}", tmp.display());
    let log_file = || std::fs::File::create(&log).map_err(|e| SandboxError::file(&log, e));
    let user = if unsafe { libc::geteuid() } == 0 { Some("--user=root") } else { None };
    let status = Command::new(&binaries.install_db)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", template.display()))
        .args(user)
        .arg("--auth-root-authentication-method=normal")
        .arg("--skip-test-db")
        .arg(&tmpdir)
        .arg("--innodb-log-file-size=8M")
        .stdout(log_file()?)
        .stderr(log_file()?)
        .status()
        .map_err(|e| SandboxError::Setup(format!("cannot run {}: {e}", binaries.install_db.display())))?;
    if !status.success() {
        return Err(SandboxError::Setup(format!(
            "{} failed; end of {}:\n{}",
            binaries.install_db.display(),
            log.display(),
            process::log_tail(&log, 15)
        )));
    }
    let mut child = Command::new(&binaries.server)
        .arg("--no-defaults")
        .arg("--bootstrap")
        .arg(format!("--datadir={}", template.display()))
        .arg(&tmpdir)
        .args(user)
        .arg("--innodb-log-file-size=8M")
        .arg("--innodb-use-native-aio=OFF")
        .stdin(Stdio::piped())
        .stdout(log_file()?)
        .stderr(log_file()?)
        .spawn()
        .map_err(|e| SandboxError::Setup(format!("cannot run {} --bootstrap: {e}", binaries.server.display())))?;
    // Passwords go through stdin, never through arguments.
    let sql = files::bootstrap_sql(passwords, binaries.at_least((10, 5, 9)));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(sql.as_bytes())
        .map_err(|e| SandboxError::Setup(format!("bootstrap: {e}")))?;
    let status = child.wait().map_err(|e| SandboxError::Setup(format!("bootstrap: {e}")))?;
    if !status.success() {
        return Err(SandboxError::Setup(format!(
            "creating the sandbox users failed; end of {}:\n{}",
            log.display(),
            process::log_tail(&log, 15)
        )));
    }
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

pub fn copy_dir(from: &Path, to: &Path) -> Result<(), SandboxError> {
    crate::setup::mkdir(to)?;
    for entry in std::fs::read_dir(from).map_err(|e| SandboxError::file(from, e))? {
        let entry = entry.map_err(|e| SandboxError::file(from, e))?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(|e| SandboxError::file(entry.path(), e))?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| SandboxError::file(&target, e))?;
        }
    }
    Ok(())
}
