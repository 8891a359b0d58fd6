//! A read-only look at a metrics directory, file by file: what `herd inspect` prints.
//!
//! The aggregator answers "what are the totals"; an operator looking at a directory
//! also asks "which processes wrote here, are they alive, how big are their files, and
//! which files are broken". Inspecting never compacts, never writes, and reads every
//! file through the same checks as a scrape.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use herd_core::MetricKind;

use crate::aggregate::{list, SkippedFile};
use crate::dir::{check_dir, ARCHIVE};
use crate::error::MmapError;
use crate::reader::{FileReader, Refreshed};

/// What one readable file holds.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FileSummary {
    /// The file.
    pub path: PathBuf,
    /// Whose file it is.
    pub owner: FileOwner,
    /// The file's length on disk.
    pub bytes: u64,
    /// Bytes of published records (the header included); the rest is room to grow.
    pub used: u64,
    /// Series in the file.
    pub series: usize,
}

/// Who wrote a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileOwner {
    /// A worker process: its pid, and whether it still holds its file's lock (alive).
    Process {
        /// The pid the writer had.
        pid: u32,
        /// Whether the writer is alive.
        live: bool,
    },
    /// The archive of compacted dead processes.
    Archive,
}

/// A family as the directory describes it, over every file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FamilySummary {
    /// The family's name.
    pub name: String,
    /// Its type.
    pub kind: MetricKind,
    /// Series of this family summed over the files (a series several processes write
    /// counts once per file).
    pub series: usize,
    /// Files that hold at least one of its series.
    pub files: usize,
}

/// Everything [`inspect`] found.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Inspection {
    /// Readable files, worker files by name, then the archive.
    pub files: Vec<FileSummary>,
    /// Families by name.
    pub families: Vec<FamilySummary>,
    /// Files that a scrape would skip, and why.
    pub skipped: Vec<SkippedFile>,
}

/// Describes every herd file in `dir` without changing anything.
///
/// # Errors
///
/// [`MmapError`] if the directory is unsafe (see [`check_dir`](crate::check_dir)) or
/// cannot be listed; unreadable files are reported in [`Inspection::skipped`].
pub fn inspect(dir: impl AsRef<Path>) -> Result<Inspection, MmapError> {
    let dir = dir.as_ref();
    check_dir(dir)?;
    let mut paths = list(dir)?;
    paths.push(dir.join(ARCHIVE));

    let mut out = Inspection::default();
    let mut families: BTreeMap<String, FamilySummary> = BTreeMap::new();
    for path in paths {
        let reader = match FileReader::refresh(None, &path, None, None) {
            Ok(Refreshed::Read(reader)) => reader,
            Ok(Refreshed::Vanished) => continue,
            Err(e) => {
                out.skipped.push(SkippedFile { path, reason: e.reason() });
                continue;
            }
        };
        if let Some(e) = &reader.error {
            out.skipped.push(SkippedFile { path, reason: e.to_string() });
            continue;
        }
        let owner = if reader.is_archive() {
            FileOwner::Archive
        } else {
            FileOwner::Process { pid: reader.header.pid, live: reader.is_live() }
        };
        let mut seen = Vec::new();
        for series in reader.series() {
            let Some(family) = reader.parsed.family(series) else { continue };
            let entry = families.entry(family.name.to_string()).or_insert_with(|| FamilySummary {
                name: family.name.to_string(),
                kind: family.kind,
                series: 0,
                files: 0,
            });
            entry.series += 1;
            if !seen.contains(&family.name) {
                seen.push(family.name.clone());
                entry.files += 1;
            }
        }
        let bytes = fs::metadata(&path).map(|m| m.size()).unwrap_or(0);
        out.files.push(FileSummary {
            path,
            owner,
            bytes,
            used: reader.parsed.to,
            series: reader.series().len(),
        });
    }
    out.families = families.into_values().collect();
    Ok(out)
}
