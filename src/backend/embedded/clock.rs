//! The command clock: unix milliseconds derived from a monotonic reading the caller already
//! has, so a command costs one clock read (its timing) instead of two.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The wall clock is read again at most this long after the last reading (microseconds):
/// a step of the system clock (NTP, an operator) is followed within a second, as Redis
/// follows it on its next read.
const REANCHOR_US: u64 = 1_000_000;

struct Anchor {
    /// Monotonic origin.
    base: Instant,
    /// Unix microseconds at `base`, as of the last wall clock reading.
    unix_us_at_base: AtomicI64,
    /// When (microseconds after `base`) the wall clock was last read.
    read_at_us: AtomicU64,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let a = Anchor {
            base: Instant::now(),
            unix_us_at_base: AtomicI64::new(0),
            read_at_us: AtomicU64::new(0),
        };
        reanchor(&a);
        a
    })
}

fn reanchor(a: &Anchor) {
    let since_base = micros(Instant::now().saturating_duration_since(a.base));
    let unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(micros)
        .unwrap_or(0);
    a.unix_us_at_base
        .store(unix_us as i64 - since_base as i64, Ordering::Relaxed);
    a.read_at_us.store(since_base, Ordering::Relaxed);
}

fn micros(d: std::time::Duration) -> u64 {
    d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())
}

/// Sets the clock's origin (the engine does at start; until then, instants before the
/// first use read as that first use).
pub fn start() {
    anchor();
}

/// Unix milliseconds at the monotonic instant `t` (not before the clock was first used).
pub fn unix_ms_at(t: Instant) -> u64 {
    let a = anchor();
    let since_base = micros(t.saturating_duration_since(a.base));
    if since_base.saturating_sub(a.read_at_us.load(Ordering::Relaxed)) > REANCHOR_US {
        reanchor(a);
    }
    let unix_us = a.unix_us_at_base.load(Ordering::Relaxed) + since_base as i64;
    u64::try_from(unix_us / 1000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_the_wall_clock() {
        let wall = super::super::unix_ms();
        let derived = unix_ms_at(Instant::now());
        assert!(derived.abs_diff(wall) <= 2, "{derived} vs {wall}");
        let later = unix_ms_at(Instant::now() + std::time::Duration::from_millis(1500));
        assert!(
            later.abs_diff(wall + 1500) <= 5,
            "{later} vs {}",
            wall + 1500
        );
    }
}
