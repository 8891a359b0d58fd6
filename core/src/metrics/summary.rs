use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::sketch::{SummaryLayout, DEFAULT_BINS, DEFAULT_LOWEST, MAX_AGE_BUCKETS, RELATIVE_ERROR};
use super::{sealed, Metric};
use crate::cell::{add_f64, load_f64, CellBlock};
use crate::clock::{coarse_now, Clock};
use crate::model::MetricKind;
use crate::snapshot::{SeriesValue, SummaryValue};

// Cell layout: [0] count, [1] sum (f64 bits), then the sketch's age buckets (see
// `sketch.rs` and mmap-registry/FORMAT.md). With no objectives there is no sketch.
const COUNT: usize = 0;
const SUM: usize = 1;

/// Observations summarised as quantiles over a sliding time window, with `_count` and
/// `_sum` over all time.
///
/// Quantiles come from a mergeable sketch kept in the series' cells, so they are
/// correct for the union of every process's observations when herd-mmap aggregates a
/// directory, not an average of per-process quantiles.
///
/// - **Relative error**: each reported quantile is within 2% ([`RELATIVE_ERROR`]) of
///   the exact quantile of the observations in the window (the observation of rank
///   `floor(q · (n − 1))`), for values inside the sketch's range. The sketch is
///   log-bucketed in the manner of DDSketch (`γ = 1.02 / 0.98`); merging two is adding
///   their bins, which loses nothing.
/// - **Range and collapse**: the bins resolve `[1e-5, ≈ 3.5e6]` (eleven orders of
///   magnitude: 10 µs to 40 days in seconds). Smaller positive values collapse into
///   the lowest bin and are reported as about `1e-5`; larger ones (and `+Inf`) into the
///   highest, reported as about `3.5e6`. Zero and negative values are counted apart
///   and reported as `0`: summaries are for non-negative quantities such as durations
///   and sizes. NaN is ignored. `_sum` and `_count` are exact whatever the value.
/// - **Window**: an observation counts in the quantiles for `max_age` (10 minutes
///   unless [`Window`] says otherwise). The window is cut into `age_buckets` (3)
///   epochs of `max_age / age_buckets`, aligned to the Unix epoch: epoch number
///   `floor(unix_time / (max_age / age_buckets))`. Every process computes the same
///   number from the same clock, so they rotate at the same instant and their windows
///   merge exactly. A quantile covers the current epoch and the `age_buckets − 1`
///   before it: between `max_age · (age_buckets − 1) / age_buckets` and `max_age` of
///   history. With no observation in the window, quantiles are NaN, as Prometheus
///   expects.
/// - **Memory**: `2 + age_buckets · (2 + 672)` cells of 8 bytes: 2,024 cells, 16,192
///   bytes with the default settings, in memory or in a herd-mmap file. A summary with
///   no objectives ([`Objectives::none`]) takes two cells.
/// - **Cost**: an observation reads the coarse wall clock (see [`crate::clock`]: a vDSO
///   read, no system call), maps the value to a bin with a few multiplications, and
///   makes three atomic updates (bin, sum, count); once per epoch, the first
///   observation resets its age bucket.
///
/// Races: a thread that finds its age bucket being reset by another thread skips the
/// quantiles for that one observation (it still counts in `_count` and `_sum`) rather
/// than wait; an observation that read the clock just before another thread moved the
/// bucket to a newer epoch counts in the newer one. Nothing is counted twice.
///
/// # Examples
///
/// ```
/// let registry = herd_core::Registry::new();
/// let sizes = registry.summary("payload_bytes", "Payload sizes.").register()?;
/// for v in 1..=100 {
///     sizes.observe(f64::from(v));
/// }
/// assert_eq!((sizes.count(), sizes.sum()), (100, 5050.0));
/// let median = sizes.quantile(0.5).unwrap_or(f64::NAN);
/// assert!((median - 50.0).abs() <= 50.0 * 0.02, "{median}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use = "a summary handle does nothing unless observed"]
pub struct Summary {
    cells: CellBlock,
    sketch: Option<Arc<SummaryLayout>>,
    clock: Option<Arc<dyn Clock>>,
}

/// Why an objective list or a window was refused.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SummaryError {
    /// An objective outside `[0, 1]`, or NaN.
    Objective(f64),
    /// A window with no age bucket, more than 16, or epochs shorter than a second.
    Window(&'static str),
}

impl fmt::Display for SummaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Objective(q) => write!(f, "summary objective {q} is not a quantile in [0, 1]"),
            Self::Window(why) => write!(f, "invalid summary window: {why}"),
        }
    }
}

impl std::error::Error for SummaryError {}

/// The quantiles a summary reports: 0.5, 0.9 and 0.99 unless set.
#[derive(Debug, Clone, PartialEq)]
pub struct Objectives(Arc<[f64]>);

impl Objectives {
    /// The default objectives.
    pub const DEFAULT: &'static [f64] = &[0.5, 0.9, 0.99];

    /// These quantiles, sorted, duplicates dropped.
    ///
    /// # Errors
    ///
    /// [`SummaryError::Objective`] for a value outside `[0, 1]` or NaN.
    pub fn new(quantiles: impl IntoIterator<Item = f64>) -> Result<Self, SummaryError> {
        let mut v: Vec<f64> = quantiles.into_iter().collect();
        if let Some(&bad) = v.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            return Err(SummaryError::Objective(bad));
        }
        v.sort_by(f64::total_cmp);
        v.dedup();
        Ok(Self(v.into()))
    }

    /// No quantiles: `_count` and `_sum` only, in two cells.
    pub fn none() -> Self {
        Self(Arc::new([]))
    }

    /// The quantiles.
    pub fn quantiles(&self) -> &[f64] {
        &self.0
    }
}

impl Default for Objectives {
    fn default() -> Self {
        Self(Self::DEFAULT.into())
    }
}

/// The sliding time window of a summary's quantiles: `max_age` cut into `age_buckets`
/// epochs aligned to the Unix epoch (see [`Summary`]). 10 minutes in 3 unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    max_age: Duration,
    age_buckets: u32,
}

impl Window {
    /// A window of `max_age` in `age_buckets` epochs.
    ///
    /// # Errors
    ///
    /// [`SummaryError::Window`] when `age_buckets` is 0 or above 16, or an epoch
    /// (`max_age / age_buckets`) is shorter than one second.
    pub fn new(max_age: Duration, age_buckets: u32) -> Result<Self, SummaryError> {
        if age_buckets == 0 || age_buckets > MAX_AGE_BUCKETS {
            return Err(SummaryError::Window("age buckets must be between 1 and 16"));
        }
        if u64::try_from(max_age.as_nanos()).is_err() {
            return Err(SummaryError::Window("max age beyond 584 years"));
        }
        if max_age / age_buckets < Duration::from_secs(1) {
            return Err(SummaryError::Window("each age bucket must span at least one second"));
        }
        Ok(Self { max_age, age_buckets })
    }

    /// How long an observation counts.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The epochs the window is cut into.
    pub fn age_buckets(&self) -> u32 {
        self.age_buckets
    }
}

impl Default for Window {
    fn default() -> Self {
        Self { max_age: Duration::from_secs(600), age_buckets: 3 }
    }
}

/// Per-family summary settings.
#[derive(Debug, Clone, Default)]
#[doc(hidden)]
pub struct SummaryConfig {
    pub(crate) objectives: Objectives,
    pub(crate) window: Window,
    pub(crate) clock: Option<Arc<dyn Clock>>,
}

impl SummaryConfig {
    fn layout(&self) -> Option<SummaryLayout> {
        if self.objectives.0.is_empty() {
            return None;
        }
        // Window::new bounds max_age to u64 nanoseconds.
        let max_age_ns = u64::try_from(self.window.max_age.as_nanos()).unwrap_or(u64::MAX);
        SummaryLayout::from_parts(
            &self.objectives.0,
            max_age_ns,
            self.window.age_buckets,
            DEFAULT_BINS,
            RELATIVE_ERROR,
            DEFAULT_LOWEST,
        )
    }
}

impl Summary {
    /// Records one observation. NaN is ignored, as by histograms.
    #[inline]
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let cells = self.cells.cells();
        if let Some(sketch) = &self.sketch {
            sketch.record(cells, v, self.now());
        }
        if let [count, sum, ..] = cells {
            add_f64(sum, v);
            // Release after the sum, as for histogram buckets: whoever sees the count
            // sees the sum that goes with it.
            count.fetch_add(1, Ordering::Release);
        }
    }

    /// Records a duration in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// The number of observations so far.
    pub fn count(&self) -> u64 {
        self.cells.cells().get(COUNT).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The sum of observations so far.
    pub fn sum(&self) -> f64 {
        self.cells.cells().get(SUM).map_or(0.0, |c| load_f64(c, Ordering::Relaxed))
    }

    /// The reported value of quantile `q` (one of the family's objectives) now, as a
    /// scrape of this process would show it; `None` if `q` is not an objective, NaN if
    /// the window holds no observation.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let SeriesValue::Summary(v) = self.read() else { return None };
        v.quantiles.iter().find(|(o, _)| *o == q).map(|&(_, v)| v)
    }

    #[inline]
    fn now(&self) -> Duration {
        match &self.clock {
            None => coarse_now(),
            Some(clock) => clock.now(),
        }
    }
}

impl sealed::Sealed for Summary {}

impl Metric for Summary {
    const KIND: MetricKind = MetricKind::Summary;
    type Config = SummaryConfig;

    fn cell_count(config: &SummaryConfig) -> usize {
        config.layout().map_or(2, |l| l.cells())
    }

    fn summary(config: &SummaryConfig) -> Option<SummaryLayout> {
        config.layout()
    }

    fn from_block(block: CellBlock, config: &SummaryConfig) -> Option<Self> {
        let sketch = config.layout().map(Arc::new);
        if block.cells().len() != sketch.as_deref().map_or(2, SummaryLayout::cells) {
            return None;
        }
        Some(Self { cells: block, sketch, clock: config.clock.clone() })
    }

    fn detached(config: &SummaryConfig) -> Self {
        let sketch = config.layout().map(Arc::new);
        let cells = CellBlock::detached(sketch.as_deref().map_or(2, SummaryLayout::cells));
        Self { cells, sketch, clock: config.clock.clone() }
    }

    fn read(&self) -> SeriesValue {
        let cells = self.cells.cells();
        match &self.sketch {
            Some(sketch) => {
                let mut acc = vec![0u64; cells.len()];
                sketch.merge(&mut acc, cells);
                SeriesValue::Summary(sketch.value(&acc, self.now()))
            }
            None => {
                let count = cells.get(COUNT).map_or(0, |c| c.load(Ordering::Acquire));
                let sum = cells.get(SUM).map_or(0.0, |c| load_f64(c, Ordering::Relaxed));
                SeriesValue::Summary(SummaryValue { count, sum, quantiles: Vec::new() })
            }
        }
    }
}

impl fmt::Debug for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Summary").field("count", &self.count()).field("sum", &self.sum()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn summary(window: Window, clock: &Arc<ManualClock>) -> Summary {
        let clock: Arc<dyn Clock> = clock.clone();
        let config = SummaryConfig { objectives: Objectives::default(), window, clock: Some(clock) };
        Summary::detached(&config)
    }

    fn quantiles(s: &Summary) -> Vec<f64> {
        match s.read() {
            SeriesValue::Summary(v) => v.quantiles.iter().map(|&(_, v)| v).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn objectives_and_windows_are_checked() {
        assert_eq!(Objectives::new([0.9, 0.5, 0.9]).map(|o| o.quantiles().to_vec()), Ok(vec![0.5, 0.9]));
        assert_eq!(Objectives::new([1.5]), Err(SummaryError::Objective(1.5)));
        assert!(Objectives::new([f64::NAN]).is_err());
        assert!(Window::new(Duration::from_secs(60), 0).is_err());
        assert!(Window::new(Duration::from_secs(60), 17).is_err());
        assert!(Window::new(Duration::from_secs(2), 3).is_err());
        assert!(Window::new(Duration::from_secs(3), 3).is_ok());
    }

    #[test]
    fn an_empty_window_reports_nan_and_old_observations_expire() {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1_700_000_000)));
        let s = summary(Window::new(Duration::from_secs(30), 3).unwrap_or_default(), &clock);
        assert!(quantiles(&s).iter().all(|q| q.is_nan()));
        s.observe(1.0);
        clock.advance(Duration::from_secs(10));
        s.observe(100.0);
        s.observe(100.0);
        let q = quantiles(&s);
        assert!((q[0] - 100.0).abs() <= 2.0, "{q:?}");
        // 30 s later the first epoch has left the window; 10 s more and all have.
        clock.advance(Duration::from_secs(20));
        let q = quantiles(&s);
        assert!((q[0] - 100.0).abs() <= 2.0 && (q[2] - 100.0).abs() <= 2.0, "{q:?}");
        clock.advance(Duration::from_secs(10));
        assert!(quantiles(&s).iter().all(|q| q.is_nan()));
        assert_eq!((s.count(), s.sum()), (3, 201.0), "count and sum are for all time");
        // The reused age bucket starts from zero.
        s.observe(5.0);
        let q = quantiles(&s);
        assert!(q.iter().all(|v| (v - 5.0).abs() <= 0.1), "{q:?}");
    }

    #[test]
    fn zero_negative_and_out_of_range_values_are_reported_as_documented() {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1_700_000_000)));
        let s = summary(Window::default(), &clock);
        for v in [-5.0, 0.0, 1e-9, 1e12, f64::INFINITY, f64::NAN] {
            s.observe(v);
        }
        let SeriesValue::Summary(v) = s.read() else { return };
        assert_eq!(v.count, 5);
        let values: Vec<f64> = v.quantiles.iter().map(|&(_, v)| v).collect();
        // Ranks 2, 3 and 3 of [-5, 0, 1e-9, 1e12, inf]: the lowest bin, then the top.
        assert!((values[0] - DEFAULT_LOWEST).abs() <= DEFAULT_LOWEST * 0.02, "{values:?}");
        assert!(values[1] > 3.4e6 && values[1] < 3.6e6, "{values:?}");
        s.observe(-1.0);
        s.observe(-1.0);
        s.observe(-1.0);
        s.observe(-1.0);
        assert_eq!(s.quantile(0.5), Some(0.0));
    }
}
