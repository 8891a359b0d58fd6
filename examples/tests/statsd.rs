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

/// Runs `statsd-worker --count count` against a real Etsy statsd and checks that the
/// server counted every job: counters exactly, timer counts (scaled by the sample
/// rate the aggregated timers are marked with) within 2%, and no values beyond the
/// jobs.
fn worker_counts_reach_a_real_statsd(count: u64) -> TestResult {
    let statsd = StatsdServer::start()?;
    let out = Command::new(env!("CARGO_BIN_EXE_statsd-worker"))
        .args(["--statsd", &statsd.addr().to_string(), "--count", &count.to_string()])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{count} jobs, ")), "{stdout}");
    assert!(stdout.ends_with(", 0 dropped\n"), "{stdout}");

    // Even units go to `emails`, odd ones to `reports`.
    let expected = [("emails", count.div_ceil(2)), ("reports", count / 2)];
    let counter = |q: &str| format!("statsd_worker.jobs_total;queue={q}");
    let timer = |q: &str| format!("statsd_worker.job_duration_seconds;queue={q}");
    let scaled = |t: &herd_testkit::StatsdTotals, q: &str| t.timer_sample_counts.get(&timer(q)).copied();
    statsd.wait_until(Duration::from_secs(20), "every job", |t| {
        expected.iter().all(|(q, n)| {
            t.counter(&counter(q)) >= *n as f64 && scaled(t, q).is_some_and(|c| c >= *n as f64 * 0.98)
        })
    })?;
    let totals = statsd.settle(2)?;
    for (q, n) in expected {
        assert_eq!(totals.counter(&counter(q)), n as f64, "{q}: {totals:?}");
        let timed = scaled(&totals, q).ok_or("no timer")?;
        assert!((timed - n as f64).abs() <= n as f64 * 0.02, "{q}: {timed} timed of {n} jobs");
        assert!(totals.timer_count(&timer(q)) <= n, "{q}: {totals:?}");
    }
    assert_eq!(totals.bad_lines(), 0.0, "{totals:?}");
    Ok(())
}

#[test]
fn statsd_worker_counts_1_000_jobs_exactly_on_a_real_statsd() -> TestResult {
    worker_counts_reach_a_real_statsd(1_000)
}

#[test]
fn statsd_worker_counts_50_000_jobs_exactly_on_a_real_statsd() -> TestResult {
    worker_counts_reach_a_real_statsd(50_000)
}

#[test]
fn statsd_worker_counts_1_000_000_jobs_exactly_on_a_real_statsd() -> TestResult {
    worker_counts_reach_a_real_statsd(1_000_000)
}

#[test]
fn statsd_worker_rejects_missing_arguments() -> TestResult {
    let out = Command::new(env!("CARGO_BIN_EXE_statsd-worker")).args(["--count", "3"]).output()?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains("usage: statsd-worker"));
    Ok(())
}

/// Runs `statsd-fork-workers` with `extra` arguments against a UDP socket read from
/// the start, and returns every datagram with its source.
fn fork_workers(
    workers: u64,
    count: u64,
    extra: &[&str],
) -> Result<Vec<(SocketAddr, String)>, Box<dyn std::error::Error>> {
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
    let out = Command::new(env!("CARGO_BIN_EXE_statsd-fork-workers"))
        .args([
            "--statsd",
            &addr.to_string(),
            "--workers",
            &workers.to_string(),
            "--count",
            &count.to_string(),
        ])
        .args(extra)
        .output()?;
    exited.store(true, Ordering::Release);
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    reader.join().map_err(|_| "reader panicked")?;
    Ok(rx.try_iter().collect())
}

#[test]
fn forked_workers_send_through_a_sender_of_their_own() -> TestResult {
    let (workers, count) = (4u64, 500u64);
    let datagrams = fork_workers(workers, count, &[])?;

    let mut lines_by_source: BTreeMap<SocketAddr, BTreeMap<String, u64>> = BTreeMap::new();
    for (from, packet) in datagrams {
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
fn forked_workers_aggregate_their_own_counts_only() -> TestResult {
    let (workers, count) = (4u64, 50_000u64);
    let datagrams = fork_workers(workers, count, &["--aggregation", "per-interval"])?;
    // Sum of each role's counter values, per source socket.
    let mut sums: BTreeMap<SocketAddr, BTreeMap<String, f64>> = BTreeMap::new();
    for (from, packet) in datagrams {
        for line in packet.split('\n') {
            let (name, rest) = line.split_once(':').ok_or("a line without a value")?;
            let (value, tail) = rest.split_once('|').ok_or("a line without a type")?;
            let role = tail.rsplit_once("role:").map_or("", |(_, r)| r);
            assert_eq!(name, "jobs_total", "{line}");
            *sums.entry(from).or_default().entry(role.to_owned()).or_default() += value.parse::<f64>()?;
        }
    }
    // Nothing lost and nothing sent twice: the master's 8 (3 flushed, 5 aggregated
    // while paused at the fork) come from the master alone, although each worker
    // inherited a copy of its slot; each worker sends exactly its own increments.
    let by_role = |role: &str| -> Vec<f64> { sums.values().filter_map(|s| s.get(role).copied()).collect() };
    let master_sources = by_role("master");
    assert_eq!(master_sources.iter().sum::<f64>(), 8.0, "{sums:#?}");
    assert_eq!(by_role("worker"), vec![count as f64; workers as usize], "{sums:#?}");
    assert!(sums.values().all(|s| s.len() == 1), "a socket sent for two roles: {sums:#?}");
    Ok(())
}

/// Sends `count` keep-alive GET requests on one connection, reading each response to
/// the end of its body (the layer records a request when its body ends).
fn get_many(addr: SocketAddr, count: u64, first: u64, step: u64) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let stream = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    // Bounded time: a stuck server fails the test instead of hanging it.
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    for k in 0..count {
        let i = first + k * step;
        let uri = if i.is_multiple_of(3) { "/hello".to_owned() } else { format!("/users/{i}") };
        // One write per request: several small ones would wait on Nagle's algorithm.
        let request = format!("GET {uri} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        writer.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
        let mut length = None;
        let mut status = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the server closed the connection".into());
            }
            if status.is_empty() {
                status = line.clone();
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse::<usize>().ok();
                }
            }
        }
        if !status.starts_with("HTTP/1.1 200") {
            return Err(format!("{uri}: {status}"));
        }
        let mut body = vec![0u8; length.ok_or("a response without Content-Length")?];
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn requests_through_herd_axum_are_mirrored_to_a_real_statsd_exactly() -> TestResult {
    use herd_axum::MetricsHandler;
    use herd_core::Registry;

    let statsd = StatsdServer::start()?;
    let bridge = herd_statsd::StatsdBridge::udp(statsd.addr().to_string()).prefix("web").build()?;
    let registry = Registry::new();
    let options = herd_axum::red::RedOptions::new().exclude_route("/metrics").observer(bridge.observer());
    let layer = herd_axum::MetricsLayer::with_options(&registry, options)?;
    let app = herd_examples::axum_app::app(layer, MetricsHandler::new(&registry));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move { axum::serve(listener, app).await });

    // A burst over loopback TCP: 4 connections at once. Aggregation sends one counter
    // line and at most 64 durations per series and interval, however many there are.
    let (n, connections) = (20_000u64, 4u64);
    let clients: Vec<_> = (0..connections)
        .map(|c| std::thread::spawn(move || get_many(addr, n / connections, c, connections)))
        .collect();
    for client in clients {
        client.join().map_err(|_| "a client panicked")??;
    }
    bridge.flush()?;
    assert_eq!(bridge.stats().dropped_total(), 0, "{:?}", bridge.stats());

    // The StatsD server rewrites `/` to `-` and drops `{}` in metric keys.
    let key = |route: &str| format!("web.http_requests_total;method=GET;route={route};status=200");
    let timer =
        |route: &str| format!("web.http_request_duration_seconds;method=GET;route={route};status=200");
    let hello = n.div_ceil(3);
    let want = [("-hello", hello), ("-users-id", n - hello)];
    statsd.wait_until(Duration::from_secs(20), "every request", |t| {
        want.iter().all(|(route, count)| t.counter(&key(route)) >= *count as f64)
    })?;
    let totals = statsd.settle(2)?;
    for (route, count) in want {
        assert_eq!(totals.counter(&key(route)), count as f64, "{totals:?}");
        let timed = totals.timer_sample_counts.get(&timer(route)).copied().ok_or("no timer")?;
        assert!((timed - count as f64).abs() <= count as f64 * 0.02, "{route}: {timed} of {count}");
        assert!(totals.timer_count(&timer(route)) <= count, "{totals:?}");
    }
    assert_eq!(totals.bad_lines(), 0.0, "{totals:?}");
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

#[test]
fn grpc_calls_through_herd_tonic_are_mirrored_to_a_real_statsd_exactly() -> TestResult {
    use herd_examples::grpc_echo::{grpc_options, scenario, serve};

    let statsd = StatsdServer::start()?;
    let bridge = herd_statsd::StatsdBridge::udp(statsd.addr().to_string()).prefix("rpc").build()?;
    let registry = herd_core::Registry::new();
    let layer =
        herd_tonic::MetricsLayer::with_options(&registry, grpc_options().observer(bridge.observer()))?;
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
