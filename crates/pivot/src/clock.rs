//! The shell's clocks.
//!
//! * [`now`]: monotonic milliseconds (since this process started), handed to
//!   the core for every window, timeout and ordering of observations. Stepping
//!   the wall clock changes none of them.
//! * [`wall_ms`]: wall time, only for records, leases shared with other
//!   processes, and display.

use pivot_core::Millis;
use std::sync::OnceLock;
use std::time::Instant;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Monotonic time for the core. Starts at one hour, so "an hour ago" is
/// never before zero.
pub fn now() -> Millis {
    Millis(3_600_000 + origin().elapsed().as_millis() as u64)
}

/// Wall time in unix milliseconds, for records and display.
pub fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The wall time at which monotonic `t` happened (for records).
pub fn wall_of(t: Millis) -> i64 {
    wall_ms() - now().since(t) as i64 + t.since(now()) as i64
}
