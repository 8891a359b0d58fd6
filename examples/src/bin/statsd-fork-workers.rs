//! A pre-fork master with a StatsD bridge: forked workers send through handles made
//! before the fork, each on a sender thread and socket of its own.
//!
//! ```text
//! cargo run -p herd-examples --bin statsd-fork-workers -- --statsd 127.0.0.1:PORT [--workers 4] [--count 1000]
//! ```
//!
//! The master mirrors `jobs_total{role}` (DogStatsD, no prefix), increments
//! `role="master"` 3 times and flushes; pauses the bridge (stopping its sender thread,
//! as `herd_mmap::fork` forks only a single-threaded process); increments it 5 more
//! times, which stay queued; forks the workers. Each worker increments
//! `role="worker"` through the handle the master made, `--count` times, flushes and
//! exits with success only if it sent exactly `--count` lines: the master's 5 queued
//! lines are the master's to send, not the worker's. The master then resumes, flushes
//! its 5, and prints one line per process.
//!
//! `--aggregation per-interval` aggregates instead (herd-statsd's default): then the
//! master's 5 wait in its aggregate slot, each worker's `--count` increments leave
//! as a few summed lines, and the totals per process are what the test checks.

use std::process::ExitCode;

use herd_core::Registry;
use herd_mmap::{fork, Forked};
use herd_statsd::{Aggregation, StatsdBridge};

/// Forked workers pushing StatsD lines through one bridge
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// the StatsD server
    #[arg(long, value_name = "HOST:PORT", required = true)]
    statsd: String,
    /// worker processes to fork
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: u32,
    /// jobs per worker
    #[arg(long, value_name = "N", default_value_t = 1000)]
    count: u64,
    /// a line per update, or aggregated per flush interval
    #[arg(long, value_enum, default_value_t = AggregationArg::PerEvent)]
    aggregation: AggregationArg,
}

/// `--aggregation`: herd-statsd's `Aggregation` by its command-line names.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AggregationArg {
    PerEvent,
    PerInterval,
}

impl From<AggregationArg> for Aggregation {
    fn from(arg: AggregationArg) -> Self {
        match arg {
            AggregationArg::PerEvent => Self::PerEvent,
            AggregationArg::PerInterval => Self::PerInterval,
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("statsd-fork-workers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args = match herd_examples::parse_args::<Args>(1) {
        Ok(args) => args,
        // A bad command line fails with exit code 1, as before clap.
        Err(code) => return Ok(code),
    };
    // Per event by default, so that the test can tell each line's sender and see that
    // what the master had queued at the fork is sent once, by the master.
    let aggregation = Aggregation::from(args.aggregation);
    let bridge = StatsdBridge::udp(&args.statsd).aggregation(move |_| aggregation).build()?;
    let per_event = aggregation == Aggregation::PerEvent;
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs done.").labels(["role"]).register()?;
    let master = bridge.mirror(&jobs, ["master"]);
    let worker = bridge.mirror(&jobs, ["worker"]);

    for _ in 0..3 {
        master.inc();
    }
    bridge.flush()?;
    bridge.pause()?;
    for _ in 0..5 {
        master.inc();
    }

    let mut children = Vec::new();
    for _ in 0..args.workers {
        match fork()? {
            Forked::Child => {
                for _ in 0..args.count {
                    worker.inc();
                }
                let flushed = bridge.flush();
                let stats = bridge.stats();
                println!(
                    "worker {}: sent {} lines, {} dropped, flush {:?}",
                    std::process::id(),
                    stats.sent_lines,
                    stats.dropped_total(),
                    flushed.map_err(|e| e.to_string())
                );
                // Aggregated, the lines are a few sums; their total is the test's to check.
                let lines_ok = if per_event { stats.sent_lines == args.count } else { stats.sent_lines > 0 };
                let exact = lines_ok && stats.dropped_total() == 0;
                std::process::exit(if exact { 0 } else { 1 });
            }
            Forked::Parent { child } => children.push(child),
        }
    }
    let failed = herd_examples::prefork::wait_all(&children)?;
    bridge.resume()?;
    bridge.flush()?;
    let stats = bridge.stats();
    println!(
        "master {}: sent {} lines, {} dropped",
        std::process::id(),
        stats.sent_lines,
        stats.dropped_total()
    );
    let lines_ok = if per_event { stats.sent_lines == 8 } else { stats.sent_lines >= 2 };
    Ok(if failed == 0 && lines_ok && stats.dropped_total() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
