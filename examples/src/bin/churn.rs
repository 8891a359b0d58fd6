//! Worker churn: a master forks short-lived workers one after another, each of which
//! does one unit of work and exits, the way a job runner or a pool with `max_requests`
//! recycles processes. Prints the aggregate and how many files the directory holds.
//!
//! ```text
//! cargo run -p herd-examples --bin churn -- --dir DIR [--processes 2000] [--series 1000]
//! ```
//!
//! The master creates `--series` series before it forks (each worker's file starts with
//! a copy of them, as a real worker's would), and each worker increments one of them.
//!
//! Writers never compact, and nothing scrapes this directory while the workers come and
//! go, so the master looks after it: once it has reaped a worker it calls
//! `herd_mmap::compact_if_needed`, which folds the dead workers' files once more than 16
//! wait (a listing of at most 17 files otherwise). The last line printed is
//! `processes=N jobs=J files=F scrape_before_us=B scrape_after_us=A` (F counts every file
//! in the directory; B and A are the median time of a steady scrape before the first
//! worker and after the last, which compaction keeps close).

use std::process::ExitCode;
use std::sync::Arc;

use herd_core::Registry;
use herd_mmap::{claim_dir, fork, Aggregator, Forked, MmapStorage};
use rustix::process::{waitpid, Pid, WaitOptions};

/// Short-lived forked workers, one after another
#[derive(Debug, clap::Parser)]
#[command(args_override_self = true)]
struct Args {
    /// metrics directory (claimed: wiped at start)
    #[arg(long, value_name = "DIR", required = true)]
    dir: std::path::PathBuf,
    /// workers to fork, one after another
    #[arg(long, value_name = "N", default_value_t = 2000)]
    processes: u32,
    /// series the master creates before forking
    #[arg(long, value_name = "N", default_value_t = 1000)]
    series: u32,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("churn: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<ExitCode, Box<dyn std::error::Error>> {
    let Args { dir, processes, series } = match herd_examples::parse_args::<Args>(1) {
        Ok(args) => args,
        // A bad command line fails with exit code 1, as before clap.
        Err(code) => return Ok(code),
    };
    let dir = claim_dir(&dir)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let jobs = registry
        .counter("jobs_total", "Jobs done.")
        .labels(["queue"])
        .cardinality_limit(series.max(1) as usize)
        .register()?;
    let job = jobs.with_labels(["default"]).clone();
    for i in 1..series {
        let _ = jobs.with_labels([&format!("queue-{i}")]);
    }
    let before = median_scrape_us(&dir)?;
    for _ in 0..processes {
        match fork()? {
            Forked::Child => {
                job.inc();
                std::process::exit(0);
            }
            Forked::Parent { child } => {
                let pid = Pid::from_raw(child as i32).ok_or("bad pid")?;
                let status = waitpid(Some(pid), WaitOptions::empty())?;
                if status.is_none_or(|(_, s)| s.exit_status() != Some(0)) {
                    return Err(format!("worker {child} failed").into());
                }
                // The master is this directory's only caretaker (see the module docs).
                herd_mmap::compact_if_needed(&dir, herd_mmap::DEFAULT_COMPACT_THRESHOLD)?;
            }
        }
    }
    let snapshot = Aggregator::new(&dir)?.compact_threshold(None).snapshot()?;
    let total = snapshot.family("jobs").and_then(|f| f.series.first()).map_or(0, |s| {
        if let herd_core::snapshot::SeriesValue::Counter(c) = &s.value {
            c.integer
        } else {
            0
        }
    });
    let files = std::fs::read_dir(&dir)?.count();
    let after = median_scrape_us(&dir)?;
    println!(
        "processes={processes} jobs={total} files={files} scrape_before_us={before:.1} scrape_after_us={after:.1}"
    );
    Ok(ExitCode::SUCCESS)
}

/// The median of 51 steady scrapes (after a first, cold one), in microseconds.
fn median_scrape_us(dir: &std::path::Path) -> Result<f64, Box<dyn std::error::Error>> {
    let agg = Aggregator::new(dir)?.compact_threshold(None);
    agg.snapshot()?;
    let mut times: Vec<f64> = (0..51)
        .map(|_| {
            let started = std::time::Instant::now();
            agg.snapshot().map(|_| started.elapsed().as_secs_f64() * 1e6)
        })
        .collect::<Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    Ok(times[25])
}
