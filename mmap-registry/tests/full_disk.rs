//! A full disk: on a tiny tmpfs, a writer that cannot grow its file keeps working on
//! private memory, counts what it could not store, and never dies of SIGBUS; scrapes
//! of the directory still succeed. Needs root to mount the tmpfs; skipped, with the
//! reason printed, otherwise.

use std::sync::Arc;

use herd_core::Registry;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};

mod common;
use common::counter_total;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn a_full_disk_degrades_to_counted_drops_never_a_crash() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mount = tmp.path().join("tiny");
    std::fs::create_dir(&mount)?;
    let _tmpfs = match herd_testkit::Tmpfs::mount(&mount, "512k") {
        Ok(t) => t,
        Err(why) => {
            herd_testkit::cannot_run(&format!("full_disk needs to mount a tmpfs: {why}"));
            return Ok(());
        }
    };
    let dir = claim_dir(mount.join("metrics"))?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let requests = registry
        .counter("requests_total", "Requests.")
        .labels(["id"])
        .cardinality_limit(50_000)
        .register()?;
    // Far more series than 512 KiB can hold: the file stops growing part-way.
    for i in 0..20_000u32 {
        requests.with_labels([&format!("{i:05}")]).inc();
    }
    let own = registry.snapshot();
    // One family, so one series of the self-metric.
    let errors = counter_total(&own, herd_core::STORAGE_ERRORS_METRIC);
    assert!(errors > 0.0, "the failed allocations are counted");
    // In-process, every series still counts (on private cells where the file was full).
    let in_process = counter_total(&own, "requests");
    assert_eq!(in_process, 20_000.0);

    // The directory still scrapes: the series that made it into the file, exactly.
    let (snapshot, report) = Aggregator::new(&dir)?.scrape()?;
    assert!(report.skipped.is_empty(), "{report:?}");
    let stored = snapshot.family("requests").map_or(0, |f| f.series.len());
    let in_file = counter_total(&snapshot, "requests");
    assert!(stored > 100 && stored < 20_000, "{stored} series stored");
    assert_eq!(in_file, stored as f64);
    assert_eq!(stored as f64 + errors, 20_000.0, "every series is either in the file or counted as dropped");

    // A second process cannot even create its file: a clear error, not a crash.
    let err = MmapStorage::open(&dir).err().ok_or("a file was created on a full disk")?;
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    println!("full_disk: {stored} series stored, {errors} dropped and counted; second writer: {err}");
    Ok(())
}
