//! Churn: 2,000 short-lived workers in sequence leave a directory of O(live) files, and
//! every one of their increments is still counted.

use std::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn two_thousand_short_lived_workers_leave_a_bounded_directory() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    let out = Command::new(env!("CARGO_BIN_EXE_churn"))
        .args(["--dir", &dir.to_string_lossy(), "--processes", "2000"])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("processes=2000 jobs=2000 "), "{stdout}");
    let files: usize = stdout
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().find_map(|kv| kv.strip_prefix("files=")))
        .ok_or("no files= field")?
        .parse()?;
    // One live process (the master), at most 16 dead files waiting for the next
    // compaction (the threshold), the archive and the compaction lock.
    let bound = 1 + 16 + 2;
    assert!(files <= bound, "{files} files after 2,000 workers, more than {bound}");
    // The scrape times are printed for the record, not asserted (no timing in tests).
    println!("churn: 2000 workers left {files} files (bound {bound}); {}", stdout.trim());
    Ok(())
}
