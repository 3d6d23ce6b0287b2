//! Reconnection delays, for the Linux agent and the firmware alike.

use core::time::Duration;

/// Reconnection delays: `initial × multiplier^attempt`, capped at `max`,
/// then shortened by a random part of up to `jitter` (0–1) of itself so a
/// fleet that lost its broker does not come back in one burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// First delay. Default 500 ms.
    pub initial: Duration,
    /// Cap. Default 30 s.
    pub max: Duration,
    /// Growth factor. Default 2.
    pub multiplier: f64,
    /// Random fraction taken off each delay, 0–1. Default 0.5.
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            multiplier: 2.0,
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before reconnection attempt `attempt` (0 for the first
    /// retry), with `unit` a random number in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let cap = self.max.as_secs_f64();
        let mut base = self.initial.as_secs_f64();
        // No `powi` without std: multiply until the cap is reached.
        for _ in 0..attempt.min(64) {
            if base >= cap {
                break;
            }
            base *= self.multiplier.max(1.0);
        }
        let capped = base.min(cap);
        let jitter = self.jitter.clamp(0.0, 1.0) * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64((capped * (1.0 - jitter)).max(0.0))
    }

    /// A random `u32` as the `unit` of [`Backoff::delay`].
    pub fn unit_of(random: u32) -> f64 {
        f64::from(random) / 4_294_967_296.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            multiplier: 2.0,
            jitter: 0.5,
        };
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(100));
        assert_eq!(b.delay(1, 0.0), Duration::from_millis(200));
        assert_eq!(b.delay(3, 0.0), Duration::from_millis(800));
        assert_eq!(b.delay(4, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(1000, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(b.delay(4, Backoff::unit_of(u32::MAX / 2)).as_millis(), 750);
        assert!(Backoff::unit_of(u32::MAX) < 1.0);
    }
}
