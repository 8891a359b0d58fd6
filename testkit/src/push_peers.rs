//! Receivers of pushed metrics: Debian's Prometheus Pushgateway (1.5.1) and
//! VictoriaMetrics (1.79), each on `127.0.0.1:<free port>` with its own temp dir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{http_get, http_get_timeout};
use crate::process::{
    exit_code, find_binary, kill_and_reap, read_log_tail, start_if_installed, start_logged, Started,
};
use crate::prometheus::{free_loopback_port, query, QueryResult};

/// How long a receiver gets to answer its health check after start.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running receiver: the process, where it listens, its log and temp dir.
#[derive(Debug)]
struct Peer {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
    // Declared last: removed after the process is gone (Drop kills it first).
    _dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

impl Peer {
    /// Starts `binary` with the arguments `args(addr, dir)` gives, and waits until
    /// `GET health` answers 200; retries on new ports when the log says the port was
    /// taken.
    fn start(
        name: &str,
        binary: PathBuf,
        health: &str,
        args: impl Fn(SocketAddr, &std::path::Path) -> Vec<String>,
    ) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("herd-{name}-"))
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for {name}: {e}"))?;
        let log_path = dir.path().join(format!("{name}.log"));
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let addr = free_loopback_port()?;
            let mut command = Command::new(&binary);
            command.args(args(addr, dir.path())).current_dir(dir.path());
            let ready = |child: &mut Child| wait_healthy(name, child, addr, health, &log_path);
            match start_logged(name, &mut command, &log_path, "address already in use", ready)? {
                Started::Ready(child) => return Ok(Self { child, addr, log_path, _dir: dir }),
                Started::PortTaken(e) => last_err = e,
            }
        }
        Err(last_err)
    }

    fn log_tail(&self) -> String {
        read_log_tail(&self.log_path)
    }
}

fn wait_healthy(
    name: &str,
    child: &mut Child,
    addr: SocketAddr,
    path: &str,
    log_path: &std::path::Path,
) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{name} exited during start-up (exit code {}); log tail:\n{}",
                exit_code(status),
                read_log_tail(log_path)
            ));
        }
        let last = match http_get_timeout(addr, path, &[], Duration::from_secs(2)) {
            Ok((200, _, _)) => return Ok(()),
            Ok((status, _, body)) => format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "{name} on {addr} not ready within {READY_TIMEOUT:?} (last: {last}); log tail:\n{}",
                read_log_tail(log_path)
            ));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A real Prometheus Pushgateway (Debian's `prometheus-pushgateway`, 1.5.1), without
/// persistence. Dropping it kills the process and removes its temp dir.
#[derive(Debug)]
pub struct Pushgateway(Peer);

impl Pushgateway {
    /// Starts it and waits (at most 20 s) until `/-/ready` answers 200.
    ///
    /// `$HERD_PUSHGATEWAY` overrides the executable.
    pub fn start() -> Result<Self, String> {
        let binary = find_binary("prometheus-pushgateway", "HERD_PUSHGATEWAY")
            .ok_or("prometheus-pushgateway not found: run scripts/install-test-deps.sh")?;
        Peer::start("pushgateway", binary, "/-/ready", |addr, _| {
            vec![format!("--web.listen-address={addr}"), "--log.level=warn".to_owned()]
        })
        .map(Self)
    }

    /// [`Pushgateway::start`], or `Ok(None)` after [`cannot_run`](crate::cannot_run)
    /// when it is not installed; any other failure to start is an error.
    pub fn start_or_cannot_run() -> Result<Option<Self>, String> {
        start_if_installed("prometheus-pushgateway", "HERD_PUSHGATEWAY", Self::start)
    }

    /// `http://127.0.0.1:<port>`, the base URL pushes go under.
    pub fn url(&self) -> String {
        format!("http://{}", self.0.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// What a scrape of its `/metrics` gets (text 0.0.4).
    pub fn scrape(&self) -> Result<String, String> {
        let (status, _, body) = http_get(self.0.addr, "/metrics", &[])?;
        if status != 200 {
            return Err(format!("pushgateway /metrics answered {status}; log tail:\n{}", self.0.log_tail()));
        }
        String::from_utf8(body).map_err(|e| format!("pushgateway /metrics is not UTF-8: {e}"))
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        self.0.log_tail()
    }
}

/// A real VictoriaMetrics single-node server (Debian's `victoria-metrics`, 1.79),
/// which takes Prometheus remote write on `/api/v1/write` and answers PromQL (MetricsQL)
/// on `/api/v1/query`. Started with `-search.latencyOffset=0s`, so a query sees samples
/// as soon as they are flushed. Dropping it kills the process and removes its data.
#[derive(Debug)]
pub struct VictoriaMetrics(Peer);

impl VictoriaMetrics {
    /// Starts it and waits (at most 20 s) until `/health` answers 200.
    ///
    /// `$HERD_VICTORIA_METRICS` overrides the executable.
    pub fn start() -> Result<Self, String> {
        let binary = find_binary("victoria-metrics", "HERD_VICTORIA_METRICS")
            .ok_or("victoria-metrics not found: run scripts/install-test-deps.sh")?;
        Peer::start("victoria-metrics", binary, "/health", |addr, dir| {
            vec![
                format!("-httpListenAddr={addr}"),
                format!("-storageDataPath={}", dir.join("data").display()),
                "-search.latencyOffset=0s".to_owned(),
                "-loggerLevel=ERROR".to_owned(),
            ]
        })
        .map(Self)
    }

    /// [`VictoriaMetrics::start`], or `Ok(None)` after [`cannot_run`](crate::cannot_run)
    /// when it is not installed; any other failure to start is an error.
    pub fn start_or_cannot_run() -> Result<Option<Self>, String> {
        start_if_installed("victoria-metrics", "HERD_VICTORIA_METRICS", Self::start)
    }

    /// `http://127.0.0.1:<port>/api/v1/write`.
    pub fn remote_write_url(&self) -> String {
        format!("http://{}/api/v1/write", self.0.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Runs an instant query, after asking it to make what it received searchable
    /// (`/internal/force_flush`).
    pub fn query(&self, promql: &str) -> Result<Vec<QueryResult>, String> {
        let _ = http_get(self.0.addr, "/internal/force_flush", &[]);
        query(self.0.addr, promql)
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        self.0.log_tail()
    }
}
