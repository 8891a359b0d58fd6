//! [`MetricKind`] and [`GaugeMode`]: what a family is, and how its gauge merges across
//! processes.

use std::fmt;

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

/// How a gauge family is combined across processes when a multiprocess aggregator
/// (herd-mmap) reads it. In-process registries ignore it: there is one process.
///
/// The names are those of Python prometheus_client's `multiprocess_mode`, and mean the
/// same. "Live" modes leave out processes that have exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum GaugeMode {
    /// One series per process, live or dead, with a `pid` label. The default.
    #[default]
    All,
    /// One series per live process, with a `pid` label.
    LiveAll,
    /// The sum over every process, live or dead.
    Sum,
    /// The sum over live processes (for example, requests in flight).
    LiveSum,
    /// The smallest value of any process, live or dead.
    Min,
    /// The largest value of any process, live or dead.
    Max,
    /// The value most recently set by any process, live or dead.
    MostRecent,
    /// The value most recently set by any live process.
    LiveMostRecent,
}

impl GaugeMode {
    /// Every mode, in the order of their names' documentation.
    pub const ALL: [GaugeMode; 8] = [
        Self::All,
        Self::LiveAll,
        Self::Sum,
        Self::LiveSum,
        Self::Min,
        Self::Max,
        Self::MostRecent,
        Self::LiveMostRecent,
    ];

    /// The mode's name, as prometheus_client spells it (`livesum`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::All => "all",
            Self::LiveAll => "liveall",
            Self::Sum => "sum",
            Self::LiveSum => "livesum",
            Self::Min => "min",
            Self::Max => "max",
            Self::MostRecent => "mostrecent",
            Self::LiveMostRecent => "livemostrecent",
        }
    }

    /// The mode named `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether dead processes are left out.
    pub fn live_only(self) -> bool {
        matches!(self, Self::LiveAll | Self::LiveSum | Self::LiveMostRecent)
    }

    /// Whether each process keeps its own series, labelled with its pid.
    pub fn per_process(self) -> bool {
        matches!(self, Self::All | Self::LiveAll)
    }

    /// Whether every write also records when it happened, so that the most recent
    /// write across processes can be found.
    pub fn timestamped(self) -> bool {
        matches!(self, Self::MostRecent | Self::LiveMostRecent)
    }
}

impl fmt::Display for GaugeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
