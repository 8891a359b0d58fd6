//! The multi-process core under misuse, seen from outside through `herd serve` (issue
//! 16): what cannot be recorded is counted where `/metrics` shows it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use herd_core::Registry;
use herd_mmap::{claim_dir, MmapStorage};
use herd_testkit::http_get;

mod common;
use common::Serve;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const ROLE_ENV: &str = "HERD_MISUSE_TEST_DIR";
/// Each writer's family cap, and the distinct label values it looks up.
const CAP: u32 = 4;
const VALUES: u32 = 10;

/// The body of the independent writers `six_independent_processes...` starts: a family
/// past its cap, then exit. Ignored: on its own it has nothing to do.
#[test]
#[ignore = "the body of the writer processes six_independent_processes... starts"]
fn overflowing_writer() -> TestResult {
    let Some(dir) = std::env::var_os(ROLE_ENV) else { return Ok(()) };
    // Independent processes, no master: the directory was claimed once before them
    // (as a deployment's start-up step does), and each only opens its file there.
    let dir = PathBuf::from(dir);
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let jobs = registry
        .counter("jobs_total", "Jobs.")
        .labels(["item"])
        .cardinality_limit(CAP as usize)
        .register()?;
    for i in 0..VALUES {
        jobs.with_labels([i.to_string().as_str()]).inc();
    }
    Ok(())
}

/// The value of the sample line that starts with `series ` in `body`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn six_independent_processes_report_their_overflow_at_herd_serve() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    for _ in 0..6 {
        let status = Command::new(std::env::current_exe()?)
            .args(["overflowing_writer", "--exact", "--ignored", "--quiet"])
            .env(ROLE_ENV, &dir)
            .stdout(Stdio::null())
            .status()?;
        assert!(status.success(), "writer: {status}");
    }
    let serve = Serve::start_with(&dir, &[], Stdio::null())?;
    let (status, _, body) = http_get(serve.addr, "/metrics", &[])?;
    let body = String::from_utf8(body)?;
    assert_eq!(status, 200, "{body}");
    // Each process folded VALUES - CAP lookups into its overflow series.
    let folded = f64::from(6 * (VALUES - CAP));
    assert_eq!(sample(&body, "herd_cardinality_overflow_total{family=\"jobs\"}"), Some(folded), "{body}");
    assert_eq!(sample(&body, "jobs_total{item=\"__overflow__\"}"), Some(folded), "{body}");
    assert_eq!(sample(&body, "herd_storage_errors_total{family=\"jobs\"}"), Some(0.0), "{body}");
    assert_eq!(sample(&body, "herd_mmap_fork_file_failures_total"), Some(0.0), "{body}");
    Ok(())
}

#[test]
fn claim_dir_beside_a_live_writer_names_it_and_removes_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    // A live writer in another process: `herd serve` keeps nothing open for writing,
    // so use a writer of this test's own process, which is just as live.
    let storage = MmapStorage::open(&dir)?;
    let file = storage.path();
    let err = claim_dir(&dir).err().ok_or("claim_dir removed a live writer's file")?;
    let message = err.to_string();
    assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
    assert!(file.exists());
    drop(storage);
    Ok(())
}

#[test]
fn herd_serve_logs_a_skipped_file_once_not_at_every_scrape() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claim_dir(tmp.path().join("metrics"))?;
    let bad = dir.join("w-1-00000000000000aa.herd");
    std::fs::write(&bad, b"not a herd file at all, and far too short")?;
    let serve = Serve::start_with(&dir, &[], Stdio::piped())?;
    for _ in 0..3 {
        let (status, _, body) = http_get(serve.addr, "/metrics", &[])?;
        assert_eq!(status, 200);
        assert!(String::from_utf8_lossy(&body).contains("herd_mmap_skipped_files 1\n"));
    }
    let stderr = serve.stop()?;
    let name = bad.display().to_string();
    assert_eq!(stderr.matches(name.as_str()).count(), 1, "logged once, at the first read: {stderr}");
    Ok(())
}
