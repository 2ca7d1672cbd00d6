//! `[cluster.switchover]`: the bounds of a planned switchover.
//!
//! ```toml
//! [cluster.switchover]
//! max_transaction = "10s"    # a transaction open longer on the primary refuses the switchover
//! grace = "1s"               # open transactions get this long once the primary is read-only
//! catch_up_timeout = "5s"    # the candidate must apply the old primary's last GTID within this
//! ```

use super::duration::Dur;
use super::load::{duration_in, Source};
use super::ConfigError;
use pivot_core::plan::SwitchoverLimits;
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSwitchover {
    pub max_transaction: Option<Spanned<Dur>>,
    pub grace: Option<Spanned<Dur>>,
    pub catch_up_timeout: Option<Spanned<Dur>>,
}

pub(super) fn switchover(src: &Source, raw: &RawSwitchover) -> Result<SwitchoverLimits, ConfigError> {
    let (ms, secs) = (Duration::from_millis, Duration::from_secs);
    let max_transaction =
        duration_in(src, &raw.max_transaction, "switchover max_transaction", secs(10), secs(1), secs(86400))?;
    let grace = duration_in(src, &raw.grace, "switchover grace", secs(1), ms(0), secs(600))?;
    let catch_up =
        duration_in(src, &raw.catch_up_timeout, "switchover catch_up_timeout", secs(5), ms(100), secs(3600))?;
    Ok(SwitchoverLimits {
        max_transaction_s: max_transaction.as_secs(),
        grace_ms: grace.as_millis() as u64,
        catch_up_ms: catch_up.as_millis() as u64,
    })
}
