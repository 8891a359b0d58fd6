//! The steady-state path allocates nothing: a cached key's lookup (what `counter!` with
//! labels does after the first call, minus the macro's own `Vec` of labels), a key
//! folded into a family's overflow series included, and updates through the returned
//! facade handles, under an allocator that counts.

use herd_core::Registry;
use herd_metrics::HerdRecorder;
use metrics::{Key, Label, Level, Metadata, Recorder};

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Allocations made by `f` on this thread (allocation-counter counts per thread, so
/// the harness's threads do not interfere).
fn allocations_during(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).count_total
}

#[test]
fn cached_lookups_and_updates_do_not_allocate() -> Result<(), Box<dyn std::error::Error>> {
    let recorder = HerdRecorder::new(Registry::new())?;
    let labels = |status: &str| {
        vec![
            Label::new("method", "GET"),
            Label::new("route", "/users/{id}"),
            Label::new("status", status.to_owned()),
        ]
    };
    let keys: Vec<Key> =
        ["200", "404", "500"].iter().map(|s| Key::from_parts("http.requests", labels(s))).collect();
    let gauge_key = Key::from_parts("in.flight", labels("200"));
    let histogram_key = Key::from_parts("latency_seconds", labels("200"));
    // First sight: registration (which allocates) happens here, outside the count.
    for key in &keys {
        recorder.register_counter(key, &METADATA).increment(1);
    }
    recorder.register_gauge(&gauge_key, &METADATA).set(0.0);
    recorder.register_histogram(&histogram_key, &METADATA).record(0.0);
    let kept = recorder.register_counter(&keys[0], &METADATA);
    // Keys past a family's cardinality limit (2,000) fold into its overflow series.
    let flood: Vec<Key> =
        (0..2100).map(|i| Key::from_parts("flood", vec![Label::new("user", i.to_string())])).collect();
    for key in &flood {
        recorder.register_counter(key, &METADATA).increment(1);
    }

    let n = allocations_during(|| {
        for i in 0..10_000u32 {
            let v = f64::from(i) / 1000.0;
            recorder.register_counter(&keys[i as usize % 3], &METADATA).increment(1);
            recorder.register_counter(&keys[0], &METADATA).absolute(u64::from(i));
            let g = recorder.register_gauge(&gauge_key, &METADATA);
            g.increment(1.0);
            g.decrement(1.0);
            g.set(v);
            recorder.register_histogram(&histogram_key, &METADATA).record(v);
            kept.increment(1);
            recorder.register_counter(&flood[2000 + i as usize % 100], &METADATA).increment(1);
        }
    });
    assert_eq!(n, 0, "the steady-state path allocated {n} times");
    // The folded keys were counted at every use, cached or not.
    let text = String::from_utf8(recorder.encode(herd_core::Format::Text))?;
    assert!(text.contains("herd_cardinality_overflow_total{family=\"flood\"} 10100\n"), "{text}");
    assert!(text.contains("flood_total{user=\"__overflow__\"} 10100\n"), "{text}");
    Ok(())
}
