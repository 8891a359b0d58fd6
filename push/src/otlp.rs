//! OTLP/HTTP with protobuf: `ExportMetricsServiceRequest`
//! (opentelemetry-proto 1.x, `collector/metrics/v1/metrics_service.proto` and
//! `metrics/v1/metrics.proto`), the few messages herd needs, written by hand.
//!
//! Mapping: a counter is a cumulative monotonic `Sum`, a gauge (and an unknown-type
//! value) a `Gauge`, a histogram a cumulative `Histogram` with explicit bounds and
//! per-bucket (not cumulative) counts, a summary a `Summary`. Labels become data-point
//! attributes; the sink's job is the resource's `service.name`. A histogram family with
//! native buckets goes as an `ExponentialHistogram` (field 10 of `Metric`) when the sink
//! asks for native histograms: `scale` is the schema, and OpenTelemetry's bucket `i`,
//! `(base^i, base^(i+1)]`, is Prometheus' `i + 1`.

use herd_core::snapshot::{FamilySnapshot, NativeValue, SeriesSnapshot, SeriesValue};
use herd_core::LabelSet;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, message, WireType};

/// `ExportMetricsServiceRequest`; the pusher streams it, tests decode with it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExportMetricsServiceRequest {
    /// One entry: herd pushes one resource.
    #[prost(message, repeated, tag = "1")]
    pub resource_metrics: Vec<ResourceMetrics>,
}

/// `ResourceMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceMetrics {
    /// Who pushed.
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    /// One entry, scope `herd`.
    #[prost(message, repeated, tag = "2")]
    pub scope_metrics: Vec<ScopeMetrics>,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    /// `service.name` and the sink's labels.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

/// `ScopeMetrics`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ScopeMetrics {
    /// The instrumentation scope.
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    /// One per family.
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
}

/// `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InstrumentationScope {
    /// `herd`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// herd-push's version.
    #[prost(string, tag = "2")]
    pub version: String,
}

/// `Metric`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metric {
    /// The family name (a counter's without `_total`).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The HELP text.
    #[prost(string, tag = "2")]
    pub description: String,
    /// The unit, in UCUM where herd's unit has a known spelling (`s`, `By`).
    #[prost(string, tag = "3")]
    pub unit: String,
    /// The data.
    #[prost(oneof = "Data", tags = "5, 7, 9, 10, 11")]
    pub data: Option<Data>,
}

/// `Metric.data`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Data {
    /// A gauge.
    #[prost(message, tag = "5")]
    Gauge(Gauge),
    /// A counter.
    #[prost(message, tag = "7")]
    Sum(Sum),
    /// A histogram.
    #[prost(message, tag = "9")]
    Histogram(Histogram),
    /// A histogram's native buckets.
    #[prost(message, tag = "10")]
    ExponentialHistogram(ExponentialHistogram),
    /// A summary.
    #[prost(message, tag = "11")]
    Summary(Summary),
}

/// `AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE`.
pub const CUMULATIVE: i32 = 2;

/// `Gauge`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Gauge {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
}

/// `Sum`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sum {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<NumberDataPoint>,
    /// [`CUMULATIVE`].
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
    /// True: counters only go up.
    #[prost(bool, tag = "3")]
    pub is_monotonic: bool,
}

/// `Histogram`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Histogram {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<HistogramDataPoint>,
    /// [`CUMULATIVE`].
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

/// `ExponentialHistogram`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogram {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<ExponentialHistogramDataPoint>,
    /// [`CUMULATIVE`].
    #[prost(int32, tag = "2")]
    pub aggregation_temporality: i32,
}

/// `ExponentialHistogramDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExponentialHistogramDataPoint {
    /// The series' labels.
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
    /// When counting started.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When the value was read.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations, the zero bucket's included.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Their sum.
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    /// The schema: `base = 2^(2^-scale)`.
    #[prost(sint32, tag = "6")]
    pub scale: i32,
    /// Observations whose magnitude is at most `zero_threshold`.
    #[prost(fixed64, tag = "7")]
    pub zero_count: u64,
    /// Positive observations.
    #[prost(message, optional, tag = "8")]
    pub positive: Option<Buckets>,
    /// Negative observations, by magnitude.
    #[prost(message, optional, tag = "9")]
    pub negative: Option<Buckets>,
    /// `DataPointFlags`; 0.
    #[prost(uint32, tag = "10")]
    pub flags: u32,
    /// The zero bucket's width.
    #[prost(double, tag = "14")]
    pub zero_threshold: f64,
}

/// `ExponentialHistogramDataPoint.Buckets`: dense counts from `offset`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Buckets {
    /// OpenTelemetry's index of the first count.
    #[prost(sint32, tag = "1")]
    pub offset: i32,
    /// One count per bucket.
    #[prost(uint64, repeated, tag = "2")]
    pub bucket_counts: Vec<u64>,
}

impl Buckets {
    /// One sign's native buckets, without the empty ones at either end; `None` when
    /// all are empty.
    fn from_native(first_index: i32, counts: &[u64]) -> Option<Self> {
        let lo = counts.iter().position(|&c| c != 0)?;
        let hi = counts.iter().rposition(|&c| c != 0)?;
        // Prometheus' bucket `j` is OpenTelemetry's `j - 1`; a layout keeps at most
        // 16,383 buckets a sign, so positions fit an i32.
        let offset = first_index.saturating_add(lo as i32).saturating_sub(1);
        Some(Self { offset, bucket_counts: counts[lo..=hi].to_vec() })
    }
}

/// `Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// One per series.
    #[prost(message, repeated, tag = "1")]
    pub data_points: Vec<SummaryDataPoint>,
}

/// `NumberDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NumberDataPoint {
    /// The series' labels.
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// When counting started, ns since the Unix epoch.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When the value was read, ns since the Unix epoch.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// The value: always a double from herd.
    #[prost(oneof = "NumberValue", tags = "4, 6")]
    pub value: Option<NumberValue>,
    /// `DataPointFlags`; 0.
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// `NumberDataPoint.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NumberValue {
    /// `as_double`.
    #[prost(double, tag = "4")]
    AsDouble(f64),
    /// `as_int`.
    #[prost(sfixed64, tag = "6")]
    AsInt(i64),
}

/// `HistogramDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HistogramDataPoint {
    /// The series' labels.
    #[prost(message, repeated, tag = "9")]
    pub attributes: Vec<KeyValue>,
    /// When counting started.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When the value was read.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Their sum.
    #[prost(double, optional, tag = "5")]
    pub sum: Option<f64>,
    /// Per bucket, not cumulative; `explicit_bounds.len() + 1` of them.
    #[prost(fixed64, repeated, tag = "6")]
    pub bucket_counts: Vec<u64>,
    /// The finite upper bounds.
    #[prost(double, repeated, tag = "7")]
    pub explicit_bounds: Vec<f64>,
    /// `DataPointFlags`; 0.
    #[prost(uint32, tag = "10")]
    pub flags: u32,
}

/// `SummaryDataPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryDataPoint {
    /// The series' labels.
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<KeyValue>,
    /// When counting started.
    #[prost(fixed64, tag = "2")]
    pub start_time_unix_nano: u64,
    /// When the value was read.
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    /// Observations.
    #[prost(fixed64, tag = "4")]
    pub count: u64,
    /// Their sum.
    #[prost(double, tag = "5")]
    pub sum: f64,
    /// The quantiles.
    #[prost(message, repeated, tag = "6")]
    pub quantile_values: Vec<ValueAtQuantile>,
    /// `DataPointFlags`; 0.
    #[prost(uint32, tag = "8")]
    pub flags: u32,
}

/// `SummaryDataPoint.ValueAtQuantile`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ValueAtQuantile {
    /// The quantile, in [0, 1].
    #[prost(double, tag = "1")]
    pub quantile: f64,
    /// Its value.
    #[prost(double, tag = "2")]
    pub value: f64,
}

/// `KeyValue` with a string value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// The name.
    #[prost(string, tag = "1")]
    pub key: String,
    /// The value.
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

/// `AnyValue`, string only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    /// `string_value`.
    #[prost(string, optional, tag = "1")]
    pub string_value: Option<String>,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { string_value: Some(value.to_owned()) }) }
}

fn attributes(labels: &LabelSet) -> Vec<KeyValue> {
    labels.pairs().map(|(k, v)| kv(k, v)).collect()
}

/// The unit's UCUM spelling where OpenTelemetry's conventions have one.
fn unit(unit: Option<&str>) -> String {
    match unit {
        Some("seconds") => "s".to_owned(),
        Some("bytes") => "By".to_owned(),
        Some("milliseconds") => "ms".to_owned(),
        Some(other) => other.to_owned(),
        None => String::new(),
    }
}

/// When a series was read and when its counting started, in ns since the epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Times {
    /// Now.
    pub(crate) now: u64,
    /// The start for a series without a creation time: when the pusher started.
    pub(crate) start: u64,
}

/// Writes an `ExportMetricsServiceRequest` for `families` into `out` (appending);
/// `scratch` holds the metrics while their enclosing messages' lengths are worked out.
/// One `Metric` (one family) exists at a time.
pub(crate) fn encode(
    families: &[FamilySnapshot],
    service: &str,
    resource_labels: &[(String, String)],
    times: Times,
    native_histograms: bool,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    scratch.clear();
    for family in families {
        message::encode(2, &metric(family, times, native_histograms), scratch);
    }
    let mut resource = Resource { attributes: vec![kv("service.name", service)] };
    resource.attributes.extend(resource_labels.iter().map(|(k, v)| kv(k, v)));
    let scope =
        InstrumentationScope { name: "herd".to_owned(), version: env!("CARGO_PKG_VERSION").to_owned() };
    // ScopeMetrics { scope = 1, metrics = 2 (already in scratch) }
    let scope_len = message::encoded_len(1, &scope) + scratch.len();
    // ResourceMetrics { resource = 1, scope_metrics = 2 }
    let resource_metrics_len = message::encoded_len(1, &resource)
        + prost::encoding::key_len(2)
        + encoded_len_varint(scope_len as u64)
        + scope_len;
    encode_key(1, WireType::LengthDelimited, out);
    encode_varint(resource_metrics_len as u64, out);
    message::encode(1, &resource, out);
    encode_key(2, WireType::LengthDelimited, out);
    encode_varint(scope_len as u64, out);
    message::encode(1, &scope, out);
    out.extend_from_slice(scratch);
}

fn start(series: &SeriesSnapshot, times: Times) -> u64 {
    match series.created {
        Some(created) if created.is_finite() && created > 0.0 => (created * 1e9) as u64,
        _ => times.start,
    }
}

/// A native histogram's data point.
fn exponential(
    series: &SeriesSnapshot,
    n: &NativeValue,
    sum: f64,
    times: Times,
) -> ExponentialHistogramDataPoint {
    ExponentialHistogramDataPoint {
        attributes: attributes(&series.labels),
        start_time_unix_nano: start(series, times),
        time_unix_nano: times.now,
        count: n.count(),
        sum: Some(sum),
        scale: i32::from(n.schema),
        zero_count: n.zero_count,
        positive: Buckets::from_native(n.first_index, &n.positive),
        negative: Buckets::from_native(n.first_index, &n.negative),
        flags: 0,
        zero_threshold: n.zero_threshold,
    }
}

fn metric(family: &FamilySnapshot, times: Times, native_histograms: bool) -> Metric {
    // A family's series share one layout: it goes as native buckets when the sink
    // asks and every series has them.
    let native = native_histograms
        && family.kind == herd_core::MetricKind::Histogram
        && !family.series.is_empty()
        && family.series.iter().all(|s| matches!(&s.value, SeriesValue::Histogram(h) if h.native.is_some()));
    if native {
        let data_points = family
            .series
            .iter()
            .filter_map(|series| match &series.value {
                SeriesValue::Histogram(h) => h.native.as_ref().map(|n| exponential(series, n, h.sum, times)),
                _ => None,
            })
            .collect();
        return Metric {
            name: family.name.to_string(),
            description: family.help.to_string(),
            unit: unit(family.unit.as_deref()),
            data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                data_points,
                aggregation_temporality: CUMULATIVE,
            })),
        };
    }
    let number = |series: &SeriesSnapshot, v: f64| NumberDataPoint {
        attributes: attributes(&series.labels),
        start_time_unix_nano: start(series, times),
        time_unix_nano: times.now,
        value: Some(NumberValue::AsDouble(v)),
        flags: 0,
    };
    let mut numbers = Vec::new();
    let mut histograms = Vec::new();
    let mut summaries = Vec::new();
    for series in &family.series {
        match &series.value {
            SeriesValue::Counter(c) => numbers.push(number(series, c.total())),
            SeriesValue::Gauge(v) | SeriesValue::Unknown(v) => numbers.push(number(series, *v)),
            SeriesValue::Histogram(h) => histograms.push(HistogramDataPoint {
                attributes: attributes(&series.labels),
                start_time_unix_nano: start(series, times),
                time_unix_nano: times.now,
                count: h.count(),
                sum: Some(h.sum),
                bucket_counts: h.counts.clone(),
                explicit_bounds: h.bounds.to_vec(),
                flags: 0,
            }),
            SeriesValue::Summary(s) => summaries.push(SummaryDataPoint {
                attributes: attributes(&series.labels),
                start_time_unix_nano: start(series, times),
                time_unix_nano: times.now,
                count: s.count,
                sum: s.sum,
                quantile_values: s
                    .quantiles
                    .iter()
                    .map(|&(quantile, value)| ValueAtQuantile { quantile, value })
                    .collect(),
                flags: 0,
            }),
            // A value kind added to herd-core later is skipped until this module
            // learns it.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    let data = match family.kind {
        herd_core::MetricKind::Counter => {
            Data::Sum(Sum { data_points: numbers, aggregation_temporality: CUMULATIVE, is_monotonic: true })
        }
        herd_core::MetricKind::Histogram => {
            Data::Histogram(Histogram { data_points: histograms, aggregation_temporality: CUMULATIVE })
        }
        herd_core::MetricKind::Summary => Data::Summary(Summary { data_points: summaries }),
        _ => Data::Gauge(Gauge { data_points: numbers }),
    };
    Metric {
        name: family.name.to_string(),
        description: family.help.to_string(),
        unit: unit(family.unit.as_deref()),
        data: Some(data),
    }
}
