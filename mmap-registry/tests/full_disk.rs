//! A full disk: on a tiny tmpfs, a writer that cannot grow its file keeps working on
//! private memory, counts what it could not store, and never dies of SIGBUS; scrapes
//! of the directory still succeed. Needs root to mount the tmpfs; skipped, with the
//! reason printed, otherwise.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use herd_core::Registry;
use herd_mmap::{claim_dir, Aggregator, MmapStorage};

mod common;
use common::counter_total;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        if rustix_euid() != 0 {
            return Err("not running as root".into());
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
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn rustix_euid() -> u32 {
    // The test crate has no rustix; /proc tells the effective uid just as well.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").map(str::to_owned)))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(u32::MAX)
}

#[test]
fn a_full_disk_degrades_to_counted_drops_never_a_crash() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mount = tmp.path().join("tiny");
    std::fs::create_dir(&mount)?;
    let _tmpfs = match Tmpfs::mount(&mount, "512k") {
        Ok(t) => t,
        Err(why) => {
            herd_testkit::cannot_run(&format!("full_disk needs to mount a tmpfs: {why}"));
            return Ok(());
        }
    };
    let dir = claim_dir(mount.join("metrics"))?;
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(&dir)?)).build()?;
    let requests = registry
        .counter("requests_total", "Requests.")
        .labels(["id"])
        .cardinality_limit(50_000)
        .register()?;
    // Far more series than 512 KiB can hold: the file stops growing part-way.
    for i in 0..20_000u32 {
        requests.with_labels([&format!("{i:05}")]).inc();
    }
    let own = registry.snapshot();
    // One family, so one series of the self-metric.
    let errors = counter_total(&own, herd_core::STORAGE_ERRORS_METRIC);
    assert!(errors > 0.0, "the failed allocations are counted");
    // In-process, every series still counts (on private cells where the file was full).
    let in_process = counter_total(&own, "requests");
    assert_eq!(in_process, 20_000.0);

    // The directory still scrapes: the series that made it into the file, exactly.
    let (snapshot, report) = Aggregator::new(&dir)?.scrape()?;
    assert!(report.skipped.is_empty(), "{report:?}");
    let stored = snapshot.family("requests").map_or(0, |f| f.series.len());
    let in_file = counter_total(&snapshot, "requests");
    assert!(stored > 100 && stored < 20_000, "{stored} series stored");
    assert_eq!(in_file, stored as f64);
    assert_eq!(stored as f64 + errors, 20_000.0, "every series is either in the file or counted as dropped");

    // A second process cannot even create its file: a clear error, not a crash.
    let err = MmapStorage::open(&dir).err().ok_or("a file was created on a full disk")?;
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    println!("full_disk: {stored} series stored, {errors} dropped and counted; second writer: {err}");
    Ok(())
}
