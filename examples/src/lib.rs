//! Shared pieces of herd's example programs.
//!
//! Each binary in `src/bin/` shows one way of using herd; what more than one of them
//! (or their tests) needs lives here.
#![forbid(unsafe_code)]

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

pub mod actix_app;
pub mod axum_app;
pub mod grpc_echo;
pub mod prefork;
pub mod relay;

use std::time::Duration;

use herd_core::http::RedOptions;
use herd_core::{Buckets, Registry};

/// The RED options of the web examples (`axum-basic`, `actix-basic`), the same for both
/// so that their metrics match: every optional metric on, `/metrics` excluded.
pub fn red_options() -> RedOptions {
    RedOptions::new().exclude_route("/metrics").body_sizes(true).time_to_headers(true)
}

/// The parameters of the web examples' `GET /stream?chunks=N&delay_ms=M`: `N` chunks
/// (5 by default, at most 100,000), `M` ms apart (10 by default, at most 1,000).
/// Missing or unparsable values take the default.
pub fn stream_params(query: &str) -> (u64, Duration) {
    let param = |name: &str, default: u64, max: u64| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(default)
            .min(max)
    };
    (param("chunks", 5, 100_000), Duration::from_millis(param("delay_ms", 10, 1000)))
}

/// Label values that a careless encoder would corrupt: quotes, backslashes, a newline,
/// non-ASCII text.
pub const HOSTILE_LABEL_VALUES: [&str; 4] =
    ["say \"hi\"", "C:\\temp\\new", "line one\nline two", "héllo wörld ✓ 日本語"];

/// A registry holding every metric type, labelled and unlabelled, with fixed values, as
/// printed by the `exposition-sample` example.
///
/// # Errors
///
/// A registration or value that herd refuses (none is, with these names and values).
pub fn sample_registry() -> Result<Registry, Box<dyn Error + Send + Sync>> {
    let registry = Registry::new();

    let jobs = registry.counter("sample_jobs_total", "Jobs processed.").register()?;
    jobs.inc_by(42);

    let bytes = registry
        .counter("sample_read_bytes_total", "Bytes read, by source.")
        .unit("bytes")
        .labels(["source"])
        .register()?;
    for (i, source) in HOSTILE_LABEL_VALUES.iter().enumerate() {
        bytes.with_labels([source]).inc_by(1000 * (i as u64 + 1));
    }

    let cpu = registry.counter("sample_cpu_seconds_total", "CPU time used.").unit("seconds").register()?;
    // Fractional increments take the float cell; the total is their exact sum.
    cpu.inc_by_f64(1.25)?;

    let requests = registry
        .counter("sample_http_requests_total", "Requests served, by method, route and status.")
        .labels(["method", "route", "status"])
        .exemplars()
        .register()?;
    requests.with_labels(["GET", "/users/{id}", "200"]).inc_by(7);
    requests.with_labels(["POST", "/echo", "201"]).inc_by(3);
    let _ = requests
        .with_labels(["GET", "/hello", "200"])
        .inc_by_with_exemplar(2, &[("trace_id", "4bf92f3577b34da6")]);

    let temperature =
        registry.gauge("sample_temperature_celsius", "Current temperature.").unit("celsius").register()?;
    temperature.set(-3.5);

    let queue =
        registry.gauge("sample_queue_depth", "Jobs waiting, by queue.").labels(["queue"]).register()?;
    queue.with_labels(["default"]).set(12.0);
    queue.with_labels([HOSTILE_LABEL_VALUES[0]]).set(1e6);

    let latency = registry
        .histogram("sample_request_duration_seconds", "Time to serve a request.")
        .unit("seconds")
        .buckets(Buckets::new([0.005, 0.05, 0.5, 1.0, 5.0])?)
        .labels(["route"])
        .exemplars()
        .register()?;
    for v in [0.001, 0.004, 0.03, 0.2, 0.7, 3.0, 12.0] {
        latency.with_labels(["/users/{id}"]).observe(v);
    }
    let _ = latency.with_labels(["/echo"]).observe_with_exemplar(0.02, &[("trace_id", "00f067aa0ba902b7")]);

    let sizes = registry
        .histogram("sample_payload_size", "Payload sizes.")
        .buckets(Buckets::exponential(64.0, 4.0, 4)?)
        .register()?;
    sizes.observe(100.0);
    sizes.observe(5000.0);

    let tasks =
        registry.summary("sample_task_duration_seconds", "Task durations.").unit("seconds").register()?;
    tasks.observe(0.5);
    tasks.observe(1.5);

    let payloads = registry
        .summary("sample_message_size_bytes", "Message sizes, by topic.")
        .unit("bytes")
        .labels(["topic"])
        .register()?;
    payloads.with_labels([HOSTILE_LABEL_VALUES[3]]).observe(512.0);

    registry.gauge_fn("sample_uptime_ratio", "A callback gauge.", || 0.999)?;
    registry.counter_fn("sample_ticks_total", "A callback counter.", || 1234.0)?;
    Ok(registry)
}

/// The values worker `w` (1-based) of `summary-workers` observes: `w · count` of them,
/// log-uniform over `[10^(2w − 5), 10^(2w − 3))`, so the workers' ranges are disjoint
/// and together span eight orders of magnitude for four workers.
pub fn worker_values(w: u32, count: u32) -> Vec<f64> {
    let n = u64::from(w) * u64::from(count);
    let low = 2.0 * f64::from(w) - 5.0;
    (0..n).map(|i| 10f64.powf(low + 2.0 * i as f64 / n as f64)).collect()
}

/// The latencies worker `w` (1-based) of `native-workers` on host `host` observes:
/// `count` of them, log-normal-like around 40 ms on host 1 and around 400 ms on host 2
/// (a different spread for each worker), rounded to multiples of 2⁻²⁰ s, so that every
/// sum of them is exact in any order. Deterministic: a test recomputes them.
pub fn native_worker_values(host: u32, w: u32, count: u32) -> Vec<f64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (u64::from(host) << 32 | u64::from(w));
    let mut uniform = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // 53 random bits in (0, 1).
        ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let median = if host == 1 { 0.04 } else { 0.4 };
    let spread = 0.5 + 0.25 * f64::from(w);
    (0..count)
        .map(|_| {
            // Box-Muller: a standard normal from two uniforms.
            let normal = (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
            let v = median * (spread * normal).exp();
            (v * 1_048_576.0).round().max(1.0) / 1_048_576.0
        })
        .collect()
}

/// The `main` of the single-server examples (`axum-basic`, `actix-basic`): parses
/// `[--listen ADDR]` (127.0.0.1:3000 by default) and calls `serve` with the address.
/// A bad command line exits 2 with the usage, a failure exits 1 (reported as
/// `NAME: message` on stderr).
pub fn listen_main(name: &str, serve: impl FnOnce(SocketAddr) -> Result<(), Box<dyn Error>>) -> ExitCode {
    let args = match parse_args::<ListenArgs>(2) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match serve(args.listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The command line of the single-server examples.
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct ListenArgs {
    /// Address to listen on (port 0 picks a free one, printed at start)
    #[arg(long, value_name = "127.0.0.1:PORT", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
}

/// Parses an example's command line into `T` with clap. `--help` prints to stdout and
/// gives exit code 0; a bad command line prints clap's message and the usage to stderr
/// and gives `usage_exit` (each example keeps the code it had before clap: 2, or 1
/// for those that reported a bad command line like any other failure).
///
/// # Errors
///
/// The exit code to end with, once the help or the error is printed.
pub fn parse_args<T: clap::Parser>(usage_exit: u8) -> Result<T, ExitCode> {
    T::try_parse().map_err(|e| {
        if !e.use_stderr() {
            // Nothing to do if stdout is closed: the exit code still tells.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // clap shows the usage with some errors only (not with a value that does not
        // parse); a bad command line always gets it here.
        let message = e.render().to_string();
        let usage = if message.contains("Usage:") {
            String::new()
        } else {
            // Named as clap names it while parsing: after the program's file.
            let program = std::env::args_os().next().map(std::path::PathBuf::from);
            let name = program.as_deref().and_then(std::path::Path::file_name);
            let mut command = T::command();
            if let Some(name) = name {
                command = command.bin_name(name.to_string_lossy().into_owned());
            }
            format!("\n{}\n", command.render_usage())
        };
        eprint!("{message}{usage}");
        ExitCode::from(usage_exit)
    })
}
