//! herd-statsd end to end: the `statsd-worker` example against a real StatsD server,
//! and forked workers that each rebuild the sender (thread and socket) they inherited.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use herd_testkit::StatsdServer;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn statsd_worker_counts_reach_a_real_statsd_exactly() -> TestResult {
    let statsd = StatsdServer::start()?;
    let count = 1001u64;
    let out = Command::new(env!("CARGO_BIN_EXE_statsd-worker"))
        .args(["--statsd", &statsd.addr().to_string(), "--count", &count.to_string()])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("1001 jobs, 2002 lines sent"), "{stdout}");

    // Even units go to `emails`, odd ones to `reports`.
    let expected = [("emails", 501u64), ("reports", 500u64)];
    let counter = |q: &str| format!("statsd_worker.jobs_total;queue={q}");
    let timer = |q: &str| format!("statsd_worker.job_duration_seconds;queue={q}");
    statsd.wait_until(Duration::from_secs(20), "every job", |t| {
        expected.iter().all(|(q, n)| t.counter(&counter(q)) >= *n as f64 && t.timer_count(&timer(q)) >= *n)
    })?;
    let totals = statsd.settle(2)?;
    for (q, n) in expected {
        assert_eq!(totals.counter(&counter(q)), n as f64, "{totals:?}");
        assert_eq!(totals.timer_count(&timer(q)), n, "{totals:?}");
        assert_eq!(totals.timer_sample_counts.get(&timer(q)).copied(), Some(n as f64), "{totals:?}");
    }
    assert_eq!(totals.bad_lines(), 0.0, "{totals:?}");
    Ok(())
}

#[test]
fn statsd_worker_rejects_missing_arguments() -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_statsd-worker")).args(["--count", "3"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    Ok(())
}

#[test]
fn forked_workers_send_through_a_sender_of_their_own() -> TestResult {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let addr = socket.local_addr()?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let (tx, rx) = mpsc::channel::<(SocketAddr, String)>();
    let exited = Arc::new(AtomicBool::new(false));
    // Read from the start, so no datagram waits in the kernel's buffer; stop once the
    // example has exited (its lines were all sent before) and the socket is empty.
    let reader = std::thread::spawn({
        let exited = Arc::clone(&exited);
        move || {
            let mut buf = [0u8; 65_536];
            loop {
                match socket.recv_from(&mut buf) {
                    Ok((n, from)) => {
                        let _ = tx.send((from, String::from_utf8_lossy(&buf[..n]).into_owned()));
                    }
                    Err(_) if exited.load(Ordering::Acquire) => break,
                    Err(_) => {}
                }
            }
        }
    });

    let (workers, count) = (4u64, 500u64);
    let out = Command::new(env!("CARGO_BIN_EXE_statsd-fork-workers"))
        .args([
            "--statsd",
            &addr.to_string(),
            "--workers",
            &workers.to_string(),
            "--count",
            &count.to_string(),
        ])
        .output()?;
    exited.store(true, Ordering::Release);
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    reader.join().map_err(|_| "reader panicked")?;

    let mut lines_by_source: BTreeMap<SocketAddr, BTreeMap<String, u64>> = BTreeMap::new();
    for (from, packet) in rx.try_iter() {
        for line in packet.split('\n') {
            *lines_by_source.entry(from).or_default().entry(line.to_owned()).or_default() += 1;
        }
    }
    let master_line = "jobs_total:1|c|#role:master";
    let worker_line = "jobs_total:1|c|#role:worker";
    let sources = |line: &str| -> BTreeSet<SocketAddr> {
        lines_by_source.iter().filter(|(_, lines)| lines.contains_key(line)).map(|(s, _)| *s).collect()
    };
    let total = |line: &str| -> u64 { lines_by_source.values().filter_map(|l| l.get(line)).sum() };

    // Nothing lost and nothing sent twice: the master's 5 queued lines were sent by
    // the master only, although each worker inherited a copy of its queue.
    assert_eq!(total(master_line), 8, "{lines_by_source:#?}");
    assert_eq!(total(worker_line), workers * count, "{lines_by_source:#?}");
    let all: u64 = lines_by_source.values().flat_map(|l| l.values()).sum();
    assert_eq!(all, 8 + workers * count, "unexpected lines: {lines_by_source:#?}");

    // Each worker opened its own socket: one source port each, none the master's.
    let (master, worker) = (sources(master_line), sources(worker_line));
    assert_eq!(worker.len() as u64, workers, "{lines_by_source:#?}");
    assert!(master.is_disjoint(&worker), "{lines_by_source:#?}");
    assert!(
        lines_by_source.values().all(|l| l.len() == 1),
        "a socket sent for two roles: {lines_by_source:#?}"
    );
    Ok(())
}

#[test]
fn requests_through_herd_axum_are_mirrored_to_a_real_statsd_exactly() -> TestResult {
    use herd_axum::MetricsHandler;
    use herd_core::Registry;
    use tower::ServiceExt;

    let statsd = StatsdServer::start()?;
    let bridge = herd_statsd::StatsdBridge::udp(statsd.addr().to_string()).prefix("web").build()?;
    let registry = Registry::new();
    let layer = herd_axum::MetricsLayer::builder()
        .exclude_route("/metrics")
        .observer(bridge.observer())
        .build(&registry)?;
    let app = herd_examples::axum_app::app(layer, MetricsHandler::new(registry.clone()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let n = 300u64;
    runtime.block_on(async {
        for i in 0..n {
            let uri = if i % 3 == 0 { "/hello".to_owned() } else { format!("/users/{i}") };
            let request = axum::http::Request::get(uri).body(axum::body::Body::empty())?;
            let response = app.clone().oneshot(request).await?;
            // The layer records when the body ends: read it to its end.
            axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    bridge.flush()?;

    // The StatsD server rewrites `/` to `-` and drops `{}` in metric keys.
    let key = |route: &str| format!("web.http_requests_total;method=GET;route={route};status=200");
    let timer =
        |route: &str| format!("web.http_request_duration_seconds;method=GET;route={route};status=200");
    let want = [("-hello", n / 3), ("-users-id", n - n / 3)];
    statsd.wait_until(Duration::from_secs(20), "every request", |t| {
        want.iter().all(|(route, count)| t.counter(&key(route)) >= *count as f64)
    })?;
    let totals = statsd.settle(2)?;
    for (route, count) in want {
        assert_eq!(totals.counter(&key(route)), count as f64, "{totals:?}");
        assert_eq!(totals.timer_count(&timer(route)), count, "{totals:?}");
    }
    assert_eq!(totals.bad_lines(), 0.0, "{totals:?}");
    Ok(())
}

#[test]
fn grpc_calls_through_herd_tonic_are_mirrored_to_a_real_statsd_exactly() -> TestResult {
    use herd_examples::grpc_echo::{layer_builder, scenario, serve};

    let statsd = StatsdServer::start()?;
    let bridge = herd_statsd::StatsdBridge::udp(statsd.addr().to_string()).prefix("rpc").build()?;
    let registry = herd_core::Registry::new();
    let layer = layer_builder().observer(bridge.observer()).build(&registry)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let runs = 3u64;
    runtime
        .block_on(async {
            let server = serve(layer).await?;
            for _ in 0..runs {
                scenario(&server).await?;
            }
            server.stop().await
        })
        .map_err(|e| e.to_string())?;
    bridge.flush()?;

    let key = |family: &str, kind: &str, method: &str, code: &str| {
        format!("rpc.{family};grpc_type={kind};grpc_service=test.Echo;grpc_method={method}{code}")
    };
    let want = [
        (key("grpc_server_handled_total", "unary", "Unary", ";grpc_code=OK"), 2 * runs),
        (key("grpc_server_handled_total", "unary", "Unary", ";grpc_code=NotFound"), runs),
        (key("grpc_server_handled_total", "server_stream", "Count", ";grpc_code=DataLoss"), runs),
        (key("grpc_server_handled_total", "server_stream", "Forever", ";grpc_code=Canceled"), runs),
        (key("grpc_server_msg_sent_total", "server_stream", "Count", ""), 3 * runs),
        (key("grpc_server_msg_received_total", "client_stream", "Sum", ""), 4 * runs),
    ];
    statsd.wait_until(Duration::from_secs(20), "every call", |t| {
        want.iter().all(|(k, n)| t.counter(k) >= *n as f64)
    })?;
    let totals = statsd.settle(2)?;
    for (k, n) in &want {
        assert_eq!(totals.counter(k), *n as f64, "{k}: {totals:?}");
    }
    let timer = key("grpc_server_handling_seconds", "unary", "Unary", "");
    assert_eq!(totals.timer_count(&timer), 3 * runs, "{totals:?}");
    assert_eq!(totals.bad_lines(), 0.0, "{totals:?}");
    Ok(())
}
