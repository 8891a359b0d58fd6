//! The RED metrics' unit tests: labels, options, outcomes, overflow, observers.

use std::sync::Arc;

use parking_lot::Mutex;

use super::*;
use crate::error::RegistryError;
use crate::labels::LabelSet;
use crate::observe::{Observer, SeriesObserver};
use crate::options::buckets;
use crate::registry::Registry;
use crate::Format;

fn scrape(registry: &Registry) -> String {
    String::from_utf8(registry.encode(Format::Text)).unwrap_or_default()
}

fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn every_status_renders_as_its_digits() {
    for code in 100..=999u16 {
        assert_eq!(status_label(code), code.to_string());
    }
    for code in [0, 1, 99, 1000, u16::MAX] {
        assert_eq!(status_label(code), OTHER_STATUS);
    }
}

#[test]
fn methods_fold_into_a_closed_set() {
    for m in KNOWN_METHODS {
        assert_eq!(fold_method(m), m);
    }
    for m in ["", "get", "PROPFIND", "BREW", "GET ", "G\u{e9}T"] {
        assert_eq!(fold_method(m), OTHER_METHOD, "{m:?}");
    }
}

#[test]
fn the_presets_buckets_are_valid() {
    assert_eq!(buckets(&DURATION_BUCKETS).bounds(), DURATION_BUCKETS);
    assert_eq!(buckets(&BODY_SIZE_BUCKETS).bounds(), BODY_SIZE_BUCKETS);
}

#[test]
fn outcomes_are_counted_once_each_as_documented() {
    let registry = Registry::new();
    let red = RedMetrics::register(&registry, RedOptions::new()).unwrap();
    let mut ok = red.start("GET", Some("/a"), None).unwrap();
    ok.headers(200);
    ok.headers(500); // only the first call counts
    ok.finish();
    let mut aborted = red.start("GET", Some("/a"), None).unwrap();
    aborted.headers(200);
    drop(aborted);
    let mut head = red.start("HEAD", Some("/a"), None).unwrap();
    head.headers(200);
    drop(head);
    let mut no_content = red.start("GET", Some("/a"), None).unwrap();
    no_content.headers(204);
    drop(no_content);
    red.start("POST", Some("/a"), None).unwrap().fail();
    drop(red.start("POST", Some("/a"), None));
    let in_flight = red.start("GET", Some("/a"), None);

    let text = scrape(&registry);
    assert_eq!(
        lines(&text, "http_requests_total"),
        [
            r#"http_requests_total{method="GET",route="/a",status="200"} 2"#,
            r#"http_requests_total{method="HEAD",route="/a",status="200"} 1"#,
            r#"http_requests_total{method="GET",route="/a",status="204"} 1"#,
            r#"http_requests_total{method="POST",route="/a",status="error"} 1"#,
            r#"http_requests_total{method="POST",route="/a",status="cancelled"} 1"#,
        ]
    );
    assert_eq!(
        lines(&text, "http_requests_aborted_total"),
        [r#"http_requests_aborted_total{method="GET",route="/a",status="200"} 1"#]
    );
    assert_eq!(
        lines(&text, "http_requests_in_flight"),
        [
            r#"http_requests_in_flight{method="GET",route="/a"} 1"#,
            r#"http_requests_in_flight{method="HEAD",route="/a"} 0"#,
            r#"http_requests_in_flight{method="POST",route="/a"} 0"#,
        ]
    );
    assert_eq!(
        lines(&text, "http_request_duration_seconds_count"),
        [
            r#"http_request_duration_seconds_count{method="GET",route="/a",status="200"} 2"#,
            r#"http_request_duration_seconds_count{method="HEAD",route="/a",status="200"} 1"#,
            r#"http_request_duration_seconds_count{method="GET",route="/a",status="204"} 1"#,
            r#"http_request_duration_seconds_count{method="POST",route="/a",status="error"} 1"#,
            r#"http_request_duration_seconds_count{method="POST",route="/a",status="cancelled"} 1"#,
        ]
    );
    drop(in_flight);
}

#[test]
fn excluded_routes_record_nothing() {
    let registry = Registry::new();
    let red = RedMetrics::register(&registry, RedOptions::new().exclude_route("/metrics")).unwrap();
    for _ in 0..3 {
        assert!(red.start("GET", Some("/metrics"), None).is_none());
    }
    assert!(red.start("GET", Some("/other"), None).is_some());
    let text = scrape(&registry);
    assert!(!text.contains("/metrics"), "{text}");
    assert!(text.contains(r#"route="/other""#), "{text}");
}

#[test]
fn sizes_and_time_to_headers_are_optional() {
    let registry = Registry::new();
    let red =
        RedMetrics::register(&registry, RedOptions::new().body_sizes(true).time_to_headers(true)).unwrap();
    let mut t = red.start("POST", Some("/echo"), Some(300)).unwrap();
    t.headers(200);
    t.add_body_bytes(100);
    t.add_body_bytes(200);
    t.finish();
    let text = scrape(&registry);
    let labels = r#"{method="POST",route="/echo",status="200"}"#;
    for sample in [
        format!("http_request_size_bytes_sum{labels} 300"),
        format!("http_response_size_bytes_sum{labels} 300"),
        format!("http_time_to_headers_seconds_count{labels} 1"),
        r#"http_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="256.0"} 0"#.into(),
        r#"http_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="1024.0"} 1"#.into(),
    ] {
        assert!(text.contains(&sample), "{sample} missing in\n{text}");
    }
    let plain = Registry::new();
    RedMetrics::register(&plain, RedOptions::new())
        .unwrap()
        .start("GET", None, Some(5))
        .unwrap()
        .headers(200);
    let text = scrape(&plain);
    assert!(!text.contains("size_bytes") && !text.contains("time_to_headers"), "{text}");
}

#[test]
fn the_opentelemetry_preset_renames_everything() {
    let registry = Registry::new();
    let red = RedMetrics::register(&registry, RedOptions::new().preset(Preset::OpenTelemetry)).unwrap();
    let mut t = red.start("GET", Some("/a"), None).unwrap();
    t.headers(200);
    t.finish();
    let text = scrape(&registry);
    assert!(text.contains(
        r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/a",http_response_status_code="200"} 1"#
    ), "{text}");
    assert!(text.contains(r#"http_server_active_requests{http_request_method="GET",http_route="/a"} 0"#));
    assert!(!text.contains("http_requests_total"), "{text}");
}

#[test]
fn a_second_registration_is_an_error_and_prefixes_separate_them() {
    let registry = Registry::new();
    let _first = RedMetrics::register(&registry, RedOptions::new()).unwrap();
    assert!(matches!(
        RedMetrics::register(&registry, RedOptions::new()),
        Err(RegistryError::AlreadyRegistered { .. })
    ));
    let second = RedMetrics::register(&registry, RedOptions::new().prefix("admin")).unwrap();
    second.start("GET", None, None).unwrap().headers(200);
    assert!(scrape(&registry)
        .contains(r#"admin_http_requests_total{method="GET",route="unmatched",status="200"} 1"#));
}

#[test]
fn past_the_limit_requests_still_count_and_series_stay_bounded() {
    let registry = Registry::new();
    let red = RedMetrics::register(&registry, RedOptions::new().cardinality_limit(4)).unwrap();
    let routes: Vec<String> = (0..20).map(|i| format!("/r{i}")).collect();
    for route in &routes {
        for code in [200, 500] {
            let mut t = red.start("GET", Some(route), None).unwrap();
            t.headers(code);
            t.finish();
        }
    }
    let text = scrape(&registry);
    let counts = lines(&text, "http_requests_total{");
    assert_eq!(counts.len(), 5, "{text}");
    let total: f64 = counts.iter().filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum();
    assert_eq!(total, 40.0);
    assert!(
        text.contains(
            r#"http_requests_total{method="__overflow__",route="__overflow__",status="__overflow__"} 36"#
        ),
        "{text}"
    );
    let gauges = lines(&text, "http_requests_in_flight{");
    assert_eq!(gauges.len(), 5, "{text}");
    assert!(gauges.iter().all(|l| l.ends_with(" 0")), "{text}");
}

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

struct SeriesLog {
    name: String,
    log: Arc<Log>,
}

impl Observer for Arc<Log> {
    fn series(&self, family: &crate::FamilyDesc, labels: &LabelSet) -> Option<Arc<dyn SeriesObserver>> {
        self.0.lock().push(format!("series {}{{{}}}", family.name, labels.rendered()));
        Some(Arc::new(SeriesLog { name: family.name.to_string(), log: self.clone() }))
    }
}

impl SeriesObserver for SeriesLog {
    fn counter(&self, delta: f64) {
        self.log.0.lock().push(format!("{} +{delta}", self.name));
    }
    fn gauge_set(&self, value: f64) {
        self.log.0.lock().push(format!("{} ={value}", self.name));
    }
    fn gauge_add(&self, delta: f64) {
        self.log.0.lock().push(format!("{} {delta:+}", self.name));
    }
    fn observe(&self, value: f64) {
        self.log.0.lock().push(format!("{} observe {}", self.name, value >= 0.0));
    }
}

#[test]
fn the_observer_is_asked_once_per_series_and_sees_every_update() {
    let log = Arc::new(Log::default());
    let registry = Registry::new();
    let red = RedMetrics::register(&registry, RedOptions::new().observer(Arc::new(log.clone()))).unwrap();
    for _ in 0..2 {
        let mut t = red.start("GET", Some("/a"), None).unwrap();
        t.headers(200);
        t.finish();
    }
    let got = log.0.lock().clone();
    assert_eq!(
        got,
        [
            r#"series http_requests_in_flight{method="GET",route="/a"}"#,
            "http_requests_in_flight +1",
            r#"series http_requests{method="GET",route="/a",status="200"}"#,
            r#"series http_request_duration_seconds{method="GET",route="/a",status="200"}"#,
            "http_requests_in_flight -1",
            "http_requests +1",
            "http_request_duration_seconds observe true",
            "http_requests_in_flight +1",
            "http_requests_in_flight -1",
            "http_requests +1",
            "http_request_duration_seconds observe true",
        ]
    );
}

#[test]
fn a_request_timer_is_owned_and_lives_across_await() {
    fn assert_send_static<T: Send + 'static>(_: &T) {}
    let registry = Registry::new();
    let red = RedMetrics::register(&registry, RedOptions::new()).unwrap();
    let mut timer = red.start("GET", Some("/a"), None).unwrap();
    assert_send_static(&timer);
    // Recorded on another thread than the one that started it, as a work-stealing
    // runtime may do.
    std::thread::spawn(move || {
        timer.headers(200);
        timer.finish();
    })
    .join()
    .unwrap();
    assert_eq!(
        lines(&scrape(&registry), "http_requests_total"),
        [r#"http_requests_total{method="GET",route="/a",status="200"} 1"#]
    );
}
