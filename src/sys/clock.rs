//! Milliseconds: the monotonic clock's (deadlines kept in atomics), the
//! wall clock's (expiry times stored on disk or handed to C), and durations
//! turned into the whole milliseconds that timeouts and back-offs are kept
//! in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds on the system's monotonic clock (`CLOCK_MONOTONIC`). Unlike
/// an `Instant`, the value is a plain number that can live in an atomic, and
/// a forked child reads the same clock as its parent.
pub(crate) fn monotonic_ms() -> u64 {
    // CLOCK_MONOTONIC exists on every Linux; a failure reads as 0.
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |ts| {
        let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
        let millis = u64::try_from(ts.tv_nsec() / 1_000_000).unwrap_or(0);
        secs.saturating_mul(1000).saturating_add(millis)
    })
}

/// Wall-clock milliseconds since 1970 (0 before 1970).
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// `d` in whole milliseconds, `u64::MAX` when it does not fit.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_truncates_and_saturates() {
        assert_eq!(millis(Duration::from_micros(1_999)), 1);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn the_monotonic_clock_does_not_go_back() {
        let a = monotonic_ms();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_ms() > a);
    }
}
