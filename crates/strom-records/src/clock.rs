//! The wall clock as Kafka timestamps: milliseconds since the Unix epoch. The one definition
//! the broker, the client and the metadata quorum's peer clock share.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before 1970, `i64::MAX`
/// past what an `i64` holds).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
