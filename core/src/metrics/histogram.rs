use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{sealed, Metric};
use crate::cell::{add_f64, load_f64, CellBlock};
use crate::model::exemplar::{self, Exemplar, ExemplarError};
use crate::model::native::NativeIndex;
use crate::model::{Buckets, MetricKind, NativeBuckets};
use crate::snapshot::{HistogramValue, SeriesValue};

/// Per-family histogram settings.
#[derive(Debug, Clone)]
#[doc(hidden)]
pub struct HistogramConfig {
    pub(crate) buckets: Buckets,
    pub(crate) exemplars: bool,
    pub(crate) native: Option<NativeBuckets>,
    /// Whether the classic buckets are kept; only a native histogram may go without.
    pub(crate) classic: bool,
}

impl Default for HistogramConfig {
    fn default() -> Self {
        Self { buckets: Buckets::default(), exemplars: false, native: None, classic: true }
    }
}

impl HistogramConfig {
    /// Whether the series keep classic buckets: all but a native-only histogram's.
    fn keeps_classic(&self) -> bool {
        self.classic || self.native.is_none()
    }

    /// The classic bounds the series keep: none for a native-only histogram.
    fn bounds(&self) -> Arc<[f64]> {
        if self.keeps_classic() {
            self.buckets.shared()
        } else {
            Arc::from([])
        }
    }

    /// Where the sum is: after the classic counts, or first without them.
    fn sum_at(&self) -> usize {
        if self.keeps_classic() {
            self.buckets.bounds().len() + 1
        } else {
            0
        }
    }
}

/// Observations counted into fixed buckets, with their sum.
///
/// Each bucket has its own cell and counts only its own observations; the cumulative
/// `le` counts and `_count` are derived when read, so one observation is one bucket
/// increment (not one per bucket above it) and `_count` always equals the `+Inf` bucket.
///
/// A histogram may also keep native (sparse exponential) buckets
/// ([`native`](crate::MetricBuilder::native), [`NativeBuckets`]): an observation is then
/// one more increment, of its native bucket. Prometheus reads them from the protobuf
/// exposition and merges them across targets; the text formats show the classic
/// buckets, or, for a histogram with native buckets only, the `+Inf` bucket, `_sum` and
/// `_count`.
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
    // Cell layout: with classic buckets, one count per bucket (bounds.len() + 1, the last
    // for +Inf); then the sum as f64 bits; with native buckets, the zero bucket, then
    // each positive bucket, then each negative one (FORMAT.md in herd-mmap).
    cells: CellBlock,
    // Empty for a native-only histogram, whose sum is then cell 0.
    bounds: Arc<[f64]>,
    classic: bool,
    native: Option<NativeIndex>,
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

    /// Starts a timer that observes the elapsed seconds when dropped (or at
    /// [`stop_and_record`](HistogramTimer::stop_and_record)). It borrows this handle,
    /// so it suits a synchronous scope; to hold a timer across an `.await` in a
    /// `'static` future, or to move it to another thread, use
    /// [`start_owned_timer`](Self::start_owned_timer).
    pub fn start_timer(&self) -> HistogramTimer<'_> {
        HistogramTimer { histogram: Some(self), start: Instant::now() }
    }

    /// Starts a timer that owns a clone of this handle (clones share the cells, so the
    /// clone costs one reference-count increment), and is `Send` and `'static`: it can
    /// be held across `.await` or moved to another thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let registry = herd_core::Registry::new();
    /// let latency = registry.histogram("job_duration_seconds", "Time per job.").register()?;
    /// let timer = latency.start_owned_timer();
    /// std::thread::spawn(move || {
    ///     // ... the job ...
    ///     timer.stop_and_record();
    /// })
    /// .join()
    /// .map_err(|_| "the job panicked")?;
    /// assert_eq!(latency.count(), 1);
    /// // A job that failed is left out of the latency histogram:
    /// latency.start_owned_timer().stop_and_discard();
    /// assert_eq!(latency.count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_owned_timer(&self) -> OwnedHistogramTimer {
        OwnedHistogramTimer { histogram: Some(self.clone()), start: Instant::now() }
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
        let counts = if self.classic {
            &cells[..=self.bounds.len()]
        } else {
            cells.get(self.sum_at() + 1..).unwrap_or_default()
        };
        counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The sum of observations so far.
    pub fn sum(&self) -> f64 {
        load_f64(&self.cells.cells()[self.sum_at()], Ordering::Relaxed)
    }

    #[inline]
    fn sum_at(&self) -> usize {
        if self.classic {
            self.bounds.len() + 1
        } else {
            0
        }
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
        let sum_at = self.sum_at();
        add_f64(&cells[sum_at], v);
        // Release after the sum: a reader that loads the buckets with Acquire and then
        // the sum sees every counted observation's value in the sum.
        if let Some(native) = &self.native {
            cells[sum_at + 1 + native.cell_of(v)].fetch_add(1, Ordering::Release);
        }
        if self.classic {
            cells[bucket].fetch_add(1, Ordering::Release);
        }
    }
}

/// Observes the seconds since its creation into a histogram it borrows, when dropped
/// or at [`stop_and_record`](Self::stop_and_record); [`Histogram::start_timer`].
///
/// For a timer held across `.await` or moved to another thread, see
/// [`OwnedHistogramTimer`].
#[derive(Debug)]
#[must_use = "the timer observes when dropped; dropping it at once measures nothing"]
pub struct HistogramTimer<'a> {
    // `None` once stopped, so that drop observes nothing more.
    histogram: Option<&'a Histogram>,
    start: Instant,
}

impl HistogramTimer<'_> {
    /// Observes the seconds elapsed now, and returns them.
    pub fn stop_and_record(mut self) -> f64 {
        let seconds = self.start.elapsed().as_secs_f64();
        if let Some(h) = self.histogram.take() {
            h.observe(seconds);
        }
        seconds
    }

    /// Stops the timer without observing anything (a request that failed, say).
    pub fn stop_and_discard(mut self) {
        self.histogram = None;
    }
}

impl Drop for HistogramTimer<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.histogram.take() {
            h.observe_duration(self.start.elapsed());
        }
    }
}

/// Observes the seconds since its creation into a histogram whose handle it owns, when
/// dropped or at [`stop_and_record`](Self::stop_and_record);
/// [`Histogram::start_owned_timer`].
///
/// `Send` and `'static`: it can live in a future across `.await` points and be
/// dropped on another thread. A future that is cancelled drops it, and the time until
/// then is observed; call [`stop_and_discard`](Self::stop_and_discard) first where
/// that time should not count.
#[derive(Debug)]
#[must_use = "the timer observes when dropped; dropping it at once measures nothing"]
pub struct OwnedHistogramTimer {
    // `None` once stopped, so that drop observes nothing more.
    histogram: Option<Histogram>,
    start: Instant,
}

impl OwnedHistogramTimer {
    /// Observes the seconds elapsed now, and returns them.
    pub fn stop_and_record(mut self) -> f64 {
        let seconds = self.start.elapsed().as_secs_f64();
        if let Some(h) = self.histogram.take() {
            h.observe(seconds);
        }
        seconds
    }

    /// Stops the timer without observing anything.
    pub fn stop_and_discard(mut self) {
        self.histogram = None;
    }
}

impl Drop for OwnedHistogramTimer {
    fn drop(&mut self) {
        if let Some(h) = self.histogram.take() {
            h.observe_duration(self.start.elapsed());
        }
    }
}

impl sealed::Sealed for Histogram {}

impl Metric for Histogram {
    const KIND: MetricKind = MetricKind::Histogram;
    type Config = HistogramConfig;

    fn buckets(config: &HistogramConfig) -> Option<Buckets> {
        // A native-only histogram has no classic buckets to describe.
        config.keeps_classic().then(|| config.buckets.clone())
    }

    fn native(config: &HistogramConfig) -> Option<NativeBuckets> {
        config.native
    }

    fn cell_count(config: &HistogramConfig) -> usize {
        config.sum_at() + 1 + config.native.map_or(0, |n| n.cells())
    }

    fn from_block(cells: CellBlock, config: &HistogramConfig) -> Option<Self> {
        if cells.cells().len() != Self::cell_count(config) {
            return None;
        }
        Some(Self::with_cells(cells, config))
    }

    fn detached(config: &HistogramConfig) -> Self {
        Self::with_cells(CellBlock::detached(Self::cell_count(config)), config)
    }

    fn read(&self) -> SeriesValue {
        let cells = self.cells.cells();
        // Acquire: the counts' Release increments come after their values' sums.
        let cell = |i: usize| cells.get(i).map_or(0, |c| c.load(Ordering::Acquire));
        let native = self.native.as_ref().map(|n| n.buckets);
        let mut value = HistogramValue::from_cells(self.bounds.clone(), self.classic, native, cell);
        if let Some(slots) = &self.exemplars {
            value.exemplars = slots.iter().map(|s| s.lock().clone()).collect();
        }
        SeriesValue::Histogram(value)
    }
}

impl Histogram {
    fn with_cells(cells: CellBlock, config: &HistogramConfig) -> Self {
        let bounds = config.bounds();
        let exemplars = config.exemplars.then(|| (0..=bounds.len()).map(|_| Mutex::new(None)).collect());
        let classic = config.keeps_classic();
        Self { cells, bounds, classic, native: config.native.map(NativeIndex::new), exemplars }
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
    use crate::model::BucketsError;

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
        let config = HistogramConfig {
            buckets: Buckets::new(bounds.iter().copied()).unwrap(),
            exemplars: true,
            ..Default::default()
        };
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
    fn native_buckets_count_beside_classic_ones_or_alone() {
        let native = NativeBuckets::new(0, 0.25, 4.0).unwrap(); // buckets 0..=2: (0.5,1], (1,2], (2,4]
        assert_eq!((native.first_index(), native.len()), (-1, 4)); // (0.25, 0.5] first
        for classic in [true, false] {
            let config = HistogramConfig {
                buckets: Buckets::new([1.0]).unwrap(),
                native: Some(native),
                classic,
                exemplars: false,
            };
            let h = Histogram::detached(&config);
            for v in [0.1, -0.2, 0.0, 0.75, 1.5, -1.5, 3.0, 100.0, -f64::INFINITY, f64::NAN] {
                h.observe(v);
            }
            let SeriesValue::Histogram(v) = h.read() else { unreachable!() };
            let n = v.native.as_ref().unwrap();
            assert_eq!(n.zero_count, 3, "0.1, -0.2 and 0 are within the threshold");
            assert_eq!(n.first_index, -1);
            assert_eq!(n.positive, vec![0, 1, 1, 2], "100 counts in the last bucket");
            assert_eq!(n.negative, vec![0, 0, 1, 1]);
            assert_eq!(h.count(), 9, "NaN is ignored");
            assert_eq!(v.count(), 9);
            assert_eq!(n.count(), 9);
            if classic {
                assert_eq!((&v.bounds[..], &v.counts[..]), (&[1.0][..], &[6, 3][..]));
            } else {
                assert_eq!((&v.bounds[..], &v.counts[..]), (&[][..], &[9][..]));
                assert_eq!(Histogram::cell_count(&config), 1 + 9);
            }
        }
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

    fn assert_send_static<T: Send + 'static>(_: &T) {}

    /// Polls `fut` to its end on this thread; the futures here never wait on anything.
    fn run<F: std::future::Future>(fut: F) -> F::Output {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let waker = std::task::Waker::from(Arc::new(Noop));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    /// A future that is pending once, so that what it holds lives across an `.await`.
    async fn yield_once() {
        let mut yielded = false;
        std::future::poll_fn(|cx| {
            if std::mem::replace(&mut yielded, true) {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await;
    }

    #[test]
    fn timers_record_once_or_not_at_all() {
        let h = histogram(&[1000.0]);
        drop(h.start_timer());
        assert!(h.start_timer().stop_and_record() >= 0.0);
        h.start_timer().stop_and_discard();
        assert_eq!(h.count(), 2);
        drop(h.start_owned_timer());
        assert!(h.start_owned_timer().stop_and_record() >= 0.0);
        h.start_owned_timer().stop_and_discard();
        assert_eq!(h.count(), 4);
        assert_eq!(h.cells.cells()[0].load(Ordering::Relaxed), 4, "all in the first bucket");
    }

    #[test]
    fn an_owned_timer_lives_across_await_and_threads() {
        let h = histogram(&[1000.0]);
        let timer = h.start_owned_timer();
        let job = async move {
            yield_once().await;
            timer.stop_and_record()
        };
        assert_send_static(&job);
        let seconds = std::thread::spawn(move || run(job)).join().unwrap();
        assert!(seconds >= 0.0);
        let cancelled = {
            let timer = h.start_owned_timer();
            async move {
                yield_once().await;
                timer.stop_and_discard();
            }
        };
        drop(cancelled); // never polled: dropping the future drops (and records) the timer
        assert_eq!(h.count(), 2);
    }
}
