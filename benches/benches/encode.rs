//! Encoding benchmark: 1,000 series of mixed types, registry to bytes, in herd
//! (Prometheus text, OpenMetrics and protobuf), prometheus-client and prometheus.
//!
//! Every library holds the same families, label values and values
//! (`herd_benches::fixtures`). Each iteration reads the registry and writes a fresh
//! output buffer, which is what a scrape does. Before measuring, the outputs are
//! checked to carry the same number of samples (the text ones; the protobuf body is
//! checked in herd-core's tests, by a real decoder).

use std::error::Error;

use criterion::Criterion;
use herd_benches::fixtures::{
    self, DEFAULT_BUCKETS, ENCODE_COUNTER_FAMILIES, ENCODE_GAUGE_FAMILIES, ENCODE_HISTOGRAM_FAMILIES,
    ENCODE_LABEL_NAMES,
};
use herd_core::Format;
use prometheus::Encoder as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family as PcFamily;

mod common;

const COUNTER_HELP: &str = "Requests handled, by method and endpoint.";
const GAUGE_HELP: &str = "Requests in flight, by method and endpoint.";
const HISTOGRAM_HELP: &str = "Request latency, by method and endpoint.";

use common::{PcCounter, PcGauge, PcHistogram};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Labels {
    method: String,
    endpoint: String,
}

fn herd_registry(series: &[[String; 2]]) -> Result<herd_core::Registry, Box<dyn Error>> {
    let registry = herd_core::Registry::new();
    for f in 0..ENCODE_COUNTER_FAMILIES {
        let family = registry
            .counter(fixtures::encode_counter_name(f), COUNTER_HELP)
            .labels(ENCODE_LABEL_NAMES)
            .register()?;
        for (s, [m, e]) in series.iter().enumerate() {
            family.with_labels([m, e]).inc_by(fixtures::counter_value(f, s));
        }
    }
    for f in 0..ENCODE_GAUGE_FAMILIES {
        let family = registry
            .gauge(fixtures::encode_gauge_name(f), GAUGE_HELP)
            .labels(ENCODE_LABEL_NAMES)
            .register()?;
        for (s, [m, e]) in series.iter().enumerate() {
            family.with_labels([m, e]).set(fixtures::gauge_value(f, s));
        }
    }
    for f in 0..ENCODE_HISTOGRAM_FAMILIES {
        let family = registry
            .histogram(fixtures::encode_histogram_name(f), HISTOGRAM_HELP)
            .buckets(herd_core::Buckets::new(DEFAULT_BUCKETS)?)
            .labels(ENCODE_LABEL_NAMES)
            .register()?;
        for (s, [m, e]) in series.iter().enumerate() {
            let h = family.with_labels([m, e]);
            fixtures::histogram_observations(f, s).for_each(|v| h.observe(v));
        }
    }
    Ok(registry)
}

fn prometheus_client_registry(series: &[[String; 2]]) -> prometheus_client::registry::Registry {
    let mut registry = prometheus_client::registry::Registry::default();
    let key = |[m, e]: &[String; 2]| Labels { method: m.clone(), endpoint: e.clone() };
    for f in 0..ENCODE_COUNTER_FAMILIES {
        let family = PcFamily::<Labels, PcCounter>::default();
        // prometheus-client appends `_total` to counter names itself.
        registry.register(fixtures::encode_counter_name(f), COUNTER_HELP, family.clone());
        for (s, labels) in series.iter().enumerate() {
            family.get_or_create(&key(labels)).inc_by(fixtures::counter_value(f, s));
        }
    }
    for f in 0..ENCODE_GAUGE_FAMILIES {
        let family = PcFamily::<Labels, PcGauge>::default();
        registry.register(fixtures::encode_gauge_name(f), GAUGE_HELP, family.clone());
        for (s, labels) in series.iter().enumerate() {
            family.get_or_create(&key(labels)).set(fixtures::gauge_value(f, s));
        }
    }
    for f in 0..ENCODE_HISTOGRAM_FAMILIES {
        let family = PcFamily::<Labels, PcHistogram, fn() -> PcHistogram>::new_with_constructor(|| {
            PcHistogram::new(DEFAULT_BUCKETS)
        });
        registry.register(fixtures::encode_histogram_name(f), HISTOGRAM_HELP, family.clone());
        for (s, labels) in series.iter().enumerate() {
            let h = family.get_or_create(&key(labels));
            fixtures::histogram_observations(f, s).for_each(|v| h.observe(v));
        }
    }
    registry
}

fn prometheus_registry(series: &[[String; 2]]) -> Result<prometheus::Registry, Box<dyn Error>> {
    let registry = prometheus::Registry::new();
    for f in 0..ENCODE_COUNTER_FAMILIES {
        let name = format!("{}_total", fixtures::encode_counter_name(f));
        let vec =
            prometheus::IntCounterVec::new(prometheus::Opts::new(name, COUNTER_HELP), &ENCODE_LABEL_NAMES)?;
        registry.register(Box::new(vec.clone()))?;
        for (s, [m, e]) in series.iter().enumerate() {
            vec.get_metric_with_label_values(&[m, e])?.inc_by(fixtures::counter_value(f, s));
        }
    }
    for f in 0..ENCODE_GAUGE_FAMILIES {
        let opts = prometheus::Opts::new(fixtures::encode_gauge_name(f), GAUGE_HELP);
        let vec = prometheus::GaugeVec::new(opts, &ENCODE_LABEL_NAMES)?;
        registry.register(Box::new(vec.clone()))?;
        for (s, [m, e]) in series.iter().enumerate() {
            vec.get_metric_with_label_values(&[m, e])?.set(fixtures::gauge_value(f, s));
        }
    }
    for f in 0..ENCODE_HISTOGRAM_FAMILIES {
        let opts = prometheus::HistogramOpts::new(fixtures::encode_histogram_name(f), HISTOGRAM_HELP)
            .buckets(DEFAULT_BUCKETS.to_vec());
        let vec = prometheus::HistogramVec::new(opts, &ENCODE_LABEL_NAMES)?;
        registry.register(Box::new(vec.clone()))?;
        for (s, [m, e]) in series.iter().enumerate() {
            let h = vec.get_metric_with_label_values(&[m, e])?;
            fixtures::histogram_observations(f, s).for_each(|v| h.observe(v));
        }
    }
    Ok(registry)
}

fn encode_prometheus_client(registry: &prometheus_client::registry::Registry) -> (String, std::fmt::Result) {
    let mut out = String::new();
    let result = prometheus_client::encoding::text::encode(&mut out, registry);
    (out, result)
}

fn encode_prometheus(registry: &prometheus::Registry) -> (Vec<u8>, prometheus::Result<()>) {
    let mut out = Vec::new();
    let result = prometheus::TextEncoder::new().encode(&registry.gather(), &mut out);
    (out, result)
}

/// Sample lines (not comments, not blank) in an exposition, herd's own per-family
/// counts (`herd_cardinality_overflow`, `herd_storage_errors`: 20 series the other
/// libraries do not have) left out.
fn samples(text: &[u8]) -> usize {
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && !l.starts_with(b"#") && !l.starts_with(b"herd_"))
        .count()
}

fn encode(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let series = fixtures::encode_label_values();
    let herd = herd_registry(&series)?;
    let pc = prometheus_client_registry(&series);
    let prom = prometheus_registry(&series)?;

    // Fairness check: every library must expose the same samples.
    let (pc_text, pc_result) = encode_prometheus_client(&pc);
    pc_result?;
    let (prom_text, prom_result) = encode_prometheus(&prom);
    prom_result?;
    let outputs = [
        ("herd-text", herd.encode(Format::Text)),
        ("herd-openmetrics", herd.encode(Format::OpenMetrics)),
        ("prometheus-client", pc_text.into_bytes()),
        ("prometheus", prom_text),
    ];
    let expected = samples(&outputs[0].1);
    for (name, bytes) in &outputs {
        eprintln!("encode/{name}: {} bytes, {} samples", bytes.len(), samples(bytes));
        if samples(bytes) != expected {
            return Err(
                format!("encode/{name} writes {} samples, herd-text {expected}", samples(bytes)).into()
            );
        }
    }

    let protobuf = herd.encode(Format::Protobuf);
    eprintln!("encode/herd-protobuf: {} bytes", protobuf.len());
    if protobuf.is_empty() {
        return Err("encode/herd-protobuf writes nothing".into());
    }

    let mut g = c.benchmark_group("encode");
    g.bench_function("herd-text", |b| b.iter(|| herd.encode(Format::Text)));
    g.bench_function("herd-openmetrics", |b| b.iter(|| herd.encode(Format::OpenMetrics)));
    g.bench_function("herd-protobuf", |b| b.iter(|| herd.encode(Format::Protobuf)));
    g.bench_function("prometheus-client", |b| b.iter(|| encode_prometheus_client(&pc)));
    g.bench_function("prometheus", |b| b.iter(|| encode_prometheus(&prom)));
    g.finish();
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut c = common::config();
    encode(&mut c)?;
    c.final_summary();
    Ok(())
}
