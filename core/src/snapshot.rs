//! The snapshot: a point-in-time copy of metric families, the seam between where values
//! live (a registry, a directory of worker files) and how they are written out.

use std::sync::Arc;

use crate::labels::LabelSet;
use crate::model::Exemplar;
use crate::model::{MetricKind, NativeBuckets};

/// Families and their samples at one instant, ready to encode.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The families, in exposition order.
    pub families: Vec<FamilySnapshot>,
}

impl Snapshot {
    /// The family named `name` (the base name: for counters without `_total`).
    pub fn family(&self, name: &str) -> Option<&FamilySnapshot> {
        self.families.iter().find(|f| &*f.name == name)
    }

    /// Sorts families by name, so output is reproducible.
    pub fn sort(&mut self) {
        self.families.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

/// One metric family: its metadata and its series.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilySnapshot {
    /// The family name; for counters without `_total`.
    pub name: Arc<str>,
    /// The HELP text, unescaped. Empty means no HELP line.
    pub help: Arc<str>,
    /// The unit, if any.
    pub unit: Option<Arc<str>>,
    /// The metric type; every series' value has this type.
    pub kind: MetricKind,
    /// The series, in exposition order.
    pub series: Vec<SeriesSnapshot>,
}

/// One series: its labels and value.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSnapshot {
    /// The labels, constant labels included.
    pub labels: Arc<LabelSet>,
    /// The value.
    pub value: SeriesValue,
    /// When the series was created, in seconds since the Unix epoch; written as
    /// `_created` in OpenMetrics when present.
    pub created: Option<f64>,
}

/// The value of one series.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    /// A counter total.
    Counter(CounterValue),
    /// A gauge value.
    Gauge(f64),
    /// Histogram buckets, sum and exemplars.
    Histogram(HistogramValue),
    /// Summary count, sum and quantiles.
    Summary(SummaryValue),
    /// A value of unknown type.
    Unknown(f64),
}

/// A counter's total, kept as an exact integer part plus a fractional part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CounterValue {
    /// The sum of integer increments, exact.
    pub integer: u64,
    /// The sum of fractional increments.
    pub fraction: f64,
    /// The latest exemplar, if exemplars are enabled.
    pub exemplar: Option<Exemplar>,
}

impl CounterValue {
    /// A counter total from a single float (for callback counters and foreign sources).
    pub fn from_f64(v: f64) -> Self {
        if v.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&v) {
            Self { integer: v as u64, fraction: 0.0, exemplar: None }
        } else {
            Self { integer: 0, fraction: v, exemplar: None }
        }
    }

    /// The total as a float.
    pub fn total(&self) -> f64 {
        self.integer as f64 + self.fraction
    }
}

/// A histogram's state. Bucket counts are per bucket, not cumulative.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValue {
    /// The finite upper bounds, shared by every series of the family.
    pub bounds: Arc<[f64]>,
    /// One count per bucket: `bounds.len() + 1` entries, the last for `+Inf`.
    pub counts: Vec<u64>,
    /// The sum of observations.
    pub sum: f64,
    /// One optional exemplar per bucket, or empty when exemplars are off.
    pub exemplars: Vec<Option<Exemplar>>,
    /// The native (sparse exponential) buckets, for a histogram that keeps them. A
    /// histogram with native buckets only has no finite `bounds` and one count, its
    /// total.
    pub native: Option<NativeValue>,
}

impl HistogramValue {
    /// A histogram's value from its cells in herd's layout (herd-mmap's FORMAT.md, "Cell
    /// layouts"): with `classic` buckets one count per bound and the `+Inf` one, then
    /// the sum's f64 bits, then with `native` buckets the zero bucket's count and each
    /// sign's. `cell(i)` reads cell `i` (0 past the end); counts are read before the
    /// sum, as a handle's reader must. No exemplars.
    pub fn from_cells(
        bounds: Arc<[f64]>,
        classic: bool,
        native: Option<NativeBuckets>,
        cell: impl Fn(usize) -> u64,
    ) -> Self {
        let mut value = Self {
            bounds: Arc::clone(&bounds),
            counts: Vec::new(),
            sum: 0.0,
            exemplars: Vec::new(),
            native: None,
        };
        value.refill_from_cells(bounds, classic, native, cell);
        value
    }

    /// [`from_cells`](HistogramValue::from_cells) into this value, reusing its vectors:
    /// a reader that keeps its snapshot from scrape to scrape (herd-mmap's
    /// `Aggregator`) allocates nothing for a histogram after the first.
    pub fn refill_from_cells(
        &mut self,
        bounds: Arc<[f64]>,
        classic: bool,
        native: Option<NativeBuckets>,
        cell: impl Fn(usize) -> u64,
    ) {
        let sum_at = if classic { bounds.len() + 1 } else { 0 };
        match native {
            Some(n) => {
                let (zero, len) = (sum_at + 1, n.len());
                let value = self.native.get_or_insert_with(NativeValue::empty);
                value.schema = n.schema();
                value.zero_threshold = n.zero_threshold();
                value.zero_count = cell(zero);
                value.first_index = n.first_index();
                value.positive.clear();
                value.positive.extend((zero + 1..zero + 1 + len).map(&cell));
                value.negative.clear();
                value.negative.extend((zero + 1 + len..zero + 1 + 2 * len).map(&cell));
            }
            None => self.native = None,
        }
        self.counts.clear();
        match &self.native {
            // Native only: the one count `_count` and `+Inf` show, the native total.
            Some(n) if !classic => self.counts.push(n.count()),
            _ => self.counts.extend((0..sum_at).map(&cell)),
        }
        self.sum = f64::from_bits(cell(sum_at));
        self.exemplars.clear();
        self.bounds = bounds;
    }

    /// The total number of observations (the `+Inf` bucket).
    pub fn count(&self) -> u64 {
        // Saturating, as the encoder's cumulative counts: counts read from a file may be
        // anything, and `_count` must equal the `+Inf` bucket without ever panicking.
        self.counts.iter().fold(0u64, |a, &c| a.saturating_add(c))
    }
}

/// A native histogram's buckets, as Prometheus numbers them: at `schema`, bucket `i`
/// holds the magnitudes in `(base^(i-1), base^i]` with `base = 2^(2^-schema)`. Counts
/// are per bucket, not cumulative; empty buckets may be listed.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeValue {
    /// Each power of two is split into `2^schema` buckets; −4 to 8.
    pub schema: i8,
    /// Magnitudes at most this counted in `zero_count`; always positive.
    pub zero_threshold: f64,
    /// Observations whose magnitude was at most the zero threshold.
    pub zero_count: u64,
    /// The bucket index of `positive[0]` and of `negative[0]`.
    pub first_index: i32,
    /// Counts of positive observations, from bucket `first_index` on.
    pub positive: Vec<u64>,
    /// Counts of negative observations by magnitude, from bucket `first_index` on.
    pub negative: Vec<u64>,
}

impl NativeValue {
    /// No buckets, for [`HistogramValue::refill_from_cells`] to fill.
    fn empty() -> Self {
        Self {
            schema: 0,
            zero_threshold: 0.0,
            zero_count: 0,
            first_index: 0,
            positive: Vec::new(),
            negative: Vec::new(),
        }
    }

    /// The number of observations in every bucket, the zero bucket included.
    pub fn count(&self) -> u64 {
        // Saturating, as a classic histogram's count: counts read from a file may be
        // anything.
        self.positive.iter().chain(&self.negative).fold(self.zero_count, |a, &c| a.saturating_add(c))
    }

    /// The runs of one sign's `counts` that a sparse encoding (Prometheus' spans and
    /// deltas) writes: `(start, len)`, each starting and ending with a non-empty bucket,
    /// with at most two empty buckets inside (an empty bucket costs one delta byte, a
    /// new span about four). Shared by the protobuf exposition and remote write.
    pub fn runs(counts: &[u64]) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            let start = at + counts.get(at..)?.iter().position(|&c| c != 0)?;
            let mut end = start + 1;
            for (i, &c) in counts.iter().enumerate().skip(end) {
                if c != 0 {
                    end = i + 1;
                } else if i - end >= 2 {
                    break;
                }
            }
            at = end;
            Some((start, end - start))
        })
    }
}

/// A summary's state.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryValue {
    /// The number of observations.
    pub count: u64,
    /// The sum of observations.
    pub sum: f64,
    /// `(quantile, value)` pairs in increasing quantile order; may be empty.
    pub quantiles: Vec<(f64, f64)>,
}
