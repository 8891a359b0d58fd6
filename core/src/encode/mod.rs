//! Encoders for the Prometheus 0.0.4 and OpenMetrics 1.0 text formats and the
//! Prometheus protobuf format (delimited `io.prometheus.client.MetricFamily`).
//!
//! All three read a [`Snapshot`]; none allocates per sample beyond growing the output
//! buffer: label sets arrive pre-rendered (the text formats) or as unescaped pairs
//! (protobuf), and numbers are formatted on the stack.

mod float;
mod negotiate;
mod protobuf;

pub use negotiate::{negotiate, negotiate_among};

use std::ops::Range;
use std::sync::Arc;

use crate::labels::escape_help;
use crate::model::Exemplar;
use crate::model::MetricKind;
use crate::snapshot::{FamilySnapshot, HistogramValue, SeriesSnapshot, SeriesValue, Snapshot, SummaryValue};
use float::{write_canonical, write_float, write_u64};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4. What `promtool check metrics` reads
    /// and what every Prometheus accepts.
    Text,
    /// OpenMetrics 1.0 text: adds `# UNIT`, exemplars, `_created` and `# EOF`.
    OpenMetrics,
    /// The Prometheus protobuf format: length-delimited `io.prometheus.client.MetricFamily`
    /// messages (client_model v0.3.0). What Prometheus asks for first when native
    /// histograms are enabled (`--enable-feature=native-histograms` on 2.x), and the only
    /// format that carries them to 2.x. Carries counter and bucket exemplars; no unit and
    /// no `_created`.
    Protobuf,
}

impl Format {
    /// The `Content-Type` to send with a body in this format.
    pub const fn content_type(self) -> &'static str {
        match self {
            Self::Text => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Protobuf => PROTOBUF_CONTENT_TYPE,
        }
    }

    /// The format whose [`content_type`](Self::content_type) is exactly `content_type`.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        [Self::Text, Self::OpenMetrics, Self::Protobuf].into_iter().find(|f| f.content_type() == content_type)
    }
}

/// The `Content-Type` of [`Format::Protobuf`]. Prometheus picks its parser from the media
/// type alone; the parameters say which message and framing, as client_golang writes them.
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// About how many samples `families` encode to (a histogram's buckets, sum and count
/// each one): what the protobuf encoder sizes its one reservation by.
fn samples<'a>(families: impl Iterator<Item = &'a FamilySnapshot>) -> usize {
    families
        .map(|f| match f.series.first().map(|s| &s.value) {
            Some(SeriesValue::Histogram(h)) => f.series.len() * (h.bounds.len() + 3),
            _ => f.series.len(),
        })
        .sum()
}

/// About how many bytes `families` encode to as text: each sample's name, labels and a
/// value's worth, so that label-heavy series do not outgrow the reservation.
fn text_bytes<'a>(families: impl Iterator<Item = &'a FamilySnapshot>) -> usize {
    families
        .map(|f| {
            let per_series = match f.series.first().map(|s| &s.value) {
                Some(SeriesValue::Histogram(h)) => h.bounds.len() + 3,
                Some(SeriesValue::Summary(s)) => s.quantiles.len() + 2,
                _ => 1,
            };
            let line = f.name.len() + 48;
            128 + f.help.len()
                + f.series.iter().map(|s| per_series * (line + s.labels.rendered().len())).sum::<usize>()
        })
        .sum()
}

/// Appends `snapshot` to `out` in `format`.
///
/// Families without series are left out (a labelled family no one has used yet).
pub fn encode(snapshot: &Snapshot, format: Format, out: &mut Vec<u8>) {
    encode_each(snapshot.families.iter(), format, out);
}

/// Appends `families`, in the order given, to `out` in `format`, as [`encode`] appends
/// a snapshot's: for a caller that keeps its families in more than one list and
/// merges them by name (herd-mmap's `Aggregator` keeps the directory's from scrape to
/// scrape, and makes its own each time).
pub fn encode_families(families: &[&FamilySnapshot], format: Format, out: &mut Vec<u8>) {
    encode_each(families.iter().copied(), format, out);
}

fn encode_each<'a>(
    families: impl Iterator<Item = &'a FamilySnapshot> + Clone,
    format: Format,
    out: &mut Vec<u8>,
) {
    if format == Format::Protobuf {
        protobuf::encode(families, out);
        return;
    }
    let om = format == Format::OpenMetrics;
    // One reservation up front rather than a dozen doublings (each a copy of all the
    // output so far).
    out.reserve(text_bytes(families.clone()));
    let mut le = BoundsText::default();
    for family in families.filter(|f| !f.series.is_empty()) {
        header(family, om, out);
        for series in &family.series {
            write_series(family, series, om, &mut le, out);
        }
    }
    if om {
        out.extend_from_slice(b"# EOF\n");
    }
}

fn header(family: &FamilySnapshot, om: bool, out: &mut Vec<u8>) {
    let name = family.name.as_bytes();
    // 0.0.4 names a counter's metadata by its sample name; OpenMetrics by the family.
    let suffix: &[u8] = if !om && family.kind == MetricKind::Counter { b"_total" } else { b"" };
    let mut meta = |keyword: &[u8], rest: &dyn Fn(&mut Vec<u8>)| {
        out.extend_from_slice(keyword);
        out.extend_from_slice(name);
        out.extend_from_slice(suffix);
        out.push(b' ');
        rest(out);
        out.push(b'\n');
    };
    let kind = if om { family.kind.openmetrics_name() } else { family.kind.text_name() };
    if om {
        meta(b"# TYPE ", &|o| o.extend_from_slice(kind.as_bytes()));
        if let Some(unit) = family.unit.as_deref().filter(|u| !u.is_empty()) {
            meta(b"# UNIT ", &|o| o.extend_from_slice(unit.as_bytes()));
        }
        if !family.help.is_empty() {
            meta(b"# HELP ", &|o| escape_help(&family.help, true, o));
        }
    } else {
        if !family.help.is_empty() {
            meta(b"# HELP ", &|o| escape_help(&family.help, false, o));
        }
        meta(b"# TYPE ", &|o| o.extend_from_slice(kind.as_bytes()));
    }
}

fn write_series(
    family: &FamilySnapshot,
    series: &SeriesSnapshot,
    om: bool,
    le: &mut BoundsText,
    out: &mut Vec<u8>,
) {
    let name = &*family.name;
    let labels = series.labels.rendered();
    match &series.value {
        SeriesValue::Counter(c) => {
            sample_start(out, name, "_total", labels, None);
            if c.fraction == 0.0 {
                write_u64(out, c.integer);
            } else {
                write_float(out, c.total());
            }
            if om {
                write_exemplar(out, c.exemplar.as_ref());
            }
            out.push(b'\n');
        }
        SeriesValue::Gauge(v) | SeriesValue::Unknown(v) => {
            sample_start(out, name, "", labels, None);
            write_float(out, *v);
            out.push(b'\n');
        }
        SeriesValue::Histogram(h) => write_histogram(out, name, labels, h, om, le),
        SeriesValue::Summary(s) => write_summary(out, name, labels, s, om),
    }
    if om {
        if let Some(created) = series.created {
            sample_start(out, name, "_created", labels, None);
            write_float(out, created);
            out.push(b'\n');
        }
    }
}

/// A histogram family's `le` values rendered once for all its series: the float
/// rendering of a bound costs more than the rest of its sample line.
#[derive(Default)]
struct BoundsText {
    bounds: Option<Arc<[f64]>>,
    /// `le="..."` of each bound, `+Inf` last, one after another.
    text: Vec<u8>,
    ends: Vec<usize>,
}

impl BoundsText {
    /// The rendered `le` of bucket `i` of `bounds` (`+Inf` past the last).
    fn get(&mut self, bounds: &Arc<[f64]>, i: usize) -> &[u8] {
        let same = self.bounds.as_ref().is_some_and(|b| {
            Arc::ptr_eq(b, bounds) || b.iter().map(|v| v.to_bits()).eq(bounds.iter().map(|v| v.to_bits()))
        });
        if !same {
            self.text.clear();
            self.ends.clear();
            for bound in bounds.iter().copied().chain([f64::INFINITY]) {
                self.text.extend_from_slice(b"le=\"");
                write_canonical(&mut self.text, bound);
                self.text.push(b'"');
                self.ends.push(self.text.len());
            }
            self.bounds = Some(bounds.clone());
        }
        let i = i.min(self.ends.len().saturating_sub(1));
        let start = i.checked_sub(1).and_then(|p| self.ends.get(p)).copied().unwrap_or(0);
        let end = self.ends.get(i).copied().unwrap_or(0);
        self.text.get(start..end).unwrap_or_default()
    }
}

fn write_histogram(
    out: &mut Vec<u8>,
    name: &str,
    labels: &str,
    h: &HistogramValue,
    om: bool,
    le: &mut BoundsText,
) {
    let mut cumulative = 0u64;
    // `name_bucket{labels,` is written once and copied from the output for the other
    // buckets: one copy per line instead of four.
    let mut prefix = None;
    for (i, count) in h.counts.iter().enumerate() {
        // Saturating: counts read from a file may be anything, and the `le` series must
        // stay cumulative (and never panic) even then.
        cumulative = cumulative.saturating_add(*count);
        match &prefix {
            Some(written) => out.extend_from_within(Range::clone(written)),
            None => {
                let start = out.len();
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b"_bucket{");
                if !labels.is_empty() {
                    out.extend_from_slice(labels.as_bytes());
                    out.push(b',');
                }
                prefix = Some(start..out.len());
            }
        }
        out.extend_from_slice(le.get(&h.bounds, i));
        out.extend_from_slice(b"} ");
        write_u64(out, cumulative);
        if om {
            write_exemplar(out, h.exemplars.get(i).and_then(Option::as_ref));
        }
        out.push(b'\n');
    }
    if om && !(openmetrics_sum_allowed(h.sum) && h.bounds.first().is_none_or(|&b| b >= 0.0)) {
        return;
    }
    sample_start(out, name, "_sum", labels, None);
    write_float(out, h.sum);
    out.push(b'\n');
    sample_start(out, name, "_count", labels, None);
    write_u64(out, cumulative);
    out.push(b'\n');
}

fn write_summary(out: &mut Vec<u8>, name: &str, labels: &str, s: &SummaryValue, om: bool) {
    for &(q, v) in &s.quantiles {
        sample_start(out, name, "", labels, Some(("quantile", q)));
        write_float(out, v);
        out.push(b'\n');
    }
    if om && !openmetrics_sum_allowed(s.sum) {
        return;
    }
    sample_start(out, name, "_sum", labels, None);
    write_float(out, s.sum);
    out.push(b'\n');
    sample_start(out, name, "_count", labels, None);
    write_u64(out, s.count);
    out.push(b'\n');
}

/// Whether OpenMetrics can carry this `_sum`. It is counter-like there: a negative,
/// infinite or NaN sum (a negative or infinite observation) is invalid, and so is any
/// sum beside a negative bucket bound. `_count` must appear exactly when `_sum` does, so
/// both are left out and the `+Inf` bucket still carries the count. 0.0.4 has no such
/// rule and writes both.
fn openmetrics_sum_allowed(sum: f64) -> bool {
    sum.is_finite() && sum >= 0.0
}

/// Writes `name_suffix{labels,extra="v"} ` up to the value.
fn sample_start(out: &mut Vec<u8>, name: &str, suffix: &str, labels: &str, extra: Option<(&str, f64)>) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if !labels.is_empty() || extra.is_some() {
        out.push(b'{');
        out.extend_from_slice(labels.as_bytes());
        if let Some((label, v)) = extra {
            if !labels.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(label.as_bytes());
            out.extend_from_slice(b"=\"");
            write_canonical(out, v);
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
}

fn write_exemplar(out: &mut Vec<u8>, exemplar: Option<&Exemplar>) {
    let Some(e) = exemplar else { return };
    out.extend_from_slice(b" # {");
    out.extend_from_slice(e.labels.rendered().as_bytes());
    out.extend_from_slice(b"} ");
    write_float(out, e.value);
    if let Some(ts) = e.timestamp {
        out.push(b' ');
        write_float(out, ts);
    }
}
