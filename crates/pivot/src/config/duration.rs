//! Durations written as `250ms`, `1s`, `10m`, `1h 30m`.

use serde::de::{Deserializer, Error};
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(Dur)
            .map_err(|e| D::Error::custom(format!("`{text}` is not a duration ({e}); write it like 250ms, 1s or 10m")))
    }
}
