//! The bus clock and the `DelayNs` that goes with it.
//!
//! Three ways to keep time:
//! - [`Timing::Instant`] (default): commands complete at once and delays do
//!   not sleep; they move the bus clock forward instead, so timeouts and the
//!   watchdog still see the time the host meant to wait.
//! - [`Timing::Datasheet`]: commands take their datasheet execution time in
//!   real time, and delays really sleep.
//! - [`Clock::manual`]: time moves only when a delay or [`Clock::advance`]
//!   says so — deterministic, for tests of the watchdog and of timing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long chip commands take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timing {
    /// Every command completes immediately (tests, benchmarks).
    #[default]
    Instant,
    /// Every command takes its datasheet execution time; wake and watchdog
    /// timings apply in real time.
    Datasheet,
}

impl std::str::FromStr for Timing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "instant" => Ok(Timing::Instant),
            "datasheet" => Ok(Timing::Datasheet),
            other => Err(format!(
                "unknown timing '{other}': use 'instant' or 'datasheet'"
            )),
        }
    }
}

#[derive(Debug)]
enum Source {
    /// Real time plus the delays that were skipped.
    Real { start: Instant, skipped: Duration },
    /// Only explicit advances.
    Manual { now: Duration },
}

/// A shared clock: cloning gives another handle on the same time.
#[derive(Debug, Clone)]
pub struct Clock {
    inner: Arc<Mutex<Source>>,
    sleeps: bool,
}

impl Clock {
    /// Real time. With `timing = Datasheet` delays sleep; with `Instant`
    /// they are skipped and added to the clock.
    pub fn real(timing: Timing) -> Clock {
        Clock {
            inner: Arc::new(Mutex::new(Source::Real {
                start: Instant::now(),
                skipped: Duration::ZERO,
            })),
            sleeps: timing == Timing::Datasheet,
        }
    }

    /// A clock that moves only on delays and [`Clock::advance`].
    pub fn manual() -> Clock {
        Clock {
            inner: Arc::new(Mutex::new(Source::Manual {
                now: Duration::ZERO,
            })),
            sleeps: false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Source> {
        // A poisoned clock only means another thread panicked mid-update of
        // two Durations; the value is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time since the clock was created.
    pub fn now(&self) -> Duration {
        match &*self.lock() {
            Source::Real { start, skipped } => start.elapsed() + *skipped,
            Source::Manual { now } => *now,
        }
    }

    /// Move time forward by `d` without sleeping.
    pub fn advance(&self, d: Duration) {
        match &mut *self.lock() {
            Source::Real { skipped, .. } => *skipped += d,
            Source::Manual { now } => *now += d,
        }
    }

    /// Wait `d`: sleep in datasheet timing, otherwise advance the clock.
    pub fn wait(&self, d: Duration) {
        if self.sleeps {
            std::thread::sleep(d);
        } else {
            self.advance(d);
        }
    }

    /// A `DelayNs` bound to this clock.
    pub fn delay(&self) -> EmuDelay {
        EmuDelay {
            clock: self.clone(),
        }
    }
}

/// An embedded-hal `DelayNs` that waits on a [`Clock`].
#[derive(Debug, Clone)]
pub struct EmuDelay {
    clock: Clock,
}

impl embedded_hal::delay::DelayNs for EmuDelay {
    fn delay_ns(&mut self, ns: u32) {
        self.clock.wait(Duration::from_nanos(ns as u64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal::delay::DelayNs;

    #[test]
    fn manual_clock_moves_only_on_delay() {
        let c = Clock::manual();
        assert_eq!(c.now(), Duration::ZERO);
        c.delay().delay_ms(5);
        assert_eq!(c.now(), Duration::from_millis(5));
        c.advance(Duration::from_micros(10));
        assert_eq!(c.now(), Duration::from_micros(5010));
    }

    #[test]
    fn instant_timing_skips_delays() {
        let c = Clock::real(Timing::Instant);
        let t = std::time::Instant::now();
        c.delay().delay_ms(2000);
        assert!(t.elapsed() < Duration::from_millis(500));
        assert!(c.now() >= Duration::from_millis(2000));
    }

    #[test]
    fn timing_parses() {
        assert_eq!("instant".parse::<Timing>(), Ok(Timing::Instant));
        assert_eq!("datasheet".parse::<Timing>(), Ok(Timing::Datasheet));
        assert!("fast".parse::<Timing>().is_err());
    }
}
