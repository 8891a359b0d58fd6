//! A real Prometheus server (Debian's 2.42 in CI) scraping test targets.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http::{http_get, http_get_timeout, url_encode};
use crate::process::{
    exit_code, find_binary, kill_and_reap, read_log_tail, run_with_input, start_if_installed, start_logged,
    RunError, Started,
};
use crate::promtool::{promtool_path, PROMTOOL_MISSING, PROMTOOL_TIMEOUT};
use crate::python::parse_float;

/// How long [`Prometheus::start`] waits for `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Poll interval of [`Prometheus::wait_until`].
const WAIT_POLL: Duration = Duration::from_millis(250);

/// One scrape job: Prometheus scrapes `http://<target><metrics_path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeJob {
    /// `job_name` (also the `job` label of the scraped series).
    pub name: String,
    /// Address of the exporter, usually [`crate::TestServer::addr`].
    pub target: SocketAddr,
    /// Path to scrape, such as `/metrics`.
    pub metrics_path: String,
}

impl ScrapeJob {
    /// A job scraping `/metrics` on `target`.
    pub fn new(name: &str, target: SocketAddr) -> ScrapeJob {
        ScrapeJob { name: name.to_owned(), target, metrics_path: "/metrics".to_owned() }
    }
}

/// One series of an instant-query result.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// Labels of the series, including `__name__` when the query keeps it.
    pub metric: BTreeMap<String, String>,
    /// Sample value (`NaN`, `+Inf`, `-Inf` included).
    pub value: f64,
}

/// Scrape status of one target, from `/api/v1/targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    /// The target's `job` label.
    pub job: String,
    /// URL Prometheus scrapes.
    pub scrape_url: String,
    /// `up`, `down` or `unknown` (not scraped yet).
    pub health: String,
    /// Error of the last scrape (empty when it succeeded).
    pub last_error: String,
}

/// A Prometheus process on `127.0.0.1:<free port>` with its own temp dir.
///
/// Configuration: `scrape_interval: 1s`, `scrape_timeout: 1s`, one static
/// target per [`ScrapeJob`]. Its log (stdout and stderr, `--log.level=warn`)
/// goes to `prometheus.log` in the temp dir; its tail is included in errors.
/// Dropping it kills the process and removes the temp dir.
///
/// Timing: Prometheus 2.x publishes discovered targets to the scrape manager
/// only every 5 s, so `/api/v1/targets` is empty for about 5 s after start
/// and the first scrape lands at about 5–6 s. Use timeouts of 10 s or more
/// for the first [`Prometheus::wait_for_targets_up`].
///
/// ```no_run
/// use std::time::Duration;
/// use herd_testkit::{Prometheus, Response, ScrapeJob, TestServer, TEXT_CONTENT_TYPE};
/// let server = TestServer::start(|_| Response::ok(TEXT_CONTENT_TYPE, "x 1\n"))?;
/// let prom = Prometheus::start(&[ScrapeJob::new("demo", server.addr())])?;
/// prom.wait_for_targets_up(Duration::from_secs(15))?;
/// assert_eq!(prom.query("x")?[0].value, 1.0);
/// # Ok::<(), String>(())
/// ```
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
    config_path: PathBuf,
    // Declared last: removed after the process is gone (Drop kills it first).
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Writes the config, checks it with `promtool check config`, starts
    /// Prometheus and waits (at most 20 s) until `/-/ready` answers 200.
    pub fn start(jobs: &[ScrapeJob]) -> Result<Prometheus, String> {
        Prometheus::start_with_args(jobs, &[])
    }

    /// Like [`Prometheus::start`] with extra command-line arguments, such as
    /// `--enable-feature=exemplar-storage`.
    pub fn start_with_args(jobs: &[ScrapeJob], extra_args: &[&str]) -> Result<Prometheus, String> {
        let binary = find_binary("prometheus", "HERD_PROMETHEUS")
            .ok_or("prometheus not found: run scripts/install-test-deps.sh")?;
        let dir = tempfile::Builder::new()
            .prefix("herd-prometheus-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for Prometheus: {e}"))?;
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config_yaml(jobs))
            .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
        check_config(&config_path)?;

        let log_path = dir.path().join("prometheus.log");
        let mut last_err = String::new();
        // The free port is found by binding and releasing it, so another
        // process may grab it first: retry a few times on "address in use".
        for _attempt in 0..3 {
            let addr = free_loopback_port()?;
            let mut command = Command::new(&binary);
            command
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
                .arg(format!("--web.listen-address={addr}"))
                .arg("--log.level=warn")
                .args(extra_args)
                .current_dir(dir.path());
            let what = binary.display().to_string();
            let ready = |child: &mut Child| wait_ready(child, addr, &log_path);
            match start_logged(&what, &mut command, &log_path, "address already in use", ready)? {
                Started::Ready(child) => return Ok(Prometheus { child, addr, log_path, config_path, dir }),
                Started::PortTaken(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// [`Prometheus::start_with_args`], or `Ok(None)` after [`cannot_run`](crate::cannot_run)
    /// when no Prometheus is installed (which fails the test under
    /// `HERD_REQUIRE_PEERS`); any other failure to start is an error.
    pub fn start_or_cannot_run(
        jobs: &[ScrapeJob],
        extra_args: &[&str],
    ) -> Result<Option<Prometheus>, String> {
        start_if_installed("prometheus", "HERD_PROMETHEUS", || Prometheus::start_with_args(jobs, extra_args))
    }

    /// Address of the Prometheus web API.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temp dir holding the config, the log and the TSDB.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Path of the generated `prometheus.yml`.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The last 30 lines of Prometheus's log.
    pub fn log_tail(&self) -> String {
        read_log_tail(&self.log_path)
    }

    fn api_get(&self, path: &str) -> Result<Value, String> {
        api_get(self.addr, path)
    }

    /// Runs an instant query (`/api/v1/query`) at the current time.
    ///
    /// A vector result gives one entry per series; a scalar gives one entry
    /// with no labels. Other result types are an error.
    pub fn query(&self, promql: &str) -> Result<Vec<QueryResult>, String> {
        query(self.addr, promql)
    }

    /// Active targets and their scrape health (`/api/v1/targets?state=active`).
    pub fn targets(&self) -> Result<Vec<TargetHealth>, String> {
        let data = self.api_get("/api/v1/targets?state=active")?;
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        data.get("activeTargets")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("targets response without activeTargets: {data}"))?
            .iter()
            .map(|t| {
                let job = t
                    .get("labels")
                    .and_then(|l| l.get("job"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| text(t, "scrapePool"));
                Ok(TargetHealth {
                    job,
                    scrape_url: text(t, "scrapeUrl"),
                    health: text(t, "health"),
                    last_error: text(t, "lastError"),
                })
            })
            .collect()
    }

    /// Metadata Prometheus parsed from the targets for `metric`
    /// (`/api/v1/targets/metadata?metric=`): the `data` array, whose entries
    /// hold `target`, `type`, `help` and `unit`.
    pub fn metadata(&self, metric: &str) -> Result<Value, String> {
        self.api_get(&format!("/api/v1/targets/metadata?metric={}", url_encode(metric)))
    }

    /// Calls `f` every 250 ms until it returns `Ok(Some(_))` (returned) or
    /// `Err` (returned at once), or until `timeout` passes (an error naming
    /// `what`, with the tail of Prometheus's log).
    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&Prometheus) -> Result<Option<T>, String>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = f(self)? {
                return Ok(t);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}; prometheus log tail:\n{}",
                    self.log_tail()
                ));
            }
            thread::sleep(WAIT_POLL);
        }
    }

    /// Waits until there is at least one target and every target is `up`.
    /// On timeout the error lists each target's health and last error.
    pub fn wait_for_targets_up(&self, timeout: Duration) -> Result<(), String> {
        let mut last = Vec::new();
        let outcome = self.wait_until(timeout, "all targets up", |p| {
            last = p.targets()?;
            Ok((!last.is_empty() && last.iter().all(|t| t.health == "up")).then_some(()))
        });
        outcome.map_err(|e| {
            let mut report = String::from("targets not all up:");
            if last.is_empty() {
                report.push_str(" (no active targets)");
            }
            for t in &last {
                report.push_str(&format!(
                    "\n  job={} url={} health={} last_error={:?}",
                    t.job, t.scrape_url, t.health, t.last_error
                ));
            }
            format!("{report}\n{e}")
        })
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // SIGKILL: the TSDB is throw-away. Then the temp dir is removed.
        kill_and_reap(&mut self.child);
    }
}

/// `GET path` from a Prometheus-compatible HTTP API at `addr`: its `data` on success.
pub(crate) fn api_get(addr: SocketAddr, path: &str) -> Result<Value, String> {
    let (status, _, body) = http_get(addr, path, &[])?;
    let json: Value = serde_json::from_slice(&body).map_err(|e| {
        format!("GET {path}: HTTP {status}, body is not JSON ({e}): {}", String::from_utf8_lossy(&body))
    })?;
    if json.get("status").and_then(Value::as_str) != Some("success") {
        return Err(format!(
            "GET {path}: HTTP {status}: {}: {}",
            json.get("errorType").and_then(Value::as_str).unwrap_or("?"),
            json.get("error").and_then(Value::as_str).unwrap_or("?"),
        ));
    }
    json.get("data").cloned().ok_or_else(|| format!("GET {path}: response without data: {json}"))
}

/// An instant query against the Prometheus-compatible API at `addr` (Prometheus
/// itself, VictoriaMetrics).
pub(crate) fn query(addr: SocketAddr, promql: &str) -> Result<Vec<QueryResult>, String> {
    let data = api_get(addr, &format!("/api/v1/query?query={}", url_encode(promql)))?;
    let ctx = |e: String| format!("query {promql:?}: {e}");
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => data
            .get("result")
            .and_then(Value::as_array)
            .ok_or_else(|| ctx(format!("vector without result list: {data}")))?
            .iter()
            .map(|series| {
                let metric = series
                    .get("metric")
                    .and_then(Value::as_object)
                    .ok_or_else(|| format!("series without metric: {series}"))?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let value = sample_value(series.get("value"))?;
                Ok(QueryResult { metric, value })
            })
            .collect::<Result<_, String>>()
            .map_err(ctx),
        Some("scalar") => Ok(vec![QueryResult {
            metric: BTreeMap::new(),
            value: sample_value(data.get("result")).map_err(ctx)?,
        }]),
        other => Err(ctx(format!("unsupported result type {other:?}: {data}"))),
    }
}

/// Polls `/-/ready` until it answers 200, the process exits or
/// [`READY_TIMEOUT`] passes.
fn wait_ready(child: &mut Child, addr: SocketAddr, log_path: &Path) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "prometheus exited during start-up (exit code {}); log tail:\n{}",
                exit_code(status),
                read_log_tail(log_path)
            ));
        }
        let last = match http_get_timeout(addr, "/-/ready", &[], Duration::from_secs(2)) {
            Ok((200, _, _)) => return Ok(()),
            Ok((status, _, body)) => {
                format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim())
            }
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "prometheus on {addr} not ready within {READY_TIMEOUT:?} (last: {last}); log tail:\n{}",
                read_log_tail(log_path)
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// `[ts, "value"]` → value.
fn sample_value(v: Option<&Value>) -> Result<f64, String> {
    let pair =
        v.and_then(Value::as_array).ok_or_else(|| format!("expected [timestamp, value], got {v:?}"))?;
    match pair.get(1) {
        Some(Value::String(s)) => parse_float(s),
        other => Err(format!("expected a string value, got {other:?}")),
    }
}

pub(crate) fn free_loopback_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn yaml_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn config_yaml(jobs: &[ScrapeJob]) -> String {
    let mut yaml = String::from(
        "# Generated by herd-testkit.\n\
         global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
         scrape_configs:\n",
    );
    if jobs.is_empty() {
        yaml.push_str("  []\n");
    }
    for job in jobs {
        yaml.push_str(&format!(
            "  - job_name: {}\n    metrics_path: {}\n    static_configs:\n      - targets: [{}]\n",
            yaml_str(&job.name),
            yaml_str(&job.metrics_path),
            yaml_str(&job.target.to_string()),
        ));
    }
    yaml
}

fn check_config(path: &Path) -> Result<(), String> {
    let promtool = promtool_path()?;
    let mut cmd = Command::new(&promtool);
    cmd.args(["check", "config"]).arg(path);
    let out = match run_with_input(&mut cmd, b"", PROMTOOL_TIMEOUT, "promtool check config") {
        Ok(out) => out,
        Err(RunError::NotFound) => return Err(PROMTOOL_MISSING.to_owned()),
        Err(RunError::Other(e)) => return Err(e),
    };
    if out.status.success() {
        return Ok(());
    }
    let config = std::fs::read_to_string(path).unwrap_or_default();
    Err(format!(
        "promtool check config failed (exit code {}):\n{}\nconfig:\n{config}",
        out.code(),
        out.combined().trim_end()
    ))
}
