//! A herd-prefork master whose workers misbehave on purpose, for the supervisor's
//! tests (`examples/tests/supervisor.rs`):
//!
//! ```text
//! prefork-probe --mode exit|stubborn|idle [--workers N] [--graceful-ms MS]
//!     [--backoff-ms MS] [--max-backoff-ms MS] [--max-age-ms MS] [--reuse-port true]
//!     [--listen ADDR]
//! ```
//!
//! `exit`: each worker exits at once (status 3), so the master restarts it with
//! growing delays. `stubborn`: each worker ignores SIGTERM, so a stop must kill it.
//! `idle`: each worker waits for a signal. `serve`: each worker answers every HTTP
//! request with its pid (with `--reuse-port true`, on a socket of its own). Events are printed as `prefork-probe:`
//! lines; it listens on `--listen` (`HOST:PORT` or `unix:PATH`; by default 127.0.0.1
//! with a free port).

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use herd_examples::prefork::log_lines;
use herd_examples::{flag_values, parse_flag};
use herd_prefork::{Listener, Supervisor};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prefork-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut mode, mut workers, mut graceful, mut backoff, mut max_backoff) =
        (String::from("idle"), 2usize, 10_000u64, 100u64, 30_000u64);
    let mut max_age = None;
    let mut reuse_port = false;
    let mut listen = String::from("127.0.0.1:0");
    for (flag, value) in flag_values()? {
        match flag.as_str() {
            "--mode" => mode = value,
            "--workers" => workers = parse_flag(&flag, &value)?,
            "--graceful-ms" => graceful = parse_flag(&flag, &value)?,
            "--backoff-ms" => backoff = parse_flag(&flag, &value)?,
            "--max-backoff-ms" => max_backoff = parse_flag(&flag, &value)?,
            "--listen" => listen = value,
            "--reuse-port" => reuse_port = parse_flag(&flag, &value)?,
            "--max-age-ms" => max_age = Some(Duration::from_millis(parse_flag(&flag, &value)?)),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    log_lines("prefork-probe")?;
    let mut builder = Supervisor::builder();
    if let Some(age) = max_age {
        builder = builder.max_age(age);
    }
    let stopped = builder
        .workers(workers)
        .reuse_port(reuse_port)
        .listen(listen)
        .graceful_timeout(Duration::from_millis(graceful))
        .backoff(Duration::from_millis(backoff), Duration::from_millis(max_backoff), Duration::from_secs(1))
        .run(|worker| -> std::io::Result<()> {
            match mode.as_str() {
                "serve" => serve_pid(&worker.into_listener()),
                "exit" => std::process::exit(3),
                "stubborn" => {
                    // A handler that only sets a flag: SIGTERM no longer ends the process.
                    signal_hook::flag::register(
                        signal_hook::consts::SIGTERM,
                        Arc::new(AtomicBool::new(false)),
                    )?;
                    loop {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
                _ => loop {
                    std::thread::sleep(Duration::from_secs(1));
                },
            }
        })?;
    println!("prefork-probe: master exits, {} killed", stopped.killed);
    Ok(())
}

trait Stream: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> Stream for T {}

/// Answers each request on `listener` (TCP or Unix, non-blocking as the supervisor
/// hands it over) with this process's pid, one connection at a time.
fn serve_pid(listener: &Listener) -> std::io::Result<()> {
    let pid = std::process::id().to_string();
    loop {
        let accepted: std::io::Result<Box<dyn Stream>> = match listener {
            Listener::Tcp(l) => l
                .accept()
                .and_then(|(s, _)| s.set_nonblocking(false).map(|()| Box::new(s) as Box<dyn Stream>)),
            Listener::Unix(l) => l
                .accept()
                .and_then(|(s, _)| s.set_nonblocking(false).map(|()| Box::new(s) as Box<dyn Stream>)),
            _ => return Err(std::io::Error::other("a listener of an unknown kind")),
        };
        let mut stream = match accepted {
            Ok(stream) => stream,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let reply =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{pid}", pid.len());
        let _ = stream.write_all(reply.as_bytes());
    }
}
