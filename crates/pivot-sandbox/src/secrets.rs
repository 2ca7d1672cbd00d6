//! Random passwords, stored in files only their owner can read.

use crate::SandboxError;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub fn random_password() -> Result<String, SandboxError> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| SandboxError::file("/dev/urandom", e))?;
    Ok(bytes.iter().map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect())
}

/// Write `contents` to `path` with mode 0600.
pub fn write_private(path: &Path, contents: &str) -> Result<(), SandboxError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| SandboxError::file(path, e))?;
    f.write_all(contents.as_bytes()).map_err(|e| SandboxError::file(path, e))
}
