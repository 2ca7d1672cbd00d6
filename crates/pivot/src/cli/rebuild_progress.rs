//! `pivot rebuild`'s progress: one line redrawn in place on a terminal
//! (bytes, total, rate, elapsed), plain lines now and then otherwise.

use crate::agent::rebuild::protocol::{Job, Phase};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Plain lines (not a terminal) at most this often, and at each phase change.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn phase_word(p: Phase) -> &'static str {
    match p {
        Phase::Stopping => "stopping the server",
        Phase::Streaming => "streaming",
        Phase::Preparing => "preparing",
        Phase::Starting => "starting the server",
        Phase::Restoring => "restoring the old datadir",
        Phase::Done => "done",
        Phase::Failed => "failed",
    }
}

/// `streaming  12.0 MiB / 40.0 MiB (30%)  3.1 MiB/s  0:04`.
pub fn line(j: &Job) -> String {
    let mut s = format!("{:<20}", phase_word(j.phase));
    if j.bytes > 0 || j.phase == Phase::Streaming {
        s.push_str(&bytes(j.bytes));
        let streaming = j.phase == Phase::Streaming;
        if let Some(t) = j.total_bytes.filter(|t| *t > 0 && streaming) {
            let pct = (j.bytes.saturating_mul(100) / t).min(100);
            s.push_str(&format!(" / ~{} ({pct}%)", bytes(t)));
        }
        s.push_str(&format!("  {}/s", bytes(j.rate_bps)));
    }
    let secs = j.elapsed_ms / 1000;
    s.push_str(&format!("  {}:{:02}", secs / 60, secs % 60));
    s
}

/// Shows each status as it comes.
pub struct Progress {
    tty: bool,
    last: Option<(Phase, Instant)>,
}

impl Progress {
    pub fn new() -> Progress {
        Progress { tty: std::io::stdout().is_terminal(), last: None }
    }

    pub fn show(&mut self, j: &Job) {
        let mut out = std::io::stdout();
        if self.tty {
            let _ = write!(out, "\r{}\x1b[K", line(j));
            if j.phase.ended() {
                let _ = writeln!(out);
            }
        } else {
            let due = match self.last {
                None => true,
                Some((p, at)) => p != j.phase || at.elapsed() >= LINE_EVERY,
            };
            if !due {
                return;
            }
            let _ = writeln!(out, "{}", line(j));
            self.last = Some((j.phase, Instant::now()));
        }
        let _ = out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        let j = Job {
            donor: "db3:3306".into(),
            phase: Phase::Streaming,
            bytes: 12 << 20,
            total_bytes: Some(40 << 20),
            rate_bps: 3 << 20,
            elapsed_ms: 64_000,
            old_datadir: None,
            error: None,
            restored: false,
            slave_info: None,
            binlog_info: None,
        };
        assert_eq!(line(&j), "streaming           12.0 MiB / ~40.0 MiB (30%)  3.0 MiB/s  1:04");
        let stopping = Job { phase: Phase::Stopping, bytes: 0, elapsed_ms: 1_000, ..j.clone() };
        assert_eq!(line(&stopping), "stopping the server   0:01");
        let done = Job { phase: Phase::Done, elapsed_ms: 90_000, ..j };
        assert_eq!(line(&done), "done                12.0 MiB  3.0 MiB/s  1:30", "no estimate once streamed");
    }
}
