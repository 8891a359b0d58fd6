//! One "host" of a fleet with native histograms: forks workers that observe request
//! latencies into a herd-mmap directory, in classic and native buckets, waits for them
//! and exits; `herd serve --dir DIR` then serves the directory's aggregate.
//!
//! ```text
//! cargo run -p herd-examples --bin native-workers -- --dir DIR --host 1 [--workers 3] [--count 2000]
//! ```
//!
//! Worker `w` observes `herd_examples::native_worker_values(host, w, count)` into
//! `request_duration_seconds` (the OpenTelemetry duration buckets and
//! `NativeBuckets::default()`). Two such hosts scraped by one Prometheus with native
//! histograms enabled give the fleet's quantiles (`examples/tests/native.rs`).

use std::process::ExitCode;
use std::sync::Arc;

use herd_core::http::DURATION_BUCKETS;
use herd_core::{Buckets, NativeBuckets, Registry};
use herd_mmap::{claim_dir, fork, Forked, MmapStorage};

/// Forked workers observing latencies in native buckets, into one directory
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// metrics directory (claimed: wiped at start)
    #[arg(long, value_name = "DIR", required = true)]
    dir: std::path::PathBuf,
    /// which host this is: 1 or 2 (each has its own latency distribution)
    #[arg(long, value_name = "N", default_value_t = 1)]
    host: u32,
    /// worker processes to fork
    #[arg(long, value_name = "N", default_value_t = 3)]
    workers: u32,
    /// observations per worker
    #[arg(long, value_name = "N", default_value_t = 2000)]
    count: u32,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("native-workers: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let args = match herd_examples::parse_args::<Args>(2) {
        Ok(args) => args,
        Err(code) => return Ok(code),
    };
    let dir = claim_dir(&args.dir)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let latency = registry
        .histogram("request_duration_seconds", "Time per request.")
        .unit("seconds")
        .buckets(Buckets::new(DURATION_BUCKETS)?)
        .native(NativeBuckets::default())
        .register()?;

    let mut children = Vec::new();
    for w in 1..=args.workers {
        match fork()? {
            Forked::Child => {
                for v in herd_examples::native_worker_values(args.host, w, args.count) {
                    latency.observe(v);
                }
                std::process::exit(0);
            }
            Forked::Parent { child } => children.push(child),
        }
    }
    let failed = herd_examples::prefork::wait_all(&children)?;
    println!(
        "native-workers: host {} observed {} values in {} workers",
        args.host,
        args.count * args.workers,
        args.workers
    );
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
