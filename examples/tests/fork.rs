//! Fork transparency, end to end: a master forks 8 workers that update handles created
//! before the fork, from 4 threads each; the aggregate is exact and the master's own
//! file holds only the master's writes.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use herd_core::snapshot::SeriesValue;
use herd_mmap::Aggregator;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn forked_workers_sum_exactly_and_never_write_to_the_master_file() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    let out = Command::new(env!("CARGO_BIN_EXE_fork-workers"))
        .args(["--dir", &dir.to_string_lossy(), "--workers", "8", "--threads", "4", "--count", "2500"])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));

    // 8 workers x 4 threads x 2,500, plus the master's 2.
    assert!(stdout.contains("jobs_total{worker_kind=\"fork\"} 80002\n"), "{stdout}");
    // Each thread of worker w observes w once: 4 x (1 + ... + 8) = 144 over 32 observations.
    assert!(stdout.contains("job_duration_seconds_sum 144\njob_duration_seconds_count 32\n"), "{stdout}");
    assert!(stdout.contains("job_duration_seconds_bucket{le=\"1.0\"} 4\n"), "{stdout}");
    let gauges = stdout.lines().filter(|l| l.starts_with("busy_workers{pid=")).count();
    assert_eq!(gauges, 9, "one busy_workers series per process: {stdout}");

    // The master's file, read alone, holds only the master's two increments.
    let master =
        stdout.lines().find_map(|l| l.strip_prefix("# master file: ")).ok_or("no master file line")?;
    let alone = tmp.path().join("master-only");
    std::fs::create_dir(&alone)?;
    std::fs::set_permissions(&alone, std::fs::Permissions::from_mode(0o700))?;
    std::fs::copy(master, alone.join("w-1-0.herd"))?;
    let (snapshot, report) = Aggregator::new(&alone)?.scrape()?;
    assert_eq!((report.live_files, report.dead_files, report.skipped.len()), (0, 1, 0));
    let jobs = snapshot.family("jobs").ok_or("no jobs family")?;
    assert_eq!(jobs.series.len(), 1);
    assert!(matches!(&jobs.series[0].value, SeriesValue::Counter(c) if c.total() == 2.0), "{jobs:?}");
    let duration = snapshot.family("job_duration_seconds").ok_or("no histogram")?;
    assert!(matches!(&duration.series[0].value, SeriesValue::Histogram(h) if h.count() == 0));

    // Every process has exited, so every file is dead.
    let (_, report) = Aggregator::new(&dir)?.scrape()?;
    assert_eq!((report.live_files, report.dead_files, report.skipped.len()), (0, 9, 0));
    Ok(())
}

#[test]
fn fork_refuses_a_multithreaded_process() {
    // Whatever thread the harness runs this on, a second thread is alive during the call.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let other = std::thread::spawn(move || rx.recv());
    let err = herd_mmap::fork().err().map(|e| e.to_string()).unwrap_or_default();
    drop(tx);
    let _ = other.join();
    assert!(err.contains("refusing to fork"), "{err}");
}
