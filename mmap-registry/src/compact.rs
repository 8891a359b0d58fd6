//! Compaction: dead processes' files folded into one archive, so that a directory holds
//! O(live processes) files however many workers have come and gone. The protocol, and
//! why no scrape can count a file twice or not at all, is in FORMAT.md ("Compaction").
//!
//! Who compacts: readers (an [`Aggregator`](crate::Aggregator) past its threshold, at a
//! scrape or when asked) and whoever calls [`compact`] or [`compact_if_needed`]
//! (`herd compact`, `herd serve`'s schedule, a master between forks). Never a writer:
//! a writer's open and its fork handlers do no directory work, and this module depends
//! on no writer code.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use herd_core::MetricKind;

use crate::dir::{check_dir, is_worker_file, ARCHIVE, COMPACT_LOCK, WORKER_PREFIX, WORKER_SUFFIX};
use crate::error::MmapError;
use crate::format::{
    encode_family, encode_folded, encode_series, gauge_mode_code, label_strings, FamilyRecord, Folded,
    FormatError, Header, StringTable, FLAG_ARCHIVE, HEADER_LEN,
};
use crate::index::Index;
use crate::reader::{is_locked, FileReader, Merge, Refreshed};
use crate::stamp::{now_ns, random_id};

/// The threshold an [`Aggregator`](crate::Aggregator) compacts past unless told
/// otherwise: more dead processes' files than this waiting.
pub const DEFAULT_COMPACT_THRESHOLD: usize = 16;

/// An id stays in the archive's folded list this long after its file is gone, so that a
/// scrape that listed the file before it was unlinked still finds it there.
const KEEP_FOLDED_IDS: Duration = Duration::from_secs(600);

/// A `.tmp` file unlocked for this long was left by a process that died while creating
/// it.
const STALE_TMP: Duration = Duration::from_secs(60);

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompactReport {
    /// Another process was compacting; nothing was done.
    pub busy: bool,
    /// Dead processes' files folded into the archive and removed.
    pub folded_files: usize,
    /// Files that could not be folded (corrupt or unreadable), left in place.
    pub skipped_files: Vec<PathBuf>,
    /// Series in the new archive.
    pub archive_series: usize,
    /// Leftover `.tmp` files of processes that died while creating their file.
    pub removed_tmp_files: usize,
}

/// Folds the files of dead processes in `dir` into its archive and removes them.
///
/// Safe to run at any time, from any process, beside live writers and concurrent
/// scrapes: counters never decrease and no file is counted twice. A second compactor
/// running at the same time returns at once with [`CompactReport::busy`] set.
///
/// # Errors
///
/// [`MmapError`] if the directory is unsafe, the current archive cannot be read (it is
/// never overwritten then, so no total is lost), or the new archive cannot be written
/// (the dead files then stay, and are still counted).
pub fn compact(dir: impl AsRef<Path>) -> Result<CompactReport, MmapError> {
    let dir = dir.as_ref();
    check_dir(dir)?;
    let Some(_lock) = lock(dir)? else { return Ok(CompactReport { busy: true, ..CompactReport::default() }) };
    run(dir, 0)
}

/// Compacts `dir` only if more than `threshold` dead processes' files are waiting, and
/// returns what it did: `None` when at most `threshold` worker files exist at all (so
/// liveness was not even checked) or another process holds the compaction lock.
///
/// Cheap when there is nothing to do: one directory listing while at most `threshold`
/// worker files exist at all, and a lock probe per file beyond. This is the call for
/// whoever looks after a directory that no scrape reads (a master between forks, a
/// timer): writers never compact.
///
/// # Errors
///
/// As [`compact`]: [`MmapError`] if the directory is unsafe or cannot be listed, or a
/// compaction it starts fails (every file then stays, and is still counted).
pub fn compact_if_needed(
    dir: impl AsRef<Path>,
    threshold: usize,
) -> Result<Option<CompactReport>, MmapError> {
    let dir = dir.as_ref();
    check_dir(dir)?;
    let names = worker_names(dir)?;
    if names.len() <= threshold {
        return Ok(None);
    }
    let Some(_lock) = lock(dir)? else { return Ok(None) };
    run(dir, threshold).map(Some)
}

fn run(dir: &Path, threshold: usize) -> Result<CompactReport, MmapError> {
    let mut report = CompactReport::default();
    // Liveness first, with one open and one flock per file: live files, however many,
    // are never parsed, and a file found dead is complete (its writer is gone).
    let mut candidates = Vec::new();
    for name in worker_names(dir)? {
        let path = dir.join(&name);
        match open_to_lock(&path) {
            Ok(file) if is_locked(&file) => {}
            Ok(_) => candidates.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => report.skipped_files.push(path),
        }
    }
    report.removed_tmp_files = remove_stale_tmp(dir);
    if candidates.len() <= threshold || candidates.is_empty() {
        return Ok(report);
    }

    // Every file's series resolve to this index as they are parsed; each fold below is
    // a round of it.
    let mut index = Index::default();
    let archive_path = dir.join(ARCHIVE);
    let mut archive = match FileReader::refresh(None, &archive_path, Some(&mut index), None)? {
        Refreshed::Vanished => None,
        Refreshed::Read(r) => match &r.error {
            Some(error) => return Err(MmapError::Format { path: archive_path, error: error.clone() }),
            None => Some(*r),
        },
    };
    let already: HashSet<u128> = archive.iter().flat_map(|a| a.parsed.folded.iter().map(|f| f.id)).collect();

    let mut dead = Vec::new();
    let mut present_ids = HashSet::new();
    for path in candidates {
        let reader = match FileReader::refresh(None, &path, Some(&mut index), None) {
            Ok(Refreshed::Read(r)) => *r,
            Ok(Refreshed::Vanished) => continue,
            Err(_) => {
                report.skipped_files.push(path);
                continue;
            }
        };
        present_ids.insert(reader.header.id);
        if reader.is_archive() {
            // Not a worker's file after all. (It was found dead above, and a dead
            // writer never comes back: no second liveness check.)
            continue;
        }
        if reader.error.is_some() {
            report.skipped_files.push(path);
        } else if already.contains(&reader.header.id) {
            // Folded by an earlier compaction whose unlink failed: only remove it.
            let _ = fs::remove_file(&path);
        } else {
            dead.push((path, reader));
        }
    }
    if dead.is_empty() {
        return Ok(report);
    }

    // A file that shrinks while it is folded reads as zeroes where it lost pages: a
    // dead file that did is left out (and left in place, skipped), and an archive that
    // did is never replaced, so no total is lost to a stray truncate.
    fold(&mut index, archive.as_ref(), &dead);
    loop {
        if let Some(archive) = archive.as_mut() {
            if archive.check_shrank() {
                return Err(MmapError::Format { path: archive_path, error: FormatError::Shrank });
            }
        }
        let before = dead.len();
        dead.retain_mut(|(path, reader)| {
            let shrank = reader.check_shrank();
            if shrank {
                report.skipped_files.push(path.clone());
            }
            !shrank
        });
        if dead.len() == before {
            break;
        }
        if dead.is_empty() {
            return Ok(report);
        }
        fold(&mut index, archive.as_ref(), &dead);
    }
    let now = now_ns();
    let keep_after = now.saturating_sub(KEEP_FOLDED_IDS.as_nanos() as u64);
    let mut folded: Vec<Folded> = archive
        .iter()
        .flat_map(|a| a.parsed.folded.iter().copied())
        .filter(|f| f.at_ns >= keep_after || present_ids.contains(&f.id))
        .collect();
    folded.extend(dead.iter().map(|(_, r)| Folded { id: r.header.id, at_ns: now }));

    let (bytes, series) = archive_bytes(&mut index, &folded, now)
        .map_err(|why| MmapError::io(dir.join(ARCHIVE), "cannot write", std::io::Error::other(why)))?;
    write_archive(dir, &bytes)?;
    report.archive_series = series;
    for (path, _) in &dead {
        // After the rename: a scrape that no longer finds this file finds it in the
        // archive.
        if fs::remove_file(path).is_ok() {
            report.folded_files += 1;
        }
    }
    Ok(report)
}

/// The archive's and the dead files' series, folded into a new round of the index
/// they were parsed into.
fn fold(index: &mut Index, archive: Option<&FileReader>, dead: &[(PathBuf, FileReader)]) {
    index.begin();
    for reader in archive.into_iter().chain(dead.iter().map(|(_, r)| r)) {
        for series in reader.series() {
            // A dead process has no live value, and one series per dead pid would grow
            // without bound: those gauge modes are not archived.
            let Some(family) = reader.parsed.family(series) else { continue };
            if family.merge == Merge::PerProcess || family.mode.live_only() {
                continue;
            }
            if let Some(slot) = series.slot() {
                index.add(slot, reader.cells(series));
            }
        }
    }
}

/// The bytes of a new archive: header, families, strings, series with their folded
/// cells, and the folded ids. Returns them and the number of series, or why a series
/// cannot be written.
fn archive_bytes(index: &mut Index, folded: &[Folded], now: u64) -> Result<(Vec<u8>, usize), &'static str> {
    let mut out = vec![0u8; HEADER_LEN];
    let mut series_count = 0;
    let mut strings = StringTable::default();
    for (id, (info, series)) in index.reached().enumerate() {
        let id = id as u32;
        let family = FamilyRecord {
            id,
            kind: info.kind,
            gauge_mode: if info.kind == MetricKind::Gauge { gauge_mode_code(info.mode) } else { 0 },
            cells_per_series: info.cells as u32,
            name: info.name.to_string(),
            help: info.help.to_string(),
            unit: info.unit.as_deref().unwrap_or("").to_owned(),
            label_names: info.label_names.iter().map(|n| n.to_string()).collect(),
            buckets: info.bounds.to_vec(),
            summary: info.summary.as_deref().cloned(),
            native: info.native,
        };
        out.extend_from_slice(&encode_family(&family));
        for (labels, cells) in series {
            let const_count = labels.len().saturating_sub(info.label_names.len());
            // Labels that files held fit an archive too, but should one not, the
            // compaction fails (the dead files stay, still counted) rather than drop it.
            let interned = strings.intern(label_strings(labels.pairs(), const_count))?;
            let (mut record, cells_at) = encode_series(id, &interned.ids, const_count, cells.len())?;
            if let Some(names) = &interned.record {
                out.extend_from_slice(names);
            }
            strings.commit(interned);
            for (i, cell) in cells.iter().enumerate() {
                if let Some(dst) = record.get_mut(cells_at + i * 8..cells_at + i * 8 + 8) {
                    dst.copy_from_slice(&cell.to_le_bytes());
                }
            }
            out.extend_from_slice(&record);
            series_count += 1;
        }
    }
    out.extend_from_slice(&encode_folded(folded));
    let header = Header {
        flags: FLAG_ARCHIVE,
        pid: std::process::id(),
        created_ns: now,
        committed: out.len() as u64,
        id: random_id(),
    };
    out[..HEADER_LEN].copy_from_slice(&header.encode());
    Ok((out, series_count))
}

/// Writes `bytes` as the new archive: under a temporary name, synced, renamed over the
/// old one, directory synced.
fn write_archive(dir: &Path, bytes: &[u8]) -> Result<(), MmapError> {
    let tmp = dir.join(format!("archive-{:016x}.herd.tmp", random_id() as u64));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(ARCHIVE))?;
        File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        MmapError::io(dir.join(ARCHIVE), "cannot write", e)
    })
}

/// Opens a file of the directory only to test its lock. O_NONBLOCK: a FIFO planted
/// under one of our names would block a plain open until someone wrote to it;
/// O_NOFOLLOW: a planted symlink is not ours to open.
fn open_to_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// Takes the directory's compaction lock, or `None` if someone holds it.
fn lock(dir: &Path) -> Result<Option<File>, MmapError> {
    let path = dir.join(COMPACT_LOCK);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| MmapError::io(&path, "cannot open", e))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(file)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(MmapError::io(&path, "cannot lock", e.into())),
    }
}

/// The names of the worker files in `dir`.
fn worker_names(dir: &Path) -> Result<Vec<String>, MmapError> {
    let entries = fs::read_dir(dir).map_err(|e| MmapError::io(dir, "cannot list", e))?;
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| is_worker_file(name))
        .collect())
}

/// Removes worker `.tmp` files that nobody holds and that are older than a minute.
fn remove_stale_tmp(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with(WORKER_PREFIX) && name.ends_with(&format!("{WORKER_SUFFIX}.tmp"));
        let stale = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_TMP);
        if ours && stale {
            let path = entry.path();
            let unlocked = open_to_lock(&path).is_ok_and(|f| !is_locked(&f));
            if unlocked && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}
