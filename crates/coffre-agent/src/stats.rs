//! Sample statistics for measurements: the project's one percentile.
//!
//! `coffre fleet` (connect times, end-to-end latency) and `coffre bench`
//! (process wall times, handshake times, publish-to-receive latency) both
//! summarise their samples here, so a "p99" means the same thing in every
//! figure coffre prints.
//!
//! The definition is the *nearest rank*: the `p`-th percentile of `n`
//! sorted samples is the sample of rank `⌈p/100 · n⌉` (from 1), clamped to
//! `1..=n`. It is always one of the samples, never an interpolation; the
//! median of an even count is the lower of the two middle samples.
//!
//! ```
//! use coffre_agent::stats::{percentile, Percentiles};
//!
//! let mut ms = vec![4.0, 1.0, 3.0, 2.0];
//! let p = Percentiles::of(&mut ms); // sorts in place
//! assert_eq!((p.count, p.p50, p.p99, p.max), (4, 2.0, 4.0, 4.0));
//! assert_eq!(percentile(&ms, 75.0), Some(3.0));
//!
//! // Any ordered samples: durations too.
//! use std::time::Duration;
//! let mut d = [Duration::from_millis(30), Duration::from_millis(10), Duration::from_millis(20)];
//! d.sort();
//! assert_eq!(percentile(&d, 50.0), Some(Duration::from_millis(20)));
//! ```

use serde::Serialize;

/// The nearest-rank percentile `p` (0–100) of `sorted` (ascending).
/// `None` for an empty slice.
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Sort `samples` (any order, NaN last) ascending, in place, then take
/// [`percentile`] `p`.
pub fn percentile_of(samples: &mut [f64], p: f64) -> Option<f64> {
    sort(samples);
    percentile(samples, p)
}

fn sort(samples: &mut [f64]) {
    samples.sort_by(|a, b| a.total_cmp(b));
}

/// The usual summary of a set of samples (milliseconds, by convention of
/// the callers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of `samples` (any order; sorted in place). All zero for
    /// no samples.
    pub fn of(samples: &mut [f64]) -> Percentiles {
        sort(samples);
        Percentiles {
            count: samples.len(),
            p50: percentile(samples, 50.0).unwrap_or(0.0),
            p95: percentile(samples, 95.0).unwrap_or(0.0),
            p99: percentile(samples, 99.0).unwrap_or(0.0),
            max: percentile(samples, 100.0).unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        v.reverse();
        let p = Percentiles::of(&mut v);
        assert_eq!(p.count, 100);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p95, 95.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0], 0.0), Some(1.0));
        assert_eq!(percentile::<f64>(&[], 50.0), None);
        assert_eq!(Percentiles::of(&mut []), Percentiles::default());
    }

    #[test]
    fn small_sets() {
        let mut v = vec![3.0, 1.0, 2.0];
        let p = Percentiles::of(&mut v);
        assert_eq!((p.p50, p.p95, p.p99, p.max), (2.0, 3.0, 3.0, 3.0));
        // Median of an even count: the lower middle sample.
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 90.0), Some(4));
    }

    #[test]
    fn out_of_range_and_nan_ranks_are_clamped() {
        let v = [1.0, 2.0, 3.0];
        assert_eq!(percentile(&v, -5.0), Some(1.0));
        assert_eq!(percentile(&v, 250.0), Some(3.0));
        assert_eq!(percentile(&v, f64::NAN), Some(1.0));
    }

    #[test]
    fn unsorted_samples_with_nan_sort_last() {
        let mut v = vec![f64::NAN, 5.0, 1.0];
        assert_eq!(percentile_of(&mut v, 50.0), Some(5.0));
        assert_eq!(v[0], 1.0);
        assert!(v[2].is_nan());
    }
}
