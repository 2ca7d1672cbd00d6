//! Summaries of samples.

use std::time::Duration;

pub struct Summary {
    pub n: usize,
    pub median: Duration,
    pub p99: Duration,
    pub worst: Duration,
}

pub fn summarize(samples: &[Duration]) -> Summary {
    let mut s = samples.to_vec();
    s.sort();
    let at = |q: f64| s[((s.len() as f64 - 1.0) * q).round() as usize];
    Summary { n: s.len(), median: at(0.5), p99: at(0.99), worst: *s.last().unwrap_or(&Duration::ZERO) }
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}
