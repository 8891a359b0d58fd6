//! The metrics directory: checked before use, claimed and wiped by a master.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::MmapError;

/// File-name suffix of a worker's file.
pub(crate) const WORKER_SUFFIX: &str = ".herd";
/// File-name prefix of a worker's file.
pub(crate) const WORKER_PREFIX: &str = "w-";
/// The compaction archive.
pub(crate) const ARCHIVE: &str = "archive.herd";
/// Taken by whoever compacts.
pub(crate) const COMPACT_LOCK: &str = "compact.lock";

/// Refuses a directory that another local user could tamper with: a symlink, anything
/// but a directory, one owned by another user, or one writable by group or others.
///
/// # Errors
///
/// [`MmapError::Directory`] saying which, or [`MmapError::Io`] if it cannot be read.
pub fn check_dir(path: impl AsRef<Path>) -> Result<(), MmapError> {
    let path = path.as_ref();
    let meta = fs::symlink_metadata(path).map_err(|e| MmapError::io(path, "cannot inspect", e))?;
    if meta.file_type().is_symlink() {
        return Err(MmapError::dir(path, "is a symlink; give the real path"));
    }
    if !meta.is_dir() {
        return Err(MmapError::dir(path, "is not a directory"));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(MmapError::dir(
            path,
            format!("is owned by uid {}, not by this process's uid {me}", meta.uid()),
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(MmapError::dir(
            path,
            format!("is writable by group or others (mode {:o}); chmod 700 it", meta.mode() & 0o7777),
        ));
    }
    Ok(())
}

/// Prepares `path` for a new run: creates it (mode 0700) if missing, checks it, and
/// removes the files an earlier run left (worker files, the archive, the compaction
/// lock). Other files are left alone. A pre-fork master calls this once at start-up,
/// before it forks any worker.
///
/// It never removes the file of a writer that is still running: if one is, nothing is
/// removed and the error names the live pids (another instance of the service, or a
/// worker the last master left behind). Processes that start independently on one
/// directory, with no master, use [`claim_dir_with`] and [`LiveWriters::Join`].
///
/// # Errors
///
/// [`MmapError::LiveWriters`] if writers still hold files there; otherwise
/// [`MmapError`] if the directory is unsafe or a file cannot be removed.
pub fn claim_dir(path: impl AsRef<Path>) -> Result<PathBuf, MmapError> {
    claim_dir_with(path, LiveWriters::Refuse)
}

/// What [`claim_dir_with`] does when writers still hold files in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LiveWriters {
    /// Remove nothing and fail with [`MmapError::LiveWriters`], naming them: a new run
    /// must not start on top of one that is still going (what [`claim_dir`] does).
    #[default]
    Refuse,
    /// Join them: remove nothing, since the run they belong to is still going. When no
    /// writer is alive, the directory is wiped as for [`LiveWriters::Refuse`], so the
    /// first of several independent processes (systemd template units, a supervisor's
    /// children) starts a new run and the others join it.
    Join,
}

/// [`claim_dir`], saying what to do if writers still hold files in the directory.
///
/// # Errors
///
/// As [`claim_dir`]; [`MmapError::LiveWriters`] only with [`LiveWriters::Refuse`].
pub fn claim_dir_with(path: impl AsRef<Path>, live: LiveWriters) -> Result<PathBuf, MmapError> {
    let path = path.as_ref();
    if fs::symlink_metadata(path).is_err() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| MmapError::io(path, "cannot create", e))?;
    }
    check_dir(path)?;
    let mut ours = Vec::new();
    let mut pids = Vec::new();
    let entries = fs::read_dir(path).map_err(|e| MmapError::io(path, "cannot list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| MmapError::io(path, "cannot list", e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_writers = is_worker_file(&name) || name.ends_with(".herd.tmp");
        if !(is_writers || name == ARCHIVE || name == COMPACT_LOCK) {
            continue;
        }
        // A worker file, or one being created (`.tmp`), is locked for its writer's
        // whole life: the lock, not the pid in the name, says whether it still runs.
        if is_writers && is_live(&entry.path()) {
            pids.push(pid_of(&name).unwrap_or(0));
        }
        ours.push(entry.path());
    }
    if !pids.is_empty() {
        pids.sort_unstable();
        pids.dedup();
        return match live {
            LiveWriters::Join => Ok(path.to_path_buf()),
            LiveWriters::Refuse => Err(MmapError::LiveWriters { path: path.to_path_buf(), pids }),
        };
    }
    for p in ours {
        match fs::remove_file(&p) {
            Ok(()) => {}
            // Folded by a compaction meanwhile: gone is what we wanted.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(MmapError::io(&p, "cannot remove", e)),
        }
    }
    // Tighten a directory we created with a permissive umask, or one that was 0755.
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    Ok(path.to_path_buf())
}

/// Whether a writer holds its lock on the file at `path`. A file that cannot be opened
/// (a planted symlink or FIFO, refused by `O_NOFOLLOW`/`O_NONBLOCK`) has no live writer.
fn is_live(path: &Path) -> bool {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .is_ok_and(|f| f.metadata().is_ok_and(|m| m.is_file()) && crate::reader::is_locked(&f))
}

/// The pid in a worker file's name (`w-<pid>-<id>.herd`, or `.herd.tmp`).
fn pid_of(name: &str) -> Option<u32> {
    name.strip_prefix(WORKER_PREFIX)?.split('-').next()?.parse().ok()
}

pub(crate) fn is_worker_file(name: &str) -> bool {
    name.starts_with(WORKER_PREFIX) && name.ends_with(WORKER_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_directories_are_refused_with_the_reason() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("m");
        claim_dir(&dir)?;
        check_dir(&dir)?;

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))?;
        let err = check_dir(&dir).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("writable by group or others"), "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link)?;
        let err = check_dir(&link).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("symlink"), "{err}");

        let file = tmp.path().join("f");
        fs::write(&file, b"x")?;
        assert!(check_dir(&file).is_err());
        assert!(check_dir(tmp.path().join("missing")).is_err());
        Ok(())
    }

    #[test]
    fn claiming_never_removes_a_live_writers_file() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let dir = claim_dir(tmp.path().join("m"))?;
        let storage = crate::MmapStorage::open(&dir)?;
        let file = storage.path();
        let err = claim_dir(&dir).err();
        let me = std::process::id();
        assert!(matches!(&err, Some(MmapError::LiveWriters { pids, .. }) if pids == &[me]), "{err:?}");
        let message = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(&format!("live writers (pid {me})")), "{message}");
        assert!(file.exists(), "the live writer's file survives");
        // Joining leaves it too; once its writer is gone, a claim wipes it.
        assert_eq!(claim_dir_with(&dir, LiveWriters::Join)?, dir);
        assert!(file.exists());
        drop(storage);
        claim_dir(&dir)?;
        assert!(!file.exists());
        Ok(())
    }

    #[test]
    fn claiming_wipes_only_our_files() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        for name in ["w-1-ab.herd", ARCHIVE, COMPACT_LOCK, "keep.txt"] {
            fs::write(dir.join(name), b"x")?;
        }
        claim_dir(dir)?;
        let left: Vec<String> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec!["keep.txt".to_owned()]);
        Ok(())
    }
}
