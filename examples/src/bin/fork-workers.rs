//! A pre-fork master in miniature: registers metrics in a metrics directory, forks
//! workers that update them from several threads, waits for them, and prints the
//! aggregate of every process in the format asked for.
//!
//! ```text
//! cargo run -p herd-examples --bin fork-workers -- --dir DIR [--workers 8] [--threads 4] [--count 1000]
//! ```
//!
//! Each worker `w` (1-based) increments `jobs_total{worker_kind="fork"}` `count` times on
//! each of its threads, observes `w` seconds into `job_duration_seconds` once per
//! thread, and adds `w` to `busy_workers`. The master itself increments `jobs_total` once
//! before forking and once after, so its own file holds exactly 2.

use std::process::ExitCode;
use std::sync::Arc;

use herd_core::{Buckets, Format, Registry};
use herd_mmap::{claim_dir, fork, Aggregator, Forked, MmapStorage};

/// Forked workers on one herd-mmap directory, then the aggregate
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// metrics directory (claimed: wiped at start)
    #[arg(long, value_name = "DIR", required = true)]
    dir: std::path::PathBuf,
    /// worker processes to fork
    #[arg(long, value_name = "N", default_value_t = 8)]
    workers: u32,
    /// threads per worker
    #[arg(long, value_name = "N", default_value_t = 4)]
    threads: u32,
    /// increments per thread
    #[arg(long, value_name = "N", default_value_t = 1000)]
    count: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fork-workers: {e}");
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
    let storage = MmapStorage::open(&dir)?;
    let master_file = storage.path();
    let registry = Registry::builder().storage(Arc::new(storage)).build()?;
    let jobs = registry.counter("jobs_total", "Jobs done.").labels(["worker_kind"]).register()?;
    let duration = registry
        .histogram("job_duration_seconds", "Time per job.")
        .unit("seconds")
        .buckets(Buckets::new([1.0, 2.0, 4.0])?)
        .register()?;
    let busy = registry.gauge("busy_workers", "Workers busy.").register()?;
    // A handle cached before the fork: the children must write through it to their
    // own files.
    let fork_jobs = jobs.with_labels(["fork"]).clone();
    fork_jobs.inc();

    let mut children = Vec::new();
    for w in 1..=args.workers {
        match fork()? {
            Forked::Child => {
                std::thread::scope(|s| {
                    for _ in 0..args.threads {
                        s.spawn(|| {
                            for _ in 0..args.count {
                                fork_jobs.inc();
                            }
                            duration.observe(f64::from(w));
                        });
                    }
                });
                busy.add(f64::from(w));
                std::process::exit(0);
            }
            Forked::Parent { child } => children.push(child),
        }
    }
    let failed = herd_examples::prefork::wait_all(&children)?;
    fork_jobs.inc();

    let snapshot = Aggregator::new(&dir)?.snapshot()?;
    let mut out = Vec::new();
    herd_core::encode(&snapshot, Format::Text, &mut out);
    print!("{}", String::from_utf8_lossy(&out));
    println!("# master file: {}", master_file.display());
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
