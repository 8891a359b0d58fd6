//! Prometheus remote write 1.0: `prompb.WriteRequest` (v2.42's `prompb/remote.proto`
//! and `types.proto`), written one `TimeSeries` at a time into the pusher's buffer.
//!
//! Each family becomes the series a scrape of its 0.0.4 or OpenMetrics text would
//! give Prometheus: `<name>_total` for a counter, `_bucket` (cumulative, `le` rendered
//! exactly as herd's encoders render it), `_sum` and `_count` for a histogram,
//! `{quantile}`, `_sum` and `_count` for a summary, so dashboards and rules work the
//! same on pushed and scraped data. A histogram with native buckets is also sent as
//! a native histogram (`TimeSeries.histograms`, field 4: series `<name>`, no suffix)
//! when the sink asks for it ([`Sink::native_histograms`](crate::Sink::native_histograms)):
//! a receiver must have them enabled (Prometheus 2.42:
//! `--enable-feature=native-histograms`), or it refuses the whole request.

use herd_core::snapshot::{FamilySnapshot, NativeValue, SeriesValue};
use herd_core::LabelSet;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, message, WireType};

use crate::render::canonical_floats;

/// `prompb.WriteRequest`; the pusher streams its `timeseries` instead of building it,
/// and tests decode with it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prompb.TimeSeries` without exemplars.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` among them.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// One sample per push (none for a native histogram's series).
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// A native histogram's one value per push.
    #[prost(message, repeated, tag = "4")]
    pub histograms: Vec<Histogram>,
}

/// `prompb.Histogram` with integer counts (the `count_int` and `zero_count_int` arms
/// of its oneofs), as Prometheus 2.42's `prompb/types.proto` numbers it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// Observations in every bucket.
    #[prost(uint64, tag = "1")]
    pub count_int: u64,
    /// Their sum.
    #[prost(double, tag = "3")]
    pub sum: f64,
    /// −4 to 8.
    #[prost(sint32, tag = "4")]
    pub schema: i32,
    /// The zero bucket's upper magnitude.
    #[prost(double, tag = "5")]
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    #[prost(uint64, tag = "6")]
    pub zero_count_int: u64,
    /// Runs of negative buckets.
    #[prost(message, repeated, tag = "8")]
    pub negative_spans: Vec<BucketSpan>,
    /// Each negative bucket's count as a difference from the one before.
    #[prost(sint64, repeated, tag = "9")]
    pub negative_deltas: Vec<i64>,
    /// Runs of positive buckets.
    #[prost(message, repeated, tag = "11")]
    pub positive_spans: Vec<BucketSpan>,
    /// Each positive bucket's count as a difference from the one before.
    #[prost(sint64, repeated, tag = "12")]
    pub positive_deltas: Vec<i64>,
    /// `ResetHint`: 0, unknown (Prometheus works it out from the counts).
    #[prost(int32, tag = "14")]
    pub reset_hint: i32,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "15")]
    pub timestamp: i64,
}

/// `prompb.BucketSpan`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BucketSpan {
    /// The first span's first bucket index; for later spans, the gap after the one
    /// before.
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// Buckets in the span.
    #[prost(uint32, tag = "2")]
    pub length: u32,
}

impl Histogram {
    /// The message for a herd native histogram's value at `timestamp_ms`.
    fn from_native(n: &NativeValue, sum: f64, timestamp_ms: i64) -> Self {
        let (negative_spans, negative_deltas) = sparse(n.first_index, &n.negative);
        let (positive_spans, positive_deltas) = sparse(n.first_index, &n.positive);
        Self {
            count_int: n.count(),
            sum,
            schema: i32::from(n.schema),
            zero_threshold: n.zero_threshold,
            zero_count_int: n.zero_count,
            negative_spans,
            negative_deltas,
            positive_spans,
            positive_deltas,
            reset_hint: 0,
            timestamp: timestamp_ms,
        }
    }
}

/// One sign's buckets as spans and deltas, as the protobuf exposition writes them.
fn sparse(first_index: i32, counts: &[u64]) -> (Vec<BucketSpan>, Vec<i64>) {
    let (mut spans, mut deltas) = (Vec::new(), Vec::new());
    let (mut previous_end, mut previous) = (None, 0u64);
    for (start, len) in NativeValue::runs(counts) {
        // Bucket positions fit an i32: a layout keeps at most 16,383 buckets a sign.
        let offset = match previous_end {
            None => first_index.saturating_add(start as i32),
            Some(end) => (start - end) as i32,
        };
        spans.push(BucketSpan { offset, length: len as u32 });
        for &count in &counts[start..start + len] {
            // Two's complement, as Prometheus adds them back.
            deltas.push(count.wrapping_sub(previous) as i64);
            previous = count;
        }
        previous_end = Some(start + len);
    }
    (spans, deltas)
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
    native_histograms: bool,
    out: &mut Vec<u8>,
) {
    let mut w = Writer { extra, labels: Vec::new(), timestamp_ms, out };
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
                    if let Some(native) = h.native.as_ref().filter(|_| native_histograms) {
                        let histogram = Histogram::from_native(native, h.sum, timestamp_ms);
                        w.series(name, "", labels, None, &Value::Histogram(&histogram));
                    }
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
                // A value kind added to herd-core later is skipped until this module
                // learns it, rather than sent wrong.
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }
}

/// Where a label of the row being written comes from: no strings are copied, the
/// labels are sorted and written straight from the snapshot's own.
#[derive(Debug, Clone, Copy)]
enum Src {
    /// `__name__`: the family name and a suffix.
    Name,
    /// The series' own label at this index.
    Own(usize),
    /// `le` or `quantile`.
    Bound,
    /// The sink's label at this index.
    Extra(usize),
}

struct Writer<'a> {
    extra: &'a [(String, String)],
    /// The labels of the row being written, reused from row to row.
    labels: Vec<Src>,
    timestamp_ms: i64,
    out: &'a mut Vec<u8>,
}

/// One row's label data, for resolving a [`Src`].
struct Row<'r> {
    name: &'r str,
    suffix: &'r str,
    own: &'r LabelSet,
    bound: Option<(&'r str, &'r str)>,
    extra: &'r [(String, String)],
}

impl<'r> Row<'r> {
    /// The label's name and its value, in two parts (only `__name__` has a second).
    fn get(&self, src: Src) -> (&'r str, &'r str, &'r str) {
        match src {
            Src::Name => ("__name__", self.name, self.suffix),
            Src::Own(i) => self.own.pairs().nth(i).map_or(("", "", ""), |(n, v)| (n, v, "")),
            Src::Bound => self.bound.map_or(("", "", ""), |(n, v)| (n, v, "")),
            Src::Extra(i) => self.extra.get(i).map_or(("", "", ""), |(n, v)| (n.as_str(), v.as_str(), "")),
        }
    }
}

/// The length of a length-delimited field of `len` bytes, key included (fields 1 and
/// 2 take one byte of key).
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// A `Label` message's length: proto3 leaves empty strings out.
fn label_len(name: &str, value_len: usize) -> usize {
    let name = if name.is_empty() { 0 } else { field_len(name.len()) };
    name + if value_len == 0 { 0 } else { field_len(value_len) }
}

/// What a series carries: a sample, or a native histogram.
enum Value<'a> {
    Sample(Sample),
    Histogram(&'a Histogram),
}

impl Writer<'_> {
    fn row(&mut self, name: &str, suffix: &str, own: &LabelSet, bound: Option<(&str, &str)>, value: f64) {
        let sample = Sample { value, timestamp: self.timestamp_ms };
        self.series(name, suffix, own, bound, &Value::Sample(sample));
    }

    fn series(
        &mut self,
        name: &str,
        suffix: &str,
        own: &LabelSet,
        bound: Option<(&str, &str)>,
        value: &Value<'_>,
    ) {
        let row = Row { name, suffix, own, bound, extra: self.extra };
        self.labels.clear();
        self.labels.push(Src::Name);
        self.labels.extend((0..own.len()).map(Src::Own));
        if bound.is_some() {
            self.labels.push(Src::Bound);
        }
        for (i, (n, _)) in self.extra.iter().enumerate() {
            if own.get(n).is_none() {
                self.labels.push(Src::Extra(i));
            }
        }
        // Sorted by name, in byte order, as the spec requires.
        self.labels.sort_unstable_by(|a, b| row.get(*a).0.cmp(row.get(*b).0));
        // The `TimeSeries` (field 1 of `WriteRequest`) written by hand, so that only the
        // used labels go out and nothing is built or copied per row.
        let value_len = match value {
            Value::Sample(sample) => message::encoded_len(2, sample),
            Value::Histogram(histogram) => message::encoded_len(4, *histogram),
        };
        let len = self
            .labels
            .iter()
            .map(|src| {
                let (n, v, s) = row.get(*src);
                field_len(label_len(n, v.len() + s.len()))
            })
            .sum::<usize>()
            + value_len;
        encode_key(1, WireType::LengthDelimited, self.out);
        encode_varint(len as u64, self.out);
        for src in &self.labels {
            let (n, v, s) = row.get(*src);
            let value_len = v.len() + s.len();
            encode_key(1, WireType::LengthDelimited, self.out);
            encode_varint(label_len(n, value_len) as u64, self.out);
            if !n.is_empty() {
                encode_key(1, WireType::LengthDelimited, self.out);
                encode_varint(n.len() as u64, self.out);
                self.out.extend_from_slice(n.as_bytes());
            }
            if value_len > 0 {
                encode_key(2, WireType::LengthDelimited, self.out);
                encode_varint(value_len as u64, self.out);
                self.out.extend_from_slice(v.as_bytes());
                self.out.extend_from_slice(s.as_bytes());
            }
        }
        match value {
            Value::Sample(sample) => message::encode(2, sample, self.out),
            Value::Histogram(histogram) => message::encode(4, *histogram, self.out),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use herd_core::snapshot::{CounterValue, SeriesSnapshot};
    use herd_core::MetricKind;
    use prost::Message as _;

    use super::*;

    /// The hand-written rows decode, with prost, to what prost itself would have
    /// written for the same series.
    #[test]
    fn hand_written_rows_equal_prosts() -> Result<(), Box<dyn std::error::Error>> {
        let labels = LabelSet::new([("zone", "b"), ("Alpha", ""), ("method", "GET /x")])?;
        let family = FamilySnapshot {
            name: "jobs".into(),
            help: "".into(),
            unit: None,
            kind: MetricKind::Counter,
            series: vec![SeriesSnapshot {
                labels: Arc::new(labels),
                value: SeriesValue::Counter(CounterValue { integer: 7, fraction: 0.5, exemplar: None }),
                created: None,
            }],
        };
        let extra = [("job".to_owned(), "j".to_owned()), ("zone".to_owned(), "ignored".to_owned())];
        let mut out = Vec::new();
        encode(&[family], &extra, 1234, true, &mut out);
        let label = |n: &str, v: &str| Label { name: n.to_owned(), value: v.to_owned() };
        let want = WriteRequest {
            timeseries: vec![TimeSeries {
                // Byte order: uppercase before `_`, `_` before lowercase. An empty value
                // is left out on the wire, so it decodes as empty.
                labels: vec![
                    label("Alpha", ""),
                    label("__name__", "jobs_total"),
                    label("job", "j"),
                    label("method", "GET /x"),
                    label("zone", "b"),
                ],
                samples: vec![Sample { value: 7.5, timestamp: 1234 }],
                histograms: Vec::new(),
            }],
        };
        assert_eq!(WriteRequest::decode(out.as_slice())?, want);
        assert_eq!(out, want.encode_to_vec(), "byte for byte what prost writes");
        Ok(())
    }
}
