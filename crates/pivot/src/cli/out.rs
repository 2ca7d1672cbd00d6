//! Standard output for commands: a closed pipe (`pivot status | head -1`)
//! ends the output quietly instead of a panic; the exit code stays the
//! command's own.

use std::io::Write;

/// Write `text` to standard output. A reader that went away is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::anyhow!("cannot write to standard output: {e}")),
    }
}

/// How a recovery run from the command line ended, and where its details are.
pub fn emit_outcome(outcome: &crate::recovery::Outcome, config: &std::path::Path, cluster: &str) -> anyhow::Result<()> {
    emit(&format!(
        "recovery {}: {}: {}\ndetails: pivot history --config {} --cluster {cluster}\n",
        outcome.id,
        outcome.status.as_str(),
        outcome.summary,
        config.display()
    ))
}
