//! The metric handles: [`Counter`], [`Gauge`], [`Histogram`] and [`Summary`].
//!
//! Every handle is a view of cells handed out by a storage; updating one is an atomic
//! read-modify-write on those cells and nothing else. Handles are cheap to clone: a
//! clone shares the same cells.

pub(crate) mod counter;
pub(crate) mod gauge;
pub(crate) mod histogram;
pub mod sketch;
pub(crate) mod summary;

use std::fmt;

use crate::cell::CellBlock;
use crate::model::{GaugeMode, MetricKind};
use crate::snapshot::SeriesValue;

pub use crate::model::{Buckets, BucketsError, Exemplar, ExemplarError, NativeBuckets, SummaryLayout};
pub use counter::Counter;
pub use gauge::Gauge;
pub use histogram::{Histogram, HistogramTimer, OwnedHistogramTimer};
pub use summary::{Objectives, Summary, SummaryError, Window};

mod sealed {
    pub trait Sealed {}
}

/// A metric type that a [`Family`](crate::Family) can hold. Implemented by the four
/// handle types; sealed.
pub trait Metric: Clone + Send + Sync + fmt::Debug + sealed::Sealed + 'static {
    /// The type this handle exposes as.
    const KIND: MetricKind;

    /// Per-family settings every series shares (bucket bounds, exemplars).
    #[doc(hidden)]
    type Config: Clone + Send + Sync + fmt::Debug + 'static;

    /// How many cells one series needs.
    #[doc(hidden)]
    fn cell_count(config: &Self::Config) -> usize;

    /// Wraps freshly allocated cells; `None` if the block has the wrong length.
    #[doc(hidden)]
    fn from_block(block: CellBlock, config: &Self::Config) -> Option<Self>;

    /// A series on private heap cells, for when the storage fails.
    #[doc(hidden)]
    fn detached(config: &Self::Config) -> Self;

    /// The bucket bounds, for histograms.
    #[doc(hidden)]
    fn buckets(config: &Self::Config) -> Option<Buckets> {
        let _ = config;
        None
    }

    /// The native buckets, for histograms that keep them.
    #[doc(hidden)]
    fn native(config: &Self::Config) -> Option<NativeBuckets> {
        let _ = config;
        None
    }

    /// The quantile sketch's layout, for summaries with objectives.
    #[doc(hidden)]
    fn summary(config: &Self::Config) -> Option<SummaryLayout> {
        let _ = config;
        None
    }

    /// The multiprocess mode, for gauges.
    #[doc(hidden)]
    fn gauge_mode(config: &Self::Config) -> GaugeMode {
        let _ = config;
        GaugeMode::All
    }

    /// Reads the current value.
    #[doc(hidden)]
    fn read(&self) -> SeriesValue;
}
