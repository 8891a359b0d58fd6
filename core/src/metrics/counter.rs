use std::fmt;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;

use super::{sealed, Metric};
use crate::cell::{add_f64, load_f64, CellBlock, Cells};
use crate::error::ValueError;
use crate::model::exemplar::{self, ExemplarError, ExemplarSlot};
use crate::model::MetricKind;
use crate::snapshot::{CounterValue, SeriesValue};

// Cell layout: [0] integer total (u64), [1] fractional total (f64 bits). Integer
// increments take the `fetch_add` fast path; only fractional ones pay for a CAS loop.
const INT: usize = 0;
const FLOAT: usize = 1;

/// A monotonic total. Starts at 0 and never decreases.
///
/// # Examples
///
/// ```
/// let registry = herd_core::Registry::new();
/// let jobs = registry.counter("jobs_total", "Jobs processed.").register()?;
/// jobs.inc();
/// jobs.inc_by(2);
/// jobs.inc_by_f64(0.5)?;
/// assert_eq!(jobs.get(), 3.5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[must_use = "a counter handle does nothing unless incremented"]
pub struct Counter {
    cells: Cells<2>,
    exemplar: Option<ExemplarSlot>,
}

/// Per-family counter settings.
#[derive(Debug, Clone, Default)]
#[doc(hidden)]
pub struct CounterConfig {
    pub(crate) exemplars: bool,
}

impl Counter {
    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `v`.
    #[inline]
    pub fn inc_by(&self, v: u64) {
        // Relaxed: the cell is an independent total; a scrape needs no ordering with
        // other memory to read a correct (if slightly stale) value.
        self.cells.get()[INT].fetch_add(v, Ordering::Relaxed);
    }

    /// Adds a non-negative, finite `v`, which may be fractional.
    ///
    /// # Errors
    ///
    /// [`ValueError`] for a negative, infinite or NaN `v`; the counter is unchanged.
    #[inline]
    pub fn inc_by_f64(&self, v: f64) -> Result<(), ValueError> {
        if !(v >= 0.0 && v.is_finite()) {
            return Err(ValueError::invalid_increment(v));
        }
        // Whole numbers keep the exact integer cell; 2^53 bounds what f64 holds exactly.
        if v.fract() == 0.0 && v < 9_007_199_254_740_992.0 {
            self.inc_by(v as u64);
        } else {
            add_f64(&self.cells.get()[FLOAT], v);
        }
        Ok(())
    }

    /// Adds `v` and keeps `labels` (for example a `trace_id`) as this counter's exemplar.
    ///
    /// # Errors
    ///
    /// [`ExemplarError`] says why the exemplar was not kept; the increment happens in
    /// any case.
    pub fn inc_by_with_exemplar(&self, v: u64, labels: &[(&str, &str)]) -> Result<(), ExemplarError> {
        self.inc_by(v);
        exemplar::record(self.exemplar.as_deref(), labels, v as f64)
    }

    fn with_cells(cells: Cells<2>, config: &CounterConfig) -> Self {
        let exemplar = config.exemplars.then(|| ExemplarSlot::new(Mutex::new(None)));
        Self { cells, exemplar }
    }

    /// The current total.
    pub fn get(&self) -> f64 {
        let cells = self.cells.get();
        cells[INT].load(Ordering::Relaxed) as f64 + load_f64(&cells[FLOAT], Ordering::Relaxed)
    }
}

impl sealed::Sealed for Counter {}

impl Metric for Counter {
    const KIND: MetricKind = MetricKind::Counter;
    type Config = CounterConfig;

    fn cell_count(_: &CounterConfig) -> usize {
        2
    }

    fn from_block(block: CellBlock, config: &CounterConfig) -> Option<Self> {
        Some(Self::with_cells(Cells::from_block(block)?, config))
    }

    fn detached(config: &CounterConfig) -> Self {
        Self::with_cells(Cells::detached(), config)
    }

    fn read(&self) -> SeriesValue {
        let cells = self.cells.get();
        SeriesValue::Counter(CounterValue {
            integer: cells[INT].load(Ordering::Relaxed),
            fraction: load_f64(&cells[FLOAT], Ordering::Relaxed),
            exemplar: self.exemplar.as_ref().and_then(|slot| slot.lock().clone()),
        })
    }
}

impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counter").field("value", &self.get()).finish()
    }
}
