//! strace: the system calls one thread of a test makes between two markers.
//!
//! A test runs itself again under `strace -f -ff` (one trace file per thread) with an
//! environment variable set; the child runs the workload between two markers, each a
//! `stat` of a path that does not exist, which the trace shows with its name.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `strace` on `$PATH`, if any (tests skip, saying so, without it).
pub fn strace_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("strace")).find(|p| p.is_file())
}

/// A marker: a `stat` of `path` (which must not exist) that the trace shows by name.
pub fn strace_marker(path: &str) {
    let _ = std::fs::metadata(path);
}

/// Runs the current test binary's test `test_name` under strace with `child_env` set,
/// and returns the system calls made between the markers `begin` and `end`, from the
/// trace of the thread that made them. `Ok(None)` when strace is not installed.
///
/// # Errors
///
/// The traced run failed, or no thread's trace holds both markers.
pub fn syscalls_between_markers(
    test_name: &str,
    child_env: &str,
    begin: &str,
    end: &str,
) -> Result<Option<Vec<String>>, String> {
    let Some(strace) = strace_path() else { return Ok(None) };
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let out = Command::new(strace)
        .args(["-f", "-ff", "-o"])
        .arg(dir.path().join("trace"))
        .arg(exe)
        .args(["--exact", test_name, "--test-threads=1"])
        .env(child_env, "1")
        .output()
        .map_err(|e| format!("cannot run strace: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the traced run failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    calls_between(dir.path(), begin, end).map(Some)
}

fn calls_between(dir: &Path, begin: &str, end: &str) -> Result<Vec<String>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let lines: Vec<&str> = text.lines().collect();
        let Some(first) = lines.iter().position(|l| l.contains(begin)) else { continue };
        let last = lines
            .iter()
            .position(|l| l.contains(end))
            .ok_or("no end marker in the begin marker's trace file")?;
        return Ok(lines[first + 1..last].iter().map(|l| (*l).to_owned()).collect());
    }
    Err("no trace file holds the begin marker".into())
}
