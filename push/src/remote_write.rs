//! Prometheus remote write 1.0: `prompb.WriteRequest` (v2.42's `prompb/remote.proto`
//! and `types.proto`), written one `TimeSeries` at a time into the pusher's buffer.
//!
//! Each family becomes the series a scrape of its 0.0.4 or OpenMetrics text would
//! give Prometheus: `<name>_total` for a counter, `_bucket` (cumulative, `le` rendered
//! exactly as herd's encoders render it), `_sum` and `_count` for a histogram,
//! `{quantile}`, `_sum` and `_count` for a summary, so dashboards and rules work the
//! same on pushed and scraped data. Native histograms (`TimeSeries.histograms`, field
//! 4) are the place to add when herd-core has them.

use herd_core::snapshot::{FamilySnapshot, SeriesValue};
use herd_core::LabelSet;
use prost::encoding::{encode_key, encode_varint, message, WireType};

use crate::render::canonical_floats;

/// `prompb.WriteRequest`; the pusher streams its `timeseries` instead of building it,
/// and tests decode with it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prompb.TimeSeries` without exemplars and native histograms.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// One sample per push.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prompb.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// The name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// The value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prompb.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// Writes a `WriteRequest` for `families` into `out` (appending), with every sample
/// at `timestamp_ms` and `extra` labels on every series (a series' own label of the
/// same name wins).
pub(crate) fn encode(
    families: &[FamilySnapshot],
    extra: &[(String, String)],
    timestamp_ms: i64,
    out: &mut Vec<u8>,
) {
    let mut w = Writer { extra, labels: Vec::new(), used: 0, timestamp_ms, out };
    // `le` and `quantile` strings, rendered once per distinct set of bounds: every
    // series of a family shares its bounds, so this is once per family in practice.
    let mut le = Vec::new();
    let mut le_of: Vec<f64> = Vec::new();
    let mut rendered = |values: &[f64], le: &mut Vec<String>| {
        if le_of.as_slice() != values || le.len() != values.len() {
            canonical_floats(values, le);
            le_of.clear();
            le_of.extend_from_slice(values);
        }
    };
    for family in families {
        let name = &*family.name;
        for series in &family.series {
            let labels = &series.labels;
            match &series.value {
                SeriesValue::Counter(c) => w.row(name, "_total", labels, None, c.total()),
                SeriesValue::Gauge(v) | SeriesValue::Unknown(v) => w.row(name, "", labels, None, *v),
                SeriesValue::Histogram(h) => {
                    rendered(&h.bounds, &mut le);
                    let mut cumulative = 0u64;
                    for (i, count) in h.counts.iter().enumerate() {
                        cumulative = cumulative.saturating_add(*count);
                        let bound = le.get(i).map_or("+Inf", String::as_str);
                        w.row(name, "_bucket", labels, Some(("le", bound)), cumulative as f64);
                    }
                    w.row(name, "_sum", labels, None, h.sum);
                    w.row(name, "_count", labels, None, h.count() as f64);
                }
                SeriesValue::Summary(s) => {
                    let qs: Vec<f64> = s.quantiles.iter().map(|(q, _)| *q).collect();
                    rendered(&qs, &mut le);
                    for ((_, v), q) in s.quantiles.iter().zip(&le) {
                        w.row(name, "", labels, Some(("quantile", q)), *v);
                    }
                    w.row(name, "_sum", labels, None, s.sum);
                    w.row(name, "_count", labels, None, s.count as f64);
                }
                // A value kind added to herd-core later (native histograms) is skipped
                // until this module learns it, rather than sent wrong.
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }
}

struct Writer<'a> {
    extra: &'a [(String, String)],
    /// The labels of the row being written, reused: their strings keep their capacity
    /// from row to row, so a push allocates only when a row has more or longer labels
    /// than any before it.
    labels: Vec<Label>,
    used: usize,
    timestamp_ms: i64,
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn row(&mut self, name: &str, suffix: &str, labels: &LabelSet, bound: Option<(&str, &str)>, value: f64) {
        self.used = 0;
        self.set("__name__", name, suffix);
        for (n, v) in labels.pairs() {
            self.set(n, v, "");
        }
        if let Some((n, v)) = bound {
            self.set(n, v, "");
        }
        let own = self.used;
        for (n, v) in self.extra {
            if !self.labels[..own].iter().any(|l| l.name == *n) {
                self.set(n, v, "");
            }
        }
        let labels = &mut self.labels[..self.used];
        // Sorted by name, in byte order, as the spec requires.
        labels.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        // The `TimeSeries` (field 1 of `WriteRequest`) written by hand, so that only the
        // used labels go out and nothing is built per row.
        let sample = Sample { value, timestamp: self.timestamp_ms };
        let len = labels.iter().map(|l| message::encoded_len(1, l)).sum::<usize>()
            + message::encoded_len(2, &sample);
        encode_key(1, WireType::LengthDelimited, self.out);
        encode_varint(len as u64, self.out);
        for label in labels.iter() {
            message::encode(1, label, self.out);
        }
        message::encode(2, &sample, self.out);
    }

    fn set(&mut self, name: &str, value: &str, suffix: &str) {
        if self.used == self.labels.len() {
            self.labels.push(Label::default());
        }
        let label = &mut self.labels[self.used];
        label.name.clear();
        label.name.push_str(name);
        label.value.clear();
        label.value.push_str(value);
        label.value.push_str(suffix);
        self.used += 1;
    }
}
