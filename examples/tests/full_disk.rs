//! A full metrics directory is never silent at `/metrics` (issue 16): on a tiny tmpfs,
//! the series a worker could not store are counted in `herd_storage_errors_total`, and
//! a forked child that could not create a file of its own in
//! `herd_mmap_fork_file_failures_total`, both read through the same `/metrics` answer
//! the web adapters serve. Needs root to mount the tmpfs: fails in CI without it.

use std::process::Command;
use std::sync::Arc;

use herd_core::http::MetricsSource;
use herd_mmap::{claim_dir, Aggregator};
use herd_testkit::Tmpfs;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The value of the sample line `series ...` in `body`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn a_full_directory_and_a_child_without_a_file_are_counted_at_metrics() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mount = tmp.path().join("tiny");
    std::fs::create_dir(&mount)?;
    let _tmpfs = match Tmpfs::mount(&mount, "512k") {
        Ok(t) => t,
        Err(why) => {
            herd_testkit::cannot_run(&format!("full_disk needs to mount a tmpfs: {why}"));
            return Ok(());
        }
    };
    let dir = claim_dir(mount.join("metrics"))?;
    let out = Command::new(env!("CARGO_BIN_EXE_fork-without-file")).arg("--dir").arg(&dir).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let errors: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("storage errors: "))
        .ok_or("no storage errors line")?
        .parse()?;

    let scrape = MetricsSource::from(Arc::new(Aggregator::new(&dir)?)).respond(None, []);
    let body = String::from_utf8(scrape.body)?;
    assert_eq!(scrape.status, 200, "{body}");
    let counted =
        sample(&body, "herd_storage_errors_total{family=\"jobs\"}").ok_or("no storage errors at /metrics")?;
    assert!(counted >= errors && counted > 0.0, "{counted} at /metrics, {errors} in the process: {body}");
    assert_eq!(sample(&body, "herd_mmap_fork_file_failures_total"), Some(1.0), "{body}");
    // The master's own increment of the handle it cached before the fork is there,
    // and nothing of the child's reached the master's file.
    assert_eq!(sample(&body, "jobs_total{id=\"before-fork\"}"), Some(1.0), "{body}");
    Ok(())
}
