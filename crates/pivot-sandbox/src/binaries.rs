//! Finding the MariaDB programs.

use crate::SandboxError;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone, Debug)]
pub struct Binaries {
    pub server: PathBuf,
    pub install_db: PathBuf,
    /// `(major, minor, patch)` of the server.
    pub version: (u32, u32, u32),
}

impl Binaries {
    pub fn locate() -> Result<Binaries, SandboxError> {
        let dirs = search_dirs();
        let server = find_in(&["mariadbd", "mysqld"], &dirs).ok_or(SandboxError::MissingBinary("mariadbd"))?;
        let install_db = find_in(&["mariadb-install-db", "mysql_install_db"], &dirs)
            .ok_or(SandboxError::MissingBinary("mariadb-install-db"))?;
        let out = Command::new(&server)
            .arg("--version")
            .output()
            .map_err(|e| SandboxError::Setup(format!("cannot run {}: {e}", server.display())))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !text.contains("MariaDB") {
            return Err(SandboxError::Setup(format!(
                "{} is not MariaDB ({}); the sandbox needs MariaDB: apt-get install -y mariadb-server",
                server.display(),
                text.trim()
            )));
        }
        let version =
            parse_version(&text).ok_or_else(|| SandboxError::Setup(format!("cannot read version from `{text}`")))?;
        Ok(Binaries { server, install_db, version })
    }

    pub fn at_least(&self, v: (u32, u32, u32)) -> bool {
        self.version >= v
    }
}

/// `mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for ...` -> (10, 11, 19)
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let after = text.split("Ver ").nth(1)?;
    let nums: Vec<u32> =
        after.split(|c: char| !c.is_ascii_digit()).take(3).map(|n| n.parse().ok()).collect::<Option<_>>()?;
    Some((nums[0], nums[1], nums[2]))
}

fn search_dirs() -> Vec<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // Debian puts the server in sbin, which a non-login root shell may lack.
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from));
    dirs
}

fn find_in(names: &[&str], dirs: &[PathBuf]) -> Option<PathBuf> {
    names.iter().flat_map(|n| dirs.iter().map(move |d| d.join(n))).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_only_executables_and_names_the_fix_when_missing() {
        let dir = std::env::temp_dir().join(format!("pivot-bin-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mysqld"), "").unwrap();
        assert_eq!(find_in(&["mariadbd", "mysqld"], std::slice::from_ref(&dir)), None, "not executable");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("mysqld"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_in(&["mariadbd", "mysqld"], std::slice::from_ref(&dir)), Some(dir.join("mysqld")));
        std::fs::remove_dir_all(&dir).unwrap();
        let msg = SandboxError::MissingBinary("mariadbd").to_string();
        assert!(msg.contains("apt-get install -y mariadb-server"), "{msg}");
    }

    #[test]
    fn reads_version_line() {
        let line = "mariadbd  Ver 10.11.19-MariaDB-0+deb12u1 for debian-linux-gnu on x86_64 (Debian 12)";
        assert_eq!(super::parse_version(line), Some((10, 11, 19)));
    }
}
