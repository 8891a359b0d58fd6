//! The workspace's `herd` binary: where to find it, and `herd serve` on a free port.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The workspace's `herd` binary, beside the calling test's own executable (a test
/// binary is `target/<profile>/deps/NAME-HASH`, the binaries `target/<profile>/NAME`),
/// for tests of other packages that run `herd serve`; `cargo nextest run --workspace`
/// builds it. `Err` says how to build it.
pub fn herd_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current exe: {e}"))?;
    let herd = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("herd"))
        .ok_or_else(|| format!("no target directory above {}", exe.display()))?;
    if herd.is_file() {
        Ok(herd)
    } else {
        Err(format!("{} is not built (cargo build -p herd-cli)", herd.display()))
    }
}

/// `herd serve --dir DIR` on a free port of 127.0.0.1, its address read from its first
/// line. Killed on drop.
#[derive(Debug)]
pub struct HerdServe {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl HerdServe {
    /// `herd` (the binary at that path) `serve` on `dir` with more `args`, its stderr
    /// going to `stderr`.
    pub fn start(herd: &Path, dir: &Path, args: &[&str], stderr: Stdio) -> Result<Self, String> {
        let mut child = Command::new(herd)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", herd.display()))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("herd serve has no stdout")?;
        BufReader::new(stdout).read_line(&mut line).map_err(|e| format!("herd serve's first line: {e}"))?;
        let addr = line.split("http://").nth(1).and_then(|s| s.strip_suffix("/metrics\n"));
        let addr = addr.and_then(|a| a.parse().ok()).ok_or_else(|| format!("herd serve said {line:?}"))?;
        Ok(Self { child, addr })
    }

    /// Kills it and returns what it wrote to a piped stderr.
    pub fn stop(mut self) -> Result<String, String> {
        self.child.kill().map_err(|e| format!("cannot kill herd serve: {e}"))?;
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr).map_err(|e| format!("herd serve's stderr: {e}"))?;
        }
        Ok(stderr)
    }
}

impl Drop for HerdServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
