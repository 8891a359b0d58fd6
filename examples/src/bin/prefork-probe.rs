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
use herd_prefork::{Listener, Supervisor};

/// A herd-prefork master whose workers misbehave on purpose
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// what each worker does: exit, stubborn, idle (any other value) or serve
    #[arg(long, default_value = "idle")]
    mode: String,
    /// worker processes
    #[arg(long, value_name = "N", default_value_t = 2)]
    workers: usize,
    /// how long a stop waits before SIGKILL
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    graceful_ms: u64,
    /// first restart delay
    #[arg(long, value_name = "MS", default_value_t = 100)]
    backoff_ms: u64,
    /// longest restart delay
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    max_backoff_ms: u64,
    /// HOST:PORT or unix:PATH
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// a socket of its own per worker (SO_REUSEPORT)
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set, default_value_t = false)]
    reuse_port: bool,
    /// replace each worker after this age
    #[arg(long, value_name = "MS")]
    max_age_ms: Option<u64>,
}

fn main() -> ExitCode {
    let args = match herd_examples::parse_args::<Args>(1) {
        Ok(args) => args,
        // A bad command line fails with exit code 1, as before clap.
        Err(code) => return code,
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("prefork-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let Args {
        mode, workers, graceful_ms: graceful, backoff_ms: backoff, max_backoff_ms: max_backoff, ..
    } = args;
    let (listen, reuse_port) = (args.listen, args.reuse_port);
    let max_age = args.max_age_ms.map(Duration::from_millis);
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
