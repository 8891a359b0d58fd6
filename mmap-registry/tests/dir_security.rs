//! The metrics directory against another local user (SECURITY.md): a symlinked
//! directory, one owned by someone else, one writable by group or others, and files
//! planted under the names herd uses are refused with a clear error or skipped, never
//! followed or served; herd's own files are created owner-only, with `O_NOFOLLOW` and
//! `O_CLOEXEC`.
//!
//! The cases that need a second user (chown to `nobody`) run only as root, and print
//! why they are skipped otherwise.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use herd_core::Registry;
use herd_mmap::{check_dir, claim_dir, compact, Aggregator, MmapStorage};

mod common;
use common::counter_total;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Debian's `nobody`.
const NOBODY: u32 = 65534;

fn euid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

/// A claimed directory (mode 0700, ours) inside a temporary one.
fn claimed(tmp: &tempfile::TempDir) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let dir = tmp.path().join("metrics");
    claim_dir(&dir)?;
    Ok(dir)
}

/// A registry writing to `dir`, with `jobs_total` at `n`.
fn writer(dir: &Path, n: u64) -> Result<Registry, Box<dyn std::error::Error>> {
    let registry = Registry::builder().storage(Arc::new(MmapStorage::open(dir)?)).build()?;
    registry.counter("jobs_total", "Jobs.").register()?.inc_by(n);
    Ok(registry)
}

/// Every entry point that takes a directory: each must refuse it, naming the reason.
fn assert_refused_everywhere(dir: &Path, reason: &str) -> TestResult {
    let errors = [
        ("check_dir", check_dir(dir).err().map(|e| e.to_string())),
        ("MmapStorage::open", MmapStorage::open(dir).err().map(|e| e.to_string())),
        ("Aggregator::new", Aggregator::new(dir).err().map(|e| e.to_string())),
        ("compact", compact(dir).err().map(|e| e.to_string())),
        ("claim_dir", claim_dir(dir).err().map(|e| e.to_string())),
    ];
    for (what, error) in errors {
        let error = error.ok_or_else(|| format!("{what} accepted {}", dir.display()))?;
        assert!(error.contains(reason), "{what}: {error:?} does not say {reason:?}");
        assert!(error.contains(&dir.display().to_string()), "{what}: {error:?} does not name the directory");
    }
    Ok(())
}

fn worker_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("w-")))
        .collect();
    files.sort();
    Ok(files)
}

#[test]
fn a_symlinked_directory_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let real = claimed(&tmp)?;
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&real, &link)?;
    assert_refused_everywhere(&link, "is a symlink")?;
    assert!(worker_files(&real)?.is_empty(), "a file was created through the symlink");
    Ok(())
}

#[test]
fn a_directory_writable_by_group_or_others_is_refused() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claimed(&tmp)?;
    for mode in [0o770, 0o720, 0o707, 0o702, 0o777, 0o1777] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
        assert_refused_everywhere(&dir, "writable by group or others")?;
        // claim_dir refused it too, so it did not quietly tighten the mode.
        assert_eq!(fs::metadata(&dir)?.mode() & 0o7777, mode, "the mode changed");
    }
    // Readable by others is not a tampering risk, and is accepted.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))?;
    check_dir(&dir)?;
    Ok(())
}

#[test]
fn a_directory_owned_by_another_user_is_refused() -> TestResult {
    if euid() != 0 {
        herd_testkit::cannot_run(&format!("needs root to chown a directory to another user (uid {NOBODY})"));
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = claimed(&tmp)?;
    std::os::unix::fs::chown(&dir, Some(NOBODY), Some(NOBODY))?;
    assert_refused_everywhere(&dir, &format!("is owned by uid {NOBODY}"))?;
    Ok(())
}

/// What a scrape found: the `jobs_total` total and the skipped files with their reasons.
type Scraped = (f64, Vec<(PathBuf, String)>);

/// A scrape of `dir`.
fn scrape(dir: &Path) -> Result<Scraped, Box<dyn std::error::Error>> {
    let (snapshot, report) = Aggregator::new(dir)?.scrape()?;
    let skipped = report.skipped.into_iter().map(|s| (s.path, s.reason)).collect();
    Ok((counter_total(&snapshot, "jobs"), skipped))
}

/// A well-formed worker file of a process that has exited, with `jobs_total` at `n`,
/// made in a directory of its own and returned as bytes.
fn foreign_file(n: u64) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    let dir = claimed(&tmp)?;
    let registry = writer(&dir, n)?;
    let path = worker_files(&dir)?.pop().ok_or("no worker file")?;
    drop(registry);
    Ok(fs::read(path)?)
}

#[test]
fn a_file_planted_by_another_user_is_skipped_not_served() -> TestResult {
    if euid() != 0 {
        herd_testkit::cannot_run(&format!("needs root to plant a file owned by another user (uid {NOBODY})"));
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let dir = claimed(&tmp)?;
    let _ours = writer(&dir, 5)?;
    // Well formed, dead, and under a worker's name: only its owner gives it away.
    let planted = dir.join("w-1-00000000deadbeef.herd");
    fs::write(&planted, foreign_file(1_000_000)?)?;
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o600))?;
    std::os::unix::fs::chown(&planted, Some(NOBODY), Some(NOBODY))?;
    // And as the archive, which compaction must then not overwrite.
    let archive = dir.join("archive.herd");
    fs::write(&archive, foreign_file(2_000_000)?)?;
    std::os::unix::fs::chown(&archive, Some(NOBODY), Some(NOBODY))?;

    let (total, skipped) = scrape(&dir)?;
    assert_eq!(total, 5.0, "a planted file was counted");
    for path in [&planted, &archive] {
        let reason = skipped
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{} not reported as skipped: {skipped:?}", path.display()));
        assert!(reason.contains(&format!("owned by uid {NOBODY}")), "{reason}");
    }
    // Compaction neither folds the planted file nor replaces the archive it cannot read.
    assert!(compact(&dir).is_err(), "compaction went ahead over a foreign archive");
    assert_eq!(fs::metadata(&archive)?.uid(), NOBODY);
    assert!(planted.exists());
    Ok(())
}

#[test]
fn symlinks_planted_under_our_names_are_never_followed() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claimed(&tmp)?;
    let _ours = writer(&dir, 5)?;
    let victim = tmp.path().join("victim");
    fs::write(&victim, b"precious")?;
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644))?;
    // A well-formed worker file outside, linked in under a worker's name and as the
    // archive: following either would count it.
    let outside = tmp.path().join("outside.herd");
    fs::write(&outside, foreign_file(1_000_000)?)?;
    let linked_worker = dir.join("w-2-00000000deadbeef.herd");
    std::os::unix::fs::symlink(&outside, &linked_worker)?;
    std::os::unix::fs::symlink(&outside, dir.join("archive.herd"))?;
    // The compaction lock has a fixed name: a symlink there must not be opened,
    // created through or truncated.
    std::os::unix::fs::symlink(&victim, dir.join("compact.lock"))?;

    let (total, skipped) = scrape(&dir)?;
    assert_eq!(total, 5.0, "a symlinked file was counted");
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped.iter().all(|(_, r)| r.contains("not a regular file")), "{skipped:?}");

    let error = compact(&dir).err().map(|e| e.to_string()).ok_or("compaction went through a symlink")?;
    assert!(error.contains("compact.lock"), "{error}");
    assert_eq!(fs::read(&victim)?, b"precious");
    assert_eq!(fs::metadata(&victim)?.mode() & 0o777, 0o644);

    // claim_dir removes the links themselves, never what they point to.
    drop(_ours);
    claim_dir(&dir)?;
    assert!(fs::symlink_metadata(dir.join("compact.lock")).is_err());
    assert!(fs::symlink_metadata(&linked_worker).is_err());
    assert_eq!(fs::read(&victim)?, b"precious");
    assert!(outside.exists());
    Ok(())
}

#[test]
fn a_fifo_planted_under_a_workers_name_blocks_nothing() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claimed(&tmp)?;
    let _ours = writer(&dir, 5)?;
    let fifo = dir.join("w-3-00000000deadbeef.herd");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success(), "mkfifo failed");
    // In threads, so that a blocking open fails the test instead of hanging it.
    let (tx, rx) = mpsc::channel();
    let scrape_dir = dir.clone();
    std::thread::spawn(move || {
        let _ =
            tx.send((scrape(&scrape_dir).map_err(|e| e.to_string()), compact(&scrape_dir).map(|r| r.busy)));
    });
    let (scraped, compacted) =
        rx.recv_timeout(Duration::from_secs(30)).map_err(|_| "a scrape or compaction blocked on a FIFO")?;
    let (total, skipped) = scraped?;
    assert_eq!(total, 5.0);
    assert!(skipped.iter().any(|(p, r)| p == &fifo && r.contains("not a regular file")), "{skipped:?}");
    assert!(compacted.is_ok(), "{compacted:?}");
    Ok(())
}

/// The flags of the open file description of `path` in this process, from
/// `/proc/self/fdinfo` (which also shows close-on-exec as `O_CLOEXEC`).
fn open_flags(path: &Path) -> Result<i32, Box<dyn std::error::Error>> {
    for entry in fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        if fs::read_link(entry.path()).is_ok_and(|target| target == path) {
            let info = fs::read_to_string(Path::new("/proc/self/fdinfo").join(entry.file_name()))?;
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).ok_or("no flags in fdinfo")?;
            return Ok(i32::from_str_radix(flags.trim(), 8)?);
        }
    }
    Err(format!("{} is not open in this process", path.display()).into())
}

#[test]
fn files_are_created_owner_only_with_o_nofollow_and_o_cloexec() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let dir = claimed(&tmp)?;
    assert_eq!(fs::metadata(&dir)?.mode() & 0o7777, 0o700, "claim_dir's mode");
    let storage = MmapStorage::open(&dir)?;
    let path = storage.path();
    assert_eq!(fs::metadata(&path)?.mode() & 0o7777, 0o600, "a worker file's mode");
    let flags = open_flags(&path)?;
    assert_ne!(flags & libc::O_NOFOLLOW, 0, "worker file opened without O_NOFOLLOW ({flags:o})");
    assert_ne!(flags & libc::O_CLOEXEC, 0, "worker file opened without O_CLOEXEC ({flags:o})");

    // Compaction's files: the archive and the lock.
    let registry = Registry::builder().storage(Arc::new(storage)).build()?;
    registry.counter("jobs_total", "Jobs.").register()?.inc();
    drop(registry);
    let report = compact(&dir)?;
    assert_eq!(report.folded_files, 1);
    for name in ["archive.herd", "compact.lock"] {
        assert_eq!(fs::metadata(dir.join(name))?.mode() & 0o7777, 0o600, "{name}'s mode");
    }
    Ok(())
}
