//! Errors that name the file or directory and the operation that failed.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::format::FormatError;

/// Why herd-mmap could not open, write or read a metrics directory.
#[derive(Debug)]
#[non_exhaustive]
pub enum MmapError {
    /// The directory is unsafe to use or missing: a symlink, not a directory, owned by
    /// another user, or writable by group or others.
    Directory {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A system call failed.
    Io {
        /// The file or directory it was about.
        path: PathBuf,
        /// What herd was doing.
        op: &'static str,
        /// The system's error.
        source: io::Error,
    },
    /// [`claim_dir`](crate::claim_dir) found writers still running in the directory
    /// and removed nothing.
    LiveWriters {
        /// The directory.
        path: PathBuf,
        /// The live writers' pids, as their file names give them.
        pids: Vec<u32>,
    },
    /// A file is not a valid herd-mmap file.
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        error: FormatError,
    },
}

impl MmapError {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        Self::Io { path: path.into(), op, source }
    }

    pub(crate) fn dir(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Directory { path: path.into(), reason: reason.into() }
    }

    /// The message without the path, for reports that already name the file.
    pub(crate) fn reason(&self) -> String {
        match self {
            Self::Directory { reason, .. } => reason.clone(),
            Self::LiveWriters { pids, .. } => live_writers(pids),
            Self::Io { op, source, .. } => format!("{op}: {source}"),
            Self::Format { error, .. } => error.to_string(),
        }
    }
}

fn live_writers(pids: &[u32]) -> String {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    format!(
        "still in use by live writers (pid {}); claiming it would remove their files. Stop them \
         first, or join them with claim_dir_with(dir, LiveWriters::Join)",
        pids.join(", ")
    )
}

impl fmt::Display for MmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Directory { path, reason } => write!(f, "metrics directory {}: {reason}", path.display()),
            Self::LiveWriters { path, pids } => {
                write!(f, "metrics directory {}: {}", path.display(), live_writers(pids))
            }
            Self::Io { path, op, source } => write!(f, "{op} {}: {source}", path.display()),
            Self::Format { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for MmapError {
    /// The cause is part of the message (`Display`); the chain goes on with the cause's
    /// own source, so no message is printed twice. The `io::Error` itself, with its
    /// kind, is the `source` field of [`MmapError::Io`].
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => source.source(),
            Self::Format { .. } | Self::Directory { .. } | Self::LiveWriters { .. } => None,
        }
    }
}
