//! Failure injection for the chaos tests: `PIVOT_FAILPOINTS` names points
//! where a running pivot fails on purpose, each at most once per process.
//! Unset (always, in production) nothing happens.
//!
//! * `panic_before_step:NAME`: the recovery task panics before it runs the
//!   first step called NAME (e.g. `promote`), as a bug would.
//! * `kill_before_step:NAME`: the process SIGKILLs itself before it runs the
//!   first step called NAME: `kill -9` at an exact point of a recovery.
//! * `sleep_before_step:NAME`: the recovery waits 3 s before the first step
//!   called NAME (time for a test to break something at that point).
//! * `fail_after_step:NAME`: the first step called NAME runs, then reports
//!   a failure (its effect in place): what the undo must cope with.
//! * `panic_in_monitor`: a cluster's control loop panics at its first tick.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

fn armed() -> &'static Mutex<HashSet<String>> {
    static ARMED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    ARMED.get_or_init(|| {
        let spec = std::env::var("PIVOT_FAILPOINTS").unwrap_or_default();
        Mutex::new(spec.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
    })
}

/// Whether the failpoint `name` fires now (it is disarmed as it fires).
pub fn fires(name: &str) -> bool {
    armed().lock().unwrap_or_else(|p| p.into_inner()).remove(name)
}

/// SIGKILL this process now: nothing after this line runs, no destructor,
/// no flush, like `kill -9` from outside.
pub fn kill_self() -> ! {
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL is not caught")
}
