//! Time, injected: the agent never reads a clock or sleeps except through
//! a [`Clock`], so its timing (keep alive, backoff, reading interval) runs
//! on a fake clock in tests.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the agent gets the time and how it waits.
pub trait Clock: Send + Sync {
    /// Monotonic time.
    fn now(&self) -> Instant;
    /// Wall-clock time (readings' timestamps, arrival times).
    fn wall(&self) -> SystemTime;
    /// Wait (while no socket is open; socket reads wait on their own).
    fn sleep(&self, d: Duration);
}

/// The operating system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// A clock that moves only when told to, or when something sleeps on it.
#[derive(Debug)]
pub struct ManualClock {
    origin: Instant,
    wall_origin: SystemTime,
    offset: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock at "now" (wall: 2025-05-01T12:00:00Z).
    pub fn new() -> Self {
        ManualClock {
            origin: Instant::now(),
            wall_origin: UNIX_EPOCH + Duration::from_secs(1_746_100_800),
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Move the clock forward.
    pub fn advance(&self, d: Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += d;
    }

    /// Time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.origin + self.elapsed()
    }
    fn wall(&self) -> SystemTime {
        self.wall_origin + self.elapsed()
    }
    fn sleep(&self, d: Duration) {
        self.advance(d)
    }
}

/// Microseconds since the Unix epoch (negative before it).
pub fn unix_micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// A [`Clock`] seen as the device core's millisecond clock, counted from
/// the moment this view was made.
pub(crate) struct Millis<'a> {
    pub(crate) clock: &'a dyn Clock,
    pub(crate) origin: Instant,
}

impl<'a> Millis<'a> {
    pub(crate) fn new(clock: &'a dyn Clock, origin: Instant) -> Self {
        Millis { clock, origin }
    }
}

impl coffre_device::Clock for Millis<'_> {
    fn now_ms(&self) -> u64 {
        u64::try_from(
            self.clock
                .now()
                .saturating_duration_since(self.origin)
                .as_millis(),
        )
        .unwrap_or(u64::MAX)
    }
}
