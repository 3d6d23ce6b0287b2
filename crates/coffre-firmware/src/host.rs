//! The device's timer on the host (feature `tokio`): what the tests, the
//! demo's `firmware-core` scenario and `coffre bench` run the driver with.

use core::future::Future;
use std::time::Duration;

use coffre_device::Clock;
use tokio::time::Instant;

use crate::Timer;

/// Milliseconds since it was made, and sleeps on tokio's timer (the
/// runtime needs `enable_time`).
#[derive(Debug, Clone, Copy)]
pub struct TokioTimer {
    origin: Instant,
}

impl TokioTimer {
    /// Time starts now.
    pub fn new() -> Self {
        TokioTimer {
            origin: Instant::now(),
        }
    }
}

impl Default for TokioTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioTimer {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Timer for TokioTimer {
    fn sleep_until(&self, at_ms: u64) -> impl Future<Output = ()> {
        let at = self
            .origin
            .checked_add(Duration::from_millis(at_ms))
            // Far enough to never come.
            .unwrap_or_else(|| self.origin + Duration::from_secs(86_400 * 365 * 30));
        tokio::time::sleep_until(at)
    }
}
