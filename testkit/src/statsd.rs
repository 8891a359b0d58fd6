//! A real StatsD server: Etsy statsd (npm `statsd@0.9.0`), with a backend that
//! keeps running totals of every flush.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{exit_code, find_binary, kill_and_reap, read_log_tail, start_logged, Started};

/// The backend script shipped with this crate.
pub const STATSD_BACKEND_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/statsd-backend.js");

/// The statsd installed by `scripts/install-test-deps.sh`.
const DEFAULT_STATSD: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../.test-deps/node/node_modules/statsd/stats.js");

/// statsd's flush interval: short, so that totals appear quickly.
pub const STATSD_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How long [`StatsdServer::start`] waits for its probe line to come back.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The counter [`StatsdServer::start`] sends to learn that the server is up.
pub const STATSD_PROBE_KEY: &str = "herd_testkit.probe";

/// Running totals over every flush statsd made, as its backend wrote them.
///
/// Keys are statsd's: a DogStatsD line `name:1|c|#k:v` is counted under
/// `name;k=v`, after statsd's key sanitizing (whitespace to `_`, `/` to `-`, anything
/// outside `[A-Za-z0-9_.;=-]` removed). statsd's own counters are
/// `statsd.packets_received`, `statsd.metrics_received` and `statsd.bad_lines_seen`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsdTotals {
    /// Flushes so far.
    pub flushes: u64,
    /// Counter totals, sample rate applied (`1|c|@0.5` adds 2).
    pub counters: BTreeMap<String, f64>,
    /// Timer values received, counted one by one.
    pub timer_counts: BTreeMap<String, u64>,
    /// Timer counts with the sample rate applied.
    pub timer_sample_counts: BTreeMap<String, f64>,
    /// Sums of timer values.
    pub timer_sums: BTreeMap<String, f64>,
    /// Last gauge values.
    pub gauges: BTreeMap<String, f64>,
}

impl StatsdTotals {
    /// The total of counter `key`, 0 if never seen.
    pub fn counter(&self, key: &str) -> f64 {
        self.counters.get(key).copied().unwrap_or(0.0)
    }

    /// The number of values timer `key` received, 0 if never seen.
    pub fn timer_count(&self, key: &str) -> u64 {
        self.timer_counts.get(key).copied().unwrap_or(0)
    }

    /// Lines statsd could not parse.
    pub fn bad_lines(&self) -> f64 {
        self.counter("statsd.bad_lines_seen")
    }

    /// Lines statsd received (the readiness probes included).
    pub fn metrics_received(&self) -> f64 {
        self.counter("statsd.metrics_received")
    }

    fn from_json(v: &Value) -> Result<Self, String> {
        let floats = |key: &str| -> Result<BTreeMap<String, f64>, String> {
            v.get(key)
                .and_then(Value::as_object)
                .ok_or_else(|| format!("statsd totals without {key}: {v}"))?
                .iter()
                .map(|(k, n)| {
                    n.as_f64().map(|n| (k.clone(), n)).ok_or_else(|| format!("{key}.{k} is not a number"))
                })
                .collect()
        };
        let timer_counts =
            floats("timer_counts")?.into_iter().map(|(k, n)| (k, n as u64)).collect::<BTreeMap<_, _>>();
        Ok(Self {
            flushes: v.get("flushes").and_then(Value::as_u64).ok_or("statsd totals without flushes")?,
            counters: floats("counters")?,
            timer_counts,
            timer_sample_counts: floats("timer_sample_counts")?,
            timer_sums: floats("timer_sums")?,
            gauges: floats("gauges")?,
        })
    }
}

/// An Etsy statsd process on `127.0.0.1:<free UDP port>`, flushing every 100 ms to a
/// backend that keeps running totals ([`StatsdServer::totals`]).
///
/// `node` is `$HERD_NODE` or found on the path; statsd's `stats.js` is
/// `$HERD_STATSD` or the one `scripts/install-test-deps.sh` installed under
/// `.test-deps/`. Its log goes to `statsd.log` in its temp dir, whose tail errors
/// include. Dropping it kills the process and removes the temp dir.
///
/// ```no_run
/// use std::time::Duration;
/// let statsd = herd_testkit::StatsdServer::start()?;
/// let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
/// socket.send_to(b"jobs:3|c|#queue:emails", statsd.addr()).map_err(|e| e.to_string())?;
/// let totals = statsd.wait_until(Duration::from_secs(10), "jobs", |t| t.counter("jobs;queue=emails") >= 3.0)?;
/// assert_eq!(totals.bad_lines(), 0.0);
/// # Ok::<(), String>(())
/// ```
#[derive(Debug)]
pub struct StatsdServer {
    child: Child,
    addr: SocketAddr,
    output: PathBuf,
    log_path: PathBuf,
    // Declared last: removed after the process is gone (Drop kills it first).
    dir: tempfile::TempDir,
}

impl StatsdServer {
    /// Starts statsd and waits (at most 20 s) until a probe counter sent to it
    /// appears in a flush.
    pub fn start() -> Result<StatsdServer, String> {
        let node =
            find_binary("node", "HERD_NODE").ok_or("node not found: run scripts/install-test-deps.sh")?;
        let stats_js =
            std::env::var_os("HERD_STATSD").map_or_else(|| PathBuf::from(DEFAULT_STATSD), PathBuf::from);
        if !stats_js.is_file() {
            return Err(format!("{} not found: run scripts/install-test-deps.sh", stats_js.display()));
        }
        let dir = tempfile::Builder::new()
            .prefix("herd-statsd-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for statsd: {e}"))?;
        let output = dir.path().join("totals.json");
        let log_path = dir.path().join("statsd.log");
        let config_path = dir.path().join("config.js");

        let mut last_err = String::new();
        // Free ports are found by binding and releasing them, so another process may
        // take one first: retry a few times.
        for _attempt in 0..3 {
            let port = free_udp_port()?;
            let mgmt_port = free_tcp_port()?;
            let config = serde_json::json!({
                "port": port,
                "address": "127.0.0.1",
                "mgmt_port": mgmt_port,
                "mgmt_address": "127.0.0.1",
                "flushInterval": STATSD_FLUSH_INTERVAL.as_millis() as u64,
                "backends": [STATSD_BACKEND_SCRIPT],
                "herdOutput": output.to_string_lossy(),
                "automaticConfigReload": false,
            });
            std::fs::write(&config_path, config.to_string())
                .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
            let mut command = Command::new(&node);
            command.arg(&stats_js).arg(&config_path).current_dir(dir.path());
            let what = format!("{} {}", node.display(), stats_js.display());
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let ready = |child: &mut Child| wait_ready(child, addr, &output, &log_path);
            match start_logged(&what, &mut command, &log_path, "EADDRINUSE", ready)? {
                Started::Ready(child) => return Ok(StatsdServer { child, addr, output, log_path, dir }),
                Started::PortTaken(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    /// The UDP address statsd listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The temp dir holding the config, the log and the totals.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last lines of statsd's log.
    pub fn log_tail(&self) -> String {
        read_log_tail(&self.log_path)
    }

    /// The totals after the latest flush.
    pub fn totals(&self) -> Result<StatsdTotals, String> {
        read_totals(&self.output).map(Option::unwrap_or_default)
    }

    /// Reads the totals after every flush until `done` holds (returned), or until
    /// `timeout` passes (an error naming `what`, with the last totals and the log).
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&StatsdTotals) -> bool,
    ) -> Result<StatsdTotals, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let totals = self.totals()?;
            if done(&totals) {
                return Ok(totals);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {what}; last totals: {totals:?}\nstatsd log tail:\n{}",
                    self.log_tail()
                ));
            }
            thread::sleep(STATSD_FLUSH_INTERVAL / 2);
        }
    }

    /// Waits for `flushes` more flushes and returns the totals: whatever was in
    /// flight has then been counted, so a total that has reached its expected value
    /// can be checked for not going past it.
    pub fn settle(&self, flushes: u64) -> Result<StatsdTotals, String> {
        let start = self.totals()?.flushes;
        self.wait_until(Duration::from_secs(10), "statsd to flush", |t| t.flushes >= start + flushes)
    }
}

impl Drop for StatsdServer {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

fn read_totals(path: &Path) -> Result<Option<StatsdTotals>, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
                format!("{} is not JSON ({e}): {}", path.display(), String::from_utf8_lossy(&bytes))
            })?;
            StatsdTotals::from_json(&v).map(Some)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

fn wait_ready(child: &mut Child, addr: SocketAddr, output: &Path, log_path: &Path) -> Result<(), String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a probe socket: {e}"))?;
    let probe = format!("{STATSD_PROBE_KEY}:1|c");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "statsd exited during start-up (code {}); log tail:\n{}",
                exit_code(status),
                read_log_tail(log_path)
            ));
        }
        if read_totals(output)?.is_some_and(|t| t.counter(STATSD_PROBE_KEY) > 0.0) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "statsd did not count a probe within {READY_TIMEOUT:?}; log tail:\n{}",
                read_log_tail(log_path)
            ));
        }
        // Lost while statsd was not yet listening: sent again until one is counted.
        let _ = socket.send_to(probe.as_bytes(), addr);
        thread::sleep(Duration::from_millis(50));
    }
}

fn free_udp_port() -> Result<u16, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free UDP port: {e}"))?;
    socket.local_addr().map(|a| a.port()).map_err(|e| format!("cannot find a free UDP port: {e}"))
}

fn free_tcp_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot find a free TCP port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| format!("cannot find a free TCP port: {e}"))
}
