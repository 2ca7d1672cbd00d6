//! What a name in pivot's zone answers, from the clusters' route tables
//! alone: no I/O, no clock, no DNS library (the server turns an [`Answer`]
//! into a message).
//!
//! Names under the zone `<domain>`, per cluster `<c>` (names ignore case):
//!
//! | name | answers |
//! |---|---|
//! | `primary.<c>` | A or AAAA of the write target; a CNAME to it if its host is a name; nothing (NODATA) while writes are held or no primary is known |
//! | `replicas.<c>` | A and AAAA of the healthy replicas within the lag limit whose hosts are addresses (hosts that are names are only in the SRV) |
//! | `_mysql._tcp.primary.<c>` | SRV: port and target of the write target |
//! | `_mysql._tcp.replicas.<c>` | SRV: port and target of each healthy replica |
//! | `<address>.<c>` | A or AAAA of an instance of `<c>` whose host is an address: the SRV targets (`10-0-0-5`, IPv6 as 8 groups `fd00-0-0-0-0-0-0-5`) |
//! | `<domain>` | SOA and NS |
//!
//! `<c>` and `_tcp.primary.<c>`, `_tcp.replicas.<c>` exist without records
//! (NODATA); so do the names above for a known cluster with nothing to give.
//! Any other name in the zone is NXDOMAIN, and a name outside it REFUSED.
//! Negative answers carry the SOA, whose TTL and minimum are the TTL, so
//! that resolvers cache "nothing" no longer than an answer.

use pivot_core::routes::RouteTable;
use pivot_core::InstanceKey;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The zone pivot is the authority for, and the TTL of its answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase, without the trailing dot.
    domain: String,
    labels: Vec<String>,
    ttl: u32,
}

/// The query types pivot tells apart; every other one is `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QType {
    A,
    Aaaa,
    Cname,
    Srv,
    Soa,
    Ns,
    Any,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    /// With records, or without (NODATA: the name exists, not the type).
    NoError,
    /// No such name in the zone.
    NxDomain,
    /// Not in the zone: pivot answers for nothing else.
    Refused,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Srv { priority: u16, weight: u16, port: u16, target: String },
    Soa { mname: String, rname: String, serial: u32, refresh: u32, retry: u32, expire: u32, minimum: u32 },
    Ns(String),
}

/// A resource record; names lowercase, without the trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    pub data: Data,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub rcode: Rcode,
    pub answers: Vec<Rr>,
    /// The SOA of a negative answer.
    pub authority: Vec<Rr>,
    /// The addresses of SRV targets in the zone.
    pub additional: Vec<Rr>,
}

impl Answer {
    fn refused() -> Answer {
        Answer { rcode: Rcode::Refused, answers: vec![], authority: vec![], additional: vec![] }
    }

    /// Whether pivot speaks as the zone's authority (everything but REFUSED).
    pub fn authoritative(&self) -> bool {
        self.rcode != Rcode::Refused
    }
}

/// What an instance's host is to DNS.
enum Host<'a> {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
    /// A host name: a CNAME or SRV target outside the zone.
    Name(&'a str),
    /// Neither (cannot be put in a record): left out.
    Unusable,
}

fn host_of(key: &InstanceKey) -> Host<'_> {
    match key.host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => Host::V4(ip),
        Ok(IpAddr::V6(ip)) => Host::V6(ip),
        Err(_) if is_host_name(&key.host) => Host::Name(key.host.strip_suffix('.').unwrap_or(&key.host)),
        Err(_) => Host::Unusable,
    }
}

fn is_host_name(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The label naming an address: `10-0-0-5`, `fd00-0-0-0-0-0-0-5`.
pub fn address_label(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.octets().map(|o| o.to_string()).join("-"),
        IpAddr::V6(ip) => ip.segments().map(|s| format!("{s:x}")).join("-"),
    }
}

impl Zone {
    /// `domain`: lowercase, without the trailing dot (as the configuration
    /// gives it). `ttl_s`: of every record, negative answers included.
    pub fn new(domain: &str, ttl_s: u32) -> Zone {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let labels = domain.split('.').map(str::to_string).collect();
        Zone { domain, labels, ttl: ttl_s }
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The answer to `qname` (its labels, left to right) of type `qtype`,
    /// under the clusters' current tables.
    pub fn answer(&self, clusters: &[(&str, &RouteTable)], qname: &[String], qtype: QType) -> Answer {
        let lower: Vec<String> = qname.iter().map(|l| l.to_ascii_lowercase()).collect();
        let Some(rel) = lower.len().checked_sub(self.labels.len()) else { return Answer::refused() };
        if lower[rel..] != self.labels[..] {
            return Answer::refused();
        }
        let at = Names { zone: self, clusters };
        let rel: Vec<&str> = lower[..rel].iter().map(String::as_str).collect();
        let cluster = |label: &str| clusters.iter().find(|(n, _)| n.eq_ignore_ascii_case(label)).map(|(_, t)| *t);
        match rel.as_slice() {
            [] => at.apex(qtype),
            [c] if cluster(c).is_some() => at.nodata(),
            ["primary", c] => match cluster(c) {
                Some(t) => at.primary(c, t, qtype),
                None => at.nxdomain(),
            },
            ["replicas", c] => match cluster(c) {
                Some(t) => at.replicas(c, t, qtype),
                None => at.nxdomain(),
            },
            ["_tcp", "primary" | "replicas", c] if cluster(c).is_some() => at.nodata(),
            ["_mysql", "_tcp", kind @ ("primary" | "replicas"), c] => match cluster(c) {
                Some(t) => at.srv(c, t, kind, qtype),
                None => at.nxdomain(),
            },
            [address, c] => match cluster(c) {
                Some(t) => at.address(address, c, t, qtype),
                None => at.nxdomain(),
            },
            _ => at.nxdomain(),
        }
    }
}

/// Builds the answers of one query.
struct Names<'a> {
    zone: &'a Zone,
    clusters: &'a [(&'a str, &'a RouteTable)],
}

impl Names<'_> {
    fn name(&self, rel: &str) -> String {
        format!("{rel}.{}", self.zone.domain)
    }

    fn rr(&self, name: String, data: Data) -> Rr {
        Rr { name, ttl: self.zone.ttl, data }
    }

    fn soa(&self) -> Rr {
        // The serial follows the epochs (they only grow); pivot has no
        // secondaries, it is only there for form.
        let serial = self.clusters.iter().fold(0u32, |s, (_, t)| s.wrapping_add(t.epoch as u32));
        let d = &self.zone.domain;
        self.rr(
            d.clone(),
            Data::Soa {
                mname: d.clone(),
                rname: format!("hostmaster.{d}"),
                serial,
                refresh: 60,
                retry: 60,
                expire: 3600,
                minimum: self.zone.ttl,
            },
        )
    }

    fn negative(&self, rcode: Rcode) -> Answer {
        Answer { rcode, answers: vec![], authority: vec![self.soa()], additional: vec![] }
    }

    fn nodata(&self) -> Answer {
        self.negative(Rcode::NoError)
    }

    fn nxdomain(&self) -> Answer {
        self.negative(Rcode::NxDomain)
    }

    /// The records of `all` that `qtype` asks for; none: NODATA.
    fn of_type(&self, all: Vec<Rr>, qtype: QType, additional: Vec<Rr>) -> Answer {
        let answers: Vec<Rr> = all.into_iter().filter(|r| wanted(&r.data, qtype)).collect();
        if answers.is_empty() {
            return self.nodata();
        }
        let additional = if answers.iter().any(|r| matches!(r.data, Data::Srv { .. })) { additional } else { vec![] };
        Answer { rcode: Rcode::NoError, answers, authority: vec![], additional }
    }

    fn apex(&self, qtype: QType) -> Answer {
        let ns = self.rr(self.zone.domain.clone(), Data::Ns(self.zone.domain.clone()));
        self.of_type(vec![self.soa(), ns], qtype, vec![])
    }

    /// `primary.<c>`: the write target.
    fn primary(&self, c: &str, t: &RouteTable, qtype: QType) -> Answer {
        let name = self.name(&format!("primary.{c}"));
        let Some(key) = t.write_target() else { return self.nodata() };
        match host_of(key) {
            // A name's only record is its CNAME, whatever is asked.
            Host::Name(h) => self.of_type(vec![self.rr(name, Data::Cname(h.to_string()))], QType::Any, vec![]),
            _ => self.of_type(self.address_records(&name, [key]), qtype, vec![]),
        }
    }

    /// `replicas.<c>`: the readable replicas whose hosts are addresses.
    fn replicas(&self, c: &str, t: &RouteTable, qtype: QType) -> Answer {
        let name = self.name(&format!("replicas.{c}"));
        self.of_type(self.address_records(&name, t.readable(None).map(|r| &r.instance)), qtype, vec![])
    }

    /// A and AAAA records named `name` for the keys whose hosts are
    /// addresses, each address once.
    fn address_records<'k>(&self, name: &str, keys: impl IntoIterator<Item = &'k InstanceKey>) -> Vec<Rr> {
        let mut out: Vec<Rr> = Vec::new();
        for key in keys {
            let data = match host_of(key) {
                Host::V4(ip) => Data::A(ip),
                Host::V6(ip) => Data::Aaaa(ip),
                Host::Name(_) | Host::Unusable => continue,
            };
            if !out.iter().any(|r| r.data == data) {
                out.push(self.rr(name.to_string(), data));
            }
        }
        out
    }

    fn srv(&self, c: &str, t: &RouteTable, kind: &str, qtype: QType) -> Answer {
        let name = self.name(&format!("_mysql._tcp.{kind}.{c}"));
        let (keys, weight): (Vec<&InstanceKey>, u16) = if kind == "primary" {
            (t.write_target().into_iter().collect(), 0)
        } else {
            (t.readable(None).map(|r| &r.instance).collect(), 1)
        };
        let mut records = Vec::new();
        let mut glue = Vec::new();
        for key in keys {
            let target = match host_of(key) {
                Host::V4(ip) => IpAddr::V4(ip),
                Host::V6(ip) => IpAddr::V6(ip),
                Host::Name(h) => {
                    records.push(self.rr(name.clone(), srv(weight, key.port, h.to_string())));
                    continue;
                }
                Host::Unusable => continue,
            };
            let target_name = self.name(&format!("{}.{c}", address_label(target)));
            records.push(self.rr(name.clone(), srv(weight, key.port, target_name.clone())));
            for rr in self.address_records(&target_name, [key]) {
                if !glue.contains(&rr) {
                    glue.push(rr);
                }
            }
        }
        self.of_type(records, qtype, glue)
    }

    /// `<address>.<c>`: an instance of `c` (any role: the name only maps
    /// an address; the routes are the SRV records) whose host is it.
    fn address(&self, label: &str, c: &str, t: &RouteTable, qtype: QType) -> Answer {
        let keys = t.instances.iter().map(|r| &r.instance).chain(t.primary.as_ref());
        let found = keys.into_iter().find(|k| k.host.parse::<IpAddr>().is_ok_and(|ip| address_label(ip) == label));
        match found {
            Some(key) => self.of_type(self.address_records(&self.name(&format!("{label}.{c}")), [key]), qtype, vec![]),
            None => self.nxdomain(),
        }
    }
}

fn srv(weight: u16, port: u16, target: String) -> Data {
    Data::Srv { priority: 0, weight, port, target }
}

fn wanted(data: &Data, qtype: QType) -> bool {
    matches!(
        (data, qtype),
        (_, QType::Any)
            | (Data::A(_), QType::A)
            | (Data::Aaaa(_), QType::Aaaa)
            | (Data::Cname(_), QType::Cname)
            | (Data::Srv { .. }, QType::Srv)
            | (Data::Soa { .. }, QType::Soa)
            | (Data::Ns(_), QType::Ns)
    )
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rcode::NoError => "NOERROR",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::Refused => "REFUSED",
        })
    }
}

/// In zone-file order without the TTL: `primary.main.db.example A 10.0.0.1`.
impl fmt::Display for Rr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = &self.name;
        match &self.data {
            Data::A(ip) => write!(f, "{n} A {ip}"),
            Data::Aaaa(ip) => write!(f, "{n} AAAA {ip}"),
            Data::Cname(t) => write!(f, "{n} CNAME {t}"),
            Data::Srv { priority, weight, port, target } => write!(f, "{n} SRV {priority} {weight} {port} {target}"),
            Data::Soa { mname, rname, serial, .. } => write!(f, "{n} SOA {mname} {rname} {serial}"),
            Data::Ns(t) => write!(f, "{n} NS {t}"),
        }
    }
}

#[cfg(test)]
#[path = "answer_tests.rs"]
mod tests;
