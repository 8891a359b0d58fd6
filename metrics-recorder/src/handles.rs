//! The facade's handle traits over herd's handles.
//!
//! Each type wraps a clone of a herd handle (which shares its cells), so a kept
//! `metrics::Counter` increments the same cell that herd's own `Counter::inc` does,
//! through one dynamic call.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{CounterFn, GaugeFn, HistogramFn};

/// A herd counter as a facade counter.
#[derive(Debug)]
pub(crate) struct CounterHandle {
    counter: herd_core::Counter,
    /// The last value passed to `absolute`, so that only its growth is added.
    absolute: AtomicU64,
}

impl CounterHandle {
    pub(crate) fn new(counter: herd_core::Counter) -> Self {
        Self { counter, absolute: AtomicU64::new(0) }
    }
}

impl CounterFn for CounterHandle {
    #[inline]
    fn increment(&self, value: u64) {
        self.counter.inc_by(value);
    }

    /// A herd counter only goes up, and in multi-process mode it is the sum of every
    /// process's cells, so it cannot be *set*. `absolute(v)` instead adds what the
    /// mirrored total grew by since this handle's last `absolute`: the first call adds
    /// `v`; a larger `v` adds the difference; a smaller `v` is read as the mirrored
    /// counter having restarted from zero, and adds `v` (what `rate()` would assume).
    ///
    /// Concurrent calls add each step exactly once: the last value is swapped in
    /// before the difference is added.
    fn absolute(&self, value: u64) {
        // Relaxed: the baseline orders nothing else; the swap alone makes each step
        // count once.
        let last = self.absolute.swap(value, Ordering::Relaxed);
        let grown = if value >= last { value - last } else { value };
        self.counter.inc_by(grown);
    }
}

/// A herd gauge as a facade gauge.
#[derive(Debug)]
pub(crate) struct GaugeHandle(pub(crate) herd_core::Gauge);

impl GaugeFn for GaugeHandle {
    #[inline]
    fn increment(&self, value: f64) {
        self.0.add(value);
    }

    #[inline]
    fn decrement(&self, value: f64) {
        self.0.sub(value);
    }

    #[inline]
    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

/// A herd histogram, or a herd summary where one was asked for, as a facade histogram.
#[derive(Debug)]
pub(crate) enum HistogramHandle {
    Histogram(herd_core::Histogram),
    Summary(herd_core::Summary),
}

impl HistogramFn for HistogramHandle {
    #[inline]
    fn record(&self, value: f64) {
        match self {
            Self::Histogram(h) => h.observe(value),
            Self::Summary(s) => s.observe(value),
        }
    }
}
