//! StatsD benchmarks: the cost on the caller's thread of one mirrored update through
//! herd-statsd beside cadence's own cost for the same line, in the same run.
//!
//! herd's updates are aggregated per flush interval (herd-statsd's default): an
//! update is an atomic operation on its series' slot, and the sender thread sends
//! one line per series and interval. `statsd_counter/herd-labelled-inc` is herd's
//! own labelled increment of the same series (label lookup and add, no StatsD), the
//! yardstick for `herd-mirror-only` (the aggregated increment alone, as an adapter's
//! series observer makes it) and `herd` (a `Mirrored` counter: herd's add plus the
//! aggregated increment).
//!
//! Both send DogStatsD lines with the same prefix, tags and values to a local UDP
//! socket that nobody reads, through a bounded queue of the same capacity drained by
//! a thread of their own: herd's bridge (its sender batches lines into 1432-byte
//! packets) and cadence's `StatsdClient` over `QueuingMetricSink` around a
//! `BufferedUdpMetricSink` (the setup cadence's README recommends). Each library's
//! share of updates dropped because its queue was full is printed after its run:
//! a dropped update costs less than a queued one, so compare with those shares in
//! view.

use std::error::Error;
use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU64, Ordering};

use cadence::prelude::*;
use cadence::{BufferedUdpMetricSink, QueuingMetricSink, StatsdClient};
use criterion::Criterion;
use herd_benches::fixtures::{CYCLE_MASK, OBSERVATIONS};
use herd_core::{Buckets, LabelSet, Observer, Registry};
use herd_statsd::{DropReason, StatsdBridge, DEFAULT_QUEUE_CAPACITY};

// Only `config` is used here; the other items serve the other suites.
#[allow(dead_code)]
mod common;

/// Updates cadence refused (its queue was full), counted by its error handler.
static CADENCE_ERRORS: AtomicU64 = AtomicU64::new(0);

struct Setup {
    /// Kept open so the destination exists; never read.
    _sink_socket: UdpSocket,
    bridge: StatsdBridge,
    cadence: StatsdClient,
}

fn setup() -> Result<Setup, Box<dyn Error>> {
    let sink_socket = UdpSocket::bind("127.0.0.1:0")?;
    let addr = sink_socket.local_addr()?;
    let bridge = StatsdBridge::udp(addr).prefix("app").tag("env", "prod").build()?;
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_nonblocking(true)?;
    let buffered = BufferedUdpMetricSink::from(addr, socket)?;
    let queuing = QueuingMetricSink::with_capacity(buffered, DEFAULT_QUEUE_CAPACITY);
    let cadence = StatsdClient::builder("app", queuing)
        .with_tag("env", "prod")
        .with_error_handler(|_| {
            CADENCE_ERRORS.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    Ok(Setup { _sink_socket: sink_socket, bridge, cadence })
}

/// Prints the share of updates the run dropped, for the record beside its timing.
fn report_drops(what: &str, dropped: u64, attempted: u64) {
    let share = if attempted == 0 { 0.0 } else { dropped as f64 * 100.0 / attempted as f64 };
    eprintln!("{what}: {dropped} of {attempted} updates dropped (queue full), {share:.1}%");
}

fn statsd_counter(c: &mut Criterion, s: &Setup) -> Result<(), Box<dyn Error>> {
    let registry = Registry::new();
    let requests =
        registry.counter("requests_total", "Requests.").labels(["method", "route", "status"]).register()?;
    let herd = s.bridge.mirror(&requests, ["GET", "/users/{id}", "200"]);
    let labels = LabelSet::new([("method", "GET"), ("route", "/users/{id}"), ("status", "200")])?;
    let observer = s.bridge.series(requests.desc(), &labels).ok_or("not mirrored")?;
    // A plain count (not an atomic): it adds the same register increment to both.
    let mut attempts = 0u64;

    let mut g = c.benchmark_group("statsd_counter");
    g.bench_function("herd-labelled-inc", |b| {
        b.iter(|| {
            black_box(&requests).with_labels(black_box(["GET", "/users/{id}", "200"])).inc();
            attempts += 1;
        })
    });
    attempts = 0;
    let before = s.bridge.stats();
    g.bench_function("herd", |b| {
        b.iter(|| {
            black_box(&herd).inc();
            attempts += 1;
        })
    });
    let _ = s.bridge.flush();
    let after = s.bridge.stats();
    let dropped = after.dropped(DropReason::QueueFull) - before.dropped(DropReason::QueueFull);
    report_drops("statsd_counter/herd", dropped, std::mem::take(&mut attempts));

    let before = s.bridge.stats();
    g.bench_function("herd-mirror-only", |b| {
        b.iter(|| {
            black_box(&observer).counter(1.0);
            attempts += 1;
        })
    });
    let _ = s.bridge.flush();
    let after = s.bridge.stats();
    let dropped = after.dropped(DropReason::QueueFull) - before.dropped(DropReason::QueueFull);
    report_drops("statsd_counter/herd-mirror-only", dropped, std::mem::take(&mut attempts));

    let before = CADENCE_ERRORS.load(Ordering::Relaxed);
    g.bench_function("cadence", |b| {
        b.iter(|| {
            black_box(&s.cadence)
                .count_with_tags("requests_total", 1)
                .with_tag("method", "GET")
                .with_tag("route", "/users/{id}")
                .with_tag("status", "200")
                .send();
            attempts += 1;
        })
    });
    let dropped = CADENCE_ERRORS.load(Ordering::Relaxed) - before;
    report_drops("statsd_counter/cadence", dropped, std::mem::take(&mut attempts));
    g.finish();
    Ok(())
}

fn statsd_timer(c: &mut Criterion, s: &Setup) -> Result<(), Box<dyn Error>> {
    let registry = Registry::new();
    let latency = registry
        .histogram("request_duration_seconds", "Latency.")
        .unit("seconds")
        .buckets(Buckets::default())
        .labels(["route"])
        .register()?;
    let herd = s.bridge.mirror(&latency, ["/users/{id}"]);
    // cadence's timers take whole milliseconds; herd's are the same values, sent with
    // whatever fraction they have.
    let millis: Vec<u64> = OBSERVATIONS.iter().map(|v| (v * 1000.0) as u64).collect();
    // A plain count (not an atomic): it adds the same register increment to both.
    let mut attempts = 0u64;

    let mut g = c.benchmark_group("statsd_timer");
    let before = s.bridge.stats();
    g.bench_function("herd", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let v = black_box(OBSERVATIONS[i & CYCLE_MASK]);
            i = i.wrapping_add(1);
            black_box(&herd).observe(v);
            attempts += 1;
        })
    });
    let _ = s.bridge.flush();
    let after = s.bridge.stats();
    let dropped = after.dropped(DropReason::QueueFull) - before.dropped(DropReason::QueueFull);
    report_drops("statsd_timer/herd", dropped, std::mem::take(&mut attempts));

    let before = CADENCE_ERRORS.load(Ordering::Relaxed);
    g.bench_function("cadence", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let ms = black_box(millis[i & CYCLE_MASK]);
            i = i.wrapping_add(1);
            black_box(&s.cadence)
                .time_with_tags("request_duration_seconds", ms)
                .with_tag("route", "/users/{id}")
                .send();
            attempts += 1;
        })
    });
    let dropped = CADENCE_ERRORS.load(Ordering::Relaxed) - before;
    report_drops("statsd_timer/cadence", dropped, std::mem::take(&mut attempts));
    g.finish();
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut c = common::config();
    let s = setup()?;
    statsd_counter(&mut c, &s)?;
    statsd_timer(&mut c, &s)?;
    c.final_summary();
    Ok(())
}
