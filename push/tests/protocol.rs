//! The wire rules of each protocol against a test receiver: what is sent, what is
//! retried and what is not, what is counted and logged, and the push thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herd_push::{PushError, PushMetrics, Pusher, Retry, Sink, SinkKind};
use herd_testkit::{Request, Response, TestServer};

mod common;
use common::{decode_remote_write, recorded, TestResult};

/// Fast retries, so the tests do not wait on the default backoff.
fn quick() -> Retry {
    Retry::new(4, Duration::from_millis(5), Duration::from_millis(20))
}

/// A receiver answering `statuses` in turn, then `then` for ever.
fn receiver(statuses: &[u16], then: u16) -> Result<TestServer, String> {
    let statuses = statuses.to_vec();
    let seen = AtomicUsize::new(0);
    TestServer::start(move |_: &Request| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let status = statuses.get(n).copied().unwrap_or(then);
        Response::new(status).with_body(format!("answer {n}: {status}\n"))
    })
}

#[test]
fn remote_write_sends_sorted_labelled_series_as_a_scrape_shows_them() -> TestResult {
    let server = receiver(&[], 204)?;
    let registry = recorded()?;
    let sink = Sink::remote_write(&server.url("/api/v1/write"))?.job("batch").label("region", "eu west/1")?;
    let mut pusher = Pusher::builder(sink).registry(&registry).build()?;
    let before = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    pusher.push()?;
    let after = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/api/v1/write"));
    assert_eq!(request.header("content-encoding"), Some("snappy"));
    assert_eq!(request.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(request.header("x-prometheus-remote-write-version"), Some("0.1.0"));
    let (series, sorted) = decode_remote_write(&request.body)?;
    assert!(sorted, "labels must be sorted and unique: {series:?}");
    for (key, (_, ts)) in &series {
        assert!((before..=after).contains(ts), "{key}: timestamp {ts} outside [{before}, {after}]");
    }
    let value = |key: &str| series.get(key).map(|(v, _)| *v);
    // Keys are rendered in the order sent: sorted by label name.
    let (j, r) = (r#"job="batch""#, r#"region="eu west/1""#);
    assert_eq!(value(&format!(r#"jobs_total{{{j},queue="mail",{r}}}"#)), Some(3.0), "{series:#?}");
    assert_eq!(value(&format!(r#"jobs_total{{{j},queue="resize",{r}}}"#)), Some(5.0));
    assert_eq!(value(&format!("queue_depth{{{j},{r}}}")), Some(12.5));
    assert_eq!(value(&format!(r#"job_duration_seconds_bucket{{{j},le="0.1",{r}}}"#)), Some(1.0));
    assert_eq!(value(&format!(r#"job_duration_seconds_bucket{{{j},le="1.0",{r}}}"#)), Some(2.0));
    assert_eq!(value(&format!(r#"job_duration_seconds_bucket{{{j},le="+Inf",{r}}}"#)), Some(3.0));
    assert_eq!(value(&format!("job_duration_seconds_count{{{j},{r}}}")), Some(3.0));
    assert_eq!(value(&format!("job_duration_seconds_sum{{{j},{r}}}")), Some(2.55));
    assert_eq!(value(&format!("job_size_bytes_count{{{j},{r}}}")), Some(4.0));
    assert_eq!(value(&format!("job_size_bytes_sum{{{j},{r}}}")), Some(10.0));
    let median = value(&format!(r#"job_size_bytes{{{j},quantile="0.5",{r}}}"#)).ok_or("no median")?;
    assert!((median - 2.0).abs() <= 0.04, "median {median}");
    assert_eq!(value(&format!(r#"herd_push_failures_total{{{j},{r},sink="remote_write"}}"#)), Some(0.0));
    Ok(())
}

#[test]
fn remote_write_retries_a_500_and_a_429_and_loses_nothing() -> TestResult {
    let server = receiver(&[500, 429], 204)?;
    let registry = recorded()?;
    let metrics = PushMetrics::register(&registry)?;
    let sink = Sink::remote_write(&server.url("/api/v1/write"))?;
    let mut pusher =
        Pusher::builder(sink).registry(&registry).metrics(metrics.clone()).retry(quick()).build()?;
    pusher.push()?;
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "one attempt and two retries");
    // Every attempt carries the same complete body: nothing lost, nothing doubled.
    assert!(requests.iter().all(|r| r.body == requests[0].body));
    let (series, _) = decode_remote_write(&requests[2].body)?;
    assert_eq!(series.get(r#"jobs_total{queue="mail"}"#).map(|v| v.0), Some(3.0), "{series:#?}");
    assert!(series.len() > 11, "every family of the registry: {series:#?}");
    assert_eq!(metrics.failures(SinkKind::RemoteWrite).get(), 0.0, "a push that got through is no failure");
    Ok(())
}

/// When each request reached a test receiver.
type Arrivals = Arc<Mutex<Vec<Instant>>>;

/// A receiver answering 429 with `Retry-After: <retry_after>` once, then 204.
fn busy_receiver(retry_after: String) -> Result<(TestServer, Arrivals), String> {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&arrivals);
    let server = TestServer::start(move |_: &Request| {
        let mut seen = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.push(Instant::now());
        match seen.len() {
            1 => Response::new(429).with_header("Retry-After", &retry_after).with_body("slow down\n"),
            _ => Response::new(204),
        }
    })?;
    Ok((server, arrivals))
}

#[test]
fn a_retry_after_is_waited_for_before_the_next_attempt() -> TestResult {
    // The policy alone would come back after 5 ms; the receiver asks for a second.
    let (server, arrivals) = busy_receiver("1".into())?;
    let registry = recorded()?;
    let metrics = PushMetrics::register(&registry)?;
    let sink = Sink::remote_write(&server.url("/api/v1/write"))?;
    let retry = Retry::new(4, Duration::from_millis(5), Duration::from_secs(5));
    let mut pusher =
        Pusher::builder(sink).registry(&registry).metrics(metrics.clone()).retry(retry).build()?;
    pusher.push()?;
    let arrivals = arrivals.lock().map_err(|e| e.to_string())?.clone();
    assert_eq!(arrivals.len(), 2, "one 429, then the retry that got through");
    // A lower bound only: a sleep never ends early, however slow the machine.
    let waited = arrivals[1] - arrivals[0];
    assert!(waited >= Duration::from_secs(1), "came back after {waited:?}, not the second asked");
    assert_eq!(metrics.failures(SinkKind::RemoteWrite).get(), 0.0);
    Ok(())
}

#[test]
fn a_retry_after_beyond_the_policy_ends_the_push_as_a_counted_failure() -> TestResult {
    // A date decades ahead, against a policy whose longest wait is 20 ms.
    let (server, arrivals) = busy_receiver("Fri, 31 Dec 2100 23:59:59 GMT".into())?;
    let registry = recorded()?;
    let metrics = PushMetrics::register(&registry)?;
    let sink = Sink::otlp(&server.url(""))?;
    let mut pusher =
        Pusher::builder(sink).registry(&registry).metrics(metrics.clone()).retry(quick()).build()?;
    let err = pusher.push().err().ok_or("a receiver that asks for decades must end the push")?;
    assert_eq!(err.status(), Some(429), "{err}");
    assert_eq!(arrivals.lock().map_err(|e| e.to_string())?.len(), 1, "no attempt before the time asked");
    assert_eq!(metrics.failures(SinkKind::Otlp).get(), 1.0);
    Ok(())
}

#[test]
fn remote_write_never_retries_a_400_and_counts_it() -> TestResult {
    let server = receiver(&[400], 204)?;
    let registry = recorded()?;
    let metrics = PushMetrics::register(&registry)?;
    let sink = Sink::remote_write(&server.url("/api/v1/write"))?;
    let mut pusher =
        Pusher::builder(sink).registry(&registry).metrics(metrics.clone()).retry(quick()).build()?;
    let err = pusher.push().err().ok_or("a 400 must fail the push")?;
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("answer 0: 400"), "the receiver's reason is kept: {err}");
    assert_eq!(server.requests().len(), 1, "a 400 is never retried");
    assert_eq!(metrics.failures(SinkKind::RemoteWrite).get(), 1.0);

    // The next push carries the count to the receiver.
    pusher.push()?;
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let (series, _) = decode_remote_write(&requests[1].body)?;
    assert_eq!(series.get(r#"herd_push_failures_total{sink="remote_write"}"#).map(|v| v.0), Some(1.0));
    Ok(())
}

#[test]
fn remote_write_gives_up_after_the_last_attempt_and_counts_one_failure() -> TestResult {
    let server = receiver(&[], 503)?;
    let registry = recorded()?;
    let metrics = PushMetrics::register(&registry)?;
    let sink = Sink::remote_write(&server.url("/api/v1/write"))?;
    let mut pusher =
        Pusher::builder(sink).registry(&registry).metrics(metrics.clone()).retry(quick()).build()?;
    assert_eq!(pusher.push().err().and_then(|e| e.status()), Some(503));
    assert_eq!(server.requests().len(), 4, "as many attempts as the policy allows");
    assert_eq!(metrics.failures(SinkKind::RemoteWrite).get(), 1.0, "one failed push, however many attempts");
    Ok(())
}

#[test]
fn otlp_retries_429_502_503_504_only() -> TestResult {
    for (status, attempts) in [(500, 1), (400, 1), (404, 1), (429, 2), (502, 2), (503, 2), (504, 2)] {
        let server = receiver(&[status], 200)?;
        let registry = recorded()?;
        let mut pusher =
            Pusher::builder(Sink::otlp(&server.url(""))?).registry(&registry).retry(quick()).build()?;
        let result = pusher.push();
        let requests = server.requests();
        assert_eq!(requests.len(), attempts, "status {status}");
        assert_eq!(result.is_ok(), attempts == 2, "status {status}: {result:?}");
        assert_eq!(requests[0].path, "/v1/metrics");
        assert_eq!(requests[0].header("content-type"), Some("application/x-protobuf"));
    }
    Ok(())
}

#[test]
fn pushgateway_puts_text_to_the_grouping_key_path_and_deletes_it() -> TestResult {
    let server = receiver(&[], 200)?;
    let registry = recorded()?;
    let sink = Sink::pushgateway(&server.url(""), "batch")?.label("path", "/var/tmp")?.label("host", "")?;
    let mut pusher = Pusher::builder(sink).registry(&registry).build()?;
    pusher.push()?;
    pusher.delete()?;
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let path = "/metrics/job/batch/path@base64/L3Zhci90bXA/host@base64/=";
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("PUT", path));
    assert_eq!(requests[0].header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let body = String::from_utf8(requests[0].body.clone())?;
    assert!(body.contains("jobs_total{queue=\"mail\"} 3\n"), "{body}");
    assert!(body.contains("herd_push_failures_total{sink=\"pushgateway\"} 0\n"), "{body}");
    assert_eq!((requests[1].method.as_str(), requests[1].path.as_str()), ("DELETE", path));

    let mut other = Pusher::builder(Sink::remote_write(&server.url("/w"))?).build()?;
    assert!(matches!(other.delete(), Err(PushError::Unsupported { .. })));
    Ok(())
}

#[test]
fn an_unreachable_receiver_is_a_counted_failure() -> TestResult {
    // A port that was free a moment ago: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let registry = recorded()?;
    let metrics = PushMetrics::register(&registry)?;
    let sink = Sink::remote_write(&format!("http://{addr}/api/v1/write"))?;
    let mut pusher =
        Pusher::builder(sink).registry(&registry).metrics(metrics.clone()).retry(quick()).build()?;
    let err = pusher.push().err().ok_or("nothing listens")?;
    assert!(matches!(err, PushError::Io { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some(), "the io::Error is the source");
    assert_eq!(metrics.failures(SinkKind::RemoteWrite).get(), 1.0);
    Ok(())
}

/// Captures `log` records, to count what the pusher logs.
struct Capture(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if let Ok(mut v) = self.0.lock() {
            v.push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

#[test]
fn failures_are_logged_once_per_change_of_state() -> TestResult {
    static LOG: Capture = Capture(Mutex::new(Vec::new()));
    log::set_logger(&LOG).map_err(|e| e.to_string())?;
    log::set_max_level(log::LevelFilter::Info);
    // Three failed pushes, two good ones, one failed again.
    let server = receiver(&[400, 400, 400, 204, 204, 400], 204)?;
    let registry = recorded()?;
    let sink = Sink::remote_write(&server.url("/api/v1/write"))?;
    let mut pusher = Pusher::builder(sink).registry(&registry).build()?;
    let results: Vec<bool> = (0..6).map(|_| pusher.push().is_ok()).collect();
    assert_eq!(results, [false, false, false, true, true, false]);
    let logged = LOG.0.lock().map_err(|e| e.to_string())?.clone();
    let levels: Vec<log::Level> = logged.iter().map(|(l, _)| *l).collect();
    assert_eq!(levels, [log::Level::Warn, log::Level::Info, log::Level::Warn], "{logged:#?}");
    assert!(logged[0].1.contains("answered 400"), "{logged:#?}");
    Ok(())
}

#[test]
fn the_thread_pushes_on_demand_and_once_more_at_shutdown() -> TestResult {
    let server = receiver(&[], 204)?;
    let registry = recorded()?;
    let sink = Sink::remote_write(&server.url("/api/v1/write"))?;
    // An interval that never comes during the test: every push here is asked for.
    let thread = Pusher::builder(sink).registry(&registry).build()?.spawn(Duration::from_secs(3600))?;
    thread.push_now();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.requests().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(server.requests().len(), 1, "push_now pushes");
    registry.counter("late_total", "Recorded after the first push.").register()?.inc();
    thread.shutdown()?;
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "shutdown pushes once more");
    let (series, _) = decode_remote_write(&requests[1].body)?;
    assert_eq!(series.get("late_total").map(|v| v.0), Some(1.0), "the last push has the last values");
    Ok(())
}

#[test]
fn the_thread_pushes_on_its_interval() -> TestResult {
    let server = receiver(&[], 204)?;
    let registry = recorded()?;
    let sink = Sink::remote_write(&server.url("/api/v1/write"))?;
    let thread = Pusher::builder(sink).registry(&registry).build()?.spawn(Duration::from_millis(20))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.requests().len() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(server.requests().len() >= 3, "three pushes on the interval");
    thread.shutdown()?;
    Ok(())
}

#[test]
fn a_source_that_cannot_be_read_sends_nothing_and_counts() -> TestResult {
    let server = receiver(&[], 204)?;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    std::fs::create_dir(&dir)?;
    let aggregator = herd_mmap::Aggregator::new(&dir)?;
    std::fs::remove_dir(&dir)?;
    let registry = herd_core::Registry::new();
    let metrics = PushMetrics::register(&registry)?;
    let sink = Sink::remote_write(&server.url("/api/v1/write"))?;
    let mut pusher =
        Pusher::builder(sink).collector(Arc::new(aggregator)).metrics(metrics.clone()).build()?;
    let err = pusher.push().err().ok_or("a missing directory must fail the push")?;
    assert!(matches!(err, PushError::Collect(_)), "{err:?}");
    assert!(server.requests().is_empty(), "a partial aggregate is never pushed");
    assert_eq!(metrics.failures(SinkKind::RemoteWrite).get(), 1.0);
    Ok(())
}

/// A receiver on a raw socket that answers every connection with `answer` (after
/// reading the request head), or not at all when `answer` is `None`.
fn raw_receiver(answer: Option<&'static [u8]>) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            match answer {
                Some(bytes) => {
                    let _ = conn.write_all(bytes);
                }
                // Keep the connection open and silent.
                None => held.push(conn),
            }
        }
    });
    Ok(format!("http://{addr}/api/v1/write"))
}

#[test]
fn a_receiver_that_is_not_http_or_never_answers_is_a_counted_error() -> TestResult {
    let registry = recorded()?;
    let metrics = PushMetrics::register(&registry)?;
    let cases: [(Option<&'static [u8]>, &str); 4] = [
        (Some(b"SSH-2.0-OpenSSH_9.2\r\n"), "not HTTP"),
        (Some(b""), "closed at once"),
        (Some(b"HTTP/1.1 204 No Content\r\nContent-Len"), "cut inside the headers"),
        (None, "silent"),
    ];
    for (n, (answer, what)) in cases.into_iter().enumerate() {
        let sink = Sink::remote_write(&raw_receiver(answer)?)?;
        let mut pusher = Pusher::builder(sink)
            .registry(&registry)
            .metrics(metrics.clone())
            .retry(Retry::never())
            .timeout(Duration::from_millis(300))
            .build()?;
        let err = pusher.push().err().ok_or(format!("{what}: the push must fail"))?;
        assert!(matches!(err, PushError::Response { .. } | PushError::Io { .. }), "{what}: {err:?}");
        assert_eq!(metrics.failures(SinkKind::RemoteWrite).get(), (n + 1) as f64, "{what}");
    }
    Ok(())
}
