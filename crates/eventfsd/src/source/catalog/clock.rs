//! The simulated kernel's clock: nanoseconds since the simulation started. Real time in the
//! daemon; a clock that only moves when told to in tests, so that "what happened in 50 ms" is
//! exact.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where the simulation's "now" comes from.
#[derive(Debug)]
pub enum SimClock {
    /// Wall time since this instant.
    Real(Instant),
    /// Moved only by [`SimClock::advance`].
    Manual(AtomicU64),
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::Real(Instant::now())
    }
}

impl SimClock {
    /// A clock standing at zero until advanced.
    pub fn manual() -> Self {
        SimClock::Manual(AtomicU64::new(0))
    }

    /// Nanoseconds since the simulation started.
    pub fn now_ns(&self) -> u64 {
        match self {
            SimClock::Real(start) => start.elapsed().as_nanos() as u64,
            SimClock::Manual(ns) => ns.load(Ordering::Relaxed),
        }
    }

    /// Time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.now_ns())
    }

    /// Moves a manual clock forward (a real clock moves by itself: no effect).
    pub fn advance(&self, by: Duration) {
        if let SimClock::Manual(ns) = self {
            ns.fetch_add(by.as_nanos() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = SimClock::manual();
        assert_eq!(clock.now_ns(), 0);
        clock.advance(Duration::from_millis(3));
        assert_eq!(clock.now_ns(), 3_000_000);
        assert_eq!(clock.elapsed(), Duration::from_millis(3));
    }

    #[test]
    fn real_clock_moves_forward() {
        let clock = SimClock::default();
        let a = clock.now_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert!(clock.now_ns() >= a + 2_000_000);
    }
}
