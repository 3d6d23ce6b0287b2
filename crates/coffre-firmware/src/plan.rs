//! When the firmware measures, publishes and reconnects: a plain struct
//! that takes the time and the state of the connection and says what to
//! do next. The firmware's loop does what it says, with its timer and its
//! socket; the tests drive it with a fake clock.

use core::time::Duration;

use coffre_device::Backoff;

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Take a reading and queue it.
    Measure,
    /// Open a connection (TCP, TLS, CONNECT).
    Connect,
    /// Publish the oldest queued reading and wait for its PUBACK.
    Publish,
    /// Nothing to do before this time (ms of the caller's clock).
    Wait {
        /// When to ask again.
        until_ms: u64,
    },
}

/// The publish loop's schedule: a reading every `interval`, readings
/// published oldest first while connected, reconnection spaced by a
/// [`Backoff`].
#[derive(Debug, Clone)]
pub struct Plan {
    interval_ms: u64,
    next_reading_ms: u64,
    backoff: Backoff,
    failures: u32,
    retry_at_ms: u64,
    max_queued: usize,
}

impl Plan {
    /// The first reading is due at `now_ms`; at most `max_queued` readings
    /// wait in RAM for the broker (older ones are dropped).
    pub fn new(now_ms: u64, interval: Duration, backoff: Backoff, max_queued: usize) -> Self {
        Plan {
            interval_ms: u64::try_from(interval.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            next_reading_ms: now_ms,
            backoff,
            failures: 0,
            retry_at_ms: now_ms,
            max_queued: max_queued.max(1),
        }
    }

    /// What to do at `now_ms`, connected or not, with `queued` readings
    /// waiting.
    pub fn next(&self, now_ms: u64, connected: bool, queued: usize) -> Step {
        if now_ms >= self.next_reading_ms {
            return Step::Measure;
        }
        if queued > 0 {
            if connected {
                return Step::Publish;
            }
            if now_ms >= self.retry_at_ms {
                return Step::Connect;
            }
            return Step::Wait {
                until_ms: self.next_reading_ms.min(self.retry_at_ms),
            };
        }
        Step::Wait {
            until_ms: self.next_reading_ms,
        }
    }

    /// A reading was taken (or failed) at `now_ms`: the next one is due an
    /// interval after the previous due time, or after `now_ms` when the
    /// loop fell behind.
    pub fn measured(&mut self, now_ms: u64) {
        self.next_reading_ms = self.next_reading_ms.saturating_add(self.interval_ms);
        if self.next_reading_ms <= now_ms {
            self.next_reading_ms = now_ms + self.interval_ms;
        }
    }

    /// Readings to drop (oldest first) so that at most `max_queued` wait.
    pub fn excess(&self, queued: usize) -> usize {
        queued.saturating_sub(self.max_queued)
    }

    /// The connection is open: the backoff starts over.
    pub fn connected(&mut self) {
        self.failures = 0;
    }

    /// A connection attempt failed or an open connection was lost at
    /// `now_ms`; `random` is a random number. Returns the delay before the
    /// next attempt.
    pub fn failed(&mut self, now_ms: u64, random: u32) -> Duration {
        let delay = self.backoff.delay(self.failures, Backoff::unit_of(random));
        self.failures = self.failures.saturating_add(1);
        self.retry_at_ms = now_ms + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        delay
    }

    /// Failed attempts since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let backoff = Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            multiplier: 2.0,
            jitter: 0.0,
        };
        Plan::new(1_000, Duration::from_secs(10), backoff, 3)
    }

    #[test]
    fn measures_every_interval_and_publishes_while_connected() {
        let mut p = plan();
        assert_eq!(p.next(1_000, false, 0), Step::Measure);
        p.measured(1_000);
        assert_eq!(p.next(1_000, false, 1), Step::Connect);
        p.connected();
        assert_eq!(p.next(1_001, true, 1), Step::Publish);
        assert_eq!(p.next(1_002, true, 0), Step::Wait { until_ms: 11_000 });
        assert_eq!(p.next(11_000, true, 0), Step::Measure);
        // A slow reading does not shift the schedule...
        p.measured(11_500);
        assert_eq!(p.next(11_600, true, 0), Step::Wait { until_ms: 21_000 });
        // ...unless a whole interval was missed.
        p.measured(45_000);
        assert_eq!(p.next(45_001, true, 0), Step::Wait { until_ms: 55_000 });
    }

    #[test]
    fn reconnects_with_backoff_and_keeps_measuring() {
        let mut p = plan();
        p.measured(1_000);
        assert_eq!(p.failed(1_000, 0), Duration::from_secs(1));
        assert_eq!(p.next(1_500, false, 1), Step::Wait { until_ms: 2_000 });
        assert_eq!(p.next(2_000, false, 1), Step::Connect);
        assert_eq!(p.failed(2_000, 0), Duration::from_secs(2));
        assert_eq!(p.failed(4_000, 0), Duration::from_secs(4));
        assert_eq!(p.failed(8_000, 0), Duration::from_secs(8));
        assert_eq!(p.failed(16_000, 0), Duration::from_secs(8));
        assert_eq!(p.failures(), 5);
        // A reading due before the retry is taken first.
        assert_eq!(p.next(16_000, false, 1), Step::Measure);
        p.measured(16_000);
        assert_eq!(p.next(17_000, false, 2), Step::Wait { until_ms: 21_000 });
        p.connected();
        assert_eq!(p.failures(), 0);
        assert_eq!(p.failed(30_000, 0), Duration::from_secs(1));
    }

    #[test]
    fn bounds_the_queue() {
        let p = plan();
        assert_eq!(p.excess(3), 0);
        assert_eq!(p.excess(5), 2);
    }
}
