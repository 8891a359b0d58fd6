//! A herd-prefork master whose workers misbehave on purpose, for the supervisor's
//! tests (`examples/tests/supervisor.rs`):
//!
//! ```text
//! prefork-probe --mode exit|stubborn|idle [--workers N] [--graceful-ms MS]
//!     [--backoff-ms MS] [--max-backoff-ms MS]
//! ```
//!
//! `exit`: each worker exits at once (status 3), so the master restarts it with
//! growing delays. `stubborn`: each worker ignores SIGTERM, so a stop must kill it.
//! `idle`: each worker waits for a signal. Events are printed as `prefork-probe:`
//! lines; it listens on 127.0.0.1 with a free port.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use herd_examples::prefork::log_lines;
use herd_examples::{flag_values, parse_flag};
use herd_prefork::Supervisor;

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
    for (flag, value) in flag_values()? {
        match flag.as_str() {
            "--mode" => mode = value,
            "--workers" => workers = parse_flag(&flag, &value)?,
            "--graceful-ms" => graceful = parse_flag(&flag, &value)?,
            "--backoff-ms" => backoff = parse_flag(&flag, &value)?,
            "--max-backoff-ms" => max_backoff = parse_flag(&flag, &value)?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    log_lines("prefork-probe")?;
    let stopped = Supervisor::builder()
        .workers(workers)
        .listen("127.0.0.1:0")
        .graceful_timeout(Duration::from_millis(graceful))
        .backoff(Duration::from_millis(backoff), Duration::from_millis(max_backoff), Duration::from_secs(1))
        .run(|_worker| -> std::io::Result<()> {
            match mode.as_str() {
                "exit" => std::process::exit(3),
                "stubborn" => {
                    // A handler that only sets a flag: SIGTERM no longer ends the process.
                    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::new(AtomicBool::new(false)))?;
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
