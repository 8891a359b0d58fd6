//! A file truncated under an aggregator that already maps it: the pages past the new
//! end fault when read, the guard answers them with zeroes, and the aggregator reads
//! the round again without that file. Without the guard this test dies of SIGBUS.
//! (`cli/tests/shrink.rs` does the same from outside, with live processes and random
//! moments.)

use std::sync::Arc;

use herd_core::Registry;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};

mod common;
use common::counter_total;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A registry on its own file in `dir`, with `series` counter series, each at 1.
fn writer(
    dir: &std::path::Path,
    name: &str,
    series: u32,
) -> Result<(Registry, std::path::PathBuf), Box<dyn std::error::Error>> {
    let storage = MmapStorage::open(dir)?;
    let path = storage.path();
    let registry = Registry::builder().storage(Arc::new(storage)).build()?;
    let family = registry.counter(name, "Jobs.").labels(["id"]).cardinality_limit(10_000).register()?;
    for i in 0..series {
        family.with_labels([i.to_string().as_str()]).inc();
    }
    Ok((registry, path))
}

#[test]
fn a_dead_file_truncated_under_the_aggregator_is_left_out_not_a_crash() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    // Big enough that its cells reach past half of its first segment.
    let (a, a_path) = writer(&dir, "a_total", 2_000)?;
    let (b, _) = writer(&dir, "b_total", 10)?;
    let aggregator = Aggregator::new(&dir)?.compact_threshold(None);
    drop(a);
    let (snapshot, _) = aggregator.scrape()?;
    assert_eq!(counter_total(&snapshot, "a"), 2_000.0, "A is dead, read whole, and mapped");

    // A loses its second half while the aggregator maps it. A dead file is never
    // looked at again, so nothing notices until its cells are read: when B dies, the
    // dead files' totals are folded again, and A's pages past the end fault.
    let len = std::fs::metadata(&a_path)?.len();
    std::fs::OpenOptions::new().write(true).open(&a_path)?.set_len(len / 2)?;
    drop(b);
    let (snapshot, report) = aggregator.scrape()?;
    assert_eq!(counter_total(&snapshot, "b"), 10.0, "B is exact");
    assert!(snapshot.family("a").is_none(), "nothing of A is served: its zeroes are not totals");
    assert_eq!(report.shrunk_files, 1, "{report:?}");
    let skipped: Vec<_> = report.skipped.iter().map(|s| (&s.path, s.reason.as_str())).collect();
    assert_eq!(skipped, [(&a_path, "the file shrank while it was read (truncated by another process)")]);
    // Later scrapes go on without it, and do not count it again.
    let (_, report) = aggregator.scrape()?;
    assert_eq!((report.shrunk_files, report.skipped.len()), (1, 1));
    Ok(())
}

#[test]
fn a_live_writer_survives_its_file_being_truncated_and_notices_at_its_next_series() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let storage = MmapStorage::open(&dir)?;
    let path = storage.path();
    let registry = Registry::builder().storage(Arc::new(storage)).build()?;
    let jobs = registry.counter("jobs_total", "Jobs.").labels(["id"]).cardinality_limit(10_000).register()?;
    for i in 0..2_000u32 {
        jobs.with_labels([i.to_string().as_str()]).inc();
    }
    let last = jobs.with_labels(["1999"]);
    std::fs::OpenOptions::new().write(true).open(&path)?.set_len(0)?;
    // The cell now lies past the end of the file: the store lands in a private page.
    last.inc();
    assert_eq!(registry.snapshot().family("jobs").map(|f| f.series.len()), Some(2_000));
    // The next new series notices, and is kept in memory instead, counted.
    jobs.with_labels(["new"]).inc();
    let own = registry.snapshot();
    assert_eq!(counter_total(&own, herd_core::STORAGE_ERRORS_METRIC), 1.0);
    // What the file held is gone with it (its pages read as zero now); what comes after
    // still counts, in private pages and private cells.
    assert_eq!(counter_total(&own, "jobs"), 2.0, "the process's own view keeps counting");
    // Nobody reads the truncated file as totals.
    let (snapshot, report) = Aggregator::new(&dir)?.scrape()?;
    assert!(snapshot.family("jobs").is_none());
    assert_eq!(report.skipped.len(), 1, "{report:?}");
    Ok(())
}
