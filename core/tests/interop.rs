//! herd metrics served through a `prometheus_client` registry: exact output, and
//! client_python's OpenMetrics parser accepts it.
#![cfg(feature = "prometheus-client")]
// A panic is how a test reports.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use herd_core::snapshot::{CounterValue, FamilySnapshot, SeriesSnapshot, SeriesValue, SummaryValue};
use herd_core::{Buckets, Collector, Exemplar, LabelSet, MetricKind, PrometheusClientBridge, Registry};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter as PcCounter;
use prometheus_client::registry::Registry as PcRegistry;

/// Parses `text` with client_python's OpenMetrics parser and returns one line per
/// sample: `type name [sorted label pairs] value exemplar`, in Python's repr (integer
/// values print without `.0`).
fn python_parse(text: &str) -> String {
    let python = std::env::var("HERD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import sys\n\
                  from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
                  for f in parse(sys.stdin.read()):\n\
                  \x20   for s in f.samples:\n\
                  \x20       print(f.type, s.name, sorted(s.labels.items()), s.value, s.exemplar)\n";
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python:?} (set HERD_PYTHON): {e}"));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("No module named 'prometheus_client'"),
        "client_python is missing: pip install prometheus_client\n{stderr}"
    );
    assert!(out.status.success(), "client_python rejected the exposition:\n{stderr}\n--- input ---\n{text}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn herd_registry_beside_a_native_metric() {
    let herd = Registry::new();
    let requests = herd
        .counter("http_requests_total", "Requests served.")
        .labels(["method", "path"])
        .register()
        .unwrap();
    requests.with_labels(["GET", "a\"b\\c"]).inc_by(3);
    requests.with_labels(["POST", "/"]).inc_by_f64(1.5).unwrap();
    herd.gauge("queue_depth", "Items \"waiting\"\nnow.").register().unwrap().set(7.0);
    let latency = herd
        .histogram("request_duration_seconds", "Time to serve a request.")
        .unit("seconds")
        .buckets(Buckets::new([0.1, 1.0]).unwrap())
        .register()
        .unwrap();
    for v in [0.0625, 0.5, 2.0] {
        latency.observe(v);
    }
    let payload = herd.summary("payload_bytes", "Payload sizes.").unit("bytes").register().unwrap();
    payload.observe(100.0);
    payload.observe(250.0);
    // Registered but never used: no series, so no descriptor either (only herd's own
    // counts for it).
    herd.counter("unused", "Never used.").labels(["x"]).register().unwrap();

    let mut registry = PcRegistry::default();
    let native = PcCounter::<u64>::default();
    native.inc_by(2);
    registry.register("native_requests", "Native requests", native);
    registry.register_collector(Box::new(PrometheusClientBridge::from(herd)));

    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let expected = concat!(
        "# HELP native_requests Native requests.\n",
        "# TYPE native_requests counter\n",
        "native_requests_total 2\n",
        // herd's own counts, a series per registered family (in registration order).
        "# HELP herd_cardinality_overflow Label-set lookups folded into the overflow series because a family reached its cardinality limit.\n",
        "# TYPE herd_cardinality_overflow counter\n",
        "herd_cardinality_overflow_total{family=\"http_requests\"} 0\n",
        "herd_cardinality_overflow_total{family=\"queue_depth\"} 0\n",
        "herd_cardinality_overflow_total{family=\"request_duration_seconds\"} 0\n",
        "herd_cardinality_overflow_total{family=\"payload_bytes\"} 0\n",
        "herd_cardinality_overflow_total{family=\"unused\"} 0\n",
        "# HELP herd_storage_errors Series whose storage failed to provide cells; their values stay in this process only.\n",
        "# TYPE herd_storage_errors counter\n",
        "herd_storage_errors_total{family=\"http_requests\"} 0\n",
        "herd_storage_errors_total{family=\"queue_depth\"} 0\n",
        "herd_storage_errors_total{family=\"request_duration_seconds\"} 0\n",
        "herd_storage_errors_total{family=\"payload_bytes\"} 0\n",
        "herd_storage_errors_total{family=\"unused\"} 0\n",
        "# HELP http_requests Requests served.\n",
        "# TYPE http_requests counter\n",
        "http_requests_total{method=\"GET\",path=\"a\\\"b\\\\c\"} 3\n",
        "http_requests_total{method=\"POST\",path=\"/\"} 1.5\n",
        "# HELP payload_bytes Payload sizes.\n",
        "# TYPE payload_bytes unknown\n",
        "# UNIT payload_bytes bytes\n",
        "payload_bytes{quantile=\"0.5\"} 100.94922663228079\n",
        "payload_bytes{quantile=\"0.9\"} 100.94922663228079\n",
        "payload_bytes{quantile=\"0.99\"} 100.94922663228079\n",
        "# HELP payload_bytes_sum Payload sizes.\n",
        "# TYPE payload_bytes_sum unknown\n",
        "payload_bytes_sum 350.0\n",
        "# HELP payload_bytes_count Payload sizes.\n",
        "# TYPE payload_bytes_count unknown\n",
        "payload_bytes_count 2\n",
        "# HELP queue_depth Items \\\"waiting\\\"\\nnow.\n",
        "# TYPE queue_depth gauge\n",
        "queue_depth 7.0\n",
        "# HELP request_duration_seconds Time to serve a request.\n",
        "# TYPE request_duration_seconds histogram\n",
        "# UNIT request_duration_seconds seconds\n",
        "request_duration_seconds_sum 2.5625\n",
        "request_duration_seconds_count 3\n",
        "request_duration_seconds_bucket{le=\"0.1\"} 1\n",
        "request_duration_seconds_bucket{le=\"1.0\"} 2\n",
        "request_duration_seconds_bucket{le=\"+Inf\"} 3\n",
        "# EOF\n",
    );
    assert_eq!(text, expected);

    let parsed = python_parse(&text);
    let expected_samples = concat!(
        "counter native_requests_total [] 2 None\n",
        "counter herd_cardinality_overflow_total [('family', 'http_requests')] 0 None\n",
        "counter herd_cardinality_overflow_total [('family', 'queue_depth')] 0 None\n",
        "counter herd_cardinality_overflow_total [('family', 'request_duration_seconds')] 0 None\n",
        "counter herd_cardinality_overflow_total [('family', 'payload_bytes')] 0 None\n",
        "counter herd_cardinality_overflow_total [('family', 'unused')] 0 None\n",
        "counter herd_storage_errors_total [('family', 'http_requests')] 0 None\n",
        "counter herd_storage_errors_total [('family', 'queue_depth')] 0 None\n",
        "counter herd_storage_errors_total [('family', 'request_duration_seconds')] 0 None\n",
        "counter herd_storage_errors_total [('family', 'payload_bytes')] 0 None\n",
        "counter herd_storage_errors_total [('family', 'unused')] 0 None\n",
        "counter http_requests_total [('method', 'GET'), ('path', 'a\"b\\\\c')] 3 None\n",
        "counter http_requests_total [('method', 'POST'), ('path', '/')] 1.5 None\n",
        "unknown payload_bytes [('quantile', '0.5')] 100.94922663228078 None\n",
        "unknown payload_bytes [('quantile', '0.9')] 100.94922663228078 None\n",
        "unknown payload_bytes [('quantile', '0.99')] 100.94922663228078 None\n",
        "unknown payload_bytes_sum [] 350.0 None\n",
        "unknown payload_bytes_count [] 2 None\n",
        "gauge queue_depth [] 7.0 None\n",
        "histogram request_duration_seconds_sum [] 2.5625 None\n",
        "histogram request_duration_seconds_count [] 3 None\n",
        "histogram request_duration_seconds_bucket [('le', '0.1')] 1 None\n",
        "histogram request_duration_seconds_bucket [('le', '1.0')] 2 None\n",
        "histogram request_duration_seconds_bucket [('le', '+Inf')] 3 None\n",
    );
    assert_eq!(parsed, expected_samples);
}

/// Hand-built families: what a foreign collector (herd-mmap, say) may produce.
struct Fixed(Vec<FamilySnapshot>);

impl Collector for Fixed {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        out.extend(self.0.iter().cloned());
    }
}

fn family(
    name: &str,
    unit: Option<&str>,
    kind: MetricKind,
    series: Vec<(LabelSet, SeriesValue)>,
) -> FamilySnapshot {
    FamilySnapshot {
        name: name.into(),
        help: format!("{name} help.").into(),
        unit: unit.map(Into::into),
        kind,
        series: series
            .into_iter()
            .map(|(labels, value)| SeriesSnapshot { labels: Arc::new(labels), value, created: None })
            .collect(),
    }
}

#[test]
fn exemplars_quantiles_units_and_prefix() {
    let route = || LabelSet::new([("route", "/")]).unwrap();
    let exemplar = Exemplar {
        labels: LabelSet::new([("trace_id", "abc")]).unwrap(),
        value: 0.5,
        timestamp: Some(1_700_000_000.5),
    };
    let families = vec![
        family(
            "jobs",
            None,
            MetricKind::Counter,
            vec![(
                LabelSet::empty(),
                SeriesValue::Counter(CounterValue { integer: 4, fraction: 0.0, exemplar: Some(exemplar) }),
            )],
        ),
        family(
            "latency_seconds",
            Some("seconds"),
            MetricKind::Summary,
            vec![(
                route(),
                SeriesValue::Summary(SummaryValue {
                    count: 10,
                    sum: 3.0,
                    quantiles: vec![(0.5, 0.25), (0.99, 1.0)],
                }),
            )],
        ),
        // The name does not end in the unit: kept as it is, without a unit.
        family("temp_f", Some("celsius"), MetricKind::Gauge, vec![(route(), SeriesValue::Gauge(-1.5))]),
        family("mystery", None, MetricKind::Unknown, vec![(LabelSet::empty(), SeriesValue::Unknown(3.0))]),
        // A value of the wrong type is skipped; the family's header stays valid.
        family(
            "mixed",
            None,
            MetricKind::Gauge,
            vec![
                (LabelSet::empty(), SeriesValue::Gauge(1.0)),
                (route(), SeriesValue::Counter(CounterValue::from_f64(2.0))),
            ],
        ),
        family("empty", None, MetricKind::Gauge, Vec::new()),
    ];
    let bridge = PrometheusClientBridge::new(Arc::new(Fixed(families)));

    let mut registry = PcRegistry::default();
    registry.sub_registry_with_prefix("app").register_collector(Box::new(bridge));
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    let expected = concat!(
        "# HELP app_jobs jobs help.\n",
        "# TYPE app_jobs counter\n",
        "app_jobs_total 4 # {trace_id=\"abc\"} 0.5 1700000000.5\n",
        "# HELP app_latency_seconds latency_seconds help.\n",
        "# TYPE app_latency_seconds unknown\n",
        "# UNIT app_latency_seconds seconds\n",
        "app_latency_seconds{route=\"/\",quantile=\"0.5\"} 0.25\n",
        "app_latency_seconds{route=\"/\",quantile=\"0.99\"} 1.0\n",
        "# HELP app_latency_seconds_sum latency_seconds help.\n",
        "# TYPE app_latency_seconds_sum unknown\n",
        "app_latency_seconds_sum{route=\"/\"} 3.0\n",
        "# HELP app_latency_seconds_count latency_seconds help.\n",
        "# TYPE app_latency_seconds_count unknown\n",
        "app_latency_seconds_count{route=\"/\"} 10\n",
        "# HELP app_temp_f temp_f help.\n",
        "# TYPE app_temp_f gauge\n",
        "app_temp_f{route=\"/\"} -1.5\n",
        "# HELP app_mystery mystery help.\n",
        "# TYPE app_mystery unknown\n",
        "app_mystery 3.0\n",
        "# HELP app_mixed mixed help.\n",
        "# TYPE app_mixed gauge\n",
        "app_mixed 1.0\n",
        "# EOF\n",
    );
    assert_eq!(text, expected);

    let parsed = python_parse(&text);
    assert!(
        parsed.starts_with(
            "counter app_jobs_total [] 4 Exemplar(labels={'trace_id': 'abc'}, value=0.5, \
             timestamp=Timestamp(1700000000, 500000000))\n"
        ),
        "{parsed}"
    );
    assert!(parsed.contains("unknown app_latency_seconds [('quantile', '0.99'), ('route', '/')] 1.0 None\n"));
    assert!(parsed.contains("unknown app_latency_seconds_count [('route', '/')] 10 None\n"));
}

#[cfg(target_os = "linux")]
#[test]
fn process_metrics_through_the_bridge() {
    let herd = Registry::new();
    herd.register_collector(Arc::new(herd_core::ProcessCollector::new()));
    let mut registry = PcRegistry::default();
    registry.register_collector(Box::new(PrometheusClientBridge::from(herd)));
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert!(
        text.contains("# TYPE process_cpu_seconds counter\n# UNIT process_cpu_seconds seconds\n"),
        "{text}"
    );
    assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    python_parse(&text);
}
