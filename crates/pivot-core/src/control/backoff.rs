//! The retry backoff after aborted automatic attempts: the next attempt
//! waits 5 s, then twice as long each time, up to 160 s; a promotion or a
//! healthy cluster resets it.

use crate::time::Millis;

pub const FIRST_WAIT_MS: u64 = 5_000;
pub const MAX_WAIT_MS: u64 = 160_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    retry_at: Option<Millis>,
    wait_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { retry_at: None, wait_ms: FIRST_WAIT_MS }
    }
}

impl Backoff {
    /// When the next automatic attempt may start, if it must wait.
    pub fn retry_at(&self) -> Option<Millis> {
        self.retry_at
    }

    /// A recovery ended at `now` without promoting anything.
    pub fn aborted(&mut self, now: Millis) {
        self.retry_at = Some(now.plus(self.wait_ms));
        self.wait_ms = (self.wait_ms * 2).min(MAX_WAIT_MS);
    }

    /// A recovery promoted, or the cluster is healthy: start over.
    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_reset_starts_over() {
        let mut b = Backoff::default();
        assert_eq!(b.retry_at(), None);
        let waits: Vec<u64> = (0..8)
            .map(|_| {
                b.aborted(Millis(1_000));
                b.retry_at().unwrap().since(Millis(1_000))
            })
            .collect();
        assert_eq!(waits, [5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 160_000, 160_000]);
        b.reset();
        assert_eq!(b.retry_at(), None);
        b.aborted(Millis(0));
        assert_eq!(b.retry_at(), Some(Millis(5_000)));
    }
}
