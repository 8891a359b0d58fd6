//! Every mapping rule of the crate docs, through the facade's own macros on local
//! recorders (no global state: these tests share one binary under `cargo test`).

use herd_core::snapshot::SeriesValue;
use herd_core::{Buckets, Format, GaugeMode, Objectives, Registry};
use herd_metrics::{HerdRecorder, Matcher};
use herd_testkit::{promtool_check, python_parse, PyFormat};
use metrics::{with_local_recorder, Unit};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn text(recorder: &HerdRecorder) -> Result<String, std::string::FromUtf8Error> {
    String::from_utf8(recorder.encode(Format::Text))
}

fn openmetrics(recorder: &HerdRecorder) -> Result<String, std::string::FromUtf8Error> {
    String::from_utf8(recorder.encode(Format::OpenMetrics))
}

/// Both peers accept the exposition in both formats.
fn peers_accept(recorder: &HerdRecorder) -> TestResult {
    let body = recorder.encode(Format::Text);
    promtool_check(&body)?;
    python_parse(&body, PyFormat::Text)?;
    python_parse(&recorder.encode(Format::OpenMetrics), PyFormat::OpenMetrics)?;
    Ok(())
}

fn counter_total(recorder: &HerdRecorder, family: &str, labels: &str) -> Option<f64> {
    let snapshot = recorder.snapshot();
    let f = snapshot.family(family)?;
    f.series.iter().find(|s| s.labels.rendered() == labels).and_then(|s| match &s.value {
        SeriesValue::Counter(c) => Some(c.total()),
        SeriesValue::Gauge(g) => Some(*g),
        _ => None,
    })
}

#[test]
fn facade_names_become_valid_prometheus_names() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    with_local_recorder(&recorder, || {
        metrics::counter!("app.cache.hits").increment(1);
        metrics::counter!("http-requests").increment(2);
        metrics::counter!("5xx.errors").increment(3);
        metrics::gauge!("größe").set(4.0);
        // `_total` is herd's counter suffix: both spellings are one family.
        metrics::counter!("jobs").increment(5);
        metrics::counter!("jobs_total").increment(6);
    });
    let body = text(&recorder)?;
    for line in [
        "app_cache_hits_total 1\n",
        "http_requests_total 2\n",
        "_5xx_errors_total 3\n",
        "gr__e 4\n",
        "jobs_total 11\n",
        "# HELP app_cache_hits_total app.cache.hits (no description given)\n",
    ] {
        assert!(body.contains(line), "{line:?} missing from\n{body}");
    }
    peers_accept(&recorder)
}

#[test]
fn one_name_with_different_label_sets_loses_none() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    with_local_recorder(&recorder, || {
        metrics::counter!("requests", "method" => "GET", "status" => "200").increment(1);
        // Label order at the call site does not matter.
        metrics::counter!("requests", "status" => "200", "method" => "GET").increment(1);
        // A subset of the family's names: the missing label is written empty.
        metrics::counter!("requests", "method" => "POST").increment(2);
        metrics::counter!("requests").increment(3);
        // A name the family lacks: a family of its own, never a second `requests`.
        metrics::counter!("requests", "method" => "GET", "route" => "/a").increment(4);
    });
    assert_eq!(counter_total(&recorder, "requests", "method=\"GET\",status=\"200\""), Some(2.0));
    assert_eq!(counter_total(&recorder, "requests", "method=\"POST\",status=\"\""), Some(2.0));
    assert_eq!(counter_total(&recorder, "requests", "method=\"\",status=\"\""), Some(3.0));
    assert_eq!(
        counter_total(&recorder, "requests_by_method_route", "method=\"GET\",route=\"/a\""),
        Some(4.0)
    );
    let body = text(&recorder)?;
    assert_eq!(body.matches("# TYPE requests_total counter\n").count(), 1, "{body}");
    // client_python merges empty labels away as Prometheus does; the totals survive.
    let families = python_parse(body.as_bytes(), PyFormat::Text)?;
    let total: f64 = families
        .iter()
        .filter(|f| f.name.starts_with("requests"))
        .flat_map(|f| &f.samples)
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 11.0);
    peers_accept(&recorder)
}

#[test]
fn declared_label_names_keep_every_set_in_one_family() -> TestResult {
    let recorder = HerdRecorder::builder(Registry::new())
        .label_names(Matcher::Full("rpc.calls".into()), ["service", "method", "code"])
        .build()?;
    with_local_recorder(&recorder, || {
        metrics::counter!("rpc.calls", "service" => "a").increment(1);
        metrics::counter!("rpc.calls", "code" => "OK", "service" => "a", "method" => "m").increment(2);
    });
    assert_eq!(counter_total(&recorder, "rpc_calls", "service=\"a\",method=\"\",code=\"\""), Some(1.0));
    assert_eq!(counter_total(&recorder, "rpc_calls", "service=\"a\",method=\"m\",code=\"OK\""), Some(2.0));
    assert!(recorder.snapshot().families.iter().all(|f| !f.name.contains("_by_")));
    peers_accept(&recorder)
}

#[test]
fn descriptions_apply_before_and_after_first_use() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    with_local_recorder(&recorder, || {
        metrics::describe_histogram!("early_seconds", Unit::Seconds, "Described first.");
        metrics::histogram!("early_seconds").record(0.2);
        metrics::histogram!("late_seconds").record(0.3);
        metrics::gauge!("late.bytes", "kind" => "heap").set(1.0);
        metrics::counter!("late", "a" => "1").increment(1);
        metrics::counter!("late", "kind" => "1").increment(1);
        metrics::describe_histogram!("late_seconds", Unit::Seconds, "Described after use.");
        metrics::describe_gauge!("late.bytes", Unit::Bytes, "Heap bytes.");
        metrics::describe_counter!("late", "Two label sets, one description.");
        // The first description wins.
        metrics::describe_counter!("late", "Ignored.");
    });
    // Described before registration: the registry itself has it.
    let plain = String::from_utf8(recorder.registry().encode(Format::OpenMetrics))?;
    assert!(
        plain.contains("# UNIT early_seconds seconds\n# HELP early_seconds Described first.\n"),
        "{plain}"
    );
    assert!(plain.contains("# HELP late_seconds late_seconds (no description given)\n"), "{plain}");
    // Through the recorder, the late ones too.
    let om = openmetrics(&recorder)?;
    for line in [
        "# UNIT late_seconds seconds\n# HELP late_seconds Described after use.\n",
        "# UNIT late_bytes bytes\n# HELP late_bytes Heap bytes.\n",
        "# HELP late Two label sets, one description.\n",
        "# HELP late_by_kind Two label sets, one description.\n",
    ] {
        assert!(om.contains(line), "{line:?} missing from\n{om}");
    }
    // The collector served on /metrics (herd-axum's `from_collector`) says the same.
    let mut families = Vec::new();
    herd_core::Collector::collect(&recorder.collector(), &mut families);
    let late = families.iter().find(|f| &*f.name == "late_seconds").ok_or("no late_seconds")?;
    assert_eq!((&*late.help, late.unit.as_deref()), ("Described after use.", Some("seconds")));
    // A unit the name does not end with is not written (OpenMetrics forbids it).
    let recorder2 = HerdRecorder::new(Registry::new())?;
    with_local_recorder(&recorder2, || {
        metrics::describe_histogram!("latency", Unit::Seconds, "No suffix.");
        metrics::histogram!("latency").record(1.0);
    });
    assert!(!openmetrics(&recorder2)?.contains("# UNIT"));
    peers_accept(&recorder)
}

#[test]
fn absolute_adds_the_growth_of_the_mirrored_total() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    let read = || counter_total(&recorder, "mirrored", "");
    with_local_recorder(&recorder, || metrics::counter!("mirrored").absolute(10));
    assert_eq!(read(), Some(10.0));
    with_local_recorder(&recorder, || metrics::counter!("mirrored").absolute(15));
    assert_eq!(read(), Some(15.0));
    // Unchanged: nothing added.
    with_local_recorder(&recorder, || metrics::counter!("mirrored").absolute(15));
    assert_eq!(read(), Some(15.0));
    // Smaller: the source restarted from zero and has counted 4 since.
    with_local_recorder(&recorder, || metrics::counter!("mirrored").absolute(4));
    assert_eq!(read(), Some(19.0));
    // Increments and absolute mix: each adds what it says.
    with_local_recorder(&recorder, || {
        metrics::counter!("mirrored").increment(1);
        metrics::counter!("mirrored").absolute(6);
    });
    assert_eq!(read(), Some(22.0));
    Ok(())
}

#[test]
fn gauges_increment_decrement_and_set() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    with_local_recorder(&recorder, || {
        let g = metrics::gauge!("depth", "queue" => "q");
        g.increment(5.0);
        g.decrement(1.5);
        metrics::gauge!("depth", "queue" => "q").increment(0.5);
        metrics::gauge!("level").set(-2.0);
    });
    assert_eq!(counter_total(&recorder, "depth", "queue=\"q\""), Some(4.0));
    assert_eq!(counter_total(&recorder, "level", ""), Some(-2.0));
    peers_accept(&recorder)
}

#[test]
fn histograms_get_buckets_by_matcher_and_summaries_only_where_asked() -> TestResult {
    let recorder = HerdRecorder::builder(Registry::new())
        .default_buckets(Buckets::new([1.0, 10.0])?)
        .buckets(Matcher::Suffix("_seconds".into()), Buckets::new([0.5])?)
        .buckets(Matcher::Prefix("db.".into()), Buckets::new([2.0])?)
        // A full name beats a prefix, which beats a suffix.
        .buckets(Matcher::Full("db.query_seconds".into()), Buckets::new([3.0])?)
        .summary(Matcher::Full("payload".into()), Objectives::new([0.5])?)
        .build()?;
    with_local_recorder(&recorder, || {
        for name in ["plain", "wait_seconds", "db.rows", "db.query_seconds", "db.lock_seconds"] {
            metrics::histogram!(name).record(0.1);
        }
        metrics::histogram!("payload").record(100.0);
    });
    let snapshot = recorder.snapshot();
    let bounds = |family: &str| match snapshot.family(family).map(|f| &f.series[0].value) {
        Some(SeriesValue::Histogram(h)) => h.bounds.to_vec(),
        _ => Vec::new(),
    };
    assert_eq!(bounds("plain"), [1.0, 10.0]);
    assert_eq!(bounds("wait_seconds"), [0.5]);
    assert_eq!(bounds("db_rows"), [2.0]);
    assert_eq!(bounds("db_query_seconds"), [3.0]);
    assert_eq!(bounds("db_lock_seconds"), [2.0]);
    let payload = snapshot.family("payload").map(|f| f.kind);
    assert_eq!(payload, Some(herd_core::MetricKind::Summary));
    peers_accept(&recorder)
}

#[test]
fn a_native_rule_keeps_native_buckets_beside_the_classic_ones() -> TestResult {
    let recorder = HerdRecorder::builder(Registry::new())
        .native(Matcher::Suffix("_seconds".into()), herd_core::NativeBuckets::default())
        .build()?;
    with_local_recorder(&recorder, || {
        for v in [0.003, 0.04, -1.0] {
            metrics::histogram!("rpc_seconds").record(v);
        }
        metrics::histogram!("rows").record(3.0);
    });
    let snapshot = recorder.snapshot();
    let histogram = |family: &str| match snapshot.family(family).map(|f| &f.series[0].value) {
        Some(SeriesValue::Histogram(h)) => Some(h.clone()),
        _ => None,
    };
    let rpc = histogram("rpc_seconds").ok_or("no rpc_seconds")?;
    let native = rpc.native.as_ref().ok_or("no native buckets")?;
    assert_eq!((native.schema, native.count(), rpc.count()), (3, 3, 3));
    assert_eq!(native.negative.iter().sum::<u64>(), 1);
    assert_eq!(rpc.bounds.len(), 11, "the default classic buckets stay");
    assert!(histogram("rows").ok_or("no rows")?.native.is_none(), "the rule selects by name");
    peers_accept(&recorder)
}

#[test]
fn reserved_label_names_are_renamed_not_refused() -> TestResult {
    let registry = Registry::builder().const_label("service", "api").build()?;
    let recorder = HerdRecorder::builder(registry)
        .summary(Matcher::Full("sizes".into()), Objectives::default())
        .gauge_mode(Matcher::Full("live".into()), GaugeMode::All)
        .build()?;
    with_local_recorder(&recorder, || {
        metrics::histogram!("h", "le" => "x").record(1.0);
        metrics::histogram!("sizes", "quantile" => "y").record(1.0);
        metrics::gauge!("live", "pid" => "1").set(1.0);
        metrics::counter!("c", "service" => "other", "__name__" => "n").increment(1);
    });
    let body = text(&recorder)?;
    for line in [
        "h_bucket{service=\"api\",exported_le=\"x\",le=\"1.0\"} 1\n",
        "sizes_count{service=\"api\",exported_quantile=\"y\"} 1\n",
        "live{service=\"api\",exported_pid=\"1\"} 1\n",
        "c_total{service=\"api\",exported___name__=\"n\",exported_service=\"other\"} 1\n",
    ] {
        assert!(body.contains(line), "{line:?} missing from\n{body}");
    }
    peers_accept(&recorder)
}

#[test]
fn hostile_label_values_are_escaped_and_round_trip() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    let values = herd_testkit::hostile_label_values();
    with_local_recorder(&recorder, || {
        for v in &values {
            metrics::counter!("hostile", "v" => v.clone()).increment(1);
        }
    });
    let body = recorder.encode(Format::Text);
    promtool_check(&body)?;
    let families = python_parse(&body, PyFormat::Text)?;
    let hostile = families.iter().find(|f| f.name == "hostile").ok_or("no hostile family")?;
    for v in &values {
        // client_python drops a NUL-free check only; every value must come back as sent.
        assert!(hostile.samples.iter().any(|s| s.labels.get("v") == Some(v)), "{v:?} lost");
    }
    Ok(())
}

#[test]
fn each_family_keeps_its_cardinality_cap_and_overflow_series() -> TestResult {
    let recorder = HerdRecorder::new(Registry::builder().cardinality_limit(3).build()?)?;
    with_local_recorder(&recorder, || {
        for i in 0..10 {
            metrics::counter!("capped", "user" => i.to_string()).increment(1);
        }
        // Again: keys folded into overflow are counted at every call.
        metrics::counter!("capped", "user" => "9").increment(1);
    });
    assert_eq!(counter_total(&recorder, "capped", "user=\"__overflow__\""), Some(8.0));
    assert_eq!(counter_total(&recorder, "herd_cardinality_overflow", "family=\"capped\""), Some(8.0));
    let snapshot = recorder.snapshot();
    assert_eq!(snapshot.family("capped").map(|f| f.series.len()), Some(4));
    peers_accept(&recorder)
}

#[test]
fn input_that_cannot_be_recorded_is_counted_not_panicked_on() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    with_local_recorder(&recorder, || {
        metrics::counter!("").increment(1);
        metrics::counter!("taken").increment(1);
        metrics::gauge!("taken").set(1.0);
        metrics::histogram!("h").record(1.0);
        metrics::gauge!("h_count").set(1.0);
        metrics::counter!("dup", "a.b" => "1", "a_b" => "2").increment(1);
        let many: Vec<metrics::Label> = (0..17).map(|i| metrics::Label::new(format!("l{i}"), "v")).collect();
        metrics::counter!("wide", many).increment(1);
    });
    let rejected =
        |reason: &str| counter_total(&recorder, "herd_metrics_rejected", &format!("reason=\"{reason}\""));
    assert_eq!(rejected("invalid_name"), Some(1.0));
    assert_eq!(rejected("name_conflict"), Some(2.0));
    assert_eq!(rejected("duplicate_label"), Some(1.0));
    assert_eq!(rejected("too_many_labels"), Some(1.0));
    // What could be recorded was.
    assert_eq!(counter_total(&recorder, "taken", ""), Some(1.0));
    peers_accept(&recorder)
}

#[test]
fn a_kept_handle_writes_herds_cell() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    let kept = with_local_recorder(&recorder, || metrics::counter!("kept", "k" => "v"));
    for _ in 0..1000 {
        kept.increment(1);
    }
    // The same series through herd's own family lookup.
    assert_eq!(counter_total(&recorder, "kept", "k=\"v\""), Some(1000.0));
    Ok(())
}

#[test]
fn two_local_recorders_in_one_binary_stay_apart() -> TestResult {
    let a = HerdRecorder::new(Registry::new())?;
    let b = HerdRecorder::new(Registry::new())?;
    with_local_recorder(&a, || metrics::counter!("shared.name").increment(1));
    with_local_recorder(&b, || metrics::counter!("shared.name").increment(2));
    with_local_recorder(&a, || metrics::counter!("shared.name").increment(3));
    assert_eq!(counter_total(&a, "shared_name", ""), Some(4.0));
    assert_eq!(counter_total(&b, "shared_name", ""), Some(2.0));
    Ok(())
}

#[test]
fn install_sets_the_global_recorder_once_and_never_panics() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    let second = HerdRecorder::new(Registry::new())?;
    // Under nextest this test has its process to itself; under `cargo test` no other
    // test installs a global recorder.
    recorder.install()?;
    let err = second.install().err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("a global metrics recorder is already installed"));
    metrics::counter!("global.calls").increment(7);
    assert_eq!(counter_total(&recorder, "global_calls", ""), Some(7.0));
    assert_eq!(counter_total(&second, "global_calls", ""), None);
    Ok(())
}

#[test]
fn threads_racing_on_new_keys_count_exactly() -> TestResult {
    let recorder = HerdRecorder::new(Registry::new())?;
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                with_local_recorder(&recorder, || {
                    for i in 0..10_000u32 {
                        let shard = (i % 8).to_string();
                        metrics::counter!("raced", "shard" => shard.clone()).increment(1);
                        metrics::histogram!("raced_seconds", "shard" => shard).record(0.5);
                    }
                })
            });
        }
    });
    for shard in 0..8 {
        assert_eq!(counter_total(&recorder, "raced", &format!("shard=\"{shard}\"")), Some(5000.0));
    }
    let snapshot = recorder.snapshot();
    let family = snapshot.family("raced_seconds").ok_or("no histogram")?;
    let count: u64 = family
        .series
        .iter()
        .map(|s| match &s.value {
            SeriesValue::Histogram(h) => h.count(),
            _ => 0,
        })
        .sum();
    assert_eq!(count, 40_000);
    Ok(())
}
