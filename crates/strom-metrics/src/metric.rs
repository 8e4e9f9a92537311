//! The three kinds of series: counters, gauges and fixed-bucket histograms, each a few
//! atomics updated with relaxed ordering (a scrape needs no ordering with anything else;
//! a histogram's count, sum and buckets may disagree by the observations in flight, as in
//! every Prometheus client).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A value that only goes up (requests, bytes). Rendered as a Prometheus counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (open connections). Rendered as a Prometheus gauge.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at zero.
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }

    /// Sets the value.
    #[inline]
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// Adds `delta` (negative to subtract).
    #[inline]
    pub fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Latency bucket upper bounds in seconds, 100 µs to 30 s: a produce acknowledged from the
/// page cache lands in the first buckets, an fsync on a slow disk or a long poll in the last.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// The most buckets a histogram may have (a bound on its size and on the search per
/// observation).
const BUCKETS_MAX: usize = 64;

/// A distribution over fixed buckets, in integer units (nanoseconds for durations), exposed
/// in a float unit (seconds) with `scale`. Each observation lands in exactly one bucket;
/// the exposition makes the counts cumulative, as Prometheus wants.
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds, ascending, in the integer unit.
    bounds: Box<[u64]>,
    /// One count per bound, then the `+Inf` bucket.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
    /// Exposed value of one integer unit.
    scale: f64,
}

impl Histogram {
    /// A histogram of durations exposed in seconds, with `bounds_seconds` as upper bounds
    /// (ascending; at most 64 are kept, and unsorted or repeated ones are dropped).
    pub fn seconds(bounds_seconds: &[f64]) -> Histogram {
        let bounds: Vec<u64> = bounds_seconds
            .iter()
            .map(|s| (s * 1e9).round().max(0.0) as u64)
            .collect();
        Histogram::new(&bounds, 1e-9)
    }

    /// A histogram of integer values (bytes, counts) exposed as `value * scale`.
    pub fn new(bounds: &[u64], scale: f64) -> Histogram {
        let mut kept: Vec<u64> = Vec::with_capacity(bounds.len().min(BUCKETS_MAX));
        for &bound in bounds {
            if kept.len() < BUCKETS_MAX && kept.last().is_none_or(|&last| bound > last) {
                kept.push(bound);
            }
        }
        let counts = (0..=kept.len()).map(|_| AtomicU64::new(0)).collect();
        Histogram {
            bounds: kept.into_boxed_slice(),
            counts,
            sum: AtomicU64::new(0),
            scale,
        }
    }

    /// A request-latency histogram ([`LATENCY_BUCKETS_SECONDS`]).
    pub fn latency() -> Histogram {
        Histogram::seconds(LATENCY_BUCKETS_SECONDS)
    }

    /// Records one value in the integer unit.
    #[inline]
    pub fn observe(&self, value: u64) {
        let index = self.bounds.partition_point(|&bound| bound < value);
        if let Some(count) = self.counts.get(index) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Records a duration (for histograms made with [`Histogram::seconds`]).
    #[inline]
    pub fn observe_duration(&self, duration: Duration) {
        self.observe(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The sum of the observations, in the exposed unit.
    pub fn sum(&self) -> f64 {
        self.sum.load(Ordering::Relaxed) as f64 * self.scale
    }

    /// `(upper bound in the exposed unit, cumulative count)` per bucket, `+Inf` last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0u64;
        let mut out = Vec::with_capacity(self.counts.len());
        for (index, count) in self.counts.iter().enumerate() {
            total = total.saturating_add(count.load(Ordering::Relaxed));
            let bound = self
                .bounds
                .get(index)
                .map_or(f64::INFINITY, |&b| b as f64 * self.scale);
            out.push((bound, total));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_inclusive_upper_bounds() {
        let h = Histogram::new(&[10, 20, 30], 1.0);
        for v in [0, 10, 11, 20, 30, 31, 1_000] {
            h.observe(v);
        }
        assert_eq!(
            h.cumulative(),
            vec![(10.0, 2), (20.0, 4), (30.0, 5), (f64::INFINITY, 7)]
        );
        assert_eq!(h.count(), 7);
        assert_eq!(h.sum(), 1_102.0);
    }

    #[test]
    fn seconds_histogram_takes_durations() {
        let h = Histogram::seconds(&[0.001, 0.01]);
        h.observe_duration(Duration::from_micros(500));
        h.observe_duration(Duration::from_millis(5));
        h.observe_duration(Duration::from_secs(1));
        let buckets = h.cumulative();
        assert_eq!(buckets.iter().map(|b| b.1).collect::<Vec<_>>(), [1, 2, 3]);
        assert!((h.sum() - 1.0055).abs() < 1e-9);
        assert!((buckets[0].0 - 0.001).abs() < 1e-12);
    }

    #[test]
    fn unsorted_bounds_are_dropped() {
        let h = Histogram::new(&[5, 3, 5, 8], 1.0);
        assert_eq!(h.cumulative().len(), 3);
    }

    #[test]
    fn counter_and_gauge() {
        let c = Counter::new();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        let g = Gauge::new();
        g.add(3);
        g.add(-5);
        assert_eq!(g.get(), -2);
        g.set(7);
        assert_eq!(g.get(), 7);
    }
}
