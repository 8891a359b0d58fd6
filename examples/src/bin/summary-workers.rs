//! Summary quantiles across forked workers: a master registers a summary in a metrics
//! directory, forks workers that each observe their own known distribution, waits for
//! them, and prints the aggregate, whose quantiles are those of the union.
//!
//! ```text
//! cargo run -p herd-examples --bin summary-workers -- --dir DIR [--workers 4] [--count 2000]
//! ```
//!
//! Worker `w` (1-based) observes `w · count` values spread log-uniformly over
//! `[10^(2w − 5), 10^(2w − 3))`: worker 1 from 1e-3 to 1e-1, worker 2 from 1e-1 to 10,
//! and so on; disjoint ranges, so no worker's own quantiles resemble the union's.
//! [`worker_values`] gives the exact values.

use std::process::ExitCode;
use std::sync::Arc;

use herd_core::{Format, Objectives, Registry};
use herd_examples::worker_values;
use herd_mmap::{claim_dir, fork, Aggregator, Forked, MmapStorage};

/// Forked workers observing into one summary, then the merged quantiles
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// metrics directory (claimed: wiped at start)
    #[arg(long, value_name = "DIR", required = true)]
    dir: std::path::PathBuf,
    /// worker processes to fork
    #[arg(long, value_name = "N", default_value_t = 4)]
    workers: u32,
    /// observations per worker, times its number
    #[arg(long, value_name = "N", default_value_t = 2000)]
    count: u32,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("summary-workers: {e}");
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
    let dir = claim_dir(&args.dir)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let duration = registry
        .summary("job_duration_seconds", "Time per job.")
        .unit("seconds")
        .objectives(Objectives::new([0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999])?)
        .register()?;

    let mut children = Vec::new();
    for w in 1..=args.workers {
        match fork()? {
            Forked::Child => {
                // The handle was created before the fork: it writes to this worker's file.
                for v in worker_values(w, args.count) {
                    duration.observe(v);
                }
                std::process::exit(0);
            }
            Forked::Parent { child } => children.push(child),
        }
    }
    let failed = herd_examples::prefork::wait_all(&children)?;
    let snapshot = Aggregator::new(&dir)?.snapshot()?;
    let mut out = Vec::new();
    herd_core::encode(&snapshot, Format::Text, &mut out);
    print!("{}", String::from_utf8_lossy(&out));
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
