use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{sealed, Metric};
use crate::cell::{add_f64, load_f64, CellBlock, Cells};
use crate::desc::MetricKind;
use crate::snapshot::{SeriesValue, SummaryValue};

// Cell layout: [0] count, [1] sum (f64 bits). Quantile sketches, when configured, will
// follow these two cells, so a summary stays a plain run of cells in any storage.
const COUNT: usize = 0;
const SUM: usize = 1;

/// Observations summarised as `_count` and `_sum`.
///
/// Quantiles are not reported yet; when they are, they will come from a mergeable
/// sketch kept in cells, so they stay correct across processes.
///
/// # Examples
///
/// ```
/// let registry = herd_core::Registry::new();
/// let sizes = registry.summary("payload_bytes", "Payload sizes.").register()?;
/// sizes.observe(512.0);
/// sizes.observe(1024.0);
/// assert_eq!((sizes.count(), sizes.sum()), (2, 1536.0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use = "a summary handle does nothing unless observed"]
pub struct Summary {
    cells: Cells<2>,
}

/// Per-family summary settings.
#[derive(Debug, Clone, Default)]
#[doc(hidden)]
pub struct SummaryConfig {}

impl Summary {
    /// Records one observation. NaN is ignored, as by histograms.
    #[inline]
    pub fn observe(&self, v: f64) {
        if v.is_nan() {
            return;
        }
        let cells = self.cells.get();
        add_f64(&cells[SUM], v);
        // Release after the sum, as for histogram buckets: whoever sees the count sees
        // the sum that goes with it.
        cells[COUNT].fetch_add(1, Ordering::Release);
    }

    /// Records a duration in seconds.
    #[inline]
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// The number of observations so far.
    pub fn count(&self) -> u64 {
        self.cells.get()[COUNT].load(Ordering::Relaxed)
    }

    /// The sum of observations so far.
    pub fn sum(&self) -> f64 {
        load_f64(&self.cells.get()[SUM], Ordering::Relaxed)
    }
}

impl sealed::Sealed for Summary {}

impl Metric for Summary {
    const KIND: MetricKind = MetricKind::Summary;
    type Config = SummaryConfig;

    fn cell_count(_: &SummaryConfig) -> usize {
        2
    }

    fn from_block(block: CellBlock, _: &SummaryConfig) -> Option<Self> {
        Some(Self { cells: Cells::from_block(block)? })
    }

    fn detached(_: &SummaryConfig) -> Self {
        Self { cells: Cells::detached() }
    }

    fn read(&self) -> SeriesValue {
        let cells = self.cells.get();
        let count = cells[COUNT].load(Ordering::Acquire);
        let sum = load_f64(&cells[SUM], Ordering::Relaxed);
        SeriesValue::Summary(SummaryValue { count, sum, quantiles: Vec::new() })
    }
}

impl fmt::Debug for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Summary").field("count", &self.count()).field("sum", &self.sum()).finish()
    }
}
