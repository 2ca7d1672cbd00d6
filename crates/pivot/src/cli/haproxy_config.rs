//! `pivot haproxy-config --cluster C`: a working HAProxy configuration whose
//! health checks ask pivot, so HAProxy follows pivot's decision and never
//! makes its own.
//!
//! HAProxy sends the same check request to every server of a backend. Each
//! server gets its own answer from one pivot port: the check URL carries
//! the server's name (`uri-lf .../%[srv_name]`), and the name is the check
//! and the instance (`primary_10.0.0.1:3306`). Nothing runs on the database
//! hosts, and the way back into rotation is an ordinary `rise`: a replica
//! whose replication is fixed answers 200 again and HAProxy brings it back.

use super::out::emit;
use crate::config::Config;
use pivot_core::InstanceKey;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

/// What the configuration is made of.
pub struct HaproxySpec<'a> {
    pub cluster: &'a str,
    pub instances: &'a [InstanceKey],
    /// pivot's HTTP address (the checks).
    pub pivot_http: SocketAddr,
    pub write_bind: SocketAddr,
    pub read_bind: SocketAddr,
    /// Replicas lagging more are out of the read backend.
    pub max_lag_s: u64,
}

/// The server name HAProxy sends back in the check URL: check and instance.
/// An IPv6 host goes without its brackets (HAProxy refuses `[` in a name);
/// the port is after the last `:`, which is how an instance is read back.
fn server(check: &str, key: &InstanceKey) -> String {
    format!("{check}_{}:{}", key.host, key.port)
}

pub fn render(s: &HaproxySpec) -> String {
    let c = s.cluster;
    let check_at = format!("check addr {} port {}", s.pivot_http.ip(), s.pivot_http.port());
    let mut out = format!(
        "# HAProxy configuration for pivot cluster `{c}`, written by `pivot haproxy-config`.\n\
         # Health checks ask pivot ({http}); every server's check URL names the server, so each\n\
         # gets its own answer: 200 when it is what the backend wants under pivot's current epoch.\n\
         # Regenerate it when instances are added to or removed from the cluster.\n\
         global\n    maxconn 4096\n\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 8h\n    timeout server 8h\n    timeout check 1s\n\n",
        http = s.pivot_http
    );
    out.push_str(&format!(
        "# Writes: only the primary of the current epoch. A server marked down (a recovery started,\n\
         # a new primary elsewhere) has its sessions shut down at once.\n\
         frontend {c}_write\n    bind {}\n    default_backend {c}_write\n\n\
         backend {c}_write\n    option httpchk\n    http-check send meth GET uri-lf /haproxy/{c}/%[srv_name]\n    \
         http-check expect status 200\n    \
         default-server {check_at} inter 500ms fall 1 rise 1 on-marked-down shutdown-sessions\n",
        s.write_bind
    ));
    for k in s.instances {
        out.push_str(&format!("    server {} {k}\n", server("primary", k)));
    }
    out.push_str(&format!(
        "\n# Reads: replicas replicating from the primary within {lag} s (least connections); the\n\
         # primary as a backup when no replica is fit.\n\
         frontend {c}_read\n    bind {}\n    default_backend {c}_read\n\n\
         backend {c}_read\n    balance leastconn\n    option httpchk\n    \
         http-check send meth GET uri-lf /haproxy/{c}/%[srv_name]?lag={lag}s\n    http-check expect status 200\n    \
         default-server {check_at} inter 1s fall 1 rise 1 on-marked-down shutdown-sessions\n",
        s.read_bind,
        lag = s.max_lag_s
    ));
    for k in s.instances {
        out.push_str(&format!("    server {} {k}\n", server("replica", k)));
    }
    for k in s.instances {
        out.push_str(&format!("    server {} {k} backup\n", server("primary", k)));
    }
    out
}

/// Read a server name of [`render`]'s: `(check, instance)`.
pub fn parse_server(name: &str) -> Option<(&str, &str)> {
    name.split_once('_')
}

pub async fn run(
    config_path: &Path,
    cluster: &str,
    write_bind: SocketAddr,
    read_bind: SocketAddr,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config_path)?;
    let c = super::cluster_of(&config, cluster)?;
    let Some(http) = config.pivot.http else {
        anyhow::bail!(
            "the health checks are served on pivot's HTTP port, which is off in {}: set `http` in [pivot]",
            config.path.display()
        );
    };
    let state = pivot_state::open_existing(&config.pivot.state).ok();
    let (view, _) = super::observe(c, state.as_deref()).await;
    let mut instances: Vec<InstanceKey> = view.keys().cloned().chain(c.seeds.iter().cloned()).collect();
    instances.sort();
    instances.dedup();
    let spec = HaproxySpec {
        cluster,
        instances: &instances,
        pivot_http: http,
        write_bind,
        read_bind,
        max_lag_s: c.read_max_lag.as_secs(),
    };
    emit(&render(&spec))?;
    Ok(ExitCode::from(super::EXIT_OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cluster `main`, pivot on 127.0.0.1:9099, HAProxy on 3306/3307, lag 10 s.
    fn render_main(instances: &[InstanceKey]) -> String {
        render(&HaproxySpec {
            cluster: "main",
            instances,
            pivot_http: "127.0.0.1:9099".parse().unwrap(),
            write_bind: "0.0.0.0:3306".parse().unwrap(),
            read_bind: "0.0.0.0:3307".parse().unwrap(),
            max_lag_s: 10,
        })
    }

    #[test]
    fn every_instance_is_a_write_server_a_read_server_and_a_read_backup_checked_by_pivot() {
        let instances: Vec<InstanceKey> = vec!["10.0.0.1:3306".parse().unwrap(), "10.0.0.2:3306".parse().unwrap()];
        let text = render_main(&instances);
        for line in [
            "bind 0.0.0.0:3306",
            "bind 0.0.0.0:3307",
            "uri-lf /haproxy/main/%[srv_name]\n",
            "uri-lf /haproxy/main/%[srv_name]?lag=10s",
            "check addr 127.0.0.1 port 9099",
            "on-marked-down shutdown-sessions",
            "balance leastconn",
            "server primary_10.0.0.1:3306 10.0.0.1:3306\n",
            "server replica_10.0.0.2:3306 10.0.0.2:3306\n",
            "server primary_10.0.0.2:3306 10.0.0.2:3306 backup\n",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
        assert_eq!(parse_server("replica_10.0.0.2:3306"), Some(("replica", "10.0.0.2:3306")));
        assert_eq!(parse_server("read-only_h:1"), Some(("read-only", "h:1")));
    }

    #[test]
    fn ipv6_instances_get_server_names_haproxy_accepts_and_pivot_reads_back() {
        // HAProxy refuses `[` in a server name ("character '[' is not
        // permitted"): the whole configuration would not load.
        let v6: InstanceKey = "[fd00::5]:3306".parse().unwrap();
        let instances = vec![v6.clone(), "10.0.0.1:3306".parse().unwrap()];
        let text = render_main(&instances);
        for line in text.lines().filter(|l| l.trim_start().starts_with("server ")) {
            let name = line.split_whitespace().nth(1).unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)),
                "`{name}` is not a valid HAProxy server name"
            );
            let (_, instance) = parse_server(name).unwrap();
            assert!(instances.contains(&instance.parse().unwrap()), "{name} reads back as {instance}");
        }
        assert!(text.contains("server primary_fd00::5:3306 [fd00::5]:3306\n"), "{text}");
    }
}
