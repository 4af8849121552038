//! Injected time. The loop never reads the OS clock directly: hardware runs use
//! [`WallClock`], lockstep simulation and tests use [`ManualClock`], whose time only moves
//! when the loop waits for its next deadline, so runs are deterministic.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonic clock in nanoseconds that can also wait for a deadline.
pub trait Clock: Send {
    /// Nanoseconds since the clock's epoch.
    fn now_ns(&self) -> u64;
    /// Returns at or after `deadline_ns`. Wall clocks sleep until `spin_ns` before the
    /// deadline, then spin, because the OS wakes sleepers late by tens of microseconds.
    fn sleep_until(&self, deadline_ns: u64, spin_ns: u64);
}

/// The OS monotonic clock.
#[derive(Clone, Debug)]
pub struct WallClock {
    epoch: Instant,
}

impl WallClock {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// A clock sharing another clock's epoch, so both give comparable stamps.
    pub fn with_epoch(epoch: Instant) -> Self {
        Self { epoch }
    }

    pub fn epoch(&self) -> Instant {
        self.epoch
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for WallClock {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn sleep_until(&self, deadline_ns: u64, spin_ns: u64) {
        loop {
            let now = self.now_ns();
            if now >= deadline_ns {
                return;
            }
            let remaining = deadline_ns - now;
            if remaining > spin_ns {
                std::thread::sleep(Duration::from_nanos(remaining - spin_ns));
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Simulation time: advanced only by `sleep_until` or `advance`. Clones share the time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new(start_ns: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(start_ns)),
        }
    }

    pub fn advance(&self, ns: u64) {
        self.now.fetch_add(ns, Ordering::SeqCst);
    }

    pub fn set(&self, ns: u64) {
        self.now.fetch_max(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    fn sleep_until(&self, deadline_ns: u64, _spin_ns: u64) {
        self.now.fetch_max(deadline_ns, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_never_returns_early() {
        let clock = WallClock::new();
        let deadline = clock.now_ns() + 2_000_000;
        clock.sleep_until(deadline, 100_000);
        assert!(clock.now_ns() >= deadline);
    }

    #[test]
    fn manual_clock_jumps_to_deadline_and_never_goes_back() {
        let clock = ManualClock::new(10);
        clock.sleep_until(1_000, 0);
        assert_eq!(clock.now_ns(), 1_000);
        clock.sleep_until(500, 0);
        assert_eq!(clock.now_ns(), 1_000);
        let shared = clock.clone();
        shared.advance(5);
        assert_eq!(clock.now_ns(), 1_005);
    }
}
