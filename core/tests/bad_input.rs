//! Bad input gets a clear error or a documented behaviour, never a panic, and never
//! invalid exposition.

use std::sync::Arc;

use herd_core::labels::NameError;
use herd_core::storage::StorageError;
use herd_core::{
    Buckets, FamilyDesc, Format, LabelSet, MetricKind, Registry, RegistryError, Storage, OVERFLOW_LABEL_VALUE,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn text(registry: &Registry) -> String {
    String::from_utf8_lossy(&registry.encode(Format::Text)).into_owned()
}

#[test]
fn invalid_names_are_refused_with_the_name() {
    let r = Registry::new();
    for bad in ["", "1x", "a-b", "a b", "ä"] {
        match r.gauge(bad, "h").register() {
            Err(RegistryError::Name(NameError::InvalidMetricName(n))) => assert_eq!(n, bad),
            other => panic!("{bad:?}: expected InvalidMetricName, got {other:?}"),
        }
    }
    assert!(matches!(
        r.gauge("g", "h").labels(["ok", "not-ok"]).register(),
        Err(RegistryError::Name(NameError::InvalidLabelName(n))) if n == "not-ok"
    ));
    assert!(matches!(
        r.gauge("g", "h").labels(["__meta"]).register(),
        Err(RegistryError::Name(NameError::ReservedLabelName(_)))
    ));
    assert!(matches!(
        r.gauge("g", "h").labels(["a", "a"]).register(),
        Err(RegistryError::Name(NameError::DuplicateLabelName(n))) if n == "a"
    ));
    assert!(matches!(Registry::builder().prefix("my-app").build(), Err(RegistryError::Name(_))));
    assert!(matches!(Registry::builder().const_label("bad name", "v").build(), Err(RegistryError::Name(_))));
    // Nothing half-registered is left behind: the valid name is still free.
    assert!(r.gauge("g", "h").register().is_ok());
}

#[test]
fn types_reserve_their_labels() -> TestResult {
    let r = Registry::new();
    let err = r.histogram("h_seconds", "h").labels(["le"]).register().err();
    assert!(matches!(err, Some(RegistryError::ReservedLabel { ref label, .. }) if label == "le"), "{err:?}");
    let err = r.summary("s_seconds", "s").labels(["quantile"]).register().err();
    assert!(
        matches!(err, Some(RegistryError::ReservedLabel { ref label, .. }) if label == "quantile"),
        "{err:?}"
    );
    // `le` is an ordinary label elsewhere.
    assert!(r.gauge("g", "g").labels(["le"]).register().is_ok());
    // Per-process gauges get a `pid` label from multiprocess aggregation; others may
    // have their own.
    let err = r.gauge("per_pid", "g").labels(["pid"]).register().err();
    assert!(matches!(err, Some(RegistryError::ReservedLabel { ref label, .. }) if label == "pid"), "{err:?}");
    let summed =
        r.gauge("summed", "g").labels(["pid"]).multiprocess_mode(herd_core::GaugeMode::Sum).register();
    assert!(summed.is_ok());
    let with_const = Registry::builder().const_label("service", "api").build()?;
    assert!(matches!(
        with_const.counter("c_total", "c").labels(["service"]).register(),
        Err(RegistryError::ReservedLabel { .. })
    ));
    Ok(())
}

#[test]
fn duplicate_and_clashing_names_say_what_conflicted() -> TestResult {
    let r = Registry::new();
    let _ = r.counter("requests_total", "r").register()?;
    let err = r.counter("requests", "again").register().err();
    match &err {
        Some(RegistryError::AlreadyRegistered { name, existing, existing_kind, .. }) => {
            // Each name as its caller wrote it: the first was registered as
            // `requests_total`, not as the family name `requests` herd made of it.
            assert_eq!(
                (name.as_str(), existing.as_str(), *existing_kind),
                ("requests", "requests_total", MetricKind::Counter)
            );
        }
        other => panic!("expected AlreadyRegistered, got {other:?}"),
    }
    let message = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("requests") && message.contains("counter"), "{message}");

    // A gauge cannot take a sample name the counter writes.
    let err = r.gauge("requests_total", "g").register().err();
    assert!(
        matches!(&err, Some(RegistryError::AlreadyRegistered { sample, .. }) if sample == "requests_total"),
        "{err:?}"
    );
    // Nor a histogram's `_count`, in either order.
    let _ = r.histogram("latency_seconds", "l").register()?;
    let err = r.gauge("latency_seconds_count", "g").register().err();
    assert!(
        matches!(&err, Some(RegistryError::AlreadyRegistered { existing, existing_kind: MetricKind::Histogram, .. }) if existing == "latency_seconds"),
        "{err:?}"
    );
    let _ = r.gauge("size_sum", "g").register()?;
    assert!(r.summary("size", "s").register().is_err());
    // Callback metrics and self-metric names are checked too.
    assert!(r.gauge_fn("requests_total", "g", || 1.0).is_err());
    assert!(r.counter("herd_cardinality_overflow_total", "mine").register().is_err());
    Ok(())
}

#[test]
fn units_must_be_a_suffix() -> TestResult {
    let r = Registry::new();
    assert!(matches!(r.gauge("temp", "t").unit("celsius").register(), Err(RegistryError::Unit { .. })));
    assert!(matches!(
        r.gauge("temp_Celsius", "t").unit("Celsius").register(),
        Err(RegistryError::Unit { .. })
    ));
    let _ = r.counter("cpu_seconds_total", "c").unit("seconds").register()?;
    Ok(())
}

#[test]
fn bad_buckets_and_limits_are_errors() {
    assert!(Buckets::new([2.0, 1.0]).is_err());
    assert!(Buckets::new([f64::NAN]).is_err());
    assert!(Buckets::exponential(-1.0, 2.0, 4).is_err());
    assert!(Buckets::linear(0.0, f64::NAN, 4).is_err());
    let r = Registry::new();
    assert!(matches!(
        r.counter("c_total", "c").labels(["a"]).cardinality_limit(0).register(),
        Err(RegistryError::ZeroCardinalityLimit { .. })
    ));
    assert!(Registry::builder().cardinality_limit(0).build().is_err());
}

#[test]
fn invalid_counter_increments_change_nothing() -> TestResult {
    let r = Registry::new();
    let c = r.counter("c_total", "c").register()?;
    c.inc_by(2);
    for bad in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.000_1] {
        let err = c.inc_by_f64(bad).err();
        assert!(err.is_some(), "{bad} was accepted");
        assert!(err.map(|e| e.to_string()).unwrap_or_default().contains("non-negative"));
    }
    assert_eq!(c.get(), 2.0);
    c.inc_by_f64(0.0)?;
    c.inc_by_f64(1e300)?;
    assert_eq!(c.get(), 1e300);
    Ok(())
}

#[test]
fn nan_observations_are_ignored_and_exposition_stays_valid() -> TestResult {
    let r = Registry::new();
    let h = r.histogram("h_seconds", "h").register()?;
    let s = r.summary("s_seconds", "s").register()?;
    let g = r.gauge("g", "g").register()?;
    h.observe(f64::NAN);
    s.observe(f64::NAN);
    h.observe(0.2);
    g.set(f64::NAN);
    assert_eq!((h.count(), h.sum()), (1, 0.2));
    assert_eq!(s.count(), 0);
    let out = text(&r);
    assert!(out.contains("h_seconds_sum 0.2\n"), "{out}");
    assert!(out.contains("g NaN\n"), "{out}");
    assert!(out.contains("s_seconds_count 0\n"), "{out}");
    Ok(())
}

#[test]
fn a_wrong_arity_is_an_error() -> TestResult {
    let r = Registry::new();
    let f = r.counter("c_total", "c").labels(["a", "b"]).register()?;
    let err = f.try_with_labels(&["x"]).err();
    assert_eq!(err.as_ref().map(|e| (e.expected, e.got)), Some((2, 1)));
    assert!(err.map(|e| e.to_string()).unwrap_or_default().contains("c has 2 label names but 1 values"));
    assert!(f.try_with_labels(&["x", "y", "z"]).is_err());
    f.try_with_labels(&["x", "y"])?.inc();
    assert_eq!(f.with_labels(["x", "y"]).get(), 1.0);
    Ok(())
}

#[test]
fn the_cardinality_cap_folds_the_excess_into_one_counted_series() -> TestResult {
    let r = Registry::new();
    let f = r.counter("hits_total", "h").labels(["path"]).cardinality_limit(3).register()?;
    for i in 0..100 {
        f.with_labels([&format!("/p{i}")]).inc();
    }
    assert_eq!(f.len(), 3);
    assert_eq!(f.overflowed(), 97);
    assert_eq!(f.with_labels(["/p0"]).get(), 1.0, "series under the cap keep their own values");
    assert_eq!(f.with_labels([OVERFLOW_LABEL_VALUE]).get(), 97.0, "the overflow series holds the rest");

    let snapshot = r.snapshot();
    let hits = snapshot.family("hits").map(|f| f.series.len());
    assert_eq!(hits, Some(4), "three series and the overflow series");
    let out = text(&r);
    assert!(out.contains("hits_total{path=\"__overflow__\"} 97\n"), "{out}");
    assert!(out.contains("herd_cardinality_overflow_total{family=\"hits\"} 98\n"), "{out}");
    Ok(())
}

#[test]
fn lookups_race_to_one_series_per_label_set() -> TestResult {
    let r = Registry::new();
    let f = r.counter("c_total", "c").labels(["k"]).register()?;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for round in 0..100 {
                    for k in 0..50 {
                        f.with_labels([&format!("{k}")]).inc();
                        let _ = round;
                    }
                }
            });
        }
    });
    assert_eq!(f.len(), 50);
    for k in 0..50 {
        assert_eq!(f.with_labels([&format!("{k}")]).get(), 400.0);
    }
    Ok(())
}

/// A storage whose disk is always full.
#[derive(Debug)]
struct FullDisk;

impl Storage for FullDisk {
    fn allocate(
        &self,
        _: &FamilyDesc,
        _: &LabelSet,
        _: usize,
    ) -> Result<herd_core::cell::CellBlock, StorageError> {
        Err(StorageError::new("no space left on device"))
    }
}

#[test]
fn a_failing_storage_degrades_to_counted_private_cells() -> TestResult {
    let r = Registry::builder().storage(Arc::new(FullDisk)).build()?;
    let c = r.counter("c_total", "c").labels(["k"]).register()?;
    c.with_labels(["a"]).inc();
    c.with_labels(["b"]).inc_by(2);
    assert_eq!(c.with_labels(["b"]).get(), 2.0);
    let out = text(&r);
    assert!(out.contains("herd_storage_errors_total{family=\"c\"} 2\n"), "{out}");
    Ok(())
}
