//! What the `herd` binary's tests share: `herd serve` on a free port.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use herd_core::{Buckets, GaugeMode, Registry};
use herd_mmap::MmapStorage;
use herd_testkit::HerdServe;

pub(crate) type AnyResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// `herd serve --dir DIR` on a free port, this package's `herd`: [`HerdServe`].
pub(crate) struct Serve;

impl Serve {
    /// `herd serve` on `dir`, its stderr inherited.
    #[allow(dead_code)] // not every test binary uses every helper
    pub(crate) fn start(dir: &Path) -> AnyResult<HerdServe> {
        Self::start_with(dir, &[], Stdio::inherit())
    }

    /// `herd serve` on `dir` with more arguments, its stderr going to `stderr`.
    pub(crate) fn start_with(dir: &Path, args: &[&str], stderr: Stdio) -> AnyResult<HerdServe> {
        Ok(HerdServe::start(Path::new(env!("CARGO_BIN_EXE_herd")), dir, args, stderr)?)
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
