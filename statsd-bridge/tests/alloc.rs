//! A mirrored update allocates nothing on the caller's thread, in steady state: the
//! first update of a process starts the sender thread and is not measured.

use std::net::UdpSocket;
use std::sync::Arc;

use herd_core::{Buckets, LabelSet, Observer, Registry};
use herd_statsd::{Mirror, StatsdBridge};

/// Allocations made by `f` on this thread (allocation-counter counts per thread, so
/// the sender thread's packets do not count).
fn allocations_during(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

#[test]
fn mirrored_updates_do_not_allocate() -> Result<(), Box<dyn std::error::Error>> {
    let server = UdpSocket::bind("127.0.0.1:0")?;
    let bridge = StatsdBridge::udp(server.local_addr()?)
        .prefix("app")
        .tag("env", "prod")
        .mirror(|f| if &*f.name == "sampled" { Mirror::Sampled(0.25) } else { Mirror::Every })
        .build()?;
    let registry = Registry::new();
    let requests =
        registry.counter("requests_total", "r").labels(["method", "route", "status"]).register()?;
    let in_flight = registry.gauge("in_flight", "i").labels([]).register()?;
    let latency = registry
        .histogram("latency_seconds", "l")
        .buckets(Buckets::default())
        .labels(["route"])
        .register()?;
    let sizes = registry.summary("size_bytes", "s").labels([]).register()?;
    let sampled = registry.counter("sampled_total", "s").labels([]).register()?;

    let ok = bridge.mirror(&requests, ["GET", "/users/{id}", "200"]);
    let gauge = bridge.mirror(&in_flight, []);
    let hist = bridge.mirror(&latency, ["/users/{id}"]);
    let summary = bridge.mirror(&sizes, []);
    let sampled = bridge.mirror(&sampled, []);
    // What an adapter holds: the series observer it asked for once.
    let labels = LabelSet::new([("method", "POST"), ("route", "/"), ("status", "500")])?;
    let adapter = bridge.series(requests.desc(), &labels).ok_or("not mirrored")?;
    let adapter_latency =
        bridge.series(latency.desc(), &LabelSet::new([("route", "/")])?).ok_or("not mirrored")?;
    ok.inc();
    bridge.flush()?;

    let n = allocations_during(|| {
        for i in 0..10_000u32 {
            let v = f64::from(i) / 1000.0;
            ok.inc();
            ok.inc_by(3);
            let _ = ok.inc_by_f64(0.5);
            gauge.set(v);
            gauge.set(-v);
            gauge.inc();
            gauge.sub(2.5);
            hist.observe(v);
            hist.observe_duration(std::time::Duration::from_nanos(u64::from(i)));
            summary.observe(v * 1e300);
            sampled.inc();
            adapter.counter(1.0);
            adapter_latency.observe(v);
            gauge.set(f64::NAN);
        }
    });
    assert_eq!(n, 0, "mirrored updates allocated {n} times");
    assert_eq!(ok.handle().get(), 1.0 + 10_000.0 * 4.5);
    bridge.flush()?;
    assert!(bridge.stats().sent_lines > 0);
    drop(Arc::clone(&adapter));
    Ok(())
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that counts nothing.
    let n = allocations_during(|| drop(std::hint::black_box(Box::new(7u64))));
    assert_eq!(n, 1);
}
