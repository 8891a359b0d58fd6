use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{sealed, Metric};
use crate::cell::{add_f64, load_f64, CellBlock, Cells};
use crate::desc::MetricKind;
use crate::snapshot::SeriesValue;

/// A value that goes up and down. Starts at 0.
///
/// # Examples
///
/// ```
/// let registry = herd_core::Registry::new();
/// let queue = registry.gauge("queue_depth", "Jobs waiting.").register()?;
/// queue.set(10.0);
/// queue.dec();
/// queue.add(0.5);
/// assert_eq!(queue.get(), 9.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use = "a gauge handle does nothing unless set"]
pub struct Gauge {
    // One cell holding the value as f64 bits.
    cells: Cells<1>,
}

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        // Relaxed: a gauge is one independent value; last writer wins.
        self.cells.get()[0].store(v.to_bits(), Ordering::Relaxed);
    }

    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.add(1.0);
    }

    /// Subtracts 1.
    #[inline]
    pub fn dec(&self) {
        self.add(-1.0);
    }

    /// Adds `v` (which may be negative).
    #[inline]
    pub fn add(&self, v: f64) {
        add_f64(&self.cells.get()[0], v);
    }

    /// Subtracts `v`.
    #[inline]
    pub fn sub(&self, v: f64) {
        self.add(-v);
    }

    /// Sets the value to the current Unix time in seconds.
    pub fn set_to_current_time(&self) {
        // A clock before 1970 reads as 0 rather than failing.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.set(now);
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        load_f64(&self.cells.get()[0], Ordering::Relaxed)
    }
}

impl sealed::Sealed for Gauge {}

impl Metric for Gauge {
    const KIND: MetricKind = MetricKind::Gauge;
    type Config = ();

    fn cell_count(_: &()) -> usize {
        1
    }

    fn from_block(block: CellBlock, _: &()) -> Option<Self> {
        Some(Self { cells: Cells::from_block(block)? })
    }

    fn detached(_: &()) -> Self {
        Self { cells: Cells::detached() }
    }

    fn read(&self) -> SeriesValue {
        SeriesValue::Gauge(self.get())
    }
}

impl fmt::Debug for Gauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gauge").field("value", &self.get()).finish()
    }
}
