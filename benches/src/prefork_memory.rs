//! The memory of `prefork-demo`'s workers once each has answered a scrape of a big
//! directory (`scrape-compare --prefork-memory`).
//!
//! The demo is started with `--workers W` on a fresh directory in `/dev/shm`; then
//! `W` more writer processes (`scrape-compare --populate DIR SERIES bench_`) each put
//! `--series` counter series (and a tenth as many histograms) in it, the
//! [`populate`](crate::scrape::populate) workload under a `bench_` prefix so that it
//! never meets the demo's own RED families. Scrapes of `/metrics` are then sent, `W` at
//! a time, until every worker has written at least one whole body to a socket
//! (`wchar` of `/proc/PID/io`), so each has answered one. The workers' memory is read
//! from `/proc/PID/smaps_rollup` before the first scrape and after the last: `Pss`
//! (shared pages divided among their sharers, so the mapped metrics files and the
//! pages inherited from the master count once in the sum) and `Anonymous` (private
//! heap and stacks), each summed over the workers.
//!
//! Both of the demo's `--aggregate` modes are measured in one run: `one` (worker 0
//! aggregates, every worker relays to it) and `each` (every worker aggregates).
//! `prefork_one_growth_vs_worker` is the growth of the whole set in mode `one` over
//! the average growth of one worker in mode `each`: memory that grew N-fold would make
//! it N; issue 24's target is at most 2.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::scrape::{disk_bytes, Line};

type BoxError = Box<dyn std::error::Error>;

/// The keys of the `--prefork-memory` line, in order.
pub const PREFORK_KEYS: [&str; 13] = [
    "prefork_workers",
    "prefork_series",
    "prefork_dir_bytes",
    "prefork_one_growth_vs_worker",
    "prefork_one_pss_bytes",
    "prefork_one_growth_bytes",
    "prefork_one_growth_vs_dir",
    "prefork_each_pss_bytes",
    "prefork_each_growth_bytes",
    "prefork_each_growth_vs_dir",
    "prefork_one_anon_bytes",
    "prefork_each_anon_bytes",
    "prefork_scrapes",
];

/// Rounds of `workers` concurrent scrapes tried before giving up on reaching every
/// worker.
const MAX_ROUNDS: usize = 60;

/// A process's memory, from `/proc/PID/smaps_rollup`.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    pss: u64,
    anonymous: u64,
}

fn memory(pid: u32) -> io::Result<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Ok(Memory { pss: field("Pss"), anonymous: field("Anonymous") })
}

/// Bytes a process has written through system calls (sockets included).
fn written(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no wchar in /proc/{pid}/io")))
}

/// The children of `parent`, from every process's `stat`.
fn children(parent: u32) -> io::Result<Vec<u32>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The command name may hold spaces and parentheses: fields start after the last `)`.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// One `GET /metrics` with `Connection: close`: the body's length (headers excluded).
fn scrape(addr: SocketAddr) -> io::Result<usize> {
    let timeout = Duration::from_secs(30);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let head = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| io::Error::other("no headers"))?;
    if !raw.starts_with(b"HTTP/1.1 200") {
        return Err(io::Error::other(format!("scrape failed: {}", String::from_utf8_lossy(&raw[..head]))));
    }
    Ok(raw.len() - head - 4)
}

/// A running `prefork-demo`, stopped (SIGTERM, then waited for) on drop.
struct Demo {
    child: Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.child.wait();
    }
}

/// Starts the demo on `dir` and returns it with its address.
fn start_demo(
    demo: &Path,
    dir: &Path,
    workers: usize,
    aggregate: &str,
) -> Result<(Demo, SocketAddr), BoxError> {
    let mut child = Command::new(demo)
        .args(["--workers", &workers.to_string(), "--listen", "127.0.0.1:0", "--aggregate", aggregate])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let demo = Demo { child };
    let (tx, rx) = mpsc::channel();
    // Drained to the end, so the demo's log lines never fill the pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()) {
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr: SocketAddr = rx.recv_timeout(Duration::from_secs(30))?.parse()?;
    Ok((demo, addr))
}

/// Starts `count` populate processes (this program again) on `dir`.
fn populate(dir: &Path, count: usize, series: usize) -> Result<Vec<Child>, BoxError> {
    let exe = std::env::current_exe()?;
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        children.push(
            Command::new(&exe)
                .arg("--populate")
                .arg(dir)
                .args([&series.to_string(), "bench_"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()?,
        );
    }
    for child in &mut children {
        let mut line = String::new();
        if let Some(out) = child.stdout.as_mut() {
            BufReader::new(out).read_line(&mut line)?;
        }
        if !line.starts_with("ready") {
            return Err(format!("a populate worker did not get ready (said {line:?})").into());
        }
    }
    Ok(children)
}

/// One mode measured: (workers' memory before, after, scrapes sent).
fn measure_mode(
    demo: &Path,
    dir: &Path,
    workers: usize,
    series: usize,
    aggregate: &str,
) -> Result<(Memory, Memory, usize, u64), BoxError> {
    let (running, addr) = start_demo(demo, dir, workers, aggregate)?;
    let mut writers = populate(dir, workers, series)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let pids = loop {
        let pids: Vec<u32> = children(running.child.id())?;
        if pids.len() == workers {
            break pids;
        }
        if Instant::now() > deadline {
            return Err(format!("prefork-demo has {} workers, expected {workers}", pids.len()).into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let sum = |pids: &[u32]| -> io::Result<Memory> {
        let mut total = Memory::default();
        for &pid in pids {
            let m = memory(pid)?;
            total.pss += m.pss;
            total.anonymous += m.anonymous;
        }
        Ok(total)
    };
    let before = sum(&pids)?;
    let dir_bytes = disk_bytes(dir)?;
    let start: Vec<u64> = pids.iter().map(|&p| written(p)).collect::<io::Result<_>>()?;
    let mut scrapes = 0;
    let mut smallest = usize::MAX;
    for _ in 0..MAX_ROUNDS {
        let round: Vec<_> = (0..workers).map(|_| std::thread::spawn(move || scrape(addr))).collect();
        for handle in round {
            let len = handle.join().map_err(|_| "a scrape thread panicked")??;
            smallest = smallest.min(len);
            scrapes += 1;
        }
        let now: Vec<u64> = pids.iter().map(|&p| written(p)).collect::<io::Result<_>>()?;
        if now.iter().zip(&start).all(|(n, s)| n - s >= smallest as u64) {
            let after = sum(&pids)?;
            for &pid in &pids {
                let m = memory(pid)?;
                eprintln!(
                    "scrape-compare: --aggregate {aggregate}: worker {pid}: Pss {} kB, anonymous {} kB",
                    m.pss / 1024,
                    m.anonymous / 1024
                );
            }
            for w in &mut writers {
                drop(w.stdin.take());
                let _ = w.wait();
            }
            return Ok((before, after, scrapes, dir_bytes));
        }
    }
    Err(format!("{scrapes} scrapes did not reach every one of the {workers} workers").into())
}

/// `scrape-compare --prefork-memory`: both modes, one line.
///
/// # Errors
///
/// The demo cannot be found or started, a scrape fails, or not every worker answered.
pub fn measure(workers: usize, series: usize) -> Result<Line, BoxError> {
    let demo = demo_binary()?;
    let mut line = Line::default();
    line.set("prefork_workers", workers);
    line.set("prefork_series", series);
    let mut total_scrapes = 0;
    for aggregate in ["one", "each"] {
        let base =
            if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let temp = tempfile::Builder::new().prefix("herd-prefork-mem-").tempdir_in(base)?;
        let dir = temp.path().join("metrics");
        let (before, after, scrapes, dir_bytes) = measure_mode(&demo, &dir, workers, series, aggregate)?;
        total_scrapes += scrapes;
        let growth = after.pss.saturating_sub(before.pss);
        line.set("prefork_dir_bytes", dir_bytes);
        line.set(&format!("prefork_{aggregate}_pss_bytes"), after.pss);
        line.set(&format!("prefork_{aggregate}_growth_bytes"), growth);
        line.set_f64(&format!("prefork_{aggregate}_growth_vs_dir"), growth as f64 / dir_bytes.max(1) as f64);
        line.set(&format!("prefork_{aggregate}_anon_bytes"), after.anonymous);
        line.set(&format!("prefork_{aggregate}_pss_before_bytes"), before.pss);
    }
    line.set("prefork_scrapes", total_scrapes);
    // How many single aggregating workers the whole set grows like: N-fold growth
    // would be `workers`.
    if let (Some(one), Some(each)) =
        (line.get_f64("prefork_one_growth_bytes"), line.get_f64("prefork_each_growth_bytes"))
    {
        line.set_f64("prefork_one_growth_vs_worker", one / (each / workers as f64).max(1.0));
    }
    Ok(line)
}

/// `prefork-demo` beside this program (the same target directory and profile).
fn demo_binary() -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    let demo = exe.with_file_name("prefork-demo");
    if demo.is_file() {
        Ok(demo)
    } else {
        Err(format!(
            "{} is missing: build it first (`cargo build --release -p herd-examples --bin prefork-demo`)",
            demo.display()
        )
        .into())
    }
}
