//! The Prometheus protobuf exposition: a stream of length-delimited
//! `io.prometheus.client.MetricFamily` messages (client_model v0.3.0, what Prometheus
//! 2.42 parses), written by hand over the output `Vec`.
//!
//! No protobuf runtime and no per-series allocation: every nested message is written
//! in place behind a one-byte length placeholder, which is widened (the message moved
//! right) in the rare case it grows past 127 bytes. Label pairs come from the
//! [`LabelSet`]'s unescaped pairs; numbers are copied as 8 bytes, never formatted,
//! which is why this format is cheaper than either text one.
//!
//! Message and field numbers, from `io/prometheus/client/metrics.proto`:
//!
//! | message | fields written |
//! | --- | --- |
//! | MetricFamily | name=1, help=2, type=3, metric=4 |
//! | Metric | label=1, gauge=2, counter=3, summary=4, untyped=5, histogram=7 |
//! | LabelPair | name=1, value=2 |
//! | Counter | value=1, exemplar=2 |
//! | Gauge, Untyped | value=1 |
//! | Summary | sample_count=1, sample_sum=2, quantile=3 {quantile=1, value=2} |
//! | Histogram | sample_count=1, sample_sum=2, bucket=3; native: schema=5, zero_threshold=6, zero_count=7, negative_span=9, negative_delta=10, positive_span=12, positive_delta=13 ([`write_native`]) |
//! | BucketSpan | offset=1, length=2 |
//! | Bucket | cumulative_count=1, upper_bound=2, exemplar=3 |
//! | Exemplar | label=1, value=2, timestamp=3 (`google.protobuf.Timestamp` {seconds=1, nanos=2}) |

use crate::labels::LabelSet;
use crate::metrics::Exemplar;
use crate::model::MetricKind;
use crate::snapshot::{
    FamilySnapshot, HistogramValue, NativeValue, SeriesSnapshot, SeriesValue, SummaryValue,
};

/// Protobuf wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// `MetricType` values.
const COUNTER: u64 = 0;
const GAUGE: u64 = 1;
const SUMMARY: u64 = 2;
const UNTYPED: u64 = 3;
const HISTOGRAM: u64 = 4;

/// Appends `families` as delimited `MetricFamily` messages. Families without series
/// are left out, as in the text formats (Prometheus would skip them anyway).
pub(super) fn encode<'a>(families: impl Iterator<Item = &'a FamilySnapshot> + Clone, out: &mut Vec<u8>) {
    // Far fewer bytes per sample than text (no names repeated per sample, numbers in 8
    // bytes): one reservation covers most bodies.
    out.reserve(super::samples(families.clone()) * 48);
    for family in families.filter(|f| !f.series.is_empty()) {
        // The delimiter is the same varint a nested message's length is.
        let at = begin(out);
        write_family(family, out);
        end(out, at);
    }
}

fn write_family(family: &FamilySnapshot, out: &mut Vec<u8>) {
    // Prometheus takes a counter family's name as its sample name: the `_total` that
    // herd's family names leave out belongs in it.
    let suffix: &[u8] = if family.kind == MetricKind::Counter { b"_total" } else { b"" };
    key(out, 1, LEN);
    varint(out, (family.name.len() + suffix.len()) as u64);
    out.extend_from_slice(family.name.as_bytes());
    out.extend_from_slice(suffix);
    if !family.help.is_empty() {
        string(out, 2, &family.help);
    }
    let kind = match family.kind {
        MetricKind::Counter => COUNTER,
        MetricKind::Gauge => GAUGE,
        MetricKind::Histogram => HISTOGRAM,
        MetricKind::Summary => SUMMARY,
        MetricKind::Unknown => UNTYPED,
    };
    key(out, 3, VARINT);
    varint(out, kind);
    for series in &family.series {
        let at = nested(out, 4);
        write_metric(series, out);
        end(out, at);
    }
}

fn write_metric(series: &SeriesSnapshot, out: &mut Vec<u8>) {
    write_labels(out, 1, &series.labels);
    match &series.value {
        SeriesValue::Counter(c) => {
            let at = nested(out, 3);
            double(out, 1, c.total());
            if let Some(e) = &c.exemplar {
                write_exemplar(out, 2, e);
            }
            end(out, at);
        }
        SeriesValue::Gauge(v) => {
            let at = nested(out, 2);
            double(out, 1, *v);
            end(out, at);
        }
        SeriesValue::Unknown(v) => {
            let at = nested(out, 5);
            double(out, 1, *v);
            end(out, at);
        }
        SeriesValue::Summary(s) => {
            let at = nested(out, 4);
            write_summary(out, s);
            end(out, at);
        }
        SeriesValue::Histogram(h) => {
            let at = nested(out, 7);
            write_histogram(out, h);
            end(out, at);
        }
    }
}

fn write_summary(out: &mut Vec<u8>, s: &SummaryValue) {
    key(out, 1, VARINT);
    varint(out, s.count);
    double(out, 2, s.sum);
    for &(q, v) in &s.quantiles {
        let at = nested(out, 3);
        double(out, 1, q);
        double(out, 2, v);
        end(out, at);
    }
}

fn write_histogram(out: &mut Vec<u8>, h: &HistogramValue) {
    key(out, 1, VARINT);
    varint(out, h.count());
    double(out, 2, h.sum);
    let mut cumulative = 0u64;
    for (i, count) in h.counts.iter().enumerate() {
        // Saturating, as in the text encoder: counts read from a file may be anything.
        cumulative = cumulative.saturating_add(*count);
        let at = nested(out, 3);
        key(out, 1, VARINT);
        varint(out, cumulative);
        // The `+Inf` bucket is written too, although Prometheus would derive it from
        // `sample_count`: it is where that bucket's exemplar travels.
        double(out, 2, h.bounds.get(i).copied().unwrap_or(f64::INFINITY));
        if let Some(e) = h.exemplars.get(i).and_then(Option::as_ref) {
            write_exemplar(out, 3, e);
        }
        end(out, at);
    }
    write_native(h, out);
}

/// A histogram's native (sparse exponential) buckets, when it keeps them: `schema`=5
/// (sint32), `zero_threshold`=6 (double), `zero_count`=7 (uint64), `negative_span`=9 /
/// `positive_span`=12 (repeated `BucketSpan` {offset=1 sint32, length=2 uint32}),
/// `negative_delta`=10 / `positive_delta`=13 (packed sint64: the first bucket's count,
/// then each one's difference from the one before, across spans). The float variants
/// (fields 4, 8, 11, 14) are not needed: herd's counts are integers.
///
/// `zero_threshold` is always written, and always positive: Prometheus 2.42 decides
/// "native" from the first series of a family only, by its deltas, zero count or zero
/// threshold, and an empty histogram with a threshold of 0 would be taken for a
/// classic one. The classic `bucket` entries stay beside the native fields: they are
/// what a scraper without native histograms reads, and where 2.42 looks for a native
/// histogram's exemplars.
fn write_native(h: &HistogramValue, out: &mut Vec<u8>) {
    let Some(native) = &h.native else { return };
    key(out, 5, VARINT);
    varint(out, zigzag(i64::from(native.schema)));
    double(out, 6, native.zero_threshold);
    if native.zero_count != 0 {
        key(out, 7, VARINT);
        varint(out, native.zero_count);
    }
    write_buckets(out, 9, native.first_index, &native.negative);
    write_buckets(out, 12, native.first_index, &native.positive);
}

/// One sign's buckets as spans (field `span_field`) and their deltas (the field after
/// it), leaving runs of more than two empty buckets out.
fn write_buckets(out: &mut Vec<u8>, span_field: u32, first_index: i32, counts: &[u64]) {
    let mut previous_end = None;
    for (start, len) in NativeValue::runs(counts) {
        let at = nested(out, span_field);
        // The first span's offset is its bucket index; each later one's, the gap after
        // the span before it.
        let offset = match previous_end {
            None => i64::from(first_index) + start as i64,
            Some(end) => (start - end) as i64,
        };
        key(out, 1, VARINT);
        varint(out, zigzag(offset));
        key(out, 2, VARINT);
        varint(out, len as u64);
        end(out, at);
        previous_end = Some(start + len);
    }
    if previous_end.is_none() {
        return;
    }
    let at = nested(out, span_field + 1);
    let mut previous = 0u64;
    for (start, len) in NativeValue::runs(counts) {
        for &count in &counts[start..start + len] {
            // Two's complement: a difference of two u64 counts read from a file may be
            // anything, and Prometheus adds the deltas back the same way.
            varint(out, zigzag(count.wrapping_sub(previous) as i64));
            previous = count;
        }
    }
    end(out, at);
}

/// A signed integer as `sint32`/`sint64` carry it.
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn write_labels(out: &mut Vec<u8>, field: u32, labels: &LabelSet) {
    for (name, value) in labels.pairs() {
        let at = nested(out, field);
        string(out, 1, name);
        // An empty value is written too: proto2 keeps "set to empty" apart from "unset",
        // and a decoder then shows the label as the text formats do.
        string(out, 2, value);
        end(out, at);
    }
}

fn write_exemplar(out: &mut Vec<u8>, field: u32, e: &Exemplar) {
    let at = nested(out, field);
    write_labels(out, 1, &e.labels);
    double(out, 2, e.value);
    if let Some(ts) = e.timestamp.filter(|t| t.is_finite()) {
        let seconds = ts.floor();
        // Rounded nanoseconds may reach a whole second: carry it rather than write an
        // out-of-range `nanos`.
        let nanos = ((ts - seconds) * 1e9).round() as i64;
        let (seconds, nanos) = if nanos >= 1_000_000_000 { (seconds + 1.0, 0) } else { (seconds, nanos) };
        let at = nested(out, 3);
        if seconds != 0.0 {
            key(out, 1, VARINT);
            // int64: a negative value is its two's complement, ten bytes.
            varint(out, seconds as i64 as u64);
        }
        if nanos != 0 {
            key(out, 2, VARINT);
            varint(out, nanos as u64);
        }
        end(out, at);
    }
    end(out, at);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire_type));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn double(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, FIXED64);
    out.extend_from_slice(&v.to_le_bytes());
}

fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    key(out, field, LEN);
    varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Starts a length-delimited field `field`; returns where its length placeholder is.
fn nested(out: &mut Vec<u8>, field: u32) -> usize {
    key(out, field, LEN);
    begin(out)
}

/// Reserves one byte for a length, the size of any length below 128 (a label pair,
/// a bucket, a gauge's value).
fn begin(out: &mut Vec<u8>) -> usize {
    out.push(0);
    out.len() - 1
}

/// Writes the length of everything after the placeholder at `at`, moving it right
/// when the varint needs more than the one byte reserved.
fn end(out: &mut Vec<u8>, at: usize) {
    let len = out.len() - at - 1;
    if len < 0x80 {
        out[at] = len as u8;
        return;
    }
    let mut buf = [0u8; 10];
    let mut n = 0;
    let mut v = len as u64;
    while v >= 0x80 {
        buf[n] = v as u8 | 0x80;
        v >>= 7;
        n += 1;
    }
    buf[n] = v as u8;
    n += 1;
    let body = at + 1..out.len();
    out.resize(out.len() + n - 1, 0);
    out.copy_within(body, at + n);
    out[at..at + n].copy_from_slice(&buf[..n]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delimited(build: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        let at = begin(&mut out);
        build(&mut out);
        end(&mut out, at);
        out
    }

    #[test]
    fn varints_are_little_endian_groups_of_seven() {
        for (v, want) in [
            (0u64, &[0x00][..]),
            (1, &[0x01]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (u64::MAX, &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
    }

    #[test]
    fn a_length_past_one_byte_moves_the_message_right() {
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 70_000] {
            let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let out = delimited(|o| o.extend_from_slice(&body));
            let mut prefix = Vec::new();
            varint(&mut prefix, len as u64);
            assert_eq!(&out[..prefix.len()], prefix, "{len}");
            assert_eq!(&out[prefix.len()..], body, "{len}");
        }
    }

    #[test]
    fn nested_lengths_stay_right_when_an_inner_one_grows() {
        // An outer message whose inner one needs a two-byte length.
        let inner = "x".repeat(200);
        let out = delimited(|o| {
            let at = nested(o, 1);
            string(o, 2, &inner);
            end(o, at);
        });
        // outer len (2) | key 1/LEN | inner len (2) | key 2/LEN | str len (2) | 200 bytes
        assert_eq!(out.len(), 2 + 1 + 2 + 1 + 2 + 200);
        assert_eq!(&out[..2], &[0xce, 0x01], "206 bytes after the outer length");
        assert_eq!(&out[2..5], &[0x0a, 0xcb, 0x01], "203 bytes in the inner message");
        assert_eq!(&out[5..8], &[0x12, 0xc8, 0x01]);
    }

    #[test]
    fn exemplar_timestamps_split_into_seconds_and_nanos() {
        let e = |timestamp| Exemplar { labels: LabelSet::empty(), value: 1.0, timestamp };
        let mut out = Vec::new();
        write_exemplar(&mut out, 2, &e(Some(1.5)));
        // key 2/LEN, len, value (9 bytes), key 3/LEN, len 8, seconds 1, nanos 5e8
        assert_eq!(&out[..2], &[0x12, 19]);
        assert_eq!(&out[11..], &[0x1a, 8, 0x08, 1, 0x10, 0x80, 0xca, 0xb5, 0xee, 0x01][..]);
        let mut none = Vec::new();
        write_exemplar(&mut none, 2, &e(Some(f64::NAN)));
        assert_eq!(none.len(), 11, "a NaN timestamp is left out");
    }

    #[test]
    fn runs_keep_at_most_two_empty_buckets_inside() {
        let runs = |c: &[u64]| NativeValue::runs(c).collect::<Vec<_>>();
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[0, 0]), vec![]);
        assert_eq!(runs(&[1, 0, 0, 2]), vec![(0, 4)]);
        assert_eq!(runs(&[0, 1, 0, 0, 0, 2, 0]), vec![(1, 1), (5, 1)]);
        assert_eq!(runs(&[3, 0, 4, 0, 0]), vec![(0, 3)]);
    }

    #[test]
    fn spans_and_deltas_follow_the_buckets() {
        let mut out = Vec::new();
        // Buckets -2 and 3..=4 hold 5, 1 and 1: two spans, deltas 5, -4, 0.
        write_buckets(&mut out, 12, -2, &[5, 0, 0, 0, 0, 1, 1]);
        let want = [
            0x62,
            4,
            0x08,
            zigzag(-2) as u8,
            0x10,
            1, // span {offset -2, length 1}
            0x62,
            4,
            0x08,
            zigzag(4) as u8,
            0x10,
            2, // span {offset 4 (gap), length 2}
            0x6a,
            3,
            zigzag(5) as u8,
            zigzag(-4) as u8,
            0, // packed deltas
        ];
        assert_eq!(out, want);
        let mut empty = Vec::new();
        write_buckets(&mut empty, 12, 0, &[0, 0]);
        assert!(empty.is_empty(), "no span and no deltas for empty buckets");
    }
}
