//! herd runs under valgrind: a master that forks workers and aggregates their files
//! (mapped memory, `flock`, the coarse clock) ends as it does without valgrind. rustix
//! found the vDSO through `/proc/self/auxv`, which under valgrind names one valgrind
//! does not map, and every clock read crashed; the workspace's rustix asks libc's
//! `getauxval` instead (`use-libc-auxv`, root Cargo.toml), which this test holds.

use std::process::Command;

use herd_testkit::cannot_run;

#[test]
fn a_forking_master_and_its_aggregate_run_under_valgrind() -> Result<(), Box<dyn std::error::Error>> {
    if Command::new("valgrind").arg("--version").output().map_or(true, |o| !o.status.success()) {
        cannot_run("valgrind is not installed (scripts/install-test-deps.sh installs it)");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("metrics");
    let out = Command::new("valgrind")
        .args(["--quiet", "--error-exitcode=0"])
        .arg(env!("CARGO_BIN_EXE_fork-workers"))
        .arg("--dir")
        .arg(&dir)
        .args(["--workers", "2", "--threads", "1", "--count", "10"])
        .output()?;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "fork-workers under valgrind: {}\n{stderr}", out.status);
    assert!(!stderr.contains("Process terminating"), "{stderr}");
    // The master's two increments and each worker's ten.
    assert!(stdout.contains("jobs_total{worker_kind=\"fork\"} 22\n"), "{stdout}");
    Ok(())
}
