//! What a metric family is: its name, type, help, unit and label names.

use std::sync::Arc;

use crate::model::{Buckets, GaugeMode, MetricKind, NativeBuckets, SummaryLayout};

/// Everything about a family that does not change after registration.
///
/// A [`Storage`](crate::storage::Storage) receives it when the family is registered and
/// with every series it allocates, so a storage that writes files (herd-mmap) can record
/// real HELP and UNIT text and the bucket layout beside the cells.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FamilyDesc {
    /// The full family name, registry prefix included; for counters without `_total`.
    pub name: Arc<str>,
    /// The HELP text, unescaped.
    pub help: Arc<str>,
    /// The unit, if any; the name ends with `_<unit>`.
    pub unit: Option<Arc<str>>,
    /// The metric type.
    pub kind: MetricKind,
    /// The variable label names, in order (constant labels are not included).
    pub label_names: Arc<[Arc<str>]>,
    /// The classic bucket upper bounds, for histograms that keep them (every histogram
    /// but a native-only one).
    pub buckets: Option<Buckets>,
    /// The native buckets, for histograms that keep them.
    pub native: Option<NativeBuckets>,
    /// How a multiprocess aggregator combines this gauge across processes
    /// ([`GaugeMode::All`] for every other type).
    pub gauge_mode: GaugeMode,
    /// For a summary with objectives: its sketch's layout (objectives, window, bins),
    /// which a storage that describes its cells records beside them.
    pub summary: Option<SummaryLayout>,
    /// How many cells each series takes, in the layout of the metric type (see the
    /// type's documentation); a storage that describes its cells, as herd-mmap's file
    /// format does, records it.
    pub cells_per_series: usize,
}
