//! One push of a 32-worker x 11,000-series directory against one scrape of the same
//! directory (issue 20's "must reach": CPU per push at most 2x a scrape's).
//!
//! The directory holds the scrape comparison's workload (`herd_benches::scrape`): 32
//! live writers (32 herd-mmap files held by this process), each with 11,000 counter
//! series and 1,100 histogram series (11 default buckets). **scrape** is the least a
//! `/metrics` does on a warm `Aggregator`: collect, then encode text 0.0.4;
//! **scrape_as_prometheus_asks** is herd's whole `/metrics` answer to Prometheus 2.42's
//! `Accept` and `Accept-Encoding: gzip` (OpenMetrics, gzipped). **push/…**
//! is one `Pusher::push` on its own warm `Aggregator`: collect, encode for the sink
//! (text; protobuf + snappy; OTLP protobuf), send over loopback to a receiver thread
//! that reads the body and answers 2xx. The receiver's own reading is part of the
//! figure, so the ratio is, if anything, unfair to the push.
//!
//! Criterion's wall-clock medians of groups run seconds apart drift with the load of a
//! shared machine, so before them the suite prints a paired measurement: rounds that
//! run the scrape and each push back to back, timing the CPU of this thread alone
//! (`CLOCK_THREAD_CPUTIME_ID`: the push's collection, encoding, compression and
//! system calls; not the receiver thread), and the median over rounds of each push's
//! CPU over the scrape's of the same round. That ratio is the figure.

use std::error::Error;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use herd_benches::scrape;
use herd_core::http::MetricsSource;
use herd_core::{Collector, Format, Registry, Snapshot};
use herd_mmap::{claim_dir, Aggregator, MmapStorage};
use herd_push::{PushMetrics, Pusher, Retry, Sink};

#[allow(dead_code)]
mod common;

const WORKERS: usize = 32;
const SERIES: usize = 11_000;
/// Prometheus 2.42's scrape `Accept` header.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// A receiver on 127.0.0.1 that reads each request whole and answers 204.
fn receiver() -> Result<String, Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::Builder::new().name("receiver".into()).spawn(move || {
        let mut body = Vec::new();
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut reader = BufReader::new(&conn);
            let mut length = 0usize;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            body.clear();
            let _ = reader.by_ref().take(length as u64).read_to_end(&mut body);
            let _ = (&conn)
                .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    })?;
    Ok(format!("http://{addr}"))
}

fn push(c: &mut Criterion) -> Result<(), Box<dyn Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let mut writers = Vec::with_capacity(WORKERS);
    for _ in 0..WORKERS {
        let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
        scrape::populate(&registry, SERIES)?;
        writers.push(registry);
    }
    let url = receiver()?;

    let scraper = Aggregator::new(&dir)?;
    let scrape = || -> Result<usize, Box<dyn Error>> {
        let mut families = Vec::new();
        scraper.try_collect(&mut families)?;
        let mut out = Vec::new();
        herd_core::encode(&Snapshot { families }, Format::Text, &mut out);
        Ok(out.len())
    };
    eprintln!("push/scrape: {} bytes of text", scrape()?);
    let source = MetricsSource::collector(Arc::new(Aggregator::new(&dir)?));
    let as_prometheus_asks = || source.respond(Some(PROMETHEUS_ACCEPT), ["gzip"]);
    let answer = as_prometheus_asks();
    eprintln!(
        "push/scrape_as_prometheus_asks: {} {} bytes, {:?}",
        answer.status,
        answer.body.len(),
        answer.content_encoding
    );

    let own = Registry::new();
    let metrics = PushMetrics::register(&own)?;
    let sinks = [
        ("pushgateway", Sink::pushgateway(&url, "bench")?),
        ("remote_write", Sink::remote_write(&format!("{url}/api/v1/write"))?),
        ("otlp", Sink::otlp(&url)?),
    ];
    let mut pushers = Vec::new();
    for (name, sink) in sinks {
        let mut pusher = Pusher::builder(sink)
            .collector(Arc::new(Aggregator::new(&dir)?))
            .metrics(metrics.clone())
            .retry(Retry::never())
            .build()?;
        pusher.push()?; // warm, and a check that the receiver answers
        pushers.push((name, pusher));
    }

    paired(&scrape, &as_prometheus_asks, &mut pushers)?;

    let mut g = c.benchmark_group("push");
    g.sample_size(20);
    g.bench_function("scrape", |b| b.iter(|| scrape().map_err(|e| e.to_string())));
    g.bench_function("scrape_as_prometheus_asks", |b| b.iter(as_prometheus_asks));
    for (name, pusher) in &mut pushers {
        g.bench_function(*name, |b| b.iter(|| pusher.push().map_err(|e| e.to_string())));
    }
    g.finish();
    drop(writers);
    Ok(())
}

/// CPU time used by this thread so far.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0))
}

fn cpu_of<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = thread_cpu();
    let out = f();
    (thread_cpu().saturating_sub(start), out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Rounds of the scrape then every push, back to back; prints the median CPU of each
/// and the median per-round ratio of each push's CPU to the scrape's.
fn paired(
    scrape: &dyn Fn() -> Result<usize, Box<dyn Error>>,
    as_prometheus_asks: &dyn Fn() -> herd_core::http::ScrapeResponse,
    pushers: &mut [(&str, Pusher)],
) -> Result<(), Box<dyn Error>> {
    const ROUNDS: usize = 21;
    let mut scrapes = Vec::with_capacity(ROUNDS);
    let mut asks = Vec::with_capacity(ROUNDS);
    let mut pushes = vec![Vec::with_capacity(ROUNDS); pushers.len()];
    let mut ratios = vec![Vec::with_capacity(ROUNDS); pushers.len()];
    for _ in 0..ROUNDS {
        let (cpu, result) = cpu_of(scrape);
        result?;
        let scrape_ms = cpu.as_secs_f64() * 1e3;
        scrapes.push(scrape_ms);
        asks.push(cpu_of(as_prometheus_asks).0.as_secs_f64() * 1e3);
        for (i, (_, pusher)) in pushers.iter_mut().enumerate() {
            let (cpu, result) = cpu_of(|| pusher.push());
            result?;
            let push_ms = cpu.as_secs_f64() * 1e3;
            pushes[i].push(push_ms);
            ratios[i].push(push_ms / scrape_ms);
        }
    }
    let scrape_ms = median(scrapes);
    eprintln!("push/paired: CPU of this thread, median of {ROUNDS} rounds");
    eprintln!("push/paired: scrape {scrape_ms:.2} ms; scrape_as_prometheus_asks {:.2} ms", median(asks));
    for (i, (name, _)) in pushers.iter().enumerate() {
        eprintln!(
            "push/paired: {name} {:.2} ms, {:.2}x the scrape (median of per-round ratios)",
            median(pushes[i].clone()),
            median(ratios[i].clone())
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut c = common::config();
    push(&mut c)?;
    c.final_summary();
    Ok(())
}
