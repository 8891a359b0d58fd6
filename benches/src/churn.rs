//! Scrape cost after worker churn: what `scrape-compare --churn` measures.
//!
//! This process plays a pre-fork master that holds one worker's share of the scrape
//! workload ([`scrape::populate`]: `series` counter series and a tenth as many
//! histogram series). It measures steady scrapes (snapshot + 0.0.4 encoding on one
//! aggregator, after a first cold one), then forks `processes` short-lived workers one
//! after another, each of which increments one counter and exits, the way a job runner
//! or a pool with `max_requests` recycles processes, and measures steady scrapes again
//! on a new aggregator. Writers never compact and nothing scrapes meanwhile, so the
//! master calls `herd_mmap::compact_if_needed` after reaping each worker, which folds
//! the dead workers' files once more than 16 wait (as a job runner's master, or
//! `herd serve`'s schedule, would).
//!
//! Each worker's file starts as a copy of the master's records (zeroed cells), so every
//! dead worker leaves the whole workload's series behind: without compaction and the
//! aggregator's fold of unchanging files into its base, the scrape after would cost
//! `processes` times the one before. The claim of issue 3 is that it costs at most
//! [`CHURN_TARGET`] times as much. Timing belongs here, not in a test
//! (`examples/tests/churn.rs` checks the directory stays bounded and the totals exact).
//!
//! The line printed: `churn_scrape_before_ms= churn_scrape_after_ms= churn_ratio=`
//! (after over before, medians), then the spreads, the counts and the directory's files.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use herd_core::snapshot::SeriesValue;
use herd_core::Registry;
use herd_mmap::{claim_dir, fork, Aggregator, Forked, MmapStorage};
use rustix::process::{waitpid, Pid, WaitOptions};

use crate::scrape::{self, Line};

/// The counter each short-lived worker increments once.
pub const CHURN_COUNTER: &str = "churn_jobs_total";

/// Short-lived workers by default: the figure of issue 3.
pub const DEFAULT_PROCESSES: usize = 2_000;

/// Steady scrapes timed before and after, by default. One file of 11k series scrapes in
/// well under a millisecond, so many samples cost little and steady the medians.
pub const DEFAULT_ITERATIONS: usize = 201;

/// Issue 3: a scrape after the churn costs at most this many times one before.
pub const CHURN_TARGET: f64 = 1.5;

/// The keys of the churn line, in the order it prints them.
pub const CHURN_KEYS: [&str; 3] = ["churn_scrape_before_ms", "churn_scrape_after_ms", "churn_ratio"];

/// Runs the churn measurement in a fresh directory under the system's temporary
/// directory and returns its line.
///
/// Must be called with no other thread running: it forks.
///
/// # Errors
///
/// When the directory, the storage or a fork fails, a worker fails, or the aggregate
/// after the churn is not exactly what the workers did.
pub fn measure(
    series: usize,
    processes: usize,
    iterations: usize,
) -> Result<Line, Box<dyn std::error::Error>> {
    let temp = tempfile::Builder::new().prefix("herd-churn-").tempdir()?;
    let dir = claim_dir(temp.path())?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let work = scrape::populate(&registry, series)?;
    let jobs = registry.counter(CHURN_COUNTER, "Jobs done by short-lived workers.").register()?;

    let before = steady_scrapes(&dir, iterations)?;
    let started = Instant::now();
    for _ in 0..processes {
        match fork()? {
            Forked::Child => {
                jobs.inc();
                std::process::exit(0);
            }
            Forked::Parent { child } => {
                let pid = i32::try_from(child).ok().and_then(Pid::from_raw).ok_or("bad pid")?;
                let status = waitpid(Some(pid), WaitOptions::empty())?;
                if status.is_none_or(|(_, s)| s.exit_status() != Some(0)) {
                    return Err(format!("worker {child} failed").into());
                }
                herd_mmap::compact_if_needed(&dir, herd_mmap::DEFAULT_COMPACT_THRESHOLD)?;
            }
        }
    }
    let churn_secs = started.elapsed().as_secs_f64();
    let after = steady_scrapes(&dir, iterations)?;

    let (snapshot, report) = Aggregator::new(&dir)?.scrape()?;
    if report.live_files != 1 || !report.skipped.is_empty() {
        return Err(format!("after the churn, expected the master's live file only: {report:?}").into());
    }
    let total = |name: &str| {
        snapshot.family(name).map_or(0, |f| {
            f.series.iter().map(|s| if let SeriesValue::Counter(c) = &s.value { c.integer } else { 0 }).sum()
        })
    };
    let got = (
        total(CHURN_COUNTER.trim_end_matches("_total")),
        total(scrape::COUNTER_FAMILY.trim_end_matches("_total")),
    );
    if got != (processes as u64, work.increments) {
        return Err(format!(
            "wrong aggregate after the churn: (jobs, requests) = {got:?}, expected ({processes}, {})",
            work.increments
        )
        .into());
    }
    let files = std::fs::read_dir(&dir)?.count();

    let (before_ms, after_ms) = (scrape::median(&before), scrape::median(&after));
    let mut line = Line::default();
    line.set_f64("churn_scrape_before_ms", before_ms);
    line.set_f64("churn_scrape_after_ms", after_ms);
    line.set("churn_ratio", format_args!("{:.3}", after_ms / before_ms));
    line.set_f64("churn_before_mad_ms", scrape::mad(&before));
    line.set_f64("churn_after_mad_ms", scrape::mad(&after));
    line.set("churn_processes", processes);
    line.set("churn_series", series);
    line.set("churn_iterations", iterations);
    line.set("churn_files", files);
    line.set("churn_secs", format_args!("{churn_secs:.1}"));
    Ok(line)
}

/// Times `iterations` steady scrapes (snapshot + 0.0.4 encoding) of `dir` on one
/// aggregator, after a first, cold one; milliseconds each.
fn steady_scrapes(dir: &Path, iterations: usize) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let aggregator = Aggregator::new(dir)?;
    aggregator.snapshot()?;
    Ok(crate::scrape::steady_scrape_times(&aggregator, iterations)?)
}

/// The verdict on the churn line: `Ok((met, ratio))`, or why it was not measured.
pub fn evaluate(line: Option<&Line>) -> Result<(bool, f64), String> {
    let line = line.ok_or("scrape-compare --churn did not run")?;
    let ratio = line.get_f64("churn_ratio").ok_or("no churn_ratio in the churn line")?;
    Ok((ratio <= CHURN_TARGET, ratio))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_compare_the_ratio_with_the_target() {
        assert_eq!(evaluate(Some(&Line::parse("churn_ratio=1.200"))), Ok((true, 1.2)));
        assert_eq!(evaluate(Some(&Line::parse("churn_ratio=1.51"))), Ok((false, 1.51)));
        assert!(evaluate(Some(&Line::parse("churn_scrape_before_ms=1"))).is_err());
        assert!(evaluate(None).is_err());
    }
}
