//! The shell's clock: wall time in milliseconds, handed to the core.

use pivot_core::Millis;

pub fn now() -> Millis {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    Millis(ms as u64)
}
