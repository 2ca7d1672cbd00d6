//! `agent.toml`: the configuration of `pivot agent` on a database host. Its
//! own small file, checked whole like pivot's, with the file and line of a
//! mistake:
//!
//! ```toml
//! listen = "10.0.0.1:9190"          # pivot's commands and the health checks
//! token_file = "/etc/pivot/agent.token"  # mode 0600; the same token as [cluster.vip]
//! instance = "10.0.0.1:3306"        # the local MySQL, as pivot's configuration names it
//! interface = "eth0"                # optional: where the address goes (default: [cluster.vip]'s)
//! ```

use super::load::Source;
use super::ConfigError;
use pivot_core::InstanceKey;
use pivot_server::Secret;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    listen: Option<Spanned<String>>,
    token_file: Option<Spanned<String>>,
    instance: Option<Spanned<String>>,
    interface: Option<Spanned<String>>,
    rebuild: Option<Spanned<super::agent_rebuild::RawAgentRebuild>>,
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub path: PathBuf,
    /// Where pivot's commands and the health checks are served (HTTP).
    pub listen: SocketAddr,
    /// Every request must carry it as `Authorization: Bearer`.
    pub token: Secret,
    /// The local instance, as pivot names it in its route table.
    pub instance: InstanceKey,
    /// Overrides the interface pivot names for the virtual address.
    pub interface: Option<String>,
    /// `[rebuild]`: how to rebuild the instance or serve as a donor.
    pub rebuild: Option<super::agent_rebuild::AgentRebuild>,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read the agent's configuration file: {e}"),
        })?;
        AgentConfig::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<AgentConfig, ConfigError> {
        let src = Source::new(path, text);
        let raw: RawAgent = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => src.err_at(span, message),
                None => src.whole(message),
            }
        })?;
        let need = |what: &str, example: &str| src.whole(format!("{what} is missing: add {what} = \"{example}\""));
        let listen_raw = raw.listen.ok_or_else(|| need("listen", "10.0.0.1:9190"))?;
        let listen: SocketAddr = listen_raw.get_ref().parse().map_err(|_| {
            src.err(&listen_raw, format!("listen `{}` is not an address like 10.0.0.1:9190", listen_raw.get_ref()))
        })?;
        let token_raw = raw.token_file.ok_or_else(|| need("token_file", "/etc/pivot/agent.token"))?;
        let token = super::vip::token_file(&src, &token_raw, "the agent's token")?;
        let instance_raw = raw.instance.ok_or_else(|| need("instance", "10.0.0.1:3306"))?;
        let instance = super::load::instance(&src, &instance_raw, "instance")?;
        let interface = match raw.interface {
            None => None,
            Some(i) => {
                super::vip::interface_name(i.get_ref()).map_err(|e| src.err(&i, e))?;
                Some(i.into_inner())
            }
        };
        let rebuild = raw.rebuild.as_ref().map(|r| super::agent_rebuild::rebuild(&src, r)).transpose()?;
        Ok(AgentConfig { path: path.to_path_buf(), listen, token, instance, interface, rebuild })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn with_token(mode: u32, token: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("agent.token");
        std::fs::write(&t, token).unwrap();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(mode)).unwrap();
        dir
    }

    const GOOD: &str = "listen = \"127.0.0.1:9190\"\ntoken_file = \"agent.token\"\ninstance = \"db1:3306\"\n";

    #[test]
    fn a_good_file() {
        let dir = with_token(0o600, "0123456789abcdef0123\n");
        let c = AgentConfig::parse(&dir.path().join("agent.toml"), GOOD).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9190".parse().unwrap());
        assert_eq!(c.token.expose(), "0123456789abcdef0123");
        assert_eq!(c.instance, "db1:3306".parse().unwrap());
        assert_eq!(c.interface, None);
        assert!(!format!("{c:?}").contains("0123456789abcdef"), "the token never prints");
    }

    #[test]
    fn mistakes_are_named_with_their_line() {
        let dir = with_token(0o600, "0123456789abcdef0123\n");
        let cases = [
            ("", "listen is missing"),
            ("listen = \"127.0.0.1:9190\"\ninstance = \"db1:3306\"\n", "token_file is missing"),
            ("listen = \"nowhere\"\n", ":1: listen `nowhere` is not an address"),
            (&format!("{GOOD}interface = \"a/b\"\n"), ":4: interface `a/b` is not an interface name"),
            (&format!("{GOOD}vip = \"10.0.0.1\"\n"), "unknown field `vip`"),
            ("listen = \"127.0.0.1:9190\"\ntoken_file = \"agent.token\"\ninstance = \"db1\"\n", ":3: instance"),
        ];
        for (text, want) in cases {
            let e = AgentConfig::parse(&dir.path().join("agent.toml"), text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: `{e}` should contain `{want}`");
        }
    }

    #[test]
    fn a_token_others_can_read_or_a_short_one_is_refused() {
        for (mode, token, want) in [
            (0o640, "0123456789abcdef0123", "mode 0640, open to group or others: run `chmod 600"),
            (0o604, "0123456789abcdef0123", "mode 0604"),
            (0o600, "short", "a token of 5 characters"),
            (0o600, "two words here and more", "one line without spaces"),
        ] {
            let dir = with_token(mode, token);
            let e = AgentConfig::parse(&dir.path().join("agent.toml"), GOOD).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(":2:"), "{mode:o} {token}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let e = AgentConfig::parse(&dir.path().join("agent.toml"), GOOD).unwrap_err().to_string();
        assert!(e.contains("cannot be read") && e.contains("create it with mode 0600"), "{e}");
    }
}
