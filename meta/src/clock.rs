//! The meta node's wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

/// The leader's wall clock, ms since the epoch (shifted by the `meta::clock` failpoint
/// in failpoints builds: a clock jump). Applied times never go back whatever it says:
/// the state machine takes the max with the last applied time.
pub(crate) fn now_ms() -> u64 {
    backstop_common::failpoints::clock_ms(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}
