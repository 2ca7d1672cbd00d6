//! `[rebuild]` in `agent.toml`: what `pivot agent` needs to rebuild its
//! instance from another replica's backup, or to serve as the donor.
//!
//! ```toml
//! [rebuild]
//! datadir = "/var/lib/mysql"                        # the instance's datadir
//! stop_command = ["systemctl", "stop", "mariadb"]   # argv, no shell
//! start_command = ["systemctl", "start", "mariadb"] # must start it read-only (read_only = ON in my.cnf)
//! backup_user = "pivot_backup"                      # RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR
//! backup_password_file = "/etc/pivot/backup.password"  # mode 0600
//! # mariabackup = "mariabackup"     # or mariadb-backup; mbstream = "mbstream"
//! # command_timeout = "5m"          # stop and start commands
//! # max_duration = "6h"             # the whole stream and prepare
//! # stall_timeout = "2m"            # no byte from the donor for this long: fail
//! ```

use super::duration::Dur;
use super::load::{duration_in, Source};
use super::ConfigError;
use pivot_server::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentRebuild {
    datadir: Option<Spanned<String>>,
    stop_command: Option<Spanned<Vec<String>>>,
    start_command: Option<Spanned<Vec<String>>>,
    backup_user: Option<Spanned<String>>,
    backup_password_file: Option<Spanned<String>>,
    mariabackup: Option<Spanned<String>>,
    mbstream: Option<Spanned<String>>,
    command_timeout: Option<Spanned<Dur>>,
    max_duration: Option<Spanned<Dur>>,
    stall_timeout: Option<Spanned<Dur>>,
}

#[derive(Clone, Debug)]
pub struct AgentRebuild {
    pub datadir: PathBuf,
    pub stop_command: Vec<String>,
    pub start_command: Vec<String>,
    pub backup_user: String,
    pub backup_password: Secret,
    pub mariabackup: PathBuf,
    pub mbstream: PathBuf,
    pub command_timeout: Duration,
    pub max_duration: Duration,
    pub stall_timeout: Duration,
}

pub(super) fn rebuild(src: &Source, raw: &Spanned<RawAgentRebuild>) -> Result<AgentRebuild, ConfigError> {
    let r = raw.get_ref();
    let need = |what: &str, example: &str| src.err(raw, format!("[rebuild] {what} is missing: add {what} = {example}"));
    let datadir = r.datadir.as_ref().ok_or_else(|| need("datadir", "\"/var/lib/mysql\""))?;
    let datadir_path = PathBuf::from(datadir.get_ref());
    if !datadir_path.is_absolute()
        || datadir_path.parent().is_none()
        || datadir.get_ref().trim_end_matches('/').is_empty()
    {
        return Err(src.err(datadir, format!("datadir `{}` must be an absolute path below /", datadir.get_ref())));
    }
    let argv = |v: &Option<Spanned<Vec<String>>>, name: &str, example: &str| -> Result<Vec<String>, ConfigError> {
        let v = v.as_ref().ok_or_else(|| need(name, example))?;
        if v.get_ref().is_empty() || v.get_ref()[0].is_empty() {
            return Err(src.err(v, format!("{name} is empty: give the program and its arguments, like {example}")));
        }
        Ok(v.get_ref().clone())
    };
    let stop_command = argv(&r.stop_command, "stop_command", "[\"systemctl\", \"stop\", \"mariadb\"]")?;
    let start_command = argv(&r.start_command, "start_command", "[\"systemctl\", \"start\", \"mariadb\"]")?;
    let user = r.backup_user.as_ref().ok_or_else(|| need("backup_user", "\"pivot_backup\""))?;
    if user.get_ref().is_empty() {
        return Err(src.err(user, "backup_user is empty"));
    }
    let pw = r
        .backup_password_file
        .as_ref()
        .ok_or_else(|| need("backup_password_file", "\"/etc/pivot/backup.password\""))?;
    let backup_password =
        read_private(&src.resolve(pw.get_ref())).map_err(|e| src.err(pw, format!("backup_password_file {e}")))?;
    let program = |v: &Option<Spanned<String>>, default: &str| {
        PathBuf::from(v.as_ref().map_or(default, |s| s.get_ref().as_str()))
    };
    let (secs, mins) = (Duration::from_secs, |m: u64| Duration::from_secs(60 * m));
    Ok(AgentRebuild {
        datadir: PathBuf::from(datadir.get_ref().trim_end_matches('/')),
        stop_command,
        start_command,
        backup_user: user.get_ref().clone(),
        backup_password,
        mariabackup: program(&r.mariabackup, "mariabackup"),
        mbstream: program(&r.mbstream, "mbstream"),
        command_timeout: duration_in(src, &r.command_timeout, "command_timeout", mins(5), secs(1), mins(120))?,
        max_duration: duration_in(src, &r.max_duration, "max_duration", mins(360), secs(10), mins(60 * 24 * 7))?,
        stall_timeout: duration_in(src, &r.stall_timeout, "stall_timeout", mins(2), secs(1), mins(60))?,
    })
}

/// A password from a file only its owner may access (mode 0600 or
/// stricter): its first line.
fn read_private(path: &std::path::Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| format!("`{shown}` cannot be read: {e} (create it with mode 0600)"))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "`{shown}` has mode {mode:04o}, open to group or others: run `chmod 600 {shown}` (only its owner may \
             have access)"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("`{shown}` cannot be read: {e}"))?;
    Ok(Secret::new(text.lines().next().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use crate::config::AgentConfig;
    use std::os::unix::fs::PermissionsExt;

    const BASE: &str = "listen = \"127.0.0.1:9190\"\ntoken_file = \"agent.token\"\ninstance = \"db1:3306\"\n";
    const GOOD: &str =
        "[rebuild]\ndatadir = \"/var/lib/mysql/\"\nstop_command = [\"systemctl\", \"stop\", \"mariadb\"]\n\
        start_command = [\"systemctl\", \"start\", \"mariadb\"]\nbackup_user = \"pivot_backup\"\n\
        backup_password_file = \"backup.password\"\n";

    fn dir(password_mode: u32) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text, mode) in
            [("agent.token", "0123456789abcdef0123\n", 0o600), ("backup.password", "s3cret\n", password_mode)]
        {
            std::fs::write(d.path().join(name), text).unwrap();
            std::fs::set_permissions(d.path().join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        d
    }

    #[test]
    fn a_good_section_and_its_defaults() {
        let d = dir(0o600);
        let c = AgentConfig::parse(&d.path().join("agent.toml"), &format!("{BASE}{GOOD}")).unwrap();
        let r = c.rebuild.expect("[rebuild]");
        assert_eq!(r.datadir, std::path::PathBuf::from("/var/lib/mysql"));
        assert_eq!(r.stop_command, ["systemctl", "stop", "mariadb"]);
        assert_eq!(r.backup_password.expose(), "s3cret");
        assert_eq!(r.mariabackup, std::path::PathBuf::from("mariabackup"));
        assert_eq!(r.command_timeout, std::time::Duration::from_secs(300));
        assert_eq!(r.max_duration, std::time::Duration::from_secs(6 * 3600));
        assert!(!format!("{r:?}").contains("s3cret"), "the password never prints");
        let none = AgentConfig::parse(&d.path().join("agent.toml"), BASE).unwrap();
        assert!(none.rebuild.is_none());
    }

    #[test]
    fn mistakes_are_named() {
        let d = dir(0o600);
        let cases = [
            (GOOD.replace("datadir = \"/var/lib/mysql/\"\n", ""), ":4: [rebuild] datadir is missing"),
            (GOOD.replace("/var/lib/mysql/", "mysql"), "datadir `mysql` must be an absolute path"),
            (GOOD.replace("/var/lib/mysql/", "/"), "datadir `/` must be an absolute path"),
            (GOOD.replace("[\"systemctl\", \"stop\", \"mariadb\"]", "[]"), "stop_command is empty"),
            (GOOD.replace("start_command", "begin_command"), "unknown field `begin_command`"),
            (GOOD.replace("backup_user = \"pivot_backup\"\n", ""), "backup_user is missing"),
            (GOOD.replace("backup.password", "nothing.password"), "backup_password_file `"),
            (format!("{GOOD}max_duration = \"1s\"\n"), "max_duration 1s is out of range"),
        ];
        for (text, want) in cases {
            let e = AgentConfig::parse(&d.path().join("agent.toml"), &format!("{BASE}{text}")).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: `{e}` should contain `{want}`");
        }
        let open = dir(0o644);
        let e = AgentConfig::parse(&open.path().join("agent.toml"), &format!("{BASE}{GOOD}")).unwrap_err().to_string();
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
    }
}
