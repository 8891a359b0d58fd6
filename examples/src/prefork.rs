//! The pieces of a pre-fork master that are not about metrics: keeping N workers
//! alive, stopping them on a signal, and a small blocking HTTP client for the demo's
//! self-test.
//!
//! The master stays single-threaded for its whole life, because it forks again each
//! time a worker dies (see [`herd_mmap::fork`]); so it waits with `waitpid(WNOHANG)`
//! and a short sleep instead of a signal thread.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herd_mmap::{fork, Forked};
use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions, WaitStatus};

/// How often the master looks for dead workers and stop signals.
const POLL: Duration = Duration::from_millis(50);
/// How long stopping workers waits for them before it kills them.
const GRACE: Duration = Duration::from_secs(10);

/// The worker processes of a pre-fork master, by slot (1-based in messages).
pub struct Workers {
    pids: Vec<Option<Pid>>,
    stop: Arc<AtomicBool>,
}

impl Workers {
    /// Starts `n` workers, each running `work(slot)` and exiting with its result (0 on
    /// `Ok`). Installs SIGTERM and SIGINT handlers that ask [`supervise`] to stop.
    ///
    /// `work` runs in the child only, so it may start threads and runtimes.
    ///
    /// # Errors
    ///
    /// The error of installing a signal handler or of `fork`.
    ///
    /// [`supervise`]: Workers::supervise
    pub fn start(n: usize, work: &mut dyn FnMut(usize) -> io::Result<()>) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(signal, Arc::clone(&stop))?;
        }
        let mut workers = Self { pids: vec![None; n], stop };
        for slot in 0..n {
            workers.spawn(slot, work)?;
            println!("prefork-demo: worker {} started, pid {}", slot + 1, workers.pid(slot).unwrap_or(0));
        }
        Ok(workers)
    }

    /// The pid of the worker in `slot`, if it runs.
    pub fn pid(&self, slot: usize) -> Option<u32> {
        self.pids.get(slot).copied().flatten().map(|p| p.as_raw_nonzero().get() as u32)
    }

    /// Whether a stop signal arrived.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn spawn(&mut self, slot: usize, work: &mut dyn FnMut(usize) -> io::Result<()>) -> io::Result<()> {
        let master = rustix::process::getpid();
        match fork()? {
            Forked::Child => {
                // A worker outliving a SIGKILLed master would keep serving, unsupervised,
                // on the old socket: have the kernel send it SIGTERM instead, and check
                // that the master did not die before that was set.
                let _ = rustix::process::set_parent_process_death_signal(Some(Signal::TERM));
                if rustix::process::getppid() != Some(master) {
                    std::process::exit(0);
                }
                let code = match work(slot) {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("prefork-demo: worker {}: {e}", slot + 1);
                        1
                    }
                };
                std::process::exit(code);
            }
            Forked::Parent { child } => {
                self.pids[slot] = Pid::from_raw(child as i32);
                Ok(())
            }
        }
    }

    /// Restarts every worker that has exited, until a stop signal arrives or `until`
    /// returns true (checked every 50 ms); returns how many were restarted.
    ///
    /// # Errors
    ///
    /// The error of `waitpid` or of `fork`.
    pub fn supervise(
        &mut self,
        work: &mut dyn FnMut(usize) -> io::Result<()>,
        until: &mut dyn FnMut(&Self) -> bool,
    ) -> io::Result<usize> {
        let mut restarted = 0;
        while !self.stopping() && !until(self) {
            restarted += self.reap_and_restart(work)?;
            std::thread::sleep(POLL);
        }
        Ok(restarted)
    }

    /// Restarts the workers that have exited since the last call.
    ///
    /// # Errors
    ///
    /// The error of `waitpid` or of `fork`.
    pub fn reap_and_restart(&mut self, work: &mut dyn FnMut(usize) -> io::Result<()>) -> io::Result<usize> {
        let mut restarted = 0;
        while let Some((pid, status)) = waitpid(None, WaitOptions::NOHANG)? {
            let Some(slot) = self.pids.iter().position(|p| *p == Some(pid)) else { continue };
            self.pids[slot] = None;
            if self.stopping() {
                break;
            }
            self.spawn(slot, work)?;
            restarted += 1;
            println!(
                "prefork-demo: worker {} (pid {}) {}; restarted as pid {}",
                slot + 1,
                pid.as_raw_nonzero(),
                describe(status),
                self.pid(slot).unwrap_or(0)
            );
        }
        Ok(restarted)
    }

    /// Sends SIGTERM to every worker and waits for them to finish their requests; kills
    /// those still running after 10 s. Returns how many had to be killed.
    pub fn stop(&mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for pid in self.pids.iter().flatten() {
            let _ = kill_process(*pid, Signal::TERM);
        }
        let deadline = Instant::now() + GRACE;
        while self.pids.iter().any(Option::is_some) && Instant::now() < deadline {
            while let Ok(Some((pid, _))) = waitpid(None, WaitOptions::NOHANG) {
                if let Some(slot) = self.pids.iter().position(|p| *p == Some(pid)) {
                    self.pids[slot] = None;
                }
            }
            std::thread::sleep(POLL);
        }
        let mut killed = 0;
        for pid in self.pids.iter_mut().filter_map(Option::take) {
            let _ = kill_process(pid, Signal::KILL);
            let _ = waitpid(Some(pid), WaitOptions::empty());
            killed += 1;
        }
        killed
    }
}

/// Waits for every process of `children` (pids from [`fork`]) and returns how many did
/// not exit with status 0: the end of a master that forked workers for a fixed job.
///
/// # Errors
///
/// A pid that is not one, or the error of `waitpid`.
pub fn wait_all(children: &[u32]) -> io::Result<usize> {
    let mut failed = 0;
    for &child in children {
        let pid = Pid::from_raw(child as i32)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("bad pid {child}")))?;
        let status = waitpid(Some(pid), WaitOptions::empty())?;
        if status.is_none_or(|(_, s)| s.exit_status() != Some(0)) {
            failed += 1;
        }
    }
    Ok(failed)
}

fn describe(status: WaitStatus) -> String {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "stopped".to_owned(),
    }
}

/// A response read by [`request`].
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// One HTTP/1.1 request with `Connection: close`, read to the end, within 10 s.
///
/// # Errors
///
/// An I/O error, a timeout, or a malformed response.
pub fn request(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> io::Result<Reply> {
    let timeout = Duration::from_secs(10);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{method} {path}: {what}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status code"))?;
    let rest = &raw[split + 4..];
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked { dechunk(rest).ok_or_else(|| bad("bad chunked body"))? } else { rest.to_vec() };
    Ok(Reply { status, body })
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// The `http_requests_total` samples of a 0.0.4 exposition, summed per `route` label.
pub fn requests_by_route(exposition: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("http_requests_total{") else { continue };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        let route =
            labels.split("route=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_owned();
        *out.entry(route).or_insert(0.0) += value;
    }
    out
}
