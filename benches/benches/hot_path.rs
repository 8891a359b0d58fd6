//! Hot-path benchmarks: herd, in memory and in a herd-mmap file, beside a bare atomic,
//! prometheus, prometheus-client and metrics (with metrics-exporter-prometheus).
//!
//! Benchmark ids are `<group>/<library>`; `bench-report` reads them by those names.
//! Every handle is resolved before the timed loop and passed through `black_box` on
//! each iteration, so the compiler can neither hoist the handle's cell resolution out
//! of the loop nor fold the update away. Lookup and observe inputs cycle through the
//! same fixed lists (`herd_benches::fixtures`) for every library.

use std::error::Error;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion};
use herd_benches::fixtures::{self, CYCLE_MASK, DEFAULT_BUCKETS, LABEL_NAMES, OBSERVATIONS};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family as PcFamily;

mod common;

use common::{PcCounter, PcGauge, PcHistogram};

/// prometheus-client's typical label key: a derived struct of owned strings.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: String,
}

impl HttpLabels {
    fn new([method, route, status]: [&str; 3]) -> Self {
        Self { method: method.to_owned(), route: route.to_owned(), status: status.to_owned() }
    }
}

/// prometheus-client's allocation-free key: static label names and borrowed values.
type StaticLabels = [(&'static str, &'static str); 3];

fn static_labels([method, route, status]: [&'static str; 3]) -> StaticLabels {
    [("method", method), ("route", route), ("status", status)]
}

/// A herd registry whose cells live in a herd-mmap file in a temp dir (kept alive by
/// the returned guard): the multiprocess storage, same handles.
fn mmap_registry() -> Result<(tempfile::TempDir, herd_core::Registry), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = herd_mmap::claim_dir(tmp.path().join("metrics"))?;
    let storage = std::sync::Arc::new(herd_mmap::MmapStorage::open(&dir)?);
    Ok((tmp, herd_core::Registry::builder().storage(storage).build()?))
}

/// Installs metrics-exporter-prometheus as the `metrics` facade's global recorder,
/// with the same buckets as the other libraries' histograms.
fn install_metrics_recorder() -> Result<(), Box<dyn Error>> {
    let recorder =
        metrics_exporter_prometheus::PrometheusBuilder::new().set_buckets(&DEFAULT_BUCKETS)?.build_recorder();
    metrics::set_global_recorder(recorder)?;
    Ok(())
}

/// Runs `op` each iteration on the next of the 64 observation values, the same values
/// in the same order for every library.
fn observe_each(b: &mut Bencher<'_>, op: impl Fn(f64)) {
    let mut i = 0usize;
    b.iter(|| {
        let v = black_box(OBSERVATIONS[i & 63]);
        i = i.wrapping_add(1);
        op(v);
    })
}

/// Runs `op` each iteration on the next label set of `cycle` (`black_box`ed), the same
/// sets in the same order for every library.
fn lookup_each(b: &mut Bencher<'_>, cycle: &[[&'static str; 3]], op: impl Fn([&'static str; 3])) {
    let mut i = 0usize;
    b.iter(|| {
        let set = black_box(cycle[i & CYCLE_MASK]);
        i = i.wrapping_add(1);
        op(set);
    })
}

fn counter_inc(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let registry = herd_core::Registry::new();
    let herd = registry.counter("bench_counter_total", "Benchmark counter.").register()?;
    let (_tmp, mmap) = mmap_registry()?;
    let herd_mmap = mmap.counter("bench_counter_total", "Benchmark counter.").register()?;
    let atomic = AtomicU64::new(0);
    let pc = PcCounter::default();
    let prom = prometheus::IntCounter::new("bench_counter_total", "Benchmark counter.")?;
    let metrics = metrics::counter!("bench_counter_total");

    let mut g = c.benchmark_group("counter_inc");
    g.bench_function("herd", |b| b.iter(|| black_box(&herd).inc()));
    g.bench_function("atomic", |b| {
        b.iter(|| {
            black_box(&atomic).fetch_add(1, Ordering::Relaxed);
        })
    });
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            black_box(&pc).inc();
        })
    });
    g.bench_function("prometheus", |b| b.iter(|| black_box(&prom).inc()));
    g.bench_function("herd-mmap", |b| b.iter(|| black_box(&herd_mmap).inc()));
    g.bench_function("metrics", |b| b.iter(|| black_box(&metrics).increment(1)));
    g.finish();
    Ok(())
}

/// Runs `op` `iters` times on each of two threads released together by a barrier;
/// returns the span from the first thread's start to the last thread's end (thread
/// start-up excluded). If the scheduler serialises the threads, the span covers both
/// runs, so a lack of real overlap shows up as a slower result rather than hiding.
fn on_two_threads(iters: u64, op: &(impl Fn() + Sync)) -> Duration {
    let barrier = Barrier::new(2);
    thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        let spans: Vec<(Instant, Instant)> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect();
        match (spans.iter().map(|s| s.0).min(), spans.iter().map(|s| s.1).max()) {
            (Some(first), Some(last)) => last - first,
            _ => Duration::ZERO,
        }
    })
}

fn counter_inc_2threads(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let registry = herd_core::Registry::new();
    let herd = registry.counter("bench_counter_total", "Benchmark counter.").register()?;
    let (_tmp, mmap) = mmap_registry()?;
    let herd_mmap = mmap.counter("bench_counter_total", "Benchmark counter.").register()?;
    let atomic = AtomicU64::new(0);
    let pc = PcCounter::default();
    let prom = prometheus::IntCounter::new("bench_counter_total", "Benchmark counter.")?;
    let metrics = metrics::counter!("bench_counter_total");

    let mut g = c.benchmark_group("counter_inc_2threads");
    g.bench_function("herd", |b| b.iter_custom(|iters| on_two_threads(iters, &|| black_box(&herd).inc())));
    g.bench_function("herd-mmap", |b| {
        b.iter_custom(|iters| on_two_threads(iters, &|| black_box(&herd_mmap).inc()))
    });
    g.bench_function("prometheus-client", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, &|| {
                black_box(&pc).inc();
            })
        })
    });
    g.bench_function("prometheus", |b| {
        b.iter_custom(|iters| on_two_threads(iters, &|| black_box(&prom).inc()))
    });
    g.bench_function("metrics", |b| {
        b.iter_custom(|iters| on_two_threads(iters, &|| black_box(&metrics).increment(1)))
    });
    g.bench_function("atomic", |b| {
        b.iter_custom(|iters| {
            on_two_threads(iters, &|| {
                black_box(&atomic).fetch_add(1, Ordering::Relaxed);
            })
        })
    });
    g.finish();
    Ok(())
}

fn gauge_set(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let registry = herd_core::Registry::new();
    let herd = registry.gauge("bench_gauge", "Benchmark gauge.").register()?;
    let (_tmp, mmap) = mmap_registry()?;
    let herd_mmap = mmap.gauge("bench_gauge", "Benchmark gauge.").register()?;
    let atomic = AtomicU64::new(0);
    let pc = PcGauge::default();
    let prom = prometheus::Gauge::new("bench_gauge", "Benchmark gauge.")?;
    let metrics = metrics::gauge!("bench_gauge");

    let mut g = c.benchmark_group("gauge_set");
    g.bench_function("herd", |b| b.iter(|| black_box(&herd).set(black_box(1.5))));
    g.bench_function("atomic", |b| {
        b.iter(|| black_box(&atomic).store(black_box(1.5f64).to_bits(), Ordering::Relaxed))
    });
    g.bench_function("prometheus-client", |b| {
        b.iter(|| {
            black_box(&pc).set(black_box(1.5));
        })
    });
    g.bench_function("prometheus", |b| b.iter(|| black_box(&prom).set(black_box(1.5))));
    g.bench_function("herd-mmap", |b| b.iter(|| black_box(&herd_mmap).set(black_box(1.5))));
    g.bench_function("metrics", |b| b.iter(|| black_box(&metrics).set(black_box(1.5))));
    g.finish();
    Ok(())
}

fn labelled_inc(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let populated = fixtures::populated_label_sets();
    let cycle = fixtures::lookup_cycle();

    let registry = herd_core::Registry::new();
    let herd = registry.counter("http_requests_total", "Requests served.").labels(LABEL_NAMES).register()?;
    let (_tmp, mmap) = mmap_registry()?;
    let herd_mmap = mmap.counter("http_requests_total", "Requests served.").labels(LABEL_NAMES).register()?;
    let pc_owned = PcFamily::<HttpLabels, PcCounter>::default();
    let pc_static = PcFamily::<StaticLabels, PcCounter>::default();
    let prom = prometheus::IntCounterVec::new(
        prometheus::Opts::new("http_requests_total", "Requests served."),
        &LABEL_NAMES,
    )?;
    for &set in &populated {
        herd.with_labels(set).inc();
        herd_mmap.with_labels(set).inc();
        let [method, route, status] = set;
        metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status)
            .increment(1);
        pc_owned.get_or_create(&HttpLabels::new(set)).inc();
        pc_static.get_or_create(&static_labels(set)).inc();
        prom.get_metric_with_label_values(&set)?.inc();
    }
    let prebuilt: Vec<HttpLabels> = cycle.iter().map(|&set| HttpLabels::new(set)).collect();

    let mut g = c.benchmark_group("labelled_inc");
    g.bench_function("herd", |b| {
        lookup_each(b, &cycle, |set| {
            black_box(&herd).with_labels(set).inc();
        })
    });
    g.bench_function("prometheus-client", |b| {
        lookup_each(b, &cycle, |set| {
            black_box(&pc_owned).get_or_create(&HttpLabels::new(set)).inc();
        })
    });
    g.bench_function("prometheus-client-static", |b| {
        lookup_each(b, &cycle, |set| {
            black_box(&pc_static).get_or_create(&static_labels(set)).inc();
        })
    });
    g.bench_function("prometheus-client-prebuilt", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let key = black_box(&prebuilt[i & CYCLE_MASK]);
            i = i.wrapping_add(1);
            black_box(&pc_owned).get_or_create(key).inc();
        })
    });
    g.bench_function("prometheus", |b| {
        lookup_each(b, &cycle, |set| {
            black_box(&prom).with_label_values(&set).inc();
        })
    });
    g.bench_function("herd-mmap", |b| {
        lookup_each(b, &cycle, |set| {
            black_box(&herd_mmap).with_labels(set).inc();
        })
    });
    // The facade's macro as its users write it: the key (name and labels) is built and
    // looked up in the recorder's registry on every call.
    g.bench_function("metrics", |b| {
        lookup_each(b, &cycle, |[method, route, status]| {
            metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status)
                .increment(1);
        })
    });
    g.finish();
    Ok(())
}

fn histogram_observe(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let registry = herd_core::Registry::new();
    let herd = registry
        .histogram("bench_latency_seconds", "Benchmark histogram.")
        .buckets(herd_core::Buckets::new(DEFAULT_BUCKETS)?)
        .register()?;
    let pc = PcHistogram::new(DEFAULT_BUCKETS);
    let prom = prometheus::Histogram::with_opts(
        prometheus::HistogramOpts::new("bench_latency_seconds", "Benchmark histogram.")
            .buckets(DEFAULT_BUCKETS.to_vec()),
    )?;
    let (_tmp, mmap) = mmap_registry()?;
    let herd_mmap = mmap
        .histogram("bench_latency_seconds", "Benchmark histogram.")
        .buckets(herd_core::Buckets::new(DEFAULT_BUCKETS)?)
        .register()?;
    let metrics = metrics::histogram!("bench_latency_seconds");

    let mut g = c.benchmark_group("histogram_observe");
    g.bench_function("herd", |b| {
        observe_each(b, |v| {
            black_box(&herd).observe(v);
        })
    });
    g.bench_function("prometheus-client", |b| {
        observe_each(b, |v| {
            black_box(&pc).observe(v);
        })
    });
    g.bench_function("prometheus", |b| {
        observe_each(b, |v| {
            black_box(&prom).observe(v);
        })
    });
    g.bench_function("herd-mmap", |b| {
        observe_each(b, |v| {
            black_box(&herd_mmap).observe(v);
        })
    });
    // metrics-exporter-prometheus appends each value to a lock-free block list and sorts
    // it into buckets at scrape time.
    g.bench_function("metrics", |b| {
        observe_each(b, |v| {
            black_box(&metrics).record(v);
        })
    });
    g.finish();
    Ok(())
}

/// Summary `observe` (the default sketch: 2% error, 10-minute window in 3 age
/// buckets) beside herd's histogram `observe` in the same group and run, in process and
/// in a herd-mmap file: the ratio `bench-report` checks.
fn summary_observe(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let heap = herd_core::Registry::new();
    let tmp = tempfile::tempdir()?;
    let dir = herd_mmap::claim_dir(tmp.path().join("metrics"))?;
    let mmap = herd_core::Registry::builder()
        .storage(std::sync::Arc::new(herd_mmap::MmapStorage::open(&dir)?))
        .build()?;
    let mut handles = Vec::new();
    for registry in [&heap, &mmap] {
        let summary = registry.summary("bench_latency_seconds", "Benchmark summary.").register()?;
        let histogram = registry
            .histogram("bench_latency_histogram_seconds", "Benchmark histogram.")
            .buckets(herd_core::Buckets::new(DEFAULT_BUCKETS)?)
            .register()?;
        handles.push((summary, histogram));
    }
    let metrics = metrics::histogram!("bench_summary_seconds");

    let mut g = c.benchmark_group("summary_observe");
    for ((summary, histogram), storage) in handles.iter().zip(["herd", "herd-mmap"]) {
        g.bench_function(storage, |b| {
            observe_each(b, |v| {
                black_box(summary).observe(v);
            })
        });
        g.bench_function(format!("{storage}-histogram"), |b| {
            observe_each(b, |v| {
                black_box(histogram).observe(v);
            })
        });
    }
    g.bench_function("metrics", |b| {
        observe_each(b, |v| {
            black_box(&metrics).record(v);
        })
    });
    g.finish();
    Ok(())
}

/// The CPU time this thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    // The clock counts from the thread's start: never negative.
    Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}

/// A histogram with native buckets (the default layout: schema 3, 320 buckets a sign)
/// beside one with the 11 default classic bounds, in the same group and run, in process
/// and in a herd-mmap file: the ratio `bench-report` checks. `-native` keeps both kinds
/// of buckets (what `native()` and the RED option give), `-native-only` native ones.
/// Times are CPU times of the bench thread.
fn native_observe(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let heap = herd_core::Registry::new();
    let (_tmp, mmap) = mmap_registry()?;
    let mut handles = Vec::new();
    for (registry, storage) in [(&heap, "herd"), (&mmap, "herd-mmap")] {
        let builder = |name: &str| {
            registry
                .histogram(name, "Benchmark histogram.")
                .buckets(herd_core::Buckets::new(DEFAULT_BUCKETS).unwrap_or_default())
        };
        let native = herd_core::NativeBuckets::default();
        handles.push((storage.to_owned(), builder("bench_classic_seconds").register()?));
        handles
            .push((format!("{storage}-native"), builder("bench_native_seconds").native(native).register()?));
        handles.push((
            format!("{storage}-native-only"),
            builder("bench_native_only_seconds").native_only(native).register()?,
        ));
    }
    let mut g = c.benchmark_group("native_observe");
    for (id, histogram) in &handles {
        // Timed by the thread's CPU clock: the ratio is judged within this group, and a
        // neighbour taking the other core for a while must not land on one id only.
        g.bench_function(id.as_str(), |b| {
            let mut i = 0usize;
            b.iter_custom(|n| {
                let start = thread_cpu();
                for _ in 0..n {
                    black_box(histogram).observe(black_box(OBSERVATIONS[i & 63]));
                    i = i.wrapping_add(1);
                }
                thread_cpu().saturating_sub(start)
            })
        });
    }
    g.finish();
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut c = common::config();
    install_metrics_recorder()?;
    counter_inc(&mut c)?;
    counter_inc_2threads(&mut c)?;
    gauge_set(&mut c)?;
    labelled_inc(&mut c)?;
    histogram_observe(&mut c)?;
    summary_observe(&mut c)?;
    native_observe(&mut c)?;
    c.final_summary();
    Ok(())
}
