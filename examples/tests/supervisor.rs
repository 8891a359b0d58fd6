//! herd-prefork's supervisor with real processes: the README program
//! (`readme-service`), its socket activation, masterless `SO_REUSEPORT` processes
//! (`reuseport-service`) and misbehaving workers (`prefork-probe`). Every `/metrics`
//! total is compared exactly with the requests sent.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use herd_examples::prefork::{request, requests_by_route};
use rustix::process::{kill_process, Pid, Signal};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A process under test: killed (with whatever it started) when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen_workers: BTreeSet<i32>,
}

impl Proc {
    fn spawn(command: &mut Command) -> AnyResult<Self> {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                println!("child: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines, seen_workers: BTreeSet::new() })
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The master's live children, waiting (bounded) until there are `n`.
    fn workers(&mut self, n: usize) -> AnyResult<Vec<i32>> {
        let pid = self.pid();
        let workers = wait_until(Duration::from_secs(20), &format!("{n} workers"), || {
            let kids = children(pid);
            Ok((kids.len() == n).then_some(kids))
        })?;
        self.seen_workers.extend(&workers);
        Ok(workers)
    }

    /// The next line containing `needle`, within `timeout`.
    fn wait_line(&self, needle: &str, timeout: Duration) -> AnyResult<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(_) => return Err(format!("no line with {needle:?}").into()),
            }
        }
    }

    fn signal(&self, signal: Signal) -> AnyResult<()> {
        kill_process(Pid::from_raw(self.pid()).ok_or("bad pid")?, signal)?;
        Ok(())
    }

    fn wait_exit(&mut self, timeout: Duration) -> AnyResult<ExitStatus> {
        let child = &mut self.child;
        wait_until(timeout, "the process to exit", || Ok(child.try_wait()?))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in &self.seen_workers {
            if let Some(pid) = Pid::from_raw(*pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
    }
}

/// `f` until it returns `Some`, every 20 ms, for at most `timeout`.
fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> AnyResult<Option<T>>) -> AnyResult<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f()? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pids of `pid`'s children (`/proc/PID/task/PID/children`; the master has one
/// thread), leaving out zombies.
fn children(pid: i32) -> Vec<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    text.split_whitespace().filter_map(|p| p.parse().ok()).filter(|p| alive(*p)).collect()
}

/// Whether `pid` runs (exists and is not a zombie waiting for its parent).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

fn free_port() -> AnyResult<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn wait_serving(addr: SocketAddr) -> AnyResult<()> {
    wait_until(Duration::from_secs(20), &format!("{addr} to accept"), || {
        Ok(TcpStream::connect(addr).is_ok().then_some(()))
    })
}

/// Sends `n` requests to `/users/{i}`, each answered 200.
fn drive(addr: SocketAddr, n: u64) -> AnyResult<()> {
    for i in 0..n {
        let reply = request(addr, "GET", &format!("/users/{i}"), b"")?;
        assert_eq!(reply.status, 200, "GET /users/{i}");
    }
    Ok(())
}

/// `http_requests_total` summed over every series of one scrape.
fn scraped_total(addr: SocketAddr) -> AnyResult<f64> {
    let reply = request(addr, "GET", "/metrics", b"")?;
    assert_eq!(reply.status, 200, "GET /metrics");
    Ok(requests_by_route(&String::from_utf8_lossy(&reply.body)).values().sum())
}

/// Waits (bounded: a request is recorded when its body ends, a moment after the
/// client read it) for `/metrics` to reach `expected`, then checks that five more
/// scrapes, each possibly answered by another process, all say exactly that.
fn assert_total(addr: SocketAddr, expected: f64) -> AnyResult<()> {
    let seen = wait_until(Duration::from_secs(10), &format!("a total of {expected}"), || {
        let total = scraped_total(addr)?;
        Ok((total >= expected).then_some(total))
    })?;
    assert_eq!(seen, expected);
    for _ in 0..5 {
        assert_eq!(scraped_total(addr)?, expected);
    }
    Ok(())
}

fn readme_service(addr: &str, workers: usize, dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_readme-service"));
    command.env("LISTEN", addr).env("WORKERS", workers.to_string()).env("RUNTIME_DIRECTORY", dir);
    command.env_remove("LISTEN_FDS").env_remove("LISTEN_PID");
    command
}

#[test]
fn a_sigkilled_worker_is_restarted_and_its_counts_stay_in_the_total() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut service = Proc::spawn(&mut readme_service(&addr.to_string(), 2, tmp.path()))?;
    let before = service.workers(2)?;
    wait_serving(addr)?;
    drive(addr, 50)?;
    assert_total(addr, 50.0)?;

    kill_process(Pid::from_raw(before[0]).ok_or("bad pid")?, Signal::KILL)?;
    let pid = service.pid();
    let after = wait_until(Duration::from_secs(20), "a replacement worker", || {
        let kids = children(pid);
        Ok((kids.len() == 2 && !kids.contains(&before[0])).then_some(kids))
    })?;
    service.seen_workers.extend(&after);
    assert!(after.contains(&before[1]), "the other worker kept running: {before:?} -> {after:?}");

    drive(addr, 30)?;
    assert_total(addr, 80.0)?;
    Ok(())
}

#[test]
fn sigterm_stops_every_worker_within_the_timeout_and_the_master_exits_0() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut service = Proc::spawn(&mut readme_service(&addr.to_string(), 3, tmp.path()))?;
    let workers = service.workers(3)?;
    wait_serving(addr)?;
    drive(addr, 12)?;
    assert_total(addr, 12.0)?;

    service.signal(Signal::TERM)?;
    // The supervisor's graceful timeout is 10 s; its workers stop at once on SIGTERM.
    let status = service.wait_exit(Duration::from_secs(15))?;
    assert!(status.success(), "{status}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived its master");
    }
    Ok(())
}

#[test]
fn workers_that_ignore_sigterm_are_killed_after_the_timeout_and_the_master_exits_0() -> TestResult {
    let mut probe = Proc::spawn(Command::new(env!("CARGO_BIN_EXE_prefork-probe")).args([
        "--mode",
        "stubborn",
        "--workers",
        "2",
        "--graceful-ms",
        "300",
    ]))?;
    let workers = probe.workers(2)?;
    probe.wait_line("worker 2 started", Duration::from_secs(10))?;
    probe.signal(Signal::TERM)?;
    probe.wait_line("still running after 300ms; killing it", Duration::from_secs(10))?;
    probe.wait_line("master exits, 2 killed", Duration::from_secs(10))?;
    let status = probe.wait_exit(Duration::from_secs(10))?;
    assert!(status.success(), "{status}");
    for pid in workers {
        assert!(!alive(pid), "worker {pid} outlived its master");
    }
    Ok(())
}

#[test]
fn a_sigkilled_master_takes_its_workers_with_it() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let addr = free_port()?;
    let mut service = Proc::spawn(&mut readme_service(&addr.to_string(), 2, tmp.path()))?;
    let workers = service.workers(2)?;
    wait_serving(addr)?;
    service.signal(Signal::KILL)?;
    service.wait_exit(Duration::from_secs(10))?;
    wait_until(Duration::from_secs(10), "the workers to die with their master", || {
        Ok(workers.iter().all(|pid| !alive(*pid)).then_some(()))
    })?;
    Ok(())
}

#[test]
fn a_worker_that_exits_at_once_is_restarted_with_growing_delays() -> TestResult {
    let mut probe = Proc::spawn(Command::new(env!("CARGO_BIN_EXE_prefork-probe")).args([
        "--mode",
        "exit",
        "--workers",
        "1",
        "--backoff-ms",
        "50",
        "--max-backoff-ms",
        "800",
    ]))?;
    // Watch a bounded window: without a backoff the master would restart the worker
    // hundreds of times in it.
    let window = Instant::now() + Duration::from_secs(3);
    let (mut starts, mut delays) = (0, Vec::new());
    while let Ok(line) = probe.lines.recv_timeout(window.saturating_duration_since(Instant::now())) {
        if line.contains("worker 1 started") || line.contains("worker 1 restarted") {
            starts += 1;
        }
        if let Some(rest) = line.split("restarting it in ").nth(1) {
            delays.push(rest.split(' ').next().ok_or("no delay")?.parse::<u64>()?);
        }
    }
    assert!(starts >= 3, "the worker was restarted: {starts} starts");
    assert!(starts <= 12, "the restarts were spaced out: {starts} starts in the window");
    assert_eq!(delays.first(), Some(&50), "{delays:?}");
    for pair in delays.windows(2) {
        assert_eq!(pair[1], (pair[0] * 2).min(800), "each quick exit doubles the delay: {delays:?}");
    }
    assert!(delays.len() >= 3, "{delays:?}");

    probe.signal(Signal::TERM)?;
    let status = probe.wait_exit(Duration::from_secs(10))?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[test]
fn workers_are_recycled_after_their_maximum_age() -> TestResult {
    let mut probe = Proc::spawn(Command::new(env!("CARGO_BIN_EXE_prefork-probe")).args([
        "--mode",
        "idle",
        "--workers",
        "2",
        "--max-age-ms",
        "300",
    ]))?;
    let first = probe.workers(2)?;
    // Each worker is told to stop (SIGTERM) at its age and replaced at once, in a new
    // process, in the same slot.
    probe.wait_line("reached its maximum age; recycling it", Duration::from_secs(10))?;
    probe.wait_line("restarted, pid", Duration::from_secs(10))?;
    let pid = probe.pid();
    let later = wait_until(Duration::from_secs(10), "two new workers", || {
        let kids = children(pid);
        Ok((kids.len() == 2 && kids.iter().all(|k| !first.contains(k))).then_some(kids))
    })?;
    probe.seen_workers.extend(&later);
    probe.signal(Signal::TERM)?;
    let status = probe.wait_exit(Duration::from_secs(15))?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[test]
fn in_reuse_port_mode_each_worker_has_its_own_socket_and_a_restarted_one_serves() -> TestResult {
    let mut probe = Proc::spawn(Command::new(env!("CARGO_BIN_EXE_prefork-probe")).args([
        "--mode",
        "serve",
        "--workers",
        "2",
        "--reuse-port",
        "true",
    ]))?;
    let line = probe.wait_line("listening on ", Duration::from_secs(20))?;
    let addr: SocketAddr =
        line.split("listening on ").nth(1).and_then(|r| r.split(';').next()).ok_or("no address")?.parse()?;
    let workers = probe.workers(2)?;
    let served = |n: usize| -> AnyResult<BTreeSet<i32>> {
        let mut pids = BTreeSet::new();
        for _ in 0..n {
            let reply = request(addr, "GET", "/", b"")?;
            assert_eq!(reply.status, 200);
            pids.insert(String::from_utf8(reply.body)?.parse()?);
        }
        Ok(pids)
    };
    let pids = served(40)?;
    assert_eq!(pids, workers.iter().copied().collect(), "both workers' own sockets take connections");

    kill_process(Pid::from_raw(workers[0]).ok_or("bad pid")?, Signal::KILL)?;
    let pid = probe.pid();
    let after = wait_until(Duration::from_secs(20), "a replacement worker", || {
        let kids = children(pid);
        Ok((kids.len() == 2 && !kids.contains(&workers[0])).then_some(kids))
    })?;
    probe.seen_workers.extend(&after);
    // The replacement binds its socket right after it starts: wait until it answers.
    wait_until(Duration::from_secs(20), "the replacement to serve", || {
        Ok(served(10)?.iter().any(|p| !workers.contains(p)).then_some(()))
    })?;
    probe.signal(Signal::TERM)?;
    let status = probe.wait_exit(Duration::from_secs(15))?;
    assert!(status.success(), "{status}");
    Ok(())
}

#[test]
fn workers_serve_a_unix_socket() -> TestResult {
    use std::io::{Read, Write};
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("probe.sock");
    let listen = format!("unix:{}", path.display());
    let mut probe = Proc::spawn(Command::new(env!("CARGO_BIN_EXE_prefork-probe")).args([
        "--mode",
        "serve",
        "--workers",
        "2",
        "--listen",
        &listen,
    ]))?;
    probe.wait_line(&format!("listening on {listen}"), Duration::from_secs(20))?;
    let workers = probe.workers(2)?;
    for _ in 0..10 {
        let mut stream = std::os::unix::net::UnixStream::connect(&path)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        let pid: i32 = reply.rsplit("\r\n\r\n").next().ok_or("no body")?.parse()?;
        assert!(workers.contains(&pid), "answered by a worker: {reply:?}");
    }
    probe.signal(Signal::TERM)?;
    let status = probe.wait_exit(Duration::from_secs(15))?;
    assert!(status.success(), "{status}");
    assert!(!path.exists(), "the master removed the socket it bound");
    Ok(())
}

#[test]
fn a_listener_passed_through_listen_fds_is_served() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    // As systemd does: the socket at descriptor 3, LISTEN_FDS=1 and LISTEN_PID the
    // service's own pid, which bash's `exec` keeps.
    rustix::io::fcntl_setfd(&listener, rustix::io::FdFlags::empty())?;
    let fd = listener.as_raw_fd();
    let mut command = Command::new("bash");
    command
        .args(["-c", r#"[ "$1" = 3 ] || eval "exec 3<&$1 $1<&-"; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0""#])
        .arg(env!("CARGO_BIN_EXE_readme-service"))
        .arg(fd.to_string())
        // An address that cannot be bound: serving at all proves the passed socket is used.
        .env("LISTEN", "not-an-address")
        .env("WORKERS", "2")
        .env("RUNTIME_DIRECTORY", tmp.path());
    let mut service = Proc::spawn(&mut command)?;
    drop(listener);
    service.workers(2)?;
    drive(addr, 40)?;
    assert_total(addr, 40.0)?;
    assert!(tmp.path().join("myapp-metrics").is_dir(), "metrics under RUNTIME_DIRECTORY");
    assert!(
        std::env::var_os("LISTEN_FDS").is_none(),
        "the test itself was not socket-activated, so it compared what it meant to"
    );
    Ok(())
}

#[test]
fn independent_reuseport_processes_share_a_port_and_one_exact_metrics() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("m");
    let addr = free_port()?;
    let mut processes = Vec::new();
    for _ in 0..3 {
        let process = Proc::spawn(
            Command::new(env!("CARGO_BIN_EXE_reuseport-service"))
                .env("LISTEN", addr.to_string())
                .env("METRICS_DIR", &dir),
        )?;
        process.wait_line("listening on", Duration::from_secs(20))?;
        processes.push(process);
    }
    drive(addr, 60)?;
    let mut pids = BTreeSet::new();
    for _ in 0..30 {
        let reply = request(addr, "GET", "/pid", b"")?;
        assert_eq!(reply.status, 200);
        pids.insert(String::from_utf8(reply.body)?);
    }
    assert!(pids.len() >= 2, "the kernel spread connections over the processes: {pids:?}");
    assert_total(addr, 90.0)?;
    Ok(())
}

#[test]
fn the_systemd_units_verify() -> TestResult {
    let Ok(analyze) = which("systemd-analyze") else {
        herd_testkit::cannot_run("systemd-analyze is not installed (scripts/install-test-deps.sh)");
        return Ok(());
    };
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let tmp = tempfile::tempdir()?;
    let service = std::fs::read_to_string(units.join("myapp.service"))?;
    for needle in ["RuntimeDirectory=myapp", "KillMode=mixed", "Requires=myapp.socket"] {
        assert!(service.contains(needle), "myapp.service has {needle}");
    }
    // The unit names the installed binary; verify it against the one built here.
    let service = service.replace("/usr/local/bin/readme-service", env!("CARGO_BIN_EXE_readme-service"));
    std::fs::write(tmp.path().join("myapp.service"), service)?;
    std::fs::copy(units.join("myapp.socket"), tmp.path().join("myapp.socket"))?;
    let out = Command::new(analyze)
        .arg("verify")
        .arg(tmp.path().join("myapp.socket"))
        .arg(tmp.path().join("myapp.service"))
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    assert!(!stderr.contains("myapp"), "systemd-analyze complained: {stderr}");
    Ok(())
}

fn which(program: &str) -> AnyResult<std::path::PathBuf> {
    let path = std::env::var_os("PATH").ok_or("no PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{program} not found").into())
}

#[test]
fn the_readme_program_is_readme_service() -> TestResult {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    let section = readme.split("## Adding herd to a service").nth(1).ok_or("no section")?;
    let block =
        section.split("```rust\n").nth(1).and_then(|b| b.split("```").next()).ok_or("no rust block")?;
    let source = std::fs::read_to_string(root.join("examples/src/bin/readme-service.rs"))?;
    assert!(source.ends_with(block), "README's program differs from readme-service.rs");
    let setup =
        block.lines().skip_while(|l| !l.starts_with("fn main")).filter(|l| !l.trim().is_empty()).count();
    assert!(setup <= 25, "the program stays short: {setup} lines");
    Ok(())
}
