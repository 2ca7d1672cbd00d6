//! Who runs a recovery, and for how long that claim holds.
//!
//! Ownership is a lease in the state store: the owner renews it while it
//! runs ([`LEASE`]); once it expires, another process may take the recovery
//! over. A dead owner on this host (its process gone) is recognised at once
//! rather than after the lease, as a shortcut only: nothing ever counts as
//! alive because of its process id.

use std::time::Duration;

/// How long a claim holds without renewal.
pub const LEASE: Duration = Duration::from_secs(10);
/// How often the owner renews it.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

/// `pivot run, pid 123 on db-admin-1, 5f3a9c` (the last part is unique to
/// this process start).
pub fn this_process(role: &str) -> String {
    format!("{role}, pid {} on {}, {}", std::process::id(), hostname(), token())
}

fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("{:08x}", h.finish() as u32)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether `owner` is certainly gone: a process of this host whose pid no
/// longer runs pivot. Owners elsewhere, or unparsable ones, are left to
/// their lease.
pub fn certainly_gone(owner: &str, me: &str) -> bool {
    if owner == me {
        return false;
    }
    let Some((_, rest)) = owner.split_once(", pid ") else { return false };
    let Some((pid, rest)) = rest.split_once(" on ") else { return false };
    let host = rest.split(", ").next().unwrap_or(rest);
    if host != hostname() {
        return false;
    }
    let Ok(pid) = pid.parse::<u32>() else { return false };
    if pid == std::process::id() {
        // This pid, another process start (the token differs): gone.
        return true;
    }
    !std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("pivot"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_owners_are_recognised_and_nothing_else_is() {
        let me = this_process("test");
        assert!(!certainly_gone(&me, &me));
        let earlier_me = format!("pivot run, pid {} on {}, 00000000", std::process::id(), hostname());
        assert!(certainly_gone(&earlier_me, &me), "same pid, earlier start: gone");
        let dead = format!("pivot run, pid {} on {}, 1234abcd", u32::MAX - 7, hostname());
        assert!(certainly_gone(&dead, &me));
        assert!(!certainly_gone("pivot run, pid 1 on some-other-host, 1234abcd", &me), "left to the lease");
        assert!(!certainly_gone("whatever", &me));
        assert_ne!(this_process("a"), this_process("a"), "each start is unique");
    }
}
