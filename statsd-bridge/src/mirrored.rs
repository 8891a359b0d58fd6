//! Mirrored handles: a herd handle whose updates also go to a series observer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use herd_core::metrics::Metric;
use herd_core::{Counter, Gauge, Histogram, SeriesObserver, Summary, ValueError};

/// A herd handle whose every update is also reported to a [`SeriesObserver`] (a
/// StatsD line, with [`StatsdBridge::mirror`](crate::StatsdBridge::mirror)).
///
/// It offers the handle's update methods; reads and anything else go through
/// [`Mirrored::handle`] (an update made there is not mirrored). Cheap to clone.
#[derive(Clone)]
#[must_use = "a mirrored handle does nothing unless updated"]
pub struct Mirrored<M> {
    handle: M,
    observer: Option<Arc<dyn SeriesObserver>>,
}

impl<M: Metric> Mirrored<M> {
    /// Wraps `handle`; `None` mirrors nothing (the family is not mirrored).
    pub fn new(handle: M, observer: Option<Arc<dyn SeriesObserver>>) -> Self {
        Self { handle, observer }
    }

    /// The herd handle, for reading.
    pub fn handle(&self) -> &M {
        &self.handle
    }

    /// Whether updates are mirrored.
    pub fn is_mirrored(&self) -> bool {
        self.observer.is_some()
    }

    #[inline]
    fn mirror(&self, f: impl FnOnce(&dyn SeriesObserver)) {
        if let Some(o) = &self.observer {
            f(&**o);
        }
    }
}

impl<M: fmt::Debug> fmt::Debug for Mirrored<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mirrored")
            .field("handle", &self.handle)
            .field("mirrored", &self.observer.is_some())
            .finish()
    }
}

impl Mirrored<Counter> {
    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.handle.inc();
        self.mirror(|o| o.counter(1.0));
    }

    /// Adds `v`.
    #[inline]
    pub fn inc_by(&self, v: u64) {
        self.handle.inc_by(v);
        self.mirror(|o| o.counter(v as f64));
    }

    /// Adds a non-negative, finite `v`.
    ///
    /// # Errors
    ///
    /// [`ValueError`] for a negative, infinite or NaN `v`; nothing is changed or sent.
    #[inline]
    pub fn inc_by_f64(&self, v: f64) -> Result<(), ValueError> {
        self.handle.inc_by_f64(v)?;
        self.mirror(|o| o.counter(v));
        Ok(())
    }
}

impl Mirrored<Gauge> {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        self.handle.set(v);
        self.mirror(|o| o.gauge_set(v));
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

    /// Adds `v` (negative to go down).
    #[inline]
    pub fn add(&self, v: f64) {
        self.handle.add(v);
        self.mirror(|o| o.gauge_add(v));
    }

    /// Subtracts `v`.
    #[inline]
    pub fn sub(&self, v: f64) {
        self.add(-v);
    }
}

/// Histograms and summaries take the same updates.
macro_rules! observations {
    ($($metric:ty),*) => {$(
        impl Mirrored<$metric> {
            /// Records one observation, in the family's unit.
            #[inline]
            pub fn observe(&self, v: f64) {
                self.handle.observe(v);
                self.mirror(|o| o.observe(v));
            }

            /// Records a duration, in seconds.
            #[inline]
            pub fn observe_duration(&self, d: Duration) {
                self.observe(d.as_secs_f64());
            }
        }
    )*};
}

observations!(Histogram, Summary);
