//! `herd push` as a sidecar over a directory of live workers, into the real remote-write
//! receivers (Prometheus 2.42 with `--web.enable-remote-write-receiver`, and
//! VictoriaMetrics): PromQL returns the exact totals; native histograms into a
//! Prometheus that has them enabled. And its usage and exit codes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use herd_core::{Buckets, GaugeMode, NativeBuckets, Registry};
use herd_mmap::{claim_dir, MmapStorage};
use herd_testkit::{Prometheus, QueryResult, VictoriaMetrics};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const DIR_ENV: &str = "HERD_CLI_PUSH_TEST_DIR";
const WORKER_ENV: &str = "HERD_CLI_PUSH_TEST_WORKER";

/// The body of a worker process that [`Worker::start`] runs: worker `w` adds `100 * w`
/// to `jobs_total{queue="mail"}` and `w` to `{queue="resize"}`, observes 0.05 s `w`
/// times and 0.5 s once, adds `w` to `queue_depth` (summed), says `ready`, and stays
/// alive (its file live) until its stdin closes. Ignored: alone it does nothing.
#[test]
#[ignore = "the body of the worker processes the push tests start, not a test on its own"]
fn push_worker() -> TestResult {
    let (Some(dir), Some(w)) = (std::env::var_os(DIR_ENV), std::env::var_os(WORKER_ENV)) else {
        return Ok(());
    };
    let w: u32 = w.to_string_lossy().parse()?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(Path::new(&dir))?)).build()?;
    let jobs = registry.counter("jobs_total", "Jobs done.").labels(["queue"]).register()?;
    let took = registry
        .histogram("job_duration_seconds", "Time per job.")
        .buckets(Buckets::new([0.1, 1.0])?)
        .register()?;
    let depth =
        registry.gauge("queue_depth", "Jobs waiting.").multiprocess_mode(GaugeMode::Sum).register()?;
    jobs.with_labels(["mail"]).inc_by(u64::from(100 * w));
    jobs.with_labels(["resize"]).inc_by(u64::from(w));
    for _ in 0..w {
        took.observe(0.05);
    }
    took.observe(0.5);
    depth.set(f64::from(w));
    println!("ready");
    std::io::stdout().flush()?;
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
    Ok(())
}

/// A live worker process; it exits when dropped (its stdin closes).
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Worker {
    fn start(dir: &Path, w: u32) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["push_worker", "--exact", "--ignored", "--quiet", "--nocapture"])
            .env(DIR_ENV, dir)
            .env(WORKER_ENV, w.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        while line.trim() != "ready" {
            line.clear();
            if stdout.read_line(&mut line)? == 0 {
                return Err(format!("worker {w} exited before it was ready: {:?}", child.wait()?).into());
            }
        }
        Ok(Self { child, stdin })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// `herd push` running as a sidecar; stopped with SIGTERM (a last push) or killed on
/// drop.
struct Sidecar(Child);

impl Sidecar {
    fn start(dir: &Path, url: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let child = Command::new(env!("CARGO_BIN_EXE_herd"))
            .args(["push", "--sink", "remote-write", "--every", "200ms", "--job", "sidecar"])
            .args(["--grouping", "region=eu west/1", "--to", url, "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        Ok(Self(child))
    }

    /// SIGTERM, then the exit status and stderr.
    fn stop(mut self) -> Result<(Option<i32>, String), Box<dyn std::error::Error + Send + Sync>> {
        Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status()?;
        let mut stderr = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            std::io::Read::read_to_string(&mut e, &mut stderr)?;
        }
        Ok((self.0.wait()?.code(), stderr))
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Three live workers in a fresh directory.
fn live_workers(
    tmp: &Path,
) -> Result<(std::path::PathBuf, Vec<Worker>), Box<dyn std::error::Error + Send + Sync>> {
    let dir = claim_dir(tmp.join("metrics"))?;
    let workers = (1..=3).map(|w| Worker::start(&dir, w)).collect::<Result<Vec<_>, _>>()?;
    Ok((dir, workers))
}

/// The queries and the exact answers: the sums over the three workers.
const EXPECTED: &[(&str, f64)] = &[
    (r#"jobs_total{job="sidecar",region="eu west/1",queue="mail"}"#, 600.0),
    (r#"jobs_total{job="sidecar",region="eu west/1",queue="resize"}"#, 6.0),
    (r#"job_duration_seconds_bucket{job="sidecar",le="0.1"}"#, 6.0),
    (r#"job_duration_seconds_bucket{job="sidecar",le="1.0"}"#, 9.0),
    (r#"job_duration_seconds_bucket{job="sidecar",le="+Inf"}"#, 9.0),
    (r#"job_duration_seconds_count{job="sidecar"}"#, 9.0),
    (r#"queue_depth{job="sidecar"}"#, 6.0),
    (r#"herd_mmap_live_processes{job="sidecar"}"#, 3.0),
    (r#"herd_push_failures_total{job="sidecar",sink="remote_write"}"#, 0.0),
];

/// `Some(())` once every expected query answers one series with its exact value.
fn all_exact(query: impl Fn(&str) -> Result<Vec<QueryResult>, String>) -> Result<Option<()>, String> {
    for (promql, want) in EXPECTED {
        let got = query(promql)?;
        if got.len() != 1 || got[0].value != *want {
            return Ok(None);
        }
    }
    // The sum is a float sum: 6 x 0.05 + 3 x 0.5, as herd's aggregate adds it.
    let sum = query(r#"job_duration_seconds_sum{job="sidecar"}"#)?;
    Ok((sum.len() == 1 && (sum[0].value - 1.8).abs() < 1e-9).then_some(()))
}

fn report(query: impl Fn(&str) -> Result<Vec<QueryResult>, String>) -> String {
    EXPECTED.iter().map(|(q, want)| format!("\n  {q} want {want}, got {:?}", query(q))).collect()
}

#[test]
fn prometheus_2_42_receives_exact_totals_from_a_pushing_sidecar() -> TestResult {
    let receiver = ["--web.enable-remote-write-receiver"];
    let Some(prometheus) = Prometheus::start_or_cannot_run(&[], &receiver)? else { return Ok(()) };
    let tmp = tempfile::tempdir()?;
    let (dir, workers) = live_workers(tmp.path())?;
    let sidecar = Sidecar::start(&dir, &format!("http://{}/api/v1/write", prometheus.addr()))?;
    let exact = prometheus
        .wait_until(Duration::from_secs(30), "exact totals in Prometheus", |p| all_exact(|q| p.query(q)));
    if let Err(e) = exact {
        return Err(format!("{e}{}", report(|q| prometheus.query(q))).into());
    }
    let (code, stderr) = sidecar.stop()?;
    assert_eq!(code, Some(0), "herd push must exit 0 after its last push: {stderr}");
    assert!(!stderr.contains("warn"), "no push failed: {stderr}");
    drop(workers);
    Ok(())
}

#[test]
fn victoria_metrics_receives_the_same_exact_totals() -> TestResult {
    let Some(vm) = VictoriaMetrics::start_or_cannot_run()? else { return Ok(()) };
    let tmp = tempfile::tempdir()?;
    let (dir, workers) = live_workers(tmp.path())?;
    let sidecar = Sidecar::start(&dir, &vm.remote_write_url())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if all_exact(|q| vm.query(q))?.is_some() {
            break;
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!(
                "no exact totals in VictoriaMetrics after 30 s:{}\nlog:\n{}",
                report(|q| vm.query(q)),
                vm.log_tail()
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (code, stderr) = sidecar.stop()?;
    assert_eq!(code, Some(0), "{stderr}");
    drop(workers);
    Ok(())
}

fn herd(args: &[&str]) -> Result<std::process::Output, std::io::Error> {
    Command::new(env!("CARGO_BIN_EXE_herd")).args(args).output()
}

/// `herd push --native-histograms` into a Prometheus 2.42 with native histograms: the
/// histogram arrives as a native one (its count and sum exact, its quantile within the
/// schema's error) beside its classic series.
#[test]
fn prometheus_2_42_receives_native_histograms_pushed_with_their_classic_series() -> TestResult {
    let args = ["--web.enable-remote-write-receiver", "--enable-feature=native-histograms"];
    let Some(prometheus) = Prometheus::start_or_cannot_run(&[], &args)? else { return Ok(()) };
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let latency = registry
        .histogram("rpc_seconds", "RPC time.")
        .buckets(Buckets::new([0.1, 1.0])?)
        .native(NativeBuckets::default())
        .register()?;
    // 1,000 values k/1024 s: every sum is exact; the median is 500/1024.
    for k in 1..=1000u32 {
        latency.observe(f64::from(k) / 1024.0);
    }
    let url = format!("http://{}/api/v1/write", prometheus.addr());
    let dir_arg = dir.to_string_lossy().into_owned();
    let push = ["push", "--sink", "remote-write", "--native-histograms", "--once", "--job", "batch"];
    let out = herd(&[&push[..], &["--to", &url, "--dir", &dir_arg]].concat())?;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    let sum = 1000.0 * 1001.0 / 2.0 / 1024.0;
    let want = [
        ("histogram_count(rpc_seconds{job=\"batch\"})", 1000.0),
        ("histogram_sum(rpc_seconds{job=\"batch\"})", sum),
        ("rpc_seconds_count{job=\"batch\"}", 1000.0),
        ("rpc_seconds_bucket{job=\"batch\",le=\"0.1\"}", 102.0),
    ];
    prometheus.wait_until(Duration::from_secs(30), "the pushed histogram", |p| {
        for (query, value) in want {
            if p.query(query)?.first().map(|r| r.value) != Some(value) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })?;
    let median = prometheus.query("histogram_quantile(0.5, rpc_seconds{job=\"batch\"})")?;
    let median = median.first().map(|r| r.value).ok_or("no median")?;
    let exact = 500.0 / 1024.0;
    let error = NativeBuckets::default().relative_error();
    assert!((median - exact).abs() <= error * exact, "median {median}, exact {exact}");
    Ok(())
}

#[test]
fn push_has_help_and_refuses_bad_usage() -> TestResult {
    for args in [&["push", "--help"][..], &["help", "push"]] {
        let out = herd(args)?;
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Usage: herd push") && stdout.contains("--grouping"), "{stdout}");
    }
    assert!(String::from_utf8_lossy(&herd(&["--help"])?.stdout).contains("push"));

    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let dir = dir.to_string_lossy();
    let to = "http://127.0.0.1:9/api/v1/write";
    for (args, code) in [
        (vec!["push", "--dir", &dir], 2),
        (vec!["push", "--dir", &dir, "--to", to, "--sink", "kafka"], 2),
        (vec!["push", "--dir", &dir, "--to", to, "--every", "soon"], 2),
        (vec!["push", "--dir", &dir, "--to", "https://x/"], 2),
        (vec!["push", "--dir", &dir, "--to", to, "--grouping", "novalue"], 2),
        (vec!["push", "--dir", &dir, "--to", to, "--grouping", "__x=1"], 2),
        (vec!["push", "--dir", &dir, "--to", to, "--native-histograms"], 2),
        (vec!["push", "--dir", "/nonexistent/herd", "--to", to, "--once"], 3),
        // Port 9 (discard) on loopback: nothing answers, the one push fails.
        (vec!["push", "--dir", &dir, "--to", to, "--sink", "remote-write", "--once"], 1),
    ] {
        let out = herd(&args)?;
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
