//! The `metrics` facade through herd-metrics beside metrics-exporter-prometheus, in one
//! run: both recorders are used as local recorders, so the facade's own dispatch (a
//! thread-local check, then the recorder) costs the same on both sides. The labelled
//! lookups are measured paired (alternating blocks through each recorder).
//!
//! Benchmark ids are `<group>/<library>`; `bench-report` reads them by those names.
//! Inputs cycle through the same fixed lists (`herd_benches::fixtures`) as
//! `hot_path.rs`.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion};
use herd_benches::fixtures::{self, CYCLE_MASK, DEFAULT_BUCKETS, OBSERVATIONS};
use herd_metrics::HerdRecorder;
use metrics::{with_local_recorder, Recorder};
use metrics_exporter_prometheus::PrometheusRecorder;

// Only `config` is used here; the other items serve the other suites.
#[allow(dead_code)]
mod common;

const HERD_METRICS: &str = "herd-metrics";
const EXPORTER: &str = "metrics-exporter-prometheus";

fn recorders() -> Result<(HerdRecorder, PrometheusRecorder), Box<dyn Error>> {
    let herd = HerdRecorder::builder(herd_core::Registry::new())
        .default_buckets(herd_core::Buckets::new(DEFAULT_BUCKETS)?)
        .build()?;
    let exporter =
        metrics_exporter_prometheus::PrometheusBuilder::new().set_buckets(&DEFAULT_BUCKETS)?.build_recorder();
    Ok((herd, exporter))
}

/// `counter!` with three label values known only at run time, as a library writes it.
fn labelled(set: [&'static str; 3]) {
    let [method, route, status] = set;
    metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
}

/// Runs `labelled` each iteration on the next label set of the lookup cycle.
fn lookup_each(b: &mut Bencher<'_>, cycle: &[[&'static str; 3]]) {
    let mut i = 0usize;
    b.iter(|| {
        labelled(black_box(cycle[i & CYCLE_MASK]));
        i = i.wrapping_add(1);
    })
}

/// Iterations per block of a paired measurement.
const BLOCK: u64 = 256;

/// Times `labelled` through `timed` in blocks that alternate with untimed blocks
/// through `other`, so that both recorders are measured under the same load: on a
/// shared 2-vCPU machine, two medians taken seconds apart drift more than the
/// difference between them.
fn paired(b: &mut Bencher<'_>, timed: &dyn Recorder, other: &dyn Recorder, cycle: &[[&'static str; 3]]) {
    b.iter_custom(|iters| {
        let (mut total, mut done, mut i) = (Duration::ZERO, 0u64, 0usize);
        let mut run = |recorder: &dyn Recorder, n: u64| {
            with_local_recorder(recorder, || {
                for _ in 0..n {
                    labelled(black_box(cycle[i & CYCLE_MASK]));
                    i = i.wrapping_add(1);
                }
            })
        };
        while done < iters {
            let n = (iters - done).min(BLOCK);
            let start = Instant::now();
            run(timed, n);
            total += start.elapsed();
            run(other, n);
            done += n;
        }
        total
    })
}

fn facade_labelled_inc(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let (herd, exporter) = recorders()?;
    let cycle = fixtures::lookup_cycle();
    for set in fixtures::populated_label_sets() {
        with_local_recorder(&herd, || labelled(set));
        with_local_recorder(&exporter, || labelled(set));
    }
    let mut g = c.benchmark_group("facade_labelled_inc");
    g.bench_function(HERD_METRICS, |b| paired(b, &herd, &exporter, &cycle));
    g.bench_function(EXPORTER, |b| paired(b, &exporter, &herd, &cycle));
    // The macro's own cost (key built, hashed and dropped), with nothing recorded.
    g.bench_function("metrics-noop", |b| {
        with_local_recorder(&metrics::NoopRecorder, || lookup_each(b, &cycle))
    });
    g.finish();
    Ok(())
}

fn facade_counter_inc(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let (herd, exporter) = recorders()?;
    let registry = herd_core::Registry::new();
    let own = registry.counter("bench_counter_total", "Benchmark counter.").register()?;
    let kept = with_local_recorder(&herd, || metrics::counter!("bench_counter_total"));
    let kept_exporter = with_local_recorder(&exporter, || metrics::counter!("bench_counter_total"));
    let mut g = c.benchmark_group("facade_counter_inc");
    g.bench_function("herd", |b| b.iter(|| black_box(&own).inc()));
    g.bench_function(HERD_METRICS, |b| b.iter(|| black_box(&kept).increment(1)));
    g.bench_function(EXPORTER, |b| b.iter(|| black_box(&kept_exporter).increment(1)));
    g.finish();
    Ok(())
}

/// Runs `op` each iteration on the next of the 64 observation values.
fn observe_each(b: &mut Bencher<'_>, op: impl Fn(f64)) {
    let mut i = 0usize;
    b.iter(|| {
        let v = black_box(OBSERVATIONS[i & 63]);
        i = i.wrapping_add(1);
        op(v);
    })
}

fn facade_histogram_record(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let (herd, exporter) = recorders()?;
    let registry = herd_core::Registry::new();
    let own = registry
        .histogram("bench_latency_seconds", "Benchmark histogram.")
        .buckets(herd_core::Buckets::new(DEFAULT_BUCKETS)?)
        .register()?;
    let kept = with_local_recorder(&herd, || metrics::histogram!("bench_latency_seconds"));
    let kept_exporter = with_local_recorder(&exporter, || metrics::histogram!("bench_latency_seconds"));
    let mut g = c.benchmark_group("facade_histogram_record");
    g.bench_function("herd", |b| observe_each(b, |v| black_box(&own).observe(v)));
    g.bench_function(HERD_METRICS, |b| observe_each(b, |v| black_box(&kept).record(v)));
    // metrics-exporter-prometheus appends each value to a block list and sorts it into
    // buckets at scrape time (or at upkeep); without either, the list only grows.
    g.bench_function(EXPORTER, |b| observe_each(b, |v| black_box(&kept_exporter).record(v)));
    g.finish();
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut c = common::config();
    facade_labelled_inc(&mut c)?;
    facade_counter_inc(&mut c)?;
    facade_histogram_record(&mut c)?;
    c.final_summary();
    Ok(())
}
