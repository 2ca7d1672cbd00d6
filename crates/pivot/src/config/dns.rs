//! `[pivot.dns]`: the optional authoritative DNS responder for the routes
//! (`crate::routes::dns`).

use super::duration::Dur;
use super::load::{duration_in, Source};
use super::{ClusterConfig, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use toml::Spanned;

/// Where and for which zone pivot answers DNS queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsConfig {
    /// UDP and TCP, the same address.
    pub listen: SocketAddr,
    /// The zone, lowercase, without a trailing dot (`db.example`).
    pub domain: String,
    /// The TTL of every answer, negative ones included (whole seconds).
    pub ttl: Duration,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub listen: Option<Spanned<String>>,
    pub domain: Spanned<String>,
    pub ttl: Option<Spanned<Dur>>,
}

/// The longest name pivot serves below a cluster's label, with its dot:
/// an IPv6 address label (8 groups of up to 4 digits, 7 `-`) and `.`.
const LONGEST_PREFIX: usize = 40;

/// Validate `[pivot.dns]` (absent: no DNS). The cluster names become DNS
/// labels, so they are checked too.
pub(super) fn dns(
    src: &Source,
    raw: &Option<Spanned<RawDns>>,
    clusters: &[ClusterConfig],
) -> Result<Option<DnsConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let d = raw.get_ref();
    let listen = match &d.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 5353)),
        Some(s) => s.get_ref().parse().map_err(|_| {
            src.err(
                s,
                format!(
                    "[pivot.dns] listen `{}` is not an address: write it as 127.0.0.1:5353 (UDP and TCP)",
                    s.get_ref()
                ),
            )
        })?,
    };
    let domain = domain_name(d.domain.get_ref()).map_err(|why| {
        src.err(&d.domain, format!("[pivot.dns] domain `{}` is not a DNS name: {why}", d.domain.get_ref()))
    })?;
    let ttl =
        duration_in(src, &d.ttl, "[pivot.dns] ttl", Duration::from_secs(1), Duration::ZERO, Duration::from_secs(3600))?;
    if ttl.subsec_nanos() != 0 {
        let at = d.ttl.as_ref().expect("a fraction is only read from the file");
        return Err(src.err(
            at,
            format!(
                "[pivot.dns] ttl {} is not whole seconds: DNS counts TTLs in seconds",
                humantime::format_duration(ttl)
            ),
        ));
    }
    let mut seen = BTreeMap::new();
    for c in clusters {
        let label = c.name.to_ascii_lowercase();
        if c.name.len() > 63 {
            return Err(src.err(
                raw,
                format!("cluster name `{}` is longer than 63 characters and cannot be a DNS label: shorten it or leave [pivot.dns] out", c.name),
            ));
        }
        if LONGEST_PREFIX + label.len() + 1 + domain.len() > 253 {
            return Err(src.err(
                &d.domain,
                format!("names under cluster `{}` would be longer than 253 characters: shorten the domain", c.name),
            ));
        }
        if let Some(other) = seen.insert(label, c.name.clone()) {
            return Err(src.err(
                raw,
                format!(
                    "clusters `{other}` and `{}` have the same DNS name (DNS ignores case): rename one or leave [pivot.dns] out",
                    c.name
                ),
            ));
        }
    }
    Ok(Some(DnsConfig { listen, domain, ttl }))
}

/// `db.example` or `db.example.`: letters, digits and `-` (not first or
/// last), labels of 1 to 63 characters, 253 in all. Returned lowercase,
/// without the trailing dot.
fn domain_name(text: &str) -> Result<String, String> {
    let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if name.is_empty() {
        return Err("it is empty (the root zone is not pivot's to answer): write it like db.example".into());
    }
    if name.len() > 253 {
        return Err("longer than 253 characters".into());
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row, or a leading dot)".into());
        }
        if label.len() > 63 {
            return Err(format!("label `{label}` is longer than 63 characters"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("label `{label}` may only have letters, digits and `-`"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label `{label}` starts or ends with `-`"));
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::path::Path;

    const GOOD: &str = r#"
[pivot]
state = "pivot.db"

[pivot.dns]
listen = "127.0.0.1:15353"
domain = "DB.Example."
ttl = "2s"

[[cluster]]
name = "Main"
seeds = ["127.0.0.1:3306"]

[cluster.credentials]
user = "pivot"
password = "secret"
"#;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Path::new("/etc/pivot/pivot.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn dns_is_off_unless_configured() {
        let text =
            GOOD.replace("[pivot.dns]\nlisten = \"127.0.0.1:15353\"\ndomain = \"DB.Example.\"\nttl = \"2s\"\n", "");
        assert_eq!(parse(&text).unwrap().pivot.dns, None);
        let c = parse(GOOD).unwrap().pivot.dns.expect("configured");
        assert_eq!(c.listen, "127.0.0.1:15353".parse().unwrap());
        assert_eq!(c.domain, "db.example", "lowercase, without the trailing dot");
        assert_eq!(c.ttl, std::time::Duration::from_secs(2));
        let c = parse(&GOOD.replace("listen = \"127.0.0.1:15353\"\n", "").replace("ttl = \"2s\"\n", "")).unwrap();
        let c = c.pivot.dns.unwrap();
        assert_eq!((c.listen, c.ttl), ("127.0.0.1:5353".parse().unwrap(), std::time::Duration::from_secs(1)));
    }

    #[test]
    fn bad_dns_settings_name_the_line() {
        let cases: &[(&str, &str, &str)] = &[
            ("domain = \"DB.Example.\"", "domain = \"db..example\"", ":7: [pivot.dns] domain `db..example` is not a DNS name: it has an empty label"),
            ("domain = \"DB.Example.\"", "domain = \"db_x.example\"", ":7: [pivot.dns] domain `db_x.example` is not a DNS name: label `db_x` may only have letters, digits and `-`"),
            ("domain = \"DB.Example.\"", "domain = \"-db.example\"", "starts or ends with `-`"),
            ("domain = \"DB.Example.\"", "domain = \".\"", "it is empty"),
            ("domain = \"DB.Example.\"\n", "", "missing field `domain`"),
            ("listen = \"127.0.0.1:15353\"", "listen = \"localhost:53\"", ":6: [pivot.dns] listen `localhost:53` is not an address"),
            ("ttl = \"2s\"", "ttl = \"2 hours\"", ":8: [pivot.dns] ttl 2h is out of range: use 0s to 1h"),
            ("ttl = \"2s\"", "ttl = \"1500ms\"", ":8: [pivot.dns] ttl 1s 500ms is not whole seconds"),
            ("ttl = \"2s\"", "ttl = \"soon\"", ":8: `soon` is not a duration"),
            ("ttl = \"2s\"", "tll = \"2s\"", ":8: unknown field `tll`"),
        ];
        for (from, to, want) in cases {
            let text = GOOD.replace(from, to);
            assert_ne!(text, GOOD, "{from}");
            let e = parse(&text).expect_err(to);
            assert!(e.starts_with("/etc/pivot/pivot.toml"), "{e}");
            assert!(e.contains(want), "{to}: want `{want}` in: {e}");
        }
    }

    #[test]
    fn cluster_names_must_be_distinct_dns_labels() {
        let second = "\n[[cluster]]\nname = \"main\"\nseeds = [\"127.0.0.1:3307\"]\n[cluster.credentials]\nuser = \"pivot\"\npassword = \"secret\"\n";
        let e = parse(&format!("{GOOD}{second}")).unwrap_err();
        assert!(e.contains(":5: clusters `Main` and `main` have the same DNS name"), "{e}");
        let without_dns =
            GOOD.replace("[pivot.dns]\nlisten = \"127.0.0.1:15353\"\ndomain = \"DB.Example.\"\nttl = \"2s\"\n", "");
        assert!(parse(&format!("{without_dns}{second}")).is_ok(), "only DNS cares about case");
        let long = "x".repeat(64);
        let e = parse(&GOOD.replace("name = \"Main\"", &format!("name = \"{long}\""))).unwrap_err();
        assert!(e.contains("longer than 63 characters and cannot be a DNS label"), "{e}");
    }
}
