//! A worker with no HTTP port: it does `--count` units of work, sends its metrics to a
//! StatsD server as it goes (mirror mode), flushes, and exits.
//!
//! ```text
//! cargo run -p herd-examples --bin statsd-worker -- --statsd 127.0.0.1:PORT --count N
//! ```
//!
//! Unit `i` (from 0) belongs to queue `emails` when `i` is even, `reports` when odd.
//! Each increments `jobs_total{queue}` and observes its duration into
//! `job_duration_seconds{queue}`; both are mirrored as DogStatsD lines under the prefix
//! `statsd_worker`, aggregated in the process per flush interval (herd-statsd's
//! default): `statsd_worker.jobs_total:N|c|#queue:emails` once per interval, and up
//! to 64 of the interval's durations as `|ms`, marked with the sample rate that
//! scales their count back to the number of jobs. It prints what it sent and exits
//! with failure if anything was dropped.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use herd_core::{Buckets, Registry};
use herd_statsd::StatsdBridge;

const QUEUES: [&str; 2] = ["emails", "reports"];

/// One process pushing StatsD lines for N jobs
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// the StatsD server
    #[arg(long, value_name = "HOST:PORT", required = true)]
    statsd: String,
    /// jobs to record
    #[arg(long, value_name = "N", default_value_t = 0)]
    count: u64,
}

fn main() -> ExitCode {
    let args = match herd_examples::parse_args::<Args>(2) {
        Ok(args) => args,
        Err(code) => return code,
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("statsd-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One unit of work: enough arithmetic that its duration is not zero.
fn work(i: u64) -> u64 {
    (0..100u64).fold(i, |acc, x| acc.rotate_left(5) ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn run(args: &Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let bridge = StatsdBridge::udp(&args.statsd).prefix("statsd_worker").build()?;
    let registry = Registry::new();
    let jobs = registry.counter("jobs_total", "Jobs done.").labels(["queue"]).register()?;
    let duration = registry
        .histogram("job_duration_seconds", "Time per job.")
        .unit("seconds")
        .buckets(Buckets::default())
        .labels(["queue"])
        .register()?;
    // Resolved once per queue: each update is then one atomic add to herd's handle and
    // one to the series' aggregate.
    let queues = QUEUES.map(|q| (bridge.mirror(&jobs, [q]), bridge.mirror(&duration, [q])));

    for i in 0..args.count {
        let (done, time) = &queues[(i % 2) as usize];
        let start = Instant::now();
        black_box(work(i));
        time.observe_duration(start.elapsed());
        done.inc();
    }
    bridge.flush()?;

    let stats = bridge.stats();
    println!(
        "statsd-worker: {} jobs, {} lines sent in {} packets, {} dropped",
        args.count,
        stats.sent_lines,
        stats.sent_packets,
        stats.dropped_total()
    );
    Ok(if stats.dropped_total() == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
