//! The metrics directory: checked before use, claimed and wiped by a master.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
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
pub fn check_dir(path: &Path) -> Result<(), MmapError> {
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
/// # Errors
///
/// [`MmapError`] if the directory is unsafe or a file cannot be removed.
pub fn claim_dir(path: &Path) -> Result<PathBuf, MmapError> {
    if fs::symlink_metadata(path).is_err() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(|e| MmapError::io(path, "cannot create", e))?;
    }
    check_dir(path)?;
    let entries = fs::read_dir(path).map_err(|e| MmapError::io(path, "cannot list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| MmapError::io(path, "cannot list", e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours =
            is_worker_file(&name) || name == ARCHIVE || name == COMPACT_LOCK || name.ends_with(".herd.tmp");
        if ours {
            let p = entry.path();
            fs::remove_file(&p).map_err(|e| MmapError::io(&p, "cannot remove", e))?;
        }
    }
    // Tighten a directory we created with a permissive umask, or one that was 0755.
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    Ok(path.to_path_buf())
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
        assert!(check_dir(&tmp.path().join("missing")).is_err());
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
