//! Who runs a recovery: written into the state file so another process can
//! tell a live owner from a dead one.

/// `pivot run, pid 123 on db-admin-1`
pub fn this_process(role: &str) -> String {
    format!("{role}, pid {} on {}", std::process::id(), hostname())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Whether the owner recorded as `owner` still runs. Owners on other hosts
/// are assumed alive (pivot cannot look; an operator must decide).
pub fn alive(owner: &str) -> bool {
    let Some((_, rest)) = owner.split_once(", pid ") else { return true };
    let Some((pid, host)) = rest.split_once(" on ") else { return true };
    if host != hostname() {
        return true;
    }
    let Ok(pid) = pid.parse::<u32>() else { return true };
    if pid == std::process::id() {
        return true;
    }
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("pivot"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_local_owners_are_recognised() {
        assert!(alive(&this_process("test")));
        let dead = format!("pivot run, pid {} on {}", u32::MAX - 7, hostname());
        assert!(!alive(&dead));
        assert!(alive("pivot run, pid 1 on some-other-host"), "cannot judge other hosts");
    }
}
