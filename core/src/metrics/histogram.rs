use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::exemplar::{self, Exemplar, ExemplarError};
use super::{sealed, Metric};
use crate::cell::{add_f64, load_f64, CellBlock};
use crate::desc::MetricKind;
use crate::snapshot::{HistogramValue, SeriesValue};

/// Upper bounds of a histogram's buckets: finite and strictly increasing. The `+Inf`
/// bucket is always present and never listed.
#[derive(Clone, PartialEq)]
pub struct Buckets(Arc<[f64]>);

/// Why a bucket layout was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BucketsError {
    /// A bound is NaN or `-Inf`, or `+Inf` appears before the end.
    NotFinite(f64),
    /// Bounds must strictly increase; this one does not exceed its predecessor.
    NotIncreasing(f64),
    /// A helper was asked for zero buckets, a non-positive width or factor, or a
    /// non-positive exponential start.
    BadParameters(&'static str),
}

impl fmt::Display for BucketsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFinite(v) => write!(f, "bucket bound {v} is not finite"),
            Self::NotIncreasing(v) => write!(f, "bucket bound {v} does not exceed the one before it"),
            Self::BadParameters(why) => write!(f, "invalid bucket parameters: {why}"),
        }
    }
}

impl std::error::Error for BucketsError {}

impl Buckets {
    /// The most bounds a histogram may have: with `+Inf` and the sum, a series then
    /// takes 65,536 cells, the most a herd-mmap file accepts per series.
    pub const MAX_BOUNDS: usize = 65_534;

    /// Prometheus' default bounds, shared by client_golang and client_python:
    /// 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 (seconds).
    pub const DEFAULT: &'static [f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

    /// Buckets with the given upper bounds. A trailing `+Inf` is accepted and dropped,
    /// since the `+Inf` bucket is implicit.
    ///
    /// # Errors
    ///
    /// [`BucketsError`] for a non-finite or non-increasing bound, or more than
    /// [`MAX_BOUNDS`](Buckets::MAX_BOUNDS) of them.
    pub fn new(bounds: impl IntoIterator<Item = f64>) -> Result<Self, BucketsError> {
        let mut v: Vec<f64> = bounds.into_iter().collect();
        if v.last() == Some(&f64::INFINITY) {
            v.pop();
        }
        if v.len() > Self::MAX_BOUNDS {
            return Err(BucketsError::BadParameters("more than 65,534 bucket bounds"));
        }
        for (i, &b) in v.iter().enumerate() {
            if !b.is_finite() {
                return Err(BucketsError::NotFinite(b));
            }
            if i > 0 && b <= v[i - 1] {
                return Err(BucketsError::NotIncreasing(b));
            }
        }
        Ok(Self(v.into()))
    }

    /// `count` buckets: `start`, `start + width`, … (`+Inf` is added implicitly).
    ///
    /// # Errors
    ///
    /// [`BucketsError::BadParameters`] when `count` is 0 or `width` is not positive.
    pub fn linear(start: f64, width: f64, count: usize) -> Result<Self, BucketsError> {
        if count == 0 || width.is_nan() || width <= 0.0 {
            return Err(BucketsError::BadParameters("linear buckets need count >= 1 and width > 0"));
        }
        Self::new((0..count).map(|i| start + width * i as f64))
    }

    /// `count` buckets: `start`, `start * factor`, `start * factor²`, …
    ///
    /// # Errors
    ///
    /// [`BucketsError::BadParameters`] when `count` is 0, `start` is not positive or
    /// `factor` is not above 1.
    pub fn exponential(start: f64, factor: f64, count: usize) -> Result<Self, BucketsError> {
        if count == 0 || start.is_nan() || start <= 0.0 || factor.is_nan() || factor <= 1.0 {
            return Err(BucketsError::BadParameters(
                "exponential buckets need count >= 1, start > 0 and factor > 1",
            ));
        }
        Self::new((0..count).map(|i| start * factor.powi(i as i32)))
    }

    /// The finite upper bounds.
    pub fn bounds(&self) -> &[f64] {
        &self.0
    }

    pub(crate) fn shared(&self) -> Arc<[f64]> {
        self.0.clone()
    }
}

impl Default for Buckets {
    fn default() -> Self {
        Self(Self::DEFAULT.into())
    }
}

impl fmt::Debug for Buckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

/// Per-family histogram settings.
#[derive(Debug, Clone, Default)]
#[doc(hidden)]
pub struct HistogramConfig {
    pub(crate) buckets: Buckets,
    pub(crate) exemplars: bool,
}

/// Observations counted into fixed buckets, with their sum.
///
/// Each bucket has its own cell and counts only its own observations; the cumulative
/// `le` counts and `_count` are derived when read, so one observation is one bucket
/// increment (not one per bucket above it) and `_count` always equals the `+Inf` bucket.
///
/// # Examples
///
/// ```
/// use herd_core::{Buckets, Registry};
/// let registry = Registry::new();
/// let latency = registry
///     .histogram("job_duration_seconds", "Time per job.")
///     .buckets(Buckets::new([0.1, 1.0])?)
///     .register()?;
/// latency.observe(0.05);
/// latency.observe(0.5);
/// assert_eq!(latency.count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use = "a histogram handle does nothing unless observed"]
pub struct Histogram {
    // Cell layout: one count per bucket (bounds.len() + 1, the last for +Inf), then the
    // sum as f64 bits.
    cells: CellBlock,
    bounds: Arc<[f64]>,
    exemplars: Option<Arc<[Mutex<Option<Exemplar>>]>>,
}

impl Histogram {
    /// Records one observation. NaN is ignored: it belongs to no bucket and would turn
    /// `_sum` into NaN for good.
    #[inline]
    pub fn observe(&self, v: f64) {
        if let Some(bucket) = self.bucket_of(v) {
            self.record(bucket, v);
        }
    }

    /// Records a duration in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Starts a timer that observes the elapsed seconds when dropped.
    pub fn start_timer(&self) -> HistogramTimer<'_> {
        HistogramTimer { histogram: self, start: Instant::now() }
    }

    /// Records `v` and keeps `labels` as the exemplar of the bucket it falls in.
    ///
    /// # Errors
    ///
    /// [`ExemplarError`] says why the exemplar was not kept; the observation is recorded
    /// in any case (except NaN, which is ignored as by [`observe`](Self::observe)).
    pub fn observe_with_exemplar(&self, v: f64, labels: &[(&str, &str)]) -> Result<(), ExemplarError> {
        let Some(bucket) = self.bucket_of(v) else { return Ok(()) };
        self.record(bucket, v);
        let slot = self.exemplars.as_ref().and_then(|slots| slots.get(bucket));
        exemplar::record(slot, labels, v)
    }

    /// The number of observations so far.
    pub fn count(&self) -> u64 {
        let cells = self.cells.cells();
        cells[..=self.bounds.len()].iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The sum of observations so far.
    pub fn sum(&self) -> f64 {
        load_f64(&self.cells.cells()[self.bounds.len() + 1], Ordering::Relaxed)
    }

    #[inline]
    fn bucket_of(&self, v: f64) -> Option<usize> {
        if v.is_nan() {
            return None;
        }
        // `le` is inclusive: the first bound >= v. Past the last bound is +Inf.
        Some(self.bounds.partition_point(|&b| b < v))
    }

    #[inline]
    fn record(&self, bucket: usize, v: f64) {
        let cells = self.cells.cells();
        add_f64(&cells[self.bounds.len() + 1], v);
        // Release after the sum: a reader that loads the buckets with Acquire and then
        // the sum sees every counted observation's value in the sum.
        cells[bucket].fetch_add(1, Ordering::Release);
    }
}

/// Observes the seconds since its creation into a histogram when dropped.
#[derive(Debug)]
#[must_use = "the timer observes when dropped; dropping it at once measures nothing"]
pub struct HistogramTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl Drop for HistogramTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe_duration(self.start.elapsed());
    }
}

impl sealed::Sealed for Histogram {}

impl Metric for Histogram {
    const KIND: MetricKind = MetricKind::Histogram;
    type Config = HistogramConfig;

    fn buckets(config: &HistogramConfig) -> Option<Buckets> {
        Some(config.buckets.clone())
    }

    fn cell_count(config: &HistogramConfig) -> usize {
        config.buckets.bounds().len() + 2
    }

    fn from_block(cells: CellBlock, config: &HistogramConfig) -> Option<Self> {
        let bounds = config.buckets.shared();
        if cells.cells().len() != bounds.len() + 2 {
            return None;
        }
        let exemplars = config.exemplars.then(|| (0..=bounds.len()).map(|_| Mutex::new(None)).collect());
        Some(Self { cells, bounds, exemplars })
    }

    fn detached(config: &HistogramConfig) -> Self {
        let bounds = config.buckets.shared();
        let exemplars = config.exemplars.then(|| (0..=bounds.len()).map(|_| Mutex::new(None)).collect());
        Self { cells: CellBlock::detached(bounds.len() + 2), bounds, exemplars }
    }

    fn read(&self) -> SeriesValue {
        let cells = self.cells.cells();
        let n = self.bounds.len();
        let counts = cells[..=n].iter().map(|c| c.load(Ordering::Acquire)).collect();
        let sum = load_f64(&cells[n + 1], Ordering::Relaxed);
        let exemplars = self
            .exemplars
            .as_ref()
            .map(|slots| slots.iter().map(|s| s.lock().clone()).collect())
            .unwrap_or_default();
        SeriesValue::Histogram(HistogramValue { bounds: self.bounds.clone(), counts, sum, exemplars })
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram").field("count", &self.count()).field("sum", &self.sum()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_helpers() {
        assert_eq!(Buckets::linear(1.0, 2.0, 3).map(|b| b.bounds().to_vec()), Ok(vec![1.0, 3.0, 5.0]));
        assert_eq!(
            Buckets::exponential(1.0, 10.0, 3).map(|b| b.bounds().to_vec()),
            Ok(vec![1.0, 10.0, 100.0])
        );
        assert!(Buckets::linear(0.0, 0.0, 3).is_err());
        assert!(Buckets::exponential(0.0, 2.0, 3).is_err());
        assert!(Buckets::exponential(1.0, 1.0, 3).is_err());
        assert!(Buckets::linear(0.0, 1.0, 0).is_err());
    }

    #[test]
    fn bounds_are_validated() {
        assert_eq!(Buckets::new([1.0, 1.0]), Err(BucketsError::NotIncreasing(1.0)));
        assert!(matches!(Buckets::new([f64::NAN]), Err(BucketsError::NotFinite(_))));
        assert!(matches!(Buckets::new([f64::INFINITY, 2.0]), Err(BucketsError::NotFinite(_))));
        assert_eq!(Buckets::new([1.0, f64::INFINITY]).map(|b| b.bounds().to_vec()), Ok(vec![1.0]));
        assert_eq!(Buckets::new([]).map(|b| b.bounds().len()), Ok(0));
    }

    fn histogram(bounds: &[f64]) -> Histogram {
        let config = HistogramConfig { buckets: Buckets(bounds.into()), exemplars: true };
        Histogram::detached(&config)
    }

    #[test]
    fn observations_land_in_inclusive_buckets() {
        let h = histogram(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 2.0, 3.0, f64::INFINITY, -1.0, f64::NAN] {
            h.observe(v);
        }
        let SeriesValue::Histogram(v) = h.read() else { unreachable!() };
        // 0.5, 1.0, -1.0 -> le=1; 1.5, 2.0 -> le=2; 3.0, +Inf -> +Inf; NaN ignored.
        assert_eq!(v.counts, vec![3, 2, 2]);
        assert_eq!(h.count(), 7);
        assert_eq!(v.sum, f64::INFINITY);
    }

    #[test]
    fn exemplars_attach_to_their_bucket() {
        let h = histogram(&[1.0, 2.0]);
        assert_eq!(h.observe_with_exemplar(1.5, &[("trace_id", "abc")]), Ok(()));
        let SeriesValue::Histogram(v) = h.read() else { unreachable!() };
        assert!(v.exemplars[0].is_none());
        assert_eq!(v.exemplars[1].as_ref().map(|e| e.value), Some(1.5));
        let long = "x".repeat(200);
        assert!(matches!(h.observe_with_exemplar(0.1, &[("a", &long)]), Err(ExemplarError::TooLong { .. })));
        assert_eq!(h.count(), 2, "the observation counts even when the exemplar is refused");
    }
}
