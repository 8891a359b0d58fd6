//! `promtool check metrics`.

use std::process::Command;
use std::time::Duration;

use crate::process::{find_binary, run_with_input, RunError};

/// Message returned when promtool is missing.
pub(crate) const PROMTOOL_MISSING: &str = "promtool not found: run scripts/install-test-deps.sh";

/// How long one promtool run may take.
pub(crate) const PROMTOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// Finds promtool: `$HERD_PROMTOOL`, `/usr/bin/promtool`, or `PATH`.
pub(crate) fn promtool_path() -> Result<std::path::PathBuf, String> {
    find_binary("promtool", "HERD_PROMTOOL").ok_or_else(|| PROMTOOL_MISSING.to_owned())
}

/// Runs `promtool check metrics` with `exposition` on stdin.
///
/// Ok only when promtool exits 0 and prints nothing, i.e. the text parsed
/// as format 0.0.4 and no lint fired. Otherwise Err carries the exit code
/// (1 = parse error, 3 = lint problems) and promtool's whole output. promtool
/// only understands 0.0.4: OpenMetrics exemplars fail to parse.
pub fn promtool_check(exposition: &[u8]) -> Result<(), String> {
    let promtool = promtool_path()?;
    let mut cmd = Command::new(&promtool);
    cmd.args(["check", "metrics"]);
    let out = match run_with_input(&mut cmd, exposition, PROMTOOL_TIMEOUT, "promtool check metrics") {
        Ok(out) => out,
        Err(RunError::NotFound) => return Err(PROMTOOL_MISSING.to_owned()),
        Err(RunError::Other(e)) => return Err(e),
    };
    let output = out.combined();
    if out.status.success() && output.trim().is_empty() {
        return Ok(());
    }
    Err(format!("promtool check metrics failed (exit code {}):\n{}", out.code(), output.trim_end()))
}
