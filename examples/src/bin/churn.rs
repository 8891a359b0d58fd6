//! Worker churn: a master forks short-lived workers one after another, each of which
//! does one unit of work and exits, the way a job runner or a pool with `max_requests`
//! recycles processes. Prints the aggregate and how many files the directory holds.
//!
//! ```text
//! cargo run -p herd-examples --bin churn -- --dir DIR [--processes 2000]
//! ```
//!
//! Nothing calls compaction explicitly: the master's forks trigger it once enough dead
//! workers' files have piled up. The last line printed is
//! `processes=N jobs=J files=F` (F counts every file in the directory).

use std::process::ExitCode;
use std::sync::Arc;

use herd_core::Registry;
use herd_mmap::{claim_dir, fork, Aggregator, Forked, MmapStorage};
use rustix::process::{waitpid, Pid, WaitOptions};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("churn: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let (mut dir, mut processes) = (None, 2000u32);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--dir" => dir = Some(std::path::PathBuf::from(value)),
            "--processes" => processes = value.parse().map_err(|e| format!("--processes: {e}"))?,
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let dir = claim_dir(&dir.ok_or("usage: churn --dir DIR [--processes N]")?)?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let jobs = registry.counter("jobs_total", "Jobs done.").labels(["queue"]).register()?;
    let job = jobs.with_labels(["default"]).clone();
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
    println!("processes={processes} jobs={total} files={files}");
    Ok(())
}
