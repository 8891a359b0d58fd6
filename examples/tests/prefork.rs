//! The pre-fork demo end to end: a real Prometheus scrapes `prefork-demo --workers 4`
//! every second while the test drives a known number of requests to each route and
//! SIGKILLs a worker in the middle; Prometheus then holds exactly those numbers, with
//! no counter reset. Also: the demo's `--self-test`, its `/metrics` through promtool,
//! and a graceful stop on SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use herd_examples::prefork::request;
use herd_testkit::{http_get, promtool_check, Prometheus, ScrapeJob};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
mod demo;
use demo::Demo;

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Requests per route in each of the two phases (before and after the SIGKILL).
const PLAN: [(&str, &str, &str, u64); 4] = [
    ("GET", "/hello", "/hello", 40),
    ("GET", "/users/7", "/users/{id}", 30),
    ("POST", "/echo", "/echo", 20),
    ("GET", "/stream?chunks=3&delay_ms=1", "/stream", 10),
];

fn drive(addr: SocketAddr) -> AnyResult<()> {
    for (method, path, _, n) in PLAN {
        for _ in 0..n {
            let reply = request(addr, method, path, b"ping")?;
            assert_eq!(reply.status, 200, "{method} {path}");
        }
    }
    Ok(())
}

fn pid_of(line: &str) -> AnyResult<i32> {
    Ok(line.rsplit(' ').next().ok_or("no pid")?.parse()?)
}

#[test]
fn prometheus_sees_exact_totals_across_workers_and_no_reset_when_one_is_killed() -> TestResult {
    prometheus_end_to_end("axum")
}

#[test]
fn prometheus_end_to_end_with_actix_workers() -> TestResult {
    prometheus_end_to_end("actix")
}

fn prometheus_end_to_end(framework: &str) -> TestResult {
    let demo = Demo::start("4", &["--framework", framework])?;
    let first = pid_of(&demo.wait_line("worker 1 started", Duration::from_secs(10))?)?;
    let prometheus = Prometheus::start(&[ScrapeJob::new("prefork", demo.addr)])?;
    prometheus.wait_for_targets_up(Duration::from_secs(30))?;

    drive(demo.addr)?;
    // Let Prometheus record the first phase before a worker dies with part of it.
    let half: f64 = PLAN.iter().map(|p| p.3 as f64).sum();
    prometheus.wait_until(Duration::from_secs(20), "the first phase scraped", |p| {
        let sum = p.query("sum(http_requests_total)")?.first().map_or(0.0, |r| r.value);
        Ok((sum == half).then_some(()))
    })?;

    let victim = rustix::process::Pid::from_raw(first).ok_or("bad pid")?;
    rustix::process::kill_process(victim, rustix::process::Signal::KILL)?;
    demo.wait_line(&format!("(pid {first}) was killed by signal"), Duration::from_secs(10))?;
    drive(demo.addr)?;

    let expected: BTreeMap<String, f64> =
        PLAN.iter().map(|(_, _, route, n)| ((*route).to_owned(), 2.0 * *n as f64)).collect();
    let by_route = prometheus.wait_until(Duration::from_secs(30), "every request scraped", |p| {
        let got: BTreeMap<String, f64> = p
            .query("sum by (route) (http_requests_total)")?
            .into_iter()
            .map(|r| (r.metric.get("route").cloned().unwrap_or_default(), r.value))
            .collect();
        Ok((got == expected).then_some(got))
    })?;
    assert_eq!(by_route, expected);

    let targets = prometheus.targets()?;
    assert!(targets.iter().all(|t| t.health == "up"), "{targets:?}");
    let resets = prometheus.query("resets(http_requests_total[10m])")?;
    assert!(!resets.is_empty());
    assert!(resets.iter().all(|r| r.value == 0.0), "a counter went down: {resets:?}");
    let live = prometheus.query("herd_mmap_live_processes")?;
    // Four workers and the master, which holds its own (empty) file.
    assert_eq!(live.first().map(|r| r.value), Some(5.0), "{live:?}");
    Ok(())
}

#[test]
fn the_demos_metrics_pass_promtool_and_sigterm_stops_every_worker() -> TestResult {
    for framework in ["axum", "actix"] {
        promtool_and_sigterm(framework)?;
    }
    Ok(())
}

fn promtool_and_sigterm(framework: &str) -> TestResult {
    let mut demo = Demo::start("2", &["--framework", framework])?;
    let pids = [
        pid_of(&demo.wait_line("worker 1 started", Duration::from_secs(10))?)?,
        pid_of(&demo.wait_line("worker 2 started", Duration::from_secs(10))?)?,
    ];
    drive(demo.addr)?;
    let (status, _, body) = http_get(demo.addr, "/metrics", &[])?;
    assert_eq!(status, 200);
    promtool_check(&body)?;
    let text = String::from_utf8(body)?;
    assert!(text.contains("http_requests_total{method=\"GET\",route=\"/hello\",status=\"200\"}"), "{text}");
    assert!(!text.contains("route=\"/metrics\""), "/metrics is not counted:\n{text}");

    let master = rustix::process::Pid::from_raw(demo.child.id() as i32).ok_or("bad pid")?;
    rustix::process::kill_process(master, rustix::process::Signal::TERM)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = demo.child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            return Err("the demo did not stop on SIGTERM".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "worker {pid} outlived the master");
    }
    Ok(())
}

#[test]
fn the_self_test_counts_every_request_exactly() -> TestResult {
    for framework in ["axum", "actix"] {
        let dir = tempfile::tempdir()?;
        let out = Command::new(env!("CARGO_BIN_EXE_prefork-demo"))
            .args([
                "--workers",
                "3",
                "--listen",
                "127.0.0.1:0",
                "--self-test",
                "600",
                "--framework",
                framework,
            ])
            .arg("--dir")
            .arg(dir.path().join("metrics"))
            .output()?;
        let stdout = String::from_utf8(out.stdout)?;
        assert!(out.status.success(), "{framework}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(&format!("with 3 {framework} workers")), "{stdout}");
        assert!(stdout.contains("self-test: sent 600 requests in"), "{stdout}");
        assert!(stdout.lines().any(|l| l == "self-test: ok"), "{stdout}");
    }
    Ok(())
}

/// `--aggregate one` (the default): every worker's scrape is answered by worker 0's
/// aggregator through the relay socket, negotiated as herd's handler negotiates, and
/// the scrapes go on, exact, while worker 0 is killed and restarted.
#[test]
fn relayed_scrapes_negotiate_and_survive_the_designated_worker() -> TestResult {
    for framework in ["axum", "actix"] {
        let demo = Demo::start("3", &["--framework", framework])?;
        let designated = pid_of(&demo.wait_line("worker 1 started", Duration::from_secs(10))?)?;
        demo.wait_line("worker 3 started", Duration::from_secs(10))?;
        drive(demo.addr)?;
        let expected: BTreeMap<String, f64> =
            PLAN.iter().map(|(_, _, route, n)| ((*route).to_owned(), *n as f64)).collect();
        let om = [("Accept", "application/openmetrics-text; version=1.0.0")];
        for _ in 0..12 {
            let (status, headers, body) = http_get(demo.addr, "/metrics", &om)?;
            assert_eq!(status, 200, "{framework}");
            let header = |name: &str| {
                headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
            };
            assert_eq!(
                header("content-type"),
                Some(herd_core::Format::OpenMetrics.content_type()),
                "{framework}"
            );
            assert_eq!(header("vary"), Some("Accept, Accept-Encoding"), "{framework}");
            let text = String::from_utf8(body)?;
            assert!(text.ends_with("# EOF\n"), "{framework}: {text}");
        }
        assert!(demo.metrics_dir().join(herd_examples::relay::RELAY_SOCKET).exists());

        let victim = rustix::process::Pid::from_raw(designated).ok_or("bad pid")?;
        rustix::process::kill_process(victim, rustix::process::Signal::KILL)?;
        // Until worker 0 is back, each worker answers from an aggregator of its own.
        for _ in 0..12 {
            let (status, _, body) = http_get(demo.addr, "/metrics", &[])?;
            assert_eq!(status, 200, "{framework}");
            let got = herd_examples::prefork::requests_by_route(&String::from_utf8(body)?);
            assert_eq!(got, expected, "{framework}");
        }
        demo.wait_line("worker 1 restarted", Duration::from_secs(20))?;
        for _ in 0..6 {
            let (status, _, body) = http_get(demo.addr, "/metrics", &[])?;
            assert_eq!(status, 200, "{framework}");
            assert_eq!(herd_examples::prefork::requests_by_route(&String::from_utf8(body)?), expected);
        }
    }
    Ok(())
}

/// `--aggregate each`: every worker aggregates on its own, as before the relay.
#[test]
fn the_self_test_passes_with_an_aggregator_in_each_worker() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_prefork-demo"))
        .args(["--workers", "3", "--listen", "127.0.0.1:0", "--self-test", "400", "--aggregate", "each"])
        .arg("--dir")
        .arg(dir.path().join("metrics"))
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l == "self-test: ok"), "{stdout}");
    assert!(!dir.path().join("metrics").join(herd_examples::relay::RELAY_SOCKET).exists());
    Ok(())
}

#[test]
fn bad_arguments_are_refused_with_usage() -> TestResult {
    for args in
        [&["--workers", "0"][..], &["--framework", "rocket"], &["--listen", "nowhere"], &["--bogus", "1"]]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_prefork-demo")).args(args).output()?;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).to_lowercase().contains("usage: prefork-demo"),
            "{args:?}"
        );
    }
    Ok(())
}
