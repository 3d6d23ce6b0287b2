//! Waiting with a time limit: the device's timer, and a race between a
//! future and a deadline that works on any executor.

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::task::Poll;

use coffre_device::Clock;

/// A clock that can also wait: the MCU's timer (embassy-time's
/// `Timer::at`), or a tokio sleep on the host (`host::TokioTimer`,
/// feature `tokio`). Same origin and unit as [`Clock::now_ms`].
pub trait Timer: Clock {
    /// A future that completes once [`Clock::now_ms`] has reached `at_ms`
    /// (at once if it has already).
    fn sleep_until(&self, at_ms: u64) -> impl Future<Output = ()>;
}

/// `fut`'s output, or `None` if `deadline` completes first (`fut` is then
/// dropped). `fut` is polled first, so one that is ready wins a tie.
pub async fn within<F, D>(deadline: D, fut: F) -> Option<F::Output>
where
    F: Future,
    D: Future<Output = ()>,
{
    let mut fut = pin!(fut);
    let mut deadline = pin!(deadline);
    poll_fn(|cx| {
        if let Poll::Ready(v) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
