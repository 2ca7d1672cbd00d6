//! The address on the interface: `ip` (iproute2) puts it up with a lifetime
//! and takes it down; a gratuitous ARP, sent on a packet socket, tells the
//! network where it is now.
//!
//! The lifetime is the kernel's own lease: `ip addr replace ... valid_lft
//! N preferred_lft N` makes the kernel remove the address N seconds after
//! the last renewal, even if the agent is frozen or killed.

use std::net::Ipv4Addr;
use std::time::Duration;
use tokio::process::Command;

/// Bound on one `ip` call.
const IP_TIMEOUT: Duration = Duration::from_secs(2);

/// An address on an interface, as the agent handles it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub interface: String,
}

impl Placed {
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.ip, self.prefix)
    }
}

impl std::fmt::Display for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.cidr(), self.interface)
    }
}

async fn ip(args: &[&str]) -> Result<String, String> {
    let run = Command::new("ip").args(args).kill_on_drop(true).output();
    let out = match tokio::time::timeout(IP_TIMEOUT, run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("cannot run `ip` (install iproute2): {e}")),
        Err(_) => return Err(format!("`ip {}` did not finish within {IP_TIMEOUT:?}", args.join(" "))),
    };
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// Whether `ip -o -4 addr show dev IFACE` lists the address.
pub fn listed(output: &str, p: &Placed) -> bool {
    let want = p.cidr();
    output.lines().any(|l| {
        let mut words = l.split_whitespace();
        words.any(|w| w == "inet") && words.next() == Some(want.as_str())
    })
}

pub async fn present(p: &Placed) -> Result<bool, String> {
    ip(&["-o", "-4", "addr", "show", "dev", &p.interface]).await.map(|out| listed(&out, p))
}

/// Put the address up, or renew it, for `lifetime_s` seconds.
pub async fn put_up(p: &Placed, lifetime_s: u64) -> Result<(), String> {
    let life = lifetime_s.max(1).to_string();
    let cidr = p.cidr();
    ip(&["addr", "replace", &cidr, "dev", &p.interface, "valid_lft", &life, "preferred_lft", &life]).await.map(|_| ())
}

/// Take the address down if it is there.
pub async fn take_down(p: &Placed) -> Result<bool, String> {
    if !present(p).await? {
        return Ok(false);
    }
    let cidr = p.cidr();
    match ip(&["addr", "del", &cidr, "dev", &p.interface]).await {
        Ok(_) => Ok(true),
        // Gone meanwhile (its lifetime ended): what was asked.
        Err(_) if !present(p).await.unwrap_or(true) => Ok(true),
        Err(e) => Err(e),
    }
}

/// A gratuitous ARP request for `ip` from `mac`: sender and target address
/// both `ip`, so every host that has `ip` in its cache takes the new
/// hardware address (Linux does even within its `locktime`).
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 28] {
    let mut f = [0u8; 28];
    f[0..2].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[2..4].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[4] = 6;
    f[5] = 4;
    f[6..8].copy_from_slice(&1u16.to_be_bytes()); // request
    f[8..14].copy_from_slice(&mac);
    f[14..18].copy_from_slice(&ip.octets());
    // Target hardware address: zero (unknown), as in a request.
    f[24..28].copy_from_slice(&ip.octets());
    f
}

/// Send `count` gratuitous ARP requests for `ip` out of `interface`,
/// broadcast. Needs CAP_NET_RAW (the agent runs as root to change
/// addresses anyway).
pub fn announce(interface: &str, ip: Ipv4Addr, count: usize) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let name = interface.as_bytes();
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(Error::new(ErrorKind::InvalidInput, format!("interface name `{interface}`")));
    }
    let proto = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: socket(2) with constant arguments; the descriptor is owned below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, i32::from(proto)) };
    if raw < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: `raw` is a descriptor we just opened and nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFINDEX reads ifr_name and writes ifr_ifindex of a valid ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut ifr) } < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: the union member SIOCGIFINDEX just wrote.
    let index = unsafe { ifr.ifr_ifru.ifru_ifindex };
    // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifr_hwaddr of a valid ifreq.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) } < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: the union member SIOCGIFHWADDR just wrote.
    let hw = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(hw.sa_data.iter()) {
        *d = *s as u8;
    }
    let frame = garp_frame(mac, ip);
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid value.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = proto;
    to.sll_ifindex = index;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    for _ in 0..count {
        // SAFETY: the frame and the address are valid for the lengths given.
        let sent = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gratuitous_arp_names_the_address_as_sender_and_target() {
        let f = garp_frame([2, 0, 0, 0, 0, 9], Ipv4Addr::new(198, 18, 0, 100));
        assert_eq!(
            f.to_vec(),
            vec![
                0, 1, 8, 0, 6, 4, 0, 1, // Ethernet, IPv4, lengths, request
                2, 0, 0, 0, 0, 9, 198, 18, 0, 100, // sender
                0, 0, 0, 0, 0, 0, 198, 18, 0, 100, // target
            ]
        );
    }

    #[test]
    fn the_address_is_found_in_ip_output() {
        let p = Placed { ip: Ipv4Addr::new(198, 18, 0, 100), prefix: 24, interface: "eth0".into() };
        let out = "2: eth0    inet 198.18.0.11/24 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                   2: eth0    inet 198.18.0.100/24 scope global secondary dynamic eth0\\       valid_lft 3sec preferred_lft 3sec\n";
        assert!(listed(out, &p));
        assert!(!listed(out, &Placed { prefix: 32, ..p.clone() }), "another prefix is another address");
        assert!(!listed("2: eth0    inet 198.18.0.1000/24 scope global eth0\n", &p));
    }
}
