//! A master on a metrics directory that is full: it records until its file cannot
//! grow, then forks a worker, which cannot create a file of its own. Used by
//! `examples/tests/full_disk.rs` (on a tiny tmpfs) to show that neither failure is
//! silent at `/metrics`.
//!
//! ```text
//! cargo run -p herd-examples --bin fork-without-file -- --dir DIR
//! ```
//!
//! Prints `storage errors: N` (the series that got private cells) and exits 0 once its
//! worker has exited 0.

use std::process::ExitCode;
use std::sync::Arc;

use herd_core::snapshot::SeriesValue;
use herd_core::{Registry, STORAGE_ERRORS_METRIC};
use herd_mmap::{fork, Forked, MmapStorage};

/// Series to try before giving up on filling the directory.
const MAX_SERIES: u32 = 500_000;

/// A master on a full metrics directory, then a fork
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// the metrics directory (not claimed)
    #[arg(long, value_name = "DIR", required = true)]
    dir: std::path::PathBuf,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fork-without-file: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let dir = match herd_examples::parse_args::<Args>(1) {
        Ok(args) => args.dir,
        // A bad command line fails with exit code 1, as before clap.
        Err(code) => return Ok(code),
    };
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let jobs = registry
        .counter("jobs_total", "Jobs.")
        .labels(["id"])
        .cardinality_limit(MAX_SERIES as usize)
        .register()?;
    let handle = jobs.with_labels(["before-fork"]).clone();
    handle.inc();
    // Fill the directory: new series until the storage fails to give one cells.
    let mut errors = 0.0;
    for i in 0..MAX_SERIES {
        jobs.with_labels([i.to_string().as_str()]).inc();
        if i % 1024 == 0 {
            errors = storage_errors(&registry);
            if errors > 0.0 {
                break;
            }
        }
    }
    if errors == 0.0 {
        return Err(format!("{MAX_SERIES} series fit in {}: it is not small enough", dir.display()).into());
    }
    println!("storage errors: {errors}");
    match fork()? {
        Forked::Child => {
            // No file of its own: this lands in private memory, lost to the aggregate,
            // and the fork failure was counted in the parent's file instead.
            handle.inc();
            std::process::exit(0);
        }
        Forked::Parent { child } => {
            let failed = herd_examples::prefork::wait_all(&[child])?;
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// `herd_storage_errors_total` of this process, all families.
fn storage_errors(registry: &Registry) -> f64 {
    let snapshot = registry.snapshot();
    let Some(family) = snapshot.family(STORAGE_ERRORS_METRIC) else { return 0.0 };
    family.series.iter().map(|s| if let SeriesValue::Counter(c) = &s.value { c.total() } else { 0.0 }).sum()
}
