//! What happened, in order: a bounded tail for failure reports, optionally
//! every line, and a fingerprint of all of it so two runs of one seed can be
//! compared cheaply.

use std::collections::VecDeque;

#[derive(Clone, Debug, Default)]
pub struct Trace {
    tail: VecDeque<String>,
    cap: usize,
    full: Option<Vec<String>>,
    /// FNV-1a over every line.
    fingerprint: u64,
    /// Lines written plus events counted without a line (observations, writes).
    pub events: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Trace {
    pub fn new(cap: usize, full: bool) -> Trace {
        Trace { tail: VecDeque::new(), cap: cap.max(1), full: full.then(Vec::new), fingerprint: FNV_OFFSET, events: 0 }
    }

    pub fn line(&mut self, now: u64, text: impl AsRef<str>) {
        let line = format!("{:>7}.{:03}s {}", now / 1000, now % 1000, text.as_ref());
        for b in line.bytes() {
            self.fingerprint = (self.fingerprint ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
        self.events += 1;
        if self.tail.len() == self.cap {
            self.tail.pop_front();
        }
        if let Some(full) = &mut self.full {
            full.push(line.clone());
        }
        self.tail.push_back(line);
    }

    /// An event worth counting but not a line.
    pub fn count(&mut self, n: u64) {
        self.events += n;
    }

    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    pub fn full(&self) -> Option<&[String]> {
        self.full.as_deref()
    }
}
