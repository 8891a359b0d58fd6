//! The pieces of the examples' masters that are not about metrics: waiting for forked
//! workers, printing herd-prefork's events, a worker's stop signal, and a small
//! blocking HTTP client for the demo's self-test. Keeping workers alive is herd-prefork's `Supervisor`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use rustix::process::{waitpid, Pid, WaitOptions};

/// Waits for every process of `children` (pids from [`herd_prefork::fork`]) and returns how many did
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

/// Resolves on SIGTERM or SIGINT (what herd-prefork's master and systemd send a
/// worker): a worker's server's graceful shutdown. Without signal handlers it never
/// resolves, and the default action still stops the process.
pub async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}

/// A `log` logger for the examples' masters: `NAME: message` on stdout (errors on
/// stderr), info and above, so herd-prefork's events read like the program's own lines.
struct LineLogger {
    name: &'static str,
}

impl log::Log for LineLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // One write per line, so that lines of the master and its workers, which share
        // the descriptor, never interleave within a line.
        let line = format!("{}: {}\n", self.name, record.args());
        let _ = if record.level() == log::Level::Error {
            io::stderr().write_all(line.as_bytes())
        } else {
            io::stdout().write_all(line.as_bytes())
        };
    }

    fn flush(&self) {
        let _ = io::stdout().flush();
    }
}

/// Sends `log` records (herd-prefork's supervisor events among them) to stdout as
/// `name: message` lines.
///
/// # Errors
///
/// A logger was set already.
pub fn log_lines(name: &'static str) -> io::Result<()> {
    log::set_logger(Box::leak(Box::new(LineLogger { name }))).map_err(|e| io::Error::other(e.to_string()))?;
    log::set_max_level(log::LevelFilter::Info);
    Ok(())
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
