//! A small tmpfs of a test's own, to fill up: mounting needs root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a directory of the test's, unmounted (lazily) on drop.
#[derive(Debug)]
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it: `512k`, `1m`) with mode
    /// 0700 at `at`, which must exist.
    ///
    /// # Errors
    ///
    /// Why it could not: not root, or `mount`'s own message. A test that needs it
    /// passes the reason to [`cannot_run`](crate::cannot_run).
    pub fn mount(at: &Path, size: &str) -> Result<Self, String> {
        if effective_uid() != Some(0) {
            return Err("mounting a tmpfs needs root".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Self(at.to_path_buf()))
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// This process's effective uid, from `/proc/self/status` (no libc needed).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
