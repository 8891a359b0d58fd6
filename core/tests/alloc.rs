//! The hot path allocates nothing: `inc`, `set` and `observe` on cached handles, and a
//! label lookup of an existing series, run under an allocator that counts.

use herd_core::{Buckets, NativeBuckets, Registry};

/// Allocations made by `f` on this thread (allocation-counter wraps the global
/// allocator and counts per thread, so the test harness's threads do not interfere).
fn allocations_during(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

#[test]
fn cached_handles_and_existing_lookups_do_not_allocate() -> Result<(), Box<dyn std::error::Error>> {
    let registry = Registry::new();
    let counter = registry.counter("c_total", "c").register()?;
    let gauge = registry.gauge("g", "g").register()?;
    let histogram = registry.histogram("h_seconds", "h").buckets(Buckets::default()).register()?;
    let summary = registry.summary("s_seconds", "s").register()?;
    let native = registry.histogram("n_seconds", "n").native(NativeBuckets::default()).register()?;
    let family = registry.counter("f_total", "f").labels(["method", "route", "status"]).register()?;
    let labelled_histogram = registry.histogram("lh_seconds", "lh").labels(["route"]).register()?;
    family.with_labels(["GET", "/users/{id}", "200"]).inc();
    labelled_histogram.with_labels(["/"]).observe(0.1);
    let cached = family.with_labels(["GET", "/users/{id}", "200"]).clone();

    let n = allocations_during(|| {
        for i in 0..10_000u32 {
            let v = f64::from(i) / 1000.0;
            counter.inc();
            counter.inc_by(3);
            let _ = counter.inc_by_f64(0.5);
            gauge.set(v);
            gauge.inc();
            gauge.dec();
            gauge.add(2.5);
            histogram.observe(v);
            summary.observe(v);
            native.observe(v - 5.0);
            cached.inc();
            family.with_labels(["GET", "/users/{id}", "200"]).inc();
            labelled_histogram.with_labels(["/"]).observe(v);
        }
    });
    assert_eq!(n, 0, "the hot path allocated {n} times");
    assert_eq!(counter.get(), 10_000.0 * 4.5);
    assert_eq!(family.with_labels(["GET", "/users/{id}", "200"]).get(), 20_001.0);
    assert_eq!(histogram.count(), 10_000);
    assert_eq!(native.count(), 10_000);
    Ok(())
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the test above against a counter that counts nothing.
    let n = allocations_during(|| drop(std::hint::black_box(Box::new(7u64))));
    assert_eq!(n, 1);
}
