//! Exact output of both encoders, byte for byte.

use std::sync::Arc;

use herd_core::snapshot::{FamilySnapshot, SeriesSnapshot, SeriesValue};
use herd_core::{Buckets, Collector, Format, LabelSet, MetricKind, Registry};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The exposition of the families a test registered: herd's own per-family counts
/// (`herd_cardinality_overflow`, `herd_storage_errors`) are left out here, and checked
/// exactly in `self_metrics_are_series_of_every_family_from_registration`.
fn encode(r: &Registry, f: Format) -> String {
    encode_all(r, f)
        .split_inclusive('\n')
        .filter(|l| {
            !l.starts_with("herd_") && !l.starts_with("# HELP herd_") && !l.starts_with("# TYPE herd_")
        })
        .collect()
}

fn encode_all(r: &Registry, f: Format) -> String {
    String::from_utf8_lossy(&r.encode(f)).into_owned()
}

#[test]
fn self_metrics_are_series_of_every_family_from_registration() -> TestResult {
    let r = Registry::builder().cardinality_limit(1).build()?;
    let c = r.counter("c_total", "C.").labels(["k"]).register()?;
    let _g = r.gauge("g", "G.").register()?;
    assert_eq!(
        encode_all(&r, Format::Text),
        "# HELP g G.\n# TYPE g gauge\ng 0\n\
         # HELP herd_cardinality_overflow_total Label-set lookups folded into the overflow series because a family reached its cardinality limit.\n\
         # TYPE herd_cardinality_overflow_total counter\n\
         herd_cardinality_overflow_total{family=\"c\"} 0\n\
         herd_cardinality_overflow_total{family=\"g\"} 0\n\
         # HELP herd_storage_errors_total Series whose storage failed to provide cells; their values stay in this process only.\n\
         # TYPE herd_storage_errors_total counter\n\
         herd_storage_errors_total{family=\"c\"} 0\n\
         herd_storage_errors_total{family=\"g\"} 0\n"
    );
    c.with_labels(["a"]).inc();
    c.with_labels(["b"]).inc();
    c.with_labels(["c"]).inc();
    let text = encode_all(&r, Format::Text);
    assert!(text.contains("herd_cardinality_overflow_total{family=\"c\"} 2\n"), "{text}");
    assert!(text.contains("c_total{k=\"__overflow__\"} 2\n"), "{text}");
    Ok(())
}

#[test]
fn prefix_const_labels_and_escaping() -> TestResult {
    let r = Registry::builder().prefix("app").const_label("service", "a\"p\\i").build()?;
    let c = r
        .counter("events_total", "Events \"seen\", with a \\ and a\nnewline.")
        .labels(["kind"])
        .register()?;
    c.with_labels(["x\ny"]).inc();
    let g = r.gauge("ratio", "").register()?;
    g.set(0.25);
    assert_eq!(
        encode(&r, Format::Text),
        "# HELP app_events_total Events \"seen\", with a \\\\ and a\\nnewline.\n\
         # TYPE app_events_total counter\n\
         app_events_total{service=\"a\\\"p\\\\i\",kind=\"x\\ny\"} 1\n\
         # TYPE app_ratio gauge\n\
         app_ratio{service=\"a\\\"p\\\\i\"} 0.25\n"
    );
    assert_eq!(
        encode(&r, Format::OpenMetrics),
        "# TYPE app_events counter\n\
         # HELP app_events Events \\\"seen\\\", with a \\\\ and a\\nnewline.\n\
         app_events_total{service=\"a\\\"p\\\\i\",kind=\"x\\ny\"} 1\n\
         # TYPE app_ratio gauge\n\
         app_ratio{service=\"a\\\"p\\\\i\"} 0.25\n\
         # EOF\n"
    );
    Ok(())
}

#[test]
fn unused_labelled_families_are_left_out() -> TestResult {
    let r = Registry::new();
    let _unused = r.counter("c_total", "c").labels(["k"]).register()?;
    assert_eq!(encode(&r, Format::Text), "");
    assert_eq!(encode(&r, Format::OpenMetrics), "# EOF\n");
    Ok(())
}

#[test]
fn histograms_summaries_and_exemplars() -> TestResult {
    let r = Registry::new();
    let h = r
        .histogram("d_seconds", "D.")
        .unit("seconds")
        .buckets(Buckets::new([0.5, 1.0, 1e6])?)
        .exemplars()
        .register()?;
    h.observe(0.25);
    h.observe(2.0);
    h.observe_with_exemplar(0.75, &[("trace_id", "t1")])?;
    let s = r.summary("s", "S.").register()?;
    s.observe(3.0);
    let text = encode(&r, Format::Text);
    assert_eq!(
        text,
        "# HELP d_seconds D.\n# TYPE d_seconds histogram\n\
         d_seconds_bucket{le=\"0.5\"} 1\n\
         d_seconds_bucket{le=\"1.0\"} 2\n\
         d_seconds_bucket{le=\"1e+06\"} 3\n\
         d_seconds_bucket{le=\"+Inf\"} 3\n\
         d_seconds_sum 3\n\
         d_seconds_count 3\n\
         # HELP s S.\n# TYPE s summary\n\
         s{quantile=\"0.5\"} 2.9701987331090764\n\
         s{quantile=\"0.9\"} 2.9701987331090764\n\
         s{quantile=\"0.99\"} 2.9701987331090764\n\
         s_sum 3\n\
         s_count 1\n"
    );
    let om = encode(&r, Format::OpenMetrics);
    let exemplar_line =
        om.lines().find(|l| l.starts_with("d_seconds_bucket{le=\"1.0\"}")).unwrap_or_default();
    assert!(
        exemplar_line.starts_with("d_seconds_bucket{le=\"1.0\"} 2 # {trace_id=\"t1\"} 0.75 1."),
        "{exemplar_line}"
    );
    assert!(
        om.starts_with("# TYPE d_seconds histogram\n# UNIT d_seconds seconds\n# HELP d_seconds D.\n"),
        "{om}"
    );
    assert!(om.ends_with("s{quantile=\"0.99\"} 2.9701987331090764\ns_sum 3\ns_count 1\n# EOF\n"), "{om}");
    Ok(())
}

#[test]
fn openmetrics_drops_sum_and_count_for_negative_buckets() -> TestResult {
    let r = Registry::new();
    let h = r.histogram("delta", "D.").buckets(Buckets::new([-1.0, 1.0])?).register()?;
    h.observe(-2.0);
    let om = encode(&r, Format::OpenMetrics);
    assert_eq!(
        om,
        "# TYPE delta histogram\n# HELP delta D.\n\
         delta_bucket{le=\"-1.0\"} 1\ndelta_bucket{le=\"1.0\"} 1\ndelta_bucket{le=\"+Inf\"} 1\n# EOF\n"
    );
    assert!(encode(&r, Format::Text).contains("delta_sum -2\ndelta_count 1\n"));

    // A sum OpenMetrics cannot carry (negative or infinite) is left out with its count.
    let r = Registry::new();
    let h = r.histogram("h", "H.").buckets(Buckets::new([1.0])?).register()?;
    let s = r.summary("s", "S.").register()?;
    h.observe(f64::INFINITY);
    s.observe(-1.0);
    let om = encode(&r, Format::OpenMetrics);
    assert!(!om.contains("_sum") && !om.contains("_count"), "{om}");
    assert!(om.contains("h_bucket{le=\"+Inf\"} 1\n"), "{om}");
    let text = encode(&r, Format::Text);
    assert!(text.contains("h_sum +Inf\nh_count 1\n") && text.contains("s_sum -1\ns_count 1\n"), "{text}");
    Ok(())
}

#[test]
fn created_timestamps_are_opt_in_and_openmetrics_only() -> TestResult {
    let r = Registry::builder().created_timestamps(true).build()?;
    let c = r.counter("c_total", "C.").register()?;
    let g = r.gauge("g", "G.").register()?;
    c.inc();
    g.set(1.0);
    let om = encode(&r, Format::OpenMetrics);
    // herd's own counters (per family) have theirs too; the gauge has none.
    let created: Vec<&str> =
        om.lines().filter(|l| l.contains("_created") && !l.starts_with("herd_")).collect();
    assert_eq!(created.len(), 1, "{om}");
    assert!(created[0].starts_with("c_created 1."), "{om}");
    assert!(!encode(&r, Format::Text).contains("_created"));
    assert!(!encode(&Registry::new(), Format::OpenMetrics).contains("_created"));
    Ok(())
}

#[derive(Debug)]
struct Temperatures;

impl Collector for Temperatures {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        let labels = LabelSet::new([("room", "kitchen")]).unwrap_or_else(|_| LabelSet::empty());
        out.push(FamilySnapshot {
            name: "room_temperature".into(),
            help: "Temperature.".into(),
            unit: None,
            kind: MetricKind::Unknown,
            series: vec![SeriesSnapshot {
                labels: Arc::new(labels),
                value: SeriesValue::Unknown(21.5),
                created: None,
            }],
        });
    }
}

#[test]
fn custom_collectors_join_the_snapshot_in_name_order() -> TestResult {
    let r = Registry::new();
    let z = r.gauge("zzz", "Z.").register()?;
    z.set(1.0);
    r.register_collector(Arc::new(Temperatures));
    let text = encode_all(&r, Format::Text);
    let names: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")).collect();
    assert_eq!(
        names,
        [
            "herd_cardinality_overflow_total counter",
            "herd_storage_errors_total counter",
            "room_temperature untyped",
            "zzz gauge"
        ]
    );
    assert!(text.ends_with(
        "# HELP room_temperature Temperature.\n# TYPE room_temperature untyped\nroom_temperature{room=\"kitchen\"} 21.5\n\
         # HELP zzz Z.\n# TYPE zzz gauge\nzzz 1\n"
    ));
    assert!(encode(&r, Format::OpenMetrics).contains("# TYPE room_temperature unknown\n"));
    Ok(())
}

#[test]
fn content_types() {
    assert_eq!(Format::Text.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(
        Format::OpenMetrics.content_type(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
}
