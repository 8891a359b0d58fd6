//! What the `herd` binary's tests share: `herd serve` on a free port.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use herd_core::{Buckets, GaugeMode, Registry};
use herd_mmap::MmapStorage;

pub(crate) type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// `herd serve --dir DIR` on a free port; its address is read from its first line.
/// Killed on drop.
pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Serve {
    /// `herd serve` on `dir`, its stderr inherited.
    #[allow(dead_code)] // not every test binary uses every helper
    pub(crate) fn start(dir: &Path) -> AnyResult<Self> {
        Self::start_with(dir, &[], Stdio::inherit())
    }

    /// `herd serve` on `dir` with more arguments, its stderr going to `stderr`.
    pub(crate) fn start_with(dir: &Path, args: &[&str], stderr: Stdio) -> AnyResult<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herd"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().ok_or("no stdout")?).read_line(&mut line)?;
        let addr =
            line.split("http://").nth(1).and_then(|s| s.strip_suffix("/metrics\n")).ok_or(line.clone())?;
        Ok(Self { addr: addr.parse()?, child })
    }

    /// Kills it and returns what it wrote to a piped stderr.
    #[allow(dead_code)]
    pub(crate) fn stop(mut self) -> AnyResult<String> {
        self.child.kill()?;
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            pipe.read_to_string(&mut stderr)?;
        }
        Ok(stderr)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry writing into `dir`, with one family of each type and known totals.
#[allow(dead_code)] // not every test binary uses every helper
pub(crate) fn workload(dir: &Path) -> AnyResult<Registry> {
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(dir)?)).build()?;
    let jobs = registry.counter("jobs_total", "Jobs done.").labels(["queue"]).register()?;
    let depth =
        registry.gauge("queue_depth", "Jobs waiting.").multiprocess_mode(GaugeMode::Sum).register()?;
    let took = registry
        .histogram("job_duration_seconds", "Time per job.")
        .buckets(Buckets::new([0.1, 1.0])?)
        .register()?;
    let sizes = registry.summary("job_size_bytes", "Job sizes.").register()?;
    for i in 0..250u32 {
        jobs.with_labels([if i % 3 == 0 { "mail" } else { "resize" }]).inc();
        took.observe(f64::from(i % 7) / 4.0);
        sizes.observe(f64::from(i));
    }
    depth.set(12.0);
    Ok(registry)
}
