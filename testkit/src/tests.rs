//! Tests of the testkit against the real peers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

/// The hostile label value: backslash, double quote, line feed, non-ASCII.
const HOSTILE: &str = "/a\\b \"q\"\n é ☃ 日本";

/// A 0.0.4 exposition; `{HOSTILE}` is written escaped.
const TEXT_EXPOSITION: &str = r#"# HELP herd_test_requests_total Requests served, with \\ backslash and \n newline.
# TYPE herd_test_requests_total counter
herd_test_requests_total{method="GET",path="/a\\b \"q\"\n é ☃ 日本"} 1027
herd_test_requests_total{method="POST",path="/"} 3
# HELP herd_test_latency_seconds Latency.
# TYPE herd_test_latency_seconds histogram
herd_test_latency_seconds_bucket{le="0.1"} 1
herd_test_latency_seconds_bucket{le="1.0"} 3
herd_test_latency_seconds_bucket{le="+Inf"} 4
herd_test_latency_seconds_sum 2.75
herd_test_latency_seconds_count 4
# HELP herd_test_temperature_celsius Temperature "now".
# TYPE herd_test_temperature_celsius gauge
herd_test_temperature_celsius -0.0015
herd_test_temperature_celsius{sensor="broken"} NaN
herd_test_temperature_celsius{sensor="hot"} +Inf
"#;

/// An OpenMetrics exposition with exemplars, a unit and `_created`.
const OM_EXPOSITION: &str = r#"# TYPE herd_test_requests counter
# HELP herd_test_requests Requests "served" \\ \n.
herd_test_requests_total{path="/a\\b \"q\"\n é ☃ 日本"} 1027 # {trace_id="4bf92f3577b34da6"} 0.25 1700000000.5
herd_test_requests_created{path="/a\\b \"q\"\n é ☃ 日本"} 1700000000.0
# TYPE herd_test_latency_seconds histogram
# UNIT herd_test_latency_seconds seconds
# HELP herd_test_latency_seconds Latency.
herd_test_latency_seconds_bucket{le="0.1"} 1
herd_test_latency_seconds_bucket{le="1.0"} 3 # {trace_id="abc"} 0.5
herd_test_latency_seconds_bucket{le="+Inf"} 4
herd_test_latency_seconds_sum 2.75
herd_test_latency_seconds_count 4
# TYPE herd_test_load gauge
herd_test_load -Inf
# EOF
"#;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn sample(name: &str, l: &[(&str, &str)], value: f64) -> PySample {
    PySample { name: name.to_owned(), labels: labels(l), value, exemplar: None }
}

fn histogram_samples(bucket2_exemplar: Option<PyExemplar>) -> Vec<PySample> {
    let mut bucket2 = sample("herd_test_latency_seconds_bucket", &[("le", "1.0")], 3.0);
    bucket2.exemplar = bucket2_exemplar;
    vec![
        sample("herd_test_latency_seconds_bucket", &[("le", "0.1")], 1.0),
        bucket2,
        sample("herd_test_latency_seconds_bucket", &[("le", "+Inf")], 4.0),
        sample("herd_test_latency_seconds_sum", &[], 2.75),
        sample("herd_test_latency_seconds_count", &[], 4.0),
    ]
}

#[test]
fn python_parses_text_exactly() -> Result<(), String> {
    let families = python_parse(TEXT_EXPOSITION.as_bytes(), PyFormat::Text)?;
    assert_eq!(families.len(), 3, "{families:#?}");

    let expected_counter = PyFamily {
        name: "herd_test_requests".to_owned(),
        kind: "counter".to_owned(),
        help: "Requests served, with \\ backslash and \n newline.".to_owned(),
        unit: String::new(),
        samples: vec![
            sample("herd_test_requests_total", &[("method", "GET"), ("path", HOSTILE)], 1027.0),
            sample("herd_test_requests_total", &[("method", "POST"), ("path", "/")], 3.0),
        ],
    };
    assert_eq!(families[0], expected_counter);

    let expected_histogram = PyFamily {
        name: "herd_test_latency_seconds".to_owned(),
        kind: "histogram".to_owned(),
        help: "Latency.".to_owned(),
        unit: String::new(),
        samples: histogram_samples(None),
    };
    assert_eq!(families[1], expected_histogram);

    let gauge = &families[2];
    assert_eq!(
        (gauge.name.as_str(), gauge.kind.as_str(), gauge.help.as_str()),
        ("herd_test_temperature_celsius", "gauge", "Temperature \"now\".")
    );
    assert_eq!(gauge.samples.len(), 3);
    assert_eq!(gauge.samples[0], sample("herd_test_temperature_celsius", &[], -0.0015));
    assert_eq!(gauge.samples[1].labels, labels(&[("sensor", "broken")]));
    assert!(gauge.samples[1].value.is_nan());
    assert_eq!(
        gauge.samples[2],
        sample("herd_test_temperature_celsius", &[("sensor", "hot")], f64::INFINITY)
    );
    Ok(())
}

#[test]
fn python_parses_openmetrics_exactly() -> Result<(), String> {
    let families = python_parse(OM_EXPOSITION.as_bytes(), PyFormat::OpenMetrics)?;
    let mut total = sample("herd_test_requests_total", &[("path", HOSTILE)], 1027.0);
    total.exemplar = Some(PyExemplar {
        labels: labels(&[("trace_id", "4bf92f3577b34da6")]),
        value: 0.25,
        timestamp: Some(1_700_000_000.5),
    });
    let expected = vec![
        PyFamily {
            name: "herd_test_requests".to_owned(),
            kind: "counter".to_owned(),
            help: "Requests \"served\" \\ \n.".to_owned(),
            unit: String::new(),
            samples: vec![total, sample("herd_test_requests_created", &[("path", HOSTILE)], 1_700_000_000.0)],
        },
        PyFamily {
            name: "herd_test_latency_seconds".to_owned(),
            kind: "histogram".to_owned(),
            help: "Latency.".to_owned(),
            unit: "seconds".to_owned(),
            samples: histogram_samples(Some(PyExemplar {
                labels: labels(&[("trace_id", "abc")]),
                value: 0.5,
                timestamp: None,
            })),
        },
        PyFamily {
            name: "herd_test_load".to_owned(),
            kind: "gauge".to_owned(),
            help: String::new(),
            unit: String::new(),
            samples: vec![sample("herd_test_load", &[], f64::NEG_INFINITY)],
        },
    ];
    assert_eq!(families, expected);
    Ok(())
}

#[test]
fn python_reports_parse_errors() {
    // OpenMetrics requires `# EOF`.
    let err = python_parse(b"# TYPE a gauge\na 1\n", PyFormat::OpenMetrics).err().unwrap_or_default();
    assert!(err.contains("EOF"), "{err}");
    // Unterminated label value.
    let err = python_parse(b"a{x=\"1} 1\n", PyFormat::Text).err().unwrap_or_default();
    assert!(err.contains("rejected"), "{err}");
}

#[test]
fn promtool_accepts_good_and_rejects_bad() {
    assert_eq!(promtool_check(TEXT_EXPOSITION.as_bytes()), Ok(()));

    // Lint problems: exit code 3 with the findings.
    let err =
        promtool_check(b"# TYPE requests counter\nrequests 1\nlatency_ms 2\n").err().unwrap_or_default();
    assert!(err.contains("exit code 3"), "{err}");
    assert!(err.contains("no help text"), "{err}");
    assert!(err.contains("_total"), "{err}");

    // Parse error: exemplars are not 0.0.4.
    let err = promtool_check(OM_EXPOSITION.as_bytes()).err().unwrap_or_default();
    assert!(err.contains("exit code 1"), "{err}");
}

#[test]
fn server_round_trip_plain_and_chunked() -> Result<(), String> {
    let big: Vec<u8> = (0..3000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let big_for_server = big.clone();
    let server = TestServer::start(move |req| match req.path.as_str() {
        "/chunked" => Response::ok("application/octet-stream", big_for_server.clone())
            .with_header("Transfer-Encoding", "chunked"),
        #[allow(clippy::panic)]
        "/panic" => panic!("handler panic on purpose"),
        _ => Response::ok(TEXT_CONTENT_TYPE, format!("path {}\n", req.path)),
    })?;

    let (status, headers, body) = http_get(server.addr(), "/metrics?x=1", &[("Accept", "text/plain")])?;
    assert_eq!(status, 200);
    assert_eq!(body, b"path /metrics?x=1\n");
    assert!(headers.contains(&("content-type".to_owned(), TEXT_CONTENT_TYPE.to_owned())));

    let (status, headers, body) = http_get(server.addr(), "/chunked", &[])?;
    assert_eq!(status, 200);
    assert!(headers.contains(&("transfer-encoding".to_owned(), "chunked".to_owned())));
    assert_eq!(body, big);

    let (status, _, _) = http_get(server.addr(), "/panic", &[])?;
    assert_eq!(status, 500);

    let requests = server.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/metrics?x=1");
    assert_eq!(requests[0].header("ACCEPT"), Some("text/plain"));
    assert_eq!(requests[0].header("connection"), Some("close"));
    Ok(())
}

#[test]
fn http_get_reports_connection_errors() -> Result<(), String> {
    let addr = {
        let server = TestServer::start(|_| Response::new(204))?;
        server.addr()
    }; // dropped: nothing listens there any more
    let err = http_get(addr, "/", &[]).err().unwrap_or_default();
    // Refused at once, not the client's own time-out.
    assert!(err.contains("refused"), "{err}");
    Ok(())
}

#[test]
fn url_encode_escapes_everything_reserved() {
    assert_eq!(url_encode("aZ09-_.~"), "aZ09-_.~");
    assert_eq!(
        url_encode("rate(x{a=\"b c\"}[1m]) + é&/?%"),
        "rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%20%2B%20%C3%A9%26%2F%3F%25"
    );
}

#[test]
fn prometheus_scrapes_test_server() -> Result<(), String> {
    let server = TestServer::start(|req| {
        if req.path == "/metrics" {
            Response::ok(TEXT_CONTENT_TYPE, TEXT_EXPOSITION)
        } else {
            Response::new(404)
        }
    })?;
    let prom = Prometheus::start(&[ScrapeJob::new("herd_testkit", server.addr())])?;
    prom.wait_for_targets_up(Duration::from_secs(15))?;

    let targets = prom.targets()?;
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].job, "herd_testkit");
    assert_eq!(targets[0].scrape_url, format!("http://{}/metrics", server.addr()));

    let results = prom.query("herd_test_requests_total{method=\"GET\"}")?;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].value, 1027.0);
    assert_eq!(results[0].metric.get("path").map(String::as_str), Some(HOSTILE));
    assert_eq!(results[0].metric.get("job").map(String::as_str), Some("herd_testkit"));

    // The hostile value round-trips as a PromQL string literal too.
    let escaped = HOSTILE.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let by_path = prom.query(&format!("herd_test_requests_total{{path=\"{escaped}\"}}"))?;
    assert_eq!(by_path.len(), 1, "{by_path:?}");

    let nan = prom.query("herd_test_temperature_celsius{sensor=\"broken\"}")?;
    assert!(nan.first().is_some_and(|r| r.value.is_nan()), "{nan:?}");
    let inf = prom.query("herd_test_temperature_celsius{sensor=\"hot\"}")?;
    assert_eq!(inf.first().map(|r| r.value), Some(f64::INFINITY));
    let scalar = prom.query("scalar(herd_test_latency_seconds_count)")?;
    assert_eq!(scalar.first().map(|r| r.value), Some(4.0));

    let meta = prom.metadata("herd_test_latency_seconds")?;
    assert_eq!(meta[0]["type"], "histogram", "{meta}");
    assert_eq!(meta[0]["help"], "Latency.", "{meta}");

    let scrape = server.requests().into_iter().find(|r| r.path == "/metrics").ok_or("no scrape recorded")?;
    let accept = scrape.header("accept").unwrap_or_default();
    assert!(accept.contains("text/plain;version=0.0.4"), "{accept}");

    assert!(prom.query("sum(").is_err());
    let dir = prom.dir().to_path_buf();
    drop(prom);
    assert!(!dir.exists());
    Ok(())
}

#[test]
fn prometheus_reports_down_targets() -> Result<(), String> {
    let server = TestServer::start(|_| Response::new(500).with_body("boom"))?;
    let prom = Prometheus::start(&[ScrapeJob::new("broken", server.addr())])?;
    // Prometheus 2.x publishes discovered targets only every 5 s.
    prom.wait_until(Duration::from_secs(15), "a down target", |p| {
        Ok(p.targets()?.iter().any(|t| t.health == "down").then_some(()))
    })?;
    let err = prom.wait_for_targets_up(Duration::from_millis(300)).err().unwrap_or_default();
    assert!(err.contains("job=broken"), "{err}");
    assert!(err.contains("500"), "{err}");
    Ok(())
}

#[test]
fn statsd_adds_up_counters_timers_and_gauges_across_flushes() -> Result<(), String> {
    let statsd = StatsdServer::start()?;
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let send = |payload: &str| {
        socket.send_to(payload.as_bytes(), statsd.addr()).map(drop).map_err(|e| e.to_string())
    };
    // Two flushes apart, so the totals must add flushes up.
    send("jobs:1|c|#queue:emails,env:prod\njobs:2|c|@0.5|#queue:emails,env:prod\nlatency:12.5|ms\nlatency:7.5|ms")?;
    statsd.settle(2)?;
    send("jobs:4|c|#queue:emails,env:prod\nlatency:1|ms|@0.25\ntemp:0|g\ntemp:-5|g\nbroken:x|c")?;
    let totals =
        statsd.wait_until(Duration::from_secs(10), "the second batch", |t| t.gauges.contains_key("temp"))?;
    assert_eq!(totals.counter("jobs;queue=emails;env=prod"), 9.0, "{totals:?}");
    assert_eq!(totals.timer_count("latency"), 3, "{totals:?}");
    assert_eq!(totals.timer_sample_counts.get("latency"), Some(&6.0), "{totals:?}");
    assert_eq!(totals.timer_sums.get("latency"), Some(&21.0), "{totals:?}");
    assert_eq!(totals.gauges.get("temp"), Some(&-5.0), "{totals:?}");
    assert_eq!(totals.bad_lines(), 1.0, "{totals:?}");
    assert!(totals.flushes >= 3, "{totals:?}");

    let dir = statsd.dir().to_path_buf();
    drop(statsd);
    assert!(!dir.exists());
    Ok(())
}
