//! Every step written to the state file before and after it runs.

use super::{blocking, RecoveryEnv};
use crate::clock;
use pivot_core::control::Ended;

pub async fn started(env: &RecoveryEnv, id: i64, seq: i64, name: String, detail: String) -> Result<(), String> {
    let at = clock::wall_ms();
    blocking(env, move |s| s.step_started(id, seq, &name, &detail, at)).await
}

pub async fn ended(env: &RecoveryEnv, id: i64, seq: i64, how: Ended, message: String) -> Result<(), String> {
    let at = clock::wall_ms();
    blocking(env, move |s| s.step_finished(id, seq, how.as_str(), &message, at)).await
}
