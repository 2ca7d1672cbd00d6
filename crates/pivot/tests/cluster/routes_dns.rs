//! `[pivot.dns]` asked with the real `dig` (Debian package dnsutils): the
//! primary's address and port, the replicas, REFUSED outside the zone; after
//! a kill -9 of the primary the names lead to the instance pivot promoted
//! and never back to the old one. Every sandbox instance is 127.0.0.1, so
//! the SRV port is what tells them apart.

use crate::support::*;
use pivot_drill::eventually;
use std::cell::RefCell;
use std::collections::BTreeSet;

const DOMAIN: &str = "db.example";

/// `dig @127.0.0.1 -p PORT <args>`: its output, or why there is none.
async fn dig(port: u16, args: &[&str]) -> Result<String, String> {
    let out = tokio::process::Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), "+time=2", "+tries=1"])
        .args(args)
        .output()
        .await
        .map_err(|e| format!("dig (Debian package dnsutils; scripts/deps.sh installs it): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("dig {args:?}: {}: {text}{}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(text)
}

/// `+short` answer lines, sorted.
async fn short(port: u16, name: &str, qtype: &str, tcp: bool) -> Result<Vec<String>, String> {
    let mut args = vec![name, qtype, "+short"];
    if tcp {
        args.push("+tcp");
    }
    let mut lines: Vec<String> = dig(port, &args).await?.lines().map(str::to_string).collect();
    lines.sort();
    Ok(lines)
}

/// The response code in dig's header line (`status: NXDOMAIN,`).
async fn status(port: u16, name: &str, qtype: &str) -> Result<String, String> {
    let text = dig(port, &[name, qtype]).await?;
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map(str::to_string)
        .ok_or(format!("no status in: {text}"))
}

/// The ports of `_mysql._tcp.<kind>.sandbox.<domain>` SRV records, each
/// checked to point at the sandbox's one address name.
async fn srv_ports(port: u16, kind: &str, tcp: bool) -> Result<BTreeSet<u16>, String> {
    let lines = short(port, &format!("_mysql._tcp.{kind}.sandbox.{DOMAIN}"), "SRV", tcp).await?;
    let mut ports = BTreeSet::new();
    for l in &lines {
        match l.split_whitespace().collect::<Vec<_>>().as_slice() {
            [_prio, _weight, p, target] if *target == format!("127-0-0-1.sandbox.{DOMAIN}.") => {
                ports.insert(p.parse::<u16>().map_err(|e| format!("{l}: {e}"))?);
            }
            _ => return Err(format!("not an SRV record of the sandbox: {l}")),
        }
    }
    Ok(ports)
}

fn port_of(key: &str) -> u16 {
    key.parse::<pivot_core::InstanceKey>().unwrap().port
}

#[tokio::test(flavor = "multi_thread")]
async fn dig_finds_the_primary_and_replicas_and_follows_a_failover() {
    let dns = free_port();
    let mut rig = Rig::start(3, false, |_| {
        format!("[pivot.dns]\nlisten = \"127.0.0.1:{dns}\"\ndomain = \"{DOMAIN}\"\nttl = \"1s\"\n")
    })
    .await;
    let old = rig.key("node1");
    let (p1, p2, p3) = (port_of(&old), port_of(&rig.key("node2")), port_of(&rig.key("node3")));
    let primary = format!("primary.sandbox.{DOMAIN}");

    // Before the failover: node1 is the primary, node2 and node3 read.
    eventually(WAIT, "the primary's SRV", || async {
        let ports = srv_ports(dns, "primary", false).await?;
        (ports == BTreeSet::from([p1])).then_some(()).ok_or(format!("{ports:?}, want {p1}"))
    })
    .await;
    assert_eq!(short(dns, &primary, "A", false).await.unwrap(), ["127.0.0.1"]);
    assert_eq!(short(dns, &primary, "A", true).await.unwrap(), ["127.0.0.1"], "over TCP too");
    assert_eq!(srv_ports(dns, "primary", true).await.unwrap(), BTreeSet::from([p1]), "SRV over TCP");
    eventually(WAIT, "both replicas in the SRV", || async {
        let ports = srv_ports(dns, "replicas", false).await?;
        (ports == BTreeSet::from([p2, p3])).then_some(()).ok_or(format!("{ports:?}"))
    })
    .await;
    assert_eq!(short(dns, &format!("replicas.sandbox.{DOMAIN}"), "A", false).await.unwrap(), ["127.0.0.1"]);
    assert_eq!(short(dns, &format!("127-0-0-1.sandbox.{DOMAIN}"), "A", false).await.unwrap(), ["127.0.0.1"]);
    let answer = dig(dns, &[&primary, "A", "+noall", "+answer"]).await.unwrap();
    let ttl: Vec<&str> = answer.split_whitespace().collect();
    assert_eq!(ttl.get(1..4), Some(&["1", "IN", "A"][..]), "TTL 1 s: {answer}");

    // Names outside the zone, unknown names in it, the apex.
    assert_eq!(status(dns, "example.com", "A").await.unwrap(), "REFUSED");
    assert_eq!(status(dns, &format!("primary.sandbox.{DOMAIN}.com"), "A").await.unwrap(), "REFUSED");
    assert_eq!(status(dns, &format!("primary.nosuch.{DOMAIN}"), "A").await.unwrap(), "NXDOMAIN");
    assert_eq!(status(dns, &format!("writer.sandbox.{DOMAIN}"), "A").await.unwrap(), "NXDOMAIN");
    assert_eq!(status(dns, &primary, "AAAA").await.unwrap(), "NOERROR");
    assert!(short(dns, &primary, "AAAA", false).await.unwrap().is_empty());
    assert_eq!(short(dns, DOMAIN, "SOA", false).await.unwrap().len(), 1);

    // kill -9 the primary. Until pivot notices, DNS may still name it;
    // from the first answer that does not, it never comes back.
    rig.sb.kill("node1").unwrap();
    let answers: RefCell<Vec<BTreeSet<u16>>> = RefCell::new(Vec::new());
    let moved = eventually(WAIT, "the primary's SRV moved", || async {
        let ports = srv_ports(dns, "primary", false).await?;
        let mut seen = answers.borrow_mut();
        if seen.last() != Some(&ports) {
            seen.push(ports.clone());
        }
        match ports.iter().next() {
            Some(p) if *p != p1 => Ok(*p),
            _ => Err(format!("{seen:?}")),
        }
    })
    .await;
    let new = rig.wait_new_primary(&old).await;
    assert_eq!(moved, port_of(&new), "DNS names the instance pivot promoted ({new}); answers: {answers:?}");
    let h = rig.history();
    assert_eq!(last_recovery(&h)["new_primary"], new);
    let seen = answers.into_inner();
    eprintln!("routes_dns: primary SRV ports during the failover: {seen:?} (old {p1}, new {new})");
    let first_other = seen.iter().position(|a| !a.contains(&p1)).unwrap();
    assert!(
        seen[first_other..].iter().all(|a| !a.contains(&p1)),
        "the old primary came back after it had left the answer: {seen:?}"
    );
    assert!(seen.iter().all(|a| a.len() <= 1), "never two primaries: {seen:?}");
    assert_eq!(short(dns, &primary, "A", false).await.unwrap(), ["127.0.0.1"]);

    // The remaining replica reads; neither the old primary nor the new one
    // is among the replicas.
    let other = if port_of(&new) == p2 { p3 } else { p2 };
    eventually(WAIT, "the remaining replica in the SRV", || async {
        let ports = srv_ports(dns, "replicas", false).await?;
        (ports == BTreeSet::from([other])).then_some(()).ok_or(format!("{ports:?}, want {other}"))
    })
    .await;
    // Afterwards, over UDP and TCP alike, only ever the new primary.
    for i in 0..20 {
        let ports = srv_ports(dns, "primary", i % 2 == 1).await.unwrap();
        assert_eq!(ports, BTreeSet::from([port_of(&new)]), "query {i} after the failover");
        let replicas = srv_ports(dns, "replicas", i % 2 == 0).await.unwrap();
        assert!(!replicas.contains(&p1) && !replicas.contains(&port_of(&new)), "{replicas:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dns_port_in_use_stops_pivot_naming_the_setting_and_a_clean_stop_frees_it() {
    let sb = pivot_drill::TestSandbox::up(1, false).await;
    // The port taken for UDP and TCP alike (DNS serves both): another test
    // cannot take its TCP side meanwhile and stop the second start below.
    let (taken, taken_tcp, port) = loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if let Ok(udp) = std::net::UdpSocket::bind(("127.0.0.1", port)) {
            break (udp, tcp, port);
        }
    };
    let extra = format!("[pivot.dns]\nlisten = \"127.0.0.1:{port}\"\ndomain = \"{DOMAIN}\"\n");
    let (config, _) = write_config(&sb, ConfigOptions { extra, ..Default::default() });
    let mut pivot = start_daemon(&sb, &config);
    let status = pivot.wait_exit(WAIT).expect("pivot exits");
    assert!(!status.success(), "{status}");
    let log = pivot.log_text();
    let want = format!("cannot serve DNS on 127.0.0.1:{port} (the `listen` setting in [pivot.dns])");
    assert!(log.contains(&want), "{log}");

    // The port free: pivot answers on it, and gives it back when stopped.
    drop((taken, taken_tcp));
    let mut pivot = start_daemon(&sb, &config);
    let node1 = port_of(&key_of(&sb, "node1"));
    eventually(WAIT, "the primary's SRV", || async {
        let ports = srv_ports(port, "primary", false).await?;
        (ports == BTreeSet::from([node1])).then_some(()).ok_or(format!("{ports:?}, want {node1}"))
    })
    .await;
    let status = pivot.terminate(WAIT).expect("pivot stops on SIGTERM");
    assert!(status.success(), "{status}: {}", pivot.log_text());
    std::net::UdpSocket::bind(("127.0.0.1", port)).expect("the UDP port is free again");
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the TCP port is free again");
}
