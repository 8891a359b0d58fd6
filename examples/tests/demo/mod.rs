//! `prefork-demo` as a child process, for the tests that drive it from outside
//! (`prefork.rs`, `ops.rs`): its stdout lines arrive on a channel, and dropping it
//! stops the master (SIGTERM, then SIGKILL after 10 s), whose workers then stop.
//! `ops.rs` runs `grpc-fork-workers --listen --metrics` through [`Demo::spawn`] too: it
//! prints the same `listening on http://ADDR` line and stops the same way.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A running `prefork-demo` and the temp dir holding its metrics directory.
pub(crate) struct Demo {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    dir: tempfile::TempDir,
}

impl Demo {
    /// `prefork-demo --workers WORKERS --listen 127.0.0.1:0 --dir <temp>/metrics EXTRA...`,
    /// once it says where it listens.
    pub(crate) fn start(workers: &str, extra: &[&str]) -> AnyResult<Self> {
        let dir = tempfile::tempdir()?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_prefork-demo"));
        command
            .args(["--workers", workers, "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir.path().join("metrics"))
            .args(extra);
        Ok(Self::spawn(command, dir)?.0)
    }

    /// Runs `command`, which starts the demo with its metrics directory in `dir`, and
    /// waits (at most 20 s) for its `listening on http://ADDR` line, which it returns too.
    pub(crate) fn spawn(mut command: Command, dir: tempfile::TempDir) -> AnyResult<(Self, String)> {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut demo = Self { child, addr: ([127, 0, 0, 1], 0).into(), lines: read_lines(stdout), dir };
        let line = demo.wait_line("listening on http://", Duration::from_secs(20))?;
        let addr = line.split("http://").nth(1).and_then(|s| s.split(' ').next()).ok_or("no address")?;
        demo.addr = addr.parse()?;
        Ok((demo, line))
    }

    /// The next line containing `needle`, within `timeout`.
    pub(crate) fn wait_line(&self, needle: &str, timeout: Duration) -> AnyResult<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) => {}
                Err(_) => return Err(format!("the child printed no line with {needle:?}").into()),
            }
        }
    }

    /// The metrics directory it was given.
    #[allow(dead_code)] // not every test binary uses every helper
    pub(crate) fn metrics_dir(&self) -> PathBuf {
        self.dir.path().join("metrics")
    }
}

impl Drop for Demo {
    /// SIGTERM, so that the master stops its workers, then SIGKILL after 10 s.
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo's stdout lines, echoed to the test's output and sent on a channel. The
/// reader goes on after the receiver is gone: a closed pipe would kill the demo.
fn read_lines(stdout: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("demo: {line}");
            let _ = tx.send(line);
        }
    });
    rx
}
