//! Network namespaces for network-fault drills.
//!
//! Each node runs in its own namespace with one interface on a bridge in the
//! root namespace. The bridge holds the gateway address (where pivot and the
//! tests live); nodes get `.11`, `.12`, ... of a /24 taken from
//! 198.18.0.0/15, the range set aside for benchmarking networks, so nothing
//! here can reach a real network. Faults:
//! * `cut`: the node drops what it sends to the gateway (a blackhole route):
//!   pivot cannot reach it, the other nodes still can;
//! * `isolate`: the node's interface goes down: nobody can reach it;
//! * `heal`: both undone.

use crate::SandboxError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::process::Command;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetnsLab {
    /// Second and third octets of the /24: 198.{0}.{1}.0/24.
    pub subnet: (u8, u8),
    pub bridge: String,
    /// One namespace per node, in node order.
    pub namespaces: Vec<String>,
    /// The root-namespace end of each node's veth pair.
    pub host_links: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), SandboxError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| SandboxError::Setup(format!("cannot run `ip` (install iproute2): {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxError::Setup(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

impl NetnsLab {
    /// Create a bridge and `nodes` namespaces on a /24 nobody uses yet.
    pub fn create(nodes: u16) -> Result<NetnsLab, SandboxError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(SandboxError::Usage("network namespaces need root".into()));
        }
        let start = (std::process::id() as usize).wrapping_mul(7919) % 512;
        for i in 0..512 {
            let n = (start + i) % 512;
            let subnet = (18 + (n / 256) as u8, (n % 256) as u8);
            let bridge = format!("pvb{}x{}", subnet.0, subnet.1);
            // Creating the bridge is the lock: it fails if another run took this subnet.
            if ip(&["link", "add", &bridge, "type", "bridge"]).is_err() {
                continue;
            }
            let mut lab = NetnsLab { subnet, bridge, namespaces: Vec::new(), host_links: Vec::new() };
            match lab.build(nodes) {
                Ok(()) => return Ok(lab),
                Err(e) => {
                    lab.destroy();
                    return Err(e);
                }
            }
        }
        Err(SandboxError::Setup("no free /24 left in 198.18.0.0/15 for a network lab".into()))
    }

    fn build(&mut self, nodes: u16) -> Result<(), SandboxError> {
        let gw = format!("{}/24", self.gateway());
        ip(&["addr", "add", &gw, "dev", &self.bridge])?;
        ip(&["link", "set", &self.bridge, "up"])?;
        for i in 1..=nodes {
            let (a, b) = self.subnet;
            let ns = format!("pivot-{a}x{b}-n{i}");
            let host = format!("pv{a}x{b}h{i}");
            let peer = format!("pv{a}x{b}c{i}");
            ip(&["netns", "add", &ns])?;
            self.namespaces.push(ns.clone());
            ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer])?;
            self.host_links.push(host.clone());
            ip(&["link", "set", &peer, "netns", &ns])?;
            ip(&["link", "set", &host, "master", &self.bridge, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            ip(&["-n", &ns, "link", "set", &peer, "name", "eth0"])?;
            let addr = format!("{}/24", self.node_ip(i as usize - 1));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        }
        Ok(())
    }

    /// The bridge's address: where pivot and the tests connect from.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, self.subnet.0, self.subnet.1, 1)
    }

    /// The address of node `index` (0-based).
    pub fn node_ip(&self, index: usize) -> Ipv4Addr {
        Ipv4Addr::new(198, self.subnet.0, self.subnet.1, 11 + index as u8)
    }

    /// Remove the namespaces and the bridge (the veth pairs go with them).
    /// The processes inside must have been stopped first.
    pub fn destroy(&self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        for link in &self.host_links {
            let _ = ip(&["link", "del", link]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }

    /// Node `index` drops everything it sends to the gateway.
    pub fn cut(&self, index: usize) -> Result<(), SandboxError> {
        let gw = format!("{}/32", self.gateway());
        ip(&["-n", &self.namespaces[index], "route", "add", "blackhole", &gw])
    }

    /// Node `index`'s interface goes down: nobody reaches it.
    pub fn isolate(&self, index: usize) -> Result<(), SandboxError> {
        ip(&["-n", &self.namespaces[index], "link", "set", "eth0", "down"])
    }

    /// Undo `cut` and `isolate`.
    pub fn heal(&self, index: usize) -> Result<(), SandboxError> {
        let ns = &self.namespaces[index];
        let gw = format!("{}/32", self.gateway());
        let _ = ip(&["-n", ns, "route", "del", "blackhole", &gw]);
        ip(&["-n", ns, "link", "set", "eth0", "up"])?;
        // Link down dropped the address's routes; they come back with the link.
        Ok(())
    }
}
