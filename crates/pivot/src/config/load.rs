//! Reading, checking and resolving the configuration file.

use super::duration::Dur;
use super::raw::*;
use super::*;
use pivot_server::Secret;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

/// A configuration problem, with where it is and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

/// Locates spans in the source text.
pub(super) struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    pub(super) fn new<'a>(path: &'a Path, text: &'a str) -> Source<'a> {
        Source { path, text }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())].matches('\n').count() + 1
    }

    pub(super) fn err_at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError { path: self.path.to_path_buf(), line: Some(self.line_of(span.start)), message: message.into() }
    }

    pub(super) fn err<T>(&self, s: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.err_at(s.span(), message)
    }

    pub(super) fn whole(&self, message: impl Into<String>) -> ConfigError {
        ConfigError { path: self.path.to_path_buf(), line: None, message: message.into() }
    }

    /// Relative paths in the file are relative to the file's directory.
    pub(super) fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message: format!("cannot read the configuration file: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Check `text` as if read from `path` (used for errors and relative paths).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let src = Source { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => src.err_at(span, message),
                None => src.whole(message),
            }
        })?;
        let pivot = pivot_settings(&src, &raw.pivot)?;
        if raw.clusters.is_empty() {
            return Err(
                src.whole("no [[cluster]] table: add one with a name, seeds and credentials (see pivot.example.toml)")
            );
        }
        let mut names = BTreeSet::new();
        let mut clusters = Vec::new();
        for c in &raw.clusters {
            let cluster = cluster(&src, c.get_ref())?;
            if !names.insert(cluster.name.clone()) {
                return Err(src.err(&c.get_ref().name, format!("cluster `{}` is defined twice", cluster.name)));
            }
            clusters.push(cluster);
        }
        let pivot = PivotSettings { dns: super::dns::dns(&src, &raw.pivot.dns, &clusters)?, ..pivot };
        Ok(Config { path: path.to_path_buf(), pivot, clusters })
    }
}

fn pivot_settings(src: &Source, raw: &RawPivot) -> Result<PivotSettings, ConfigError> {
    let state = raw.state.as_ref().map_or_else(|| src.resolve("pivot.db"), |s| src.resolve(s.get_ref()));
    let http = match &raw.http {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9099))),
        Some(s) if s.get_ref() == "off" => None,
        Some(s) => Some(s.get_ref().parse().map_err(|_| {
            src.err(s, format!("http `{}` is not an address: write it as 127.0.0.1:9099, or \"off\"", s.get_ref()))
        })?),
    };
    let api_token =
        raw.api_token_file.as_ref().map(|f| super::vip::token_file(src, f, "api_token_file")).transpose()?;
    // [pivot.dns] is checked once the clusters are (their names are labels).
    let webhook = super::webhook::webhook(src, &raw.webhook)?;
    Ok(PivotSettings { state, http, dns: None, api_token, webhook })
}

pub(super) fn duration_in(
    src: &Source,
    value: &Option<Spanned<Dur>>,
    name: &str,
    default: Duration,
    min: Duration,
    max: Duration,
) -> Result<Duration, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    let d = v.get_ref().0;
    if d < min || d > max {
        return Err(src.err(
            v,
            format!(
                "{name} {} is out of range: use {} to {}",
                humantime::format_duration(d),
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
    Ok(d)
}

pub(super) fn int_in(
    src: &Source,
    value: &Option<Spanned<i64>>,
    name: &str,
    default: i64,
    min: i64,
    max: i64,
) -> Result<i64, ConfigError> {
    let Some(v) = value else { return Ok(default) };
    let n = *v.get_ref();
    if n < min || n > max {
        return Err(src.err(v, format!("{name} {n} is out of range: use {min} to {max}")));
    }
    Ok(n)
}

pub(super) fn instance(src: &Source, s: &Spanned<String>, what: &str) -> Result<InstanceKey, ConfigError> {
    s.get_ref().parse().map_err(|e| src.err(s, format!("{what}: {e}")))
}

fn cluster(src: &Source, raw: &RawCluster) -> Result<ClusterConfig, ConfigError> {
    let name = raw.name.get_ref().clone();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(src.err(&raw.name, format!("cluster name `{name}` must be letters, digits, `-` or `_`")));
    }
    if raw.seeds.get_ref().is_empty() {
        return Err(src.err(&raw.seeds, format!("cluster `{name}` has no seeds: list at least one host:port")));
    }
    let seeds = raw.seeds.get_ref().iter().map(|s| instance(src, s, "seed")).collect::<Result<Vec<_>, _>>()?;
    let credentials = credentials_of(src, &raw.credentials, "credentials")?;
    let replication = raw.replication.as_ref().map(|r| credentials_of(src, r, "replication")).transpose()?;
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    let poll_interval = duration_in(src, &raw.poll_interval, "poll_interval", ms(250), ms(10), secs(3600))?;
    let probe_timeout = duration_in(src, &raw.probe_timeout, "probe_timeout", secs(1), ms(10), secs(600))?;
    let lag_threshold = duration_in(src, &raw.lag_threshold, "lag_threshold", secs(10), secs(1), secs(86400 * 7))?;
    let max_instances = int_in(src, &raw.max_instances, "max_instances", 256, 1, 100_000)? as usize;
    let d = &raw.detection;
    let detection = DetectionSettings {
        unreachable_after: int_in(src, &d.unreachable_after, "unreachable_after", 1, 1, 100)? as u32,
        confirm_window_ms: duration_in(src, &d.confirm_window, "confirm_window", secs(1), ms(100), secs(600))?
            .as_millis() as u64,
        lag_threshold_s: lag_threshold.as_secs(),
    };
    let read_max_lag = duration_in(src, &raw.read_max_lag, "read_max_lag", lag_threshold, secs(0), secs(86400 * 7))?;
    let dual_primary = match &raw.dual_primary {
        Some(v) if *v.get_ref() => {
            if seeds.len() > 2 {
                return Err(src.err(
                    v,
                    format!(
                        "dual_primary = true: an active/passive pair has two instances, but `{name}` lists {} seeds; \
                         list the two servers, or remove dual_primary",
                        seeds.len()
                    ),
                ));
            }
            if replication.is_none() {
                return Err(src.err(
                    v,
                    "dual_primary = true needs [cluster.replication]: the account the active replicates from the \
                     passive with; add it, or remove dual_primary",
                ));
            }
            true
        }
        _ => false,
    };
    Ok(ClusterConfig {
        failover: failover(src, &raw.failover)?,
        switchover: super::switchover::switchover(src, &raw.switchover)?,
        hooks: hooks(src, &raw.hooks)?,
        etcd: super::kv::etcd(src, &raw.etcd)?,
        consul: super::kv::consul(src, &raw.consul)?,
        proxy: super::proxy::proxy(src, &name, &raw.proxy)?,
        vip: super::vip::vip(src, &raw.vip)?,
        rebuild: super::rebuild::rebuild(src, &raw.rebuild)?,
        read_max_lag,
        auto_rejoin: raw.auto_rejoin.unwrap_or(true),
        alert_interval: duration_in(src, &raw.alert_interval, "alert_interval", secs(60), secs(0), secs(86400))?,
        heartbeat: super::heartbeat::heartbeat(src, &raw.heartbeat, poll_interval, probe_timeout)?,
        dual_primary,
        name,
        seeds,
        credentials,
        replication,
        poll_interval,
        probe_timeout,
        max_instances,
        detection,
    })
}

fn credentials_of(src: &Source, raw: &Spanned<RawCredentials>, table: &str) -> Result<Credentials, ConfigError> {
    let c = raw.get_ref();
    let given = [c.password.is_some(), c.password_file.is_some(), c.password_env.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(src.err(raw, format!("[{table}] needs exactly one of password, password_file or password_env")));
    }
    let password = if let Some(p) = &c.password {
        p.get_ref().clone()
    } else if let Some(f) = &c.password_file {
        let path = src.resolve(f.get_ref());
        let text = std::fs::read_to_string(&path).map_err(|e| {
            src.err(
                f,
                format!(
                    "password_file `{}` cannot be read: {e} (create it with mode 0600, or use password_env)",
                    path.display()
                ),
            )
        })?;
        check_private(src, f, &path)?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else {
        let var = c.password_env.as_ref().expect("one source is set");
        std::env::var(var.get_ref())
            .map_err(|_| src.err(var, format!("password_env `{}` is not set in pivot's environment", var.get_ref())))?
    };
    if c.user.get_ref().is_empty() {
        return Err(src.err(&c.user, format!("[{table}] user is empty")));
    }
    Ok(Credentials { user: c.user.get_ref().clone(), password: Secret::new(password) })
}

/// Like ssh with a private key: a password file others can read (or write)
/// is refused.
fn check_private(src: &Source, at: &Spanned<String>, path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| src.err(at, format!("password_file `{}` cannot be read: {e}", path.display())))?
        .permissions()
        .mode()
        & 0o7777;
    let open_to = match (mode & 0o044 != 0, mode & 0o022 != 0) {
        (false, false) => return Ok(()),
        (true, false) => "readable",
        (false, true) => "writable",
        (true, true) => "readable and writable",
    };
    Err(src.err(
        at,
        format!(
            "password_file `{p}` has mode {mode:04o}, {open_to} by group or others: run `chmod 600 {p}` \
             (only its owner may have access)",
            p = path.display()
        ),
    ))
}

fn failover(src: &Source, raw: &RawFailover) -> Result<FailoverConfig, ConfigError> {
    let secs = Duration::from_secs;
    let preferred = raw.preferred.iter().map(|s| instance(src, s, "preferred")).collect::<Result<Vec<_>, _>>()?;
    let never_promote =
        raw.never_promote.iter().map(|s| instance(src, s, "never_promote")).collect::<Result<Vec<_>, _>>()?;
    if let Some((i, _)) = raw.never_promote.iter().enumerate().find(|(i, _)| preferred.contains(&never_promote[*i])) {
        return Err(src.err(&raw.never_promote[i], format!("{} is both preferred and never_promote", never_promote[i])));
    }
    let semi_sync = match &raw.semi_sync {
        None => SemiSyncPolicy::Auto,
        Some(s) => match s.get_ref().as_str() {
            "auto" => SemiSyncPolicy::Auto,
            "on" => SemiSyncPolicy::On,
            "off" => SemiSyncPolicy::Off,
            other => return Err(src.err(s, format!("semi_sync `{other}` must be \"auto\", \"on\" or \"off\""))),
        },
    };
    Ok(FailoverConfig {
        automatic: raw.automatic.unwrap_or(true),
        block_period: duration_in(src, &raw.block_period, "block_period", secs(1800), secs(0), secs(86400 * 7))?,
        relay_apply_timeout: duration_in(
            src,
            &raw.relay_apply_timeout,
            "relay_apply_timeout",
            secs(30),
            Duration::from_millis(100),
            secs(86400),
        )?,
        max_candidate_lag: duration_in(
            src,
            &raw.max_candidate_lag,
            "max_candidate_lag",
            secs(120),
            secs(0),
            secs(86400 * 7),
        )?,
        step_timeout: duration_in(
            src,
            &raw.step_timeout,
            "step_timeout",
            secs(10),
            Duration::from_millis(100),
            secs(3600),
        )?,
        preferred,
        never_promote,
        semi_sync,
    })
}

fn hooks(src: &Source, raw: &RawHooks) -> Result<HooksConfig, ConfigError> {
    let argv = |v: &Option<Spanned<Vec<String>>>, name: &str| -> Result<Option<Vec<String>>, ConfigError> {
        let Some(v) = v else { return Ok(None) };
        let Some(program) = v.get_ref().first() else {
            return Err(src.err(v, format!("hook {name} is empty: give [\"/path/to/program\", \"arg\", ...]")));
        };
        check_program(src, v, name, program)?;
        let mut argv = v.get_ref().clone();
        argv[0] = src.resolve(program).display().to_string();
        Ok(Some(argv))
    };
    let mha = match &raw.mha_master_ip_failover {
        None => None,
        Some(p) => {
            check_program(src, p, "mha_master_ip_failover", p.get_ref())?;
            Some(src.resolve(p.get_ref()).display().to_string())
        }
    };
    Ok(HooksConfig {
        timeout: duration_in(
            src,
            &raw.timeout,
            "hooks timeout",
            Duration::from_secs(10),
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?,
        pre_failover: argv(&raw.pre_failover, "pre_failover")?,
        post_failover: argv(&raw.post_failover, "post_failover")?,
        post_unsuccessful_failover: argv(&raw.post_unsuccessful_failover, "post_unsuccessful_failover")?,
        pre_switchover: argv(&raw.pre_switchover, "pre_switchover")?,
        post_switchover: argv(&raw.post_switchover, "post_switchover")?,
        fence: argv(&raw.fence, "fence")?,
        alert: argv(&raw.alert, "alert")?,
        mha_master_ip_failover: mha,
    })
}

fn check_program<T>(src: &Source, at: &Spanned<T>, name: &str, program: &str) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let path = src.resolve(program);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(src.err(at, format!("hook {name}: `{}` is not an executable file (chmod +x it)", path.display()))),
        Err(e) => Err(src.err(at, format!("hook {name}: `{}`: {e}", path.display()))),
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
