//! Choosing TCP ports nobody listens on.

use crate::SandboxError;
use std::net::{IpAddr, SocketAddr, TcpListener};

pub fn is_free(host: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(host, port)).is_ok()
}

/// `count` consecutive free ports from `base`, or an error naming the busy one.
pub fn check_range(host: IpAddr, base: u16, count: u16) -> Result<Vec<u16>, SandboxError> {
    let ports: Vec<u16> = (0..count)
        .map(|i| base.checked_add(i))
        .collect::<Option<_>>()
        .ok_or_else(|| SandboxError::Ports(format!("--base-port {base} leaves no room for {count} ports")))?;
    if let Some(busy) = ports.iter().find(|p| !is_free(host, **p)) {
        return Err(SandboxError::Ports(format!(
            "port {busy} on {host} is already in use: pick another --base-port, or leave it out and pivot picks free ports"
        )));
    }
    Ok(ports)
}

/// Pick `count` consecutive free ports, preferring `preferred` when it is free,
/// else a pseudo-random range so that parallel runs rarely collide.
pub fn pick(host: IpAddr, count: u16, preferred: Option<u16>) -> Result<Vec<u16>, SandboxError> {
    if let Some(p) = preferred.and_then(|base| check_range(host, base, count).ok()) {
        return Ok(p);
    }
    let mut seed = std::process::id() as u64 ^ nanos();
    for _ in 0..200 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let base = 20000 + ((seed >> 33) % 40000) as u16;
        if let Ok(p) = check_range(host, base, count) {
            return Ok(p);
        }
    }
    Err(SandboxError::Ports(format!("found no {count} consecutive free ports on {host}")))
}

fn nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}
