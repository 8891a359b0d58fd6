//! What a metric family is: its name, type, help, unit and label names.

use std::fmt;
use std::sync::Arc;

use crate::metrics::histogram::Buckets;

/// The type of a metric family, as the exposition formats name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MetricKind {
    /// A monotonic total; samples end in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted into fixed buckets, with `_sum` and `_count`.
    Histogram,
    /// Observations summarised as `_sum`, `_count` and, where configured, quantiles.
    Summary,
    /// A value of unknown type (`untyped` in 0.0.4, `unknown` in OpenMetrics).
    Unknown,
}

impl MetricKind {
    /// The type's name on a 0.0.4 `# TYPE` line.
    pub fn text_name(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
            Self::Unknown => "untyped",
        }
    }

    /// The type's name on an OpenMetrics `# TYPE` line.
    pub fn openmetrics_name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            other => other.text_name(),
        }
    }

    /// The sample-name suffixes this type writes after the family name.
    pub(crate) fn suffixes(self) -> &'static [&'static str] {
        match self {
            Self::Counter => &["_total", "_created"],
            Self::Gauge | Self::Unknown => &[""],
            Self::Histogram => &["_bucket", "_count", "_sum", "_created"],
            Self::Summary => &["", "_count", "_sum", "_created"],
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text_name())
    }
}

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
    /// The bucket upper bounds, for histograms.
    pub buckets: Option<Buckets>,
}
