//! [`MmapStorage`]: a process's cells in a file of its own, which any other process can
//! read.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use herd_core::cell::{CellBlock, CellSource};
use herd_core::storage::{Storage, StorageError};
use herd_core::{FamilyDesc, LabelSet};
use herd_prefork::ForkAware;
use parking_lot::Mutex;

use crate::dir::{check_dir, WORKER_PREFIX, WORKER_SUFFIX};
use crate::error::MmapError;
use crate::format::{
    encode_family, encode_padding, encode_series, gauge_mode_code, label_strings, FamilyRecord, Header,
    NativeLayout, StringTable, HEADER_LEN,
};
use crate::protocol;
use crate::stamp::{now_ns, random_id};
use crate::sys::Mapping;

/// The first segment's size: small, since most processes hold few series.
const FIRST_SEGMENT: u64 = 64 * 1024;
/// No segment grows past this, so a file grows by at most this much at a time.
const MAX_SEGMENT: u64 = 64 * 1024 * 1024;

/// Cells in a per-process file under a metrics directory, readable by an
/// [`Aggregator`](crate::Aggregator) in any process.
///
/// The file is created with mode 0600, `O_EXCL`, `O_NOFOLLOW` and `O_CLOEXEC`, and
/// locked (`flock`) for the life of the process, which is how readers know it is live.
/// Handles write straight into the mapping: the hot path is the same single atomic
/// operation as with the heap storage.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use herd_core::Registry;
/// use herd_mmap::{claim_dir, Aggregator, MmapStorage};
///
/// let dir = tempfile::tempdir()?;
/// claim_dir(dir.path())?;
/// let registry = Registry::builder().storage(Arc::new(MmapStorage::open(dir.path())?)).build()?;
/// let jobs = registry.counter("jobs_total", "Jobs done.").register()?;
/// jobs.inc_by(3);
///
/// // Any process can now read it:
/// let snapshot = Aggregator::new(dir.path())?.snapshot()?;
/// let mut text = Vec::new();
/// herd_core::encode(&snapshot, herd_core::Format::Text, &mut text);
/// let text = String::from_utf8(text)?;
/// assert!(text.ends_with("# HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total 3\n"));
/// // Before it, herd's own counts, summed over every file like any other counter:
/// assert!(text.contains("herd_cardinality_overflow_total{family=\"jobs\"} 0\n"));
/// assert!(text.contains("herd_mmap_fork_file_failures_total 0\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct MmapStorage {
    inner: Arc<Mutex<Writer>>,
}

/// A mapped stretch of the file; handles keep one alive through their cell blocks.
struct Segment(Mapping);

impl CellSource for Segment {
    fn cells(&self) -> &[AtomicU64] {
        self.0.words()
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    segments: Vec<Arc<Segment>>,
    /// Where the next record goes.
    cursor: u64,
    /// The end of the last segment, which is also the file's length.
    end: u64,
    /// Each family's id in the file, and the description it was first written with.
    families: HashMap<Arc<str>, (u32, FamilyDesc)>,
    /// The label values and constant labels already in the file, each written once.
    strings: StringTable,
    /// File offset and count of every series' cells, so a forked child can copy the
    /// records without the parent's values.
    cell_ranges: Vec<(u64, usize)>,
    /// Set in a forked child that could not get a file of its own; its segments are
    /// detached from any file and it allocates nothing more.
    broken: Option<String>,
    /// The cells of `herd_mmap_fork_file_failures_total`, written at open so that every
    /// file holds it (a forked child copies it): a child that cannot create a file of
    /// its own counts itself here, in its parent's file, before it lets go of it.
    fork_failures: Option<CellBlock>,
}

/// The family of [`Writer::fork_failures`].
fn fork_failures_family() -> FamilyDesc {
    FamilyDesc::counter(
        "herd_mmap_fork_file_failures",
        "Forked processes that could not create a metrics file of their own; what they record reaches no aggregate.",
    )
}

impl MmapStorage {
    /// Creates this process's file in `dir`, which must already be safe to use (see
    /// [`check_dir`]; a master usually [`claim_dir`](crate::claim_dir)s it first).
    ///
    /// # Errors
    ///
    /// [`MmapError`] if the directory is unsafe or the file cannot be created, sized,
    /// locked or mapped.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, MmapError> {
        let dir = dir.as_ref();
        check_dir(dir)?;
        let id = random_id();
        let pid = std::process::id();
        let created_ns = now_ns();
        let header = Header { flags: 0, pid, created_ns, committed: HEADER_LEN as u64, id };
        let (path, file) = create_file(dir, pid, id, |file| {
            use std::os::unix::fs::FileExt;
            reserve(file, FIRST_SEGMENT)?;
            file.write_all_at(&header.encode(), 0)
        })
        .map_err(|(path, e)| MmapError::io(path, "cannot create", e))?;
        let mut writer = Writer::start(path, file)?;
        let family = fork_failures_family();
        writer.fork_failures =
            Some(writer.allocate(&family, &LabelSet::empty(), family.cells_per_series).map_err(|e| {
                MmapError::io(&writer.path, "cannot write", std::io::Error::other(e.to_string()))
            })?);
        let inner = Arc::new(Mutex::new(writer));
        let tracked: Arc<Mutex<dyn ForkAware>> = inner.clone();
        herd_prefork::follow_forks(&tracked)
            .map_err(|e| MmapError::io(dir, "cannot register fork handlers for", e))?;
        Ok(Self { inner })
    }

    /// The file this process writes.
    pub fn path(&self) -> PathBuf {
        self.inner.lock().path.clone()
    }
}

/// A new, exclusive, owner-only file for process `pid` in `dir`: created under a
/// `.tmp` name, locked, given its header, and only then renamed to its worker name
/// (FORMAT.md, "Creation"), so nobody ever sees a worker file that is not locked.
/// `prepare` writes the header (and, in a forked child, the records).
fn create_file(
    dir: &Path,
    pid: u32,
    id: u128,
    prepare: impl FnOnce(&File) -> std::io::Result<()>,
) -> Result<(PathBuf, File), (PathBuf, std::io::Error)> {
    let name = format!("{WORKER_PREFIX}{pid}-{:016x}{WORKER_SUFFIX}", id as u64);
    let path = dir.join(&name);
    let tmp = dir.join(format!("{name}.tmp"));
    // O_EXCL and O_NOFOLLOW: a file planted at this name, or a symlink, is an error,
    // never something we write through.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| (tmp.clone(), e))?;
    let ready = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
        .and_then(|()| prepare(&file))
        .and_then(|()| std::fs::rename(&tmp, &path));
    match ready {
        Ok(()) => Ok((path, file)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err((tmp, e))
        }
    }
}

impl Writer {
    /// Maps a file that [`create_file`] made, locked and gave a header.
    fn start(path: PathBuf, file: File) -> Result<Self, MmapError> {
        let first = Mapping::read_write(&file, 0, FIRST_SEGMENT as usize)
            .map_err(|e| MmapError::io(&path, "cannot map", e))?;
        Ok(Self {
            path,
            file,
            segments: vec![Arc::new(Segment(first))],
            cursor: HEADER_LEN as u64,
            end: FIRST_SEGMENT,
            families: HashMap::new(),
            strings: StringTable::default(),
            cell_ranges: Vec::new(),
            broken: None,
            fork_failures: None,
        })
    }

    /// Whether the file is still whole. Another process of this user can truncate it;
    /// the handles' writes into the lost pages then land in private zero pages (`sys.rs`),
    /// and this is where the writer notices: at its next registration or growth, before
    /// it would extend the file again over the hole. From then on it is `broken`: every
    /// new series gets private cells, counted in `herd_storage_errors_total`, and readers
    /// skip the file. What was counted in it is lost with it.
    fn check_whole(&mut self) -> Result<(), String> {
        if let Some(why) = &self.broken {
            return Err(why.clone());
        }
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        let faulted = self.segments.iter().any(|s| s.0.faults() != 0);
        if len < self.end || faulted {
            let why = format!(
                "{} was truncated to {len} bytes (of {}) by another process; \
                 this process's metrics no longer reach it",
                self.path.display(),
                self.end
            );
            log::error!("herd-mmap: {why}");
            self.broken = Some(why.clone());
            return Err(why);
        }
        Ok(())
    }

    /// Writes the series `labels` of `family` (and the family, the first time) and
    /// returns its cells.
    fn allocate(
        &mut self,
        family: &FamilyDesc,
        labels: &LabelSet,
        len: usize,
    ) -> Result<CellBlock, StorageError> {
        let fail = |w: &Writer, e: &dyn fmt::Display| StorageError::new(format!("{}: {e}", w.path.display()));
        self.check_whole().map_err(StorageError::new)?;
        let id = self.family_id(family).map_err(|e| fail(self, &e))?;
        let const_count = labels.len().saturating_sub(family.label_names.len());
        let interned =
            self.strings.intern(label_strings(labels.pairs(), const_count)).map_err(|e| fail(self, &e))?;
        if let Some(record) = &interned.record {
            self.append(record).map_err(|e| fail(self, &e))?;
        }
        let ids = self.strings.commit(interned);
        let (record, cells_at) = encode_series(id, &ids, const_count, len).map_err(|e| fail(self, &e))?;
        let at = self.append(&record).map_err(|e| fail(self, &e))?;
        let cells_at = at + cells_at as u64;
        self.cell_ranges.push((cells_at, len));
        let (segment, first) = self.locate(cells_at).ok_or_else(|| fail(self, &"record outside the file"))?;
        CellBlock::new(segment.clone(), first..first + len).map_err(|e| fail(self, &e))
    }

    /// Appends a whole record and publishes it; returns its file offset.
    fn append(&mut self, record: &[u8]) -> std::io::Result<u64> {
        let len = record.len() as u64;
        if self.cursor + len > self.end {
            // A record never straddles two segments: pad out this one first.
            let rest = self.end - self.cursor;
            if rest > 0 {
                self.write_at(self.cursor, &encode_padding(rest as usize));
                self.cursor = self.end;
                self.publish();
            }
            self.grow(len)?;
        }
        let at = self.cursor;
        self.write_at(at, record);
        self.cursor += len;
        self.publish();
        Ok(at)
    }

    /// Adds a segment of at least `min` bytes. The space is reserved on disk first, so
    /// a full disk fails here, as an error, rather than as a SIGBUS at a later write.
    fn grow(&mut self, min: u64) -> std::io::Result<()> {
        let page = rustix::param::page_size() as u64;
        // An eighth of the file so far: few mappings for a big file, and at most about
        // an eighth of it reserved but unused.
        let size = (self.end / 8).div_ceil(page).saturating_mul(page).clamp(FIRST_SEGMENT, MAX_SEGMENT);
        let size = size.max(min.div_ceil(page) * page);
        reserve(&self.file, self.end + size)?;
        let mapping = Mapping::read_write(&self.file, self.end, size as usize)?;
        self.segments.push(Arc::new(Segment(mapping)));
        self.end += size;
        Ok(())
    }

    /// Stores `bytes` (a multiple of 8) at file offset `at`, which lies in one segment.
    /// Nothing reads them until `publish`.
    fn write_at(&self, at: u64, bytes: &[u8]) {
        if let Some((seg, first)) = self.locate(at) {
            protocol::write_words(seg.0.words(), first, bytes);
        }
    }

    /// Makes every record before the cursor visible to readers.
    fn publish(&self) {
        if let Some(first) = self.segments.first() {
            protocol::publish(first.0.words(), self.cursor);
        }
    }

    /// The segment holding file offset `at`, and the index of its word there.
    fn locate(&self, at: u64) -> Option<(&Arc<Segment>, usize)> {
        let seg = self.segments.iter().rev().find(|s| s.0.offset() <= at)?;
        Some((seg, ((at - seg.0.offset()) / 8) as usize))
    }

    /// The file's id of `family`, whose record is written the first time. Every
    /// registry on this storage writes into one file, which can describe a name only
    /// once: a second description of another shape is refused here, at registration,
    /// rather than written for readers to reject the whole file.
    fn family_id(&mut self, family: &FamilyDesc) -> std::io::Result<u32> {
        if let Some((id, first)) = self.families.get(&family.name) {
            if same_shape(first, family) {
                return Ok(*id);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "family {:?} is already in this storage as {}; registering it as {} would contradict it",
                    family.name,
                    shape(first),
                    shape(family)
                ),
            ));
        }
        let id = self.families.len() as u32;
        let record = FamilyRecord {
            id,
            kind: family.kind,
            gauge_mode: gauge_mode_code(family.gauge_mode),
            cells_per_series: u32::try_from(family.cells_per_series)
                .map_err(|_| std::io::Error::other("too many cells per series"))?,
            name: family.name.to_string(),
            help: family.help.to_string(),
            unit: family.unit.as_deref().unwrap_or("").to_owned(),
            label_names: family.label_names.iter().map(|n| n.to_string()).collect(),
            buckets: family.buckets.as_ref().map(|b| b.bounds().to_vec()).unwrap_or_default(),
            summary: family.summary.clone(),
            native: family.native.map(|buckets| NativeLayout { buckets, classic: family.buckets.is_some() }),
        };
        self.append(&encode_family(&record))?;
        self.families.insert(family.name.clone(), (id, family.clone()));
        Ok(id)
    }
}

// Writers never compact (not at open, not in the parent after a fork): compaction is
// the readers' work and an explicit call's (see `compact.rs`), so a fork handler does no
// directory I/O and the writer does not depend on the compactor.
impl ForkAware for Writer {
    fn in_child(&mut self) {
        if let Err(e) = self.move_to_own_file() {
            // Still mapped over the parent's file: count this process there, the one
            // place an aggregate will see it (one atomic add on a cell that exists for
            // this), then never touch that file again.
            if let Some(cell) = self.fork_failures.as_ref().and_then(|c| c.cells().first()) {
                cell.fetch_add(1, Ordering::Relaxed);
            }
            // The child must never write into its parent's file: cut its segments loose
            // from every file. Its values are lost (and its allocations fail, counted by
            // herd-core), but the parent's stay exact.
            for segment in &self.segments {
                if segment.0.detach().is_err() {
                    // Its handles would write into the parent's cells: stop here rather
                    // than corrupt the parent's totals.
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        b"herd-mmap: a forked child could neither get a metrics file nor detach from its parent's; aborting\n",
                    );
                    std::process::abort();
                }
            }
            self.broken = Some(format!("after fork, could not create this process's own file: {e}"));
        }
    }
}

impl Writer {
    /// In a forked child: copies the records into a new file of this process, cells
    /// zeroed, maps it over the old segments' addresses, and drops the inherited
    /// descriptor (and with it any claim on the parent's lock).
    fn move_to_own_file(&mut self) -> std::io::Result<()> {
        let dir = self.path.parent().map(Path::to_path_buf).unwrap_or_default();
        let (pid, id) = (std::process::id(), random_id());
        let (path, file) =
            create_file(&dir, pid, id, |file| self.copy_into(file, pid, id)).map_err(|(_, e)| e)?;
        // Only now, with the child's file complete and under its worker name, do the
        // parent's addresses switch to it.
        for segment in &self.segments {
            if let Err(e) = segment.0.remap_over(&file, segment.0.offset()) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
        }
        self.file = file;
        self.path = path;
        Ok(())
    }

    /// Writes this process's records, cells zeroed, into a forked child's new file.
    fn copy_into(&self, file: &File, pid: u32, id: u128) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        reserve(file, self.end)?;
        let mut bytes = Vec::with_capacity(self.cursor as usize);
        for segment in &self.segments {
            let start = segment.0.offset();
            for w in segment.0.words().iter().take(((self.cursor.saturating_sub(start)) / 8) as usize) {
                bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
            }
        }
        bytes.truncate(self.cursor as usize);
        for &(at, len) in &self.cell_ranges {
            if let Some(cells) = bytes.get_mut(at as usize..at as usize + len * 8) {
                cells.fill(0);
            }
        }
        let header = Header { flags: 0, pid, created_ns: now_ns(), committed: self.cursor, id };
        bytes[..HEADER_LEN].copy_from_slice(&header.encode());
        file.write_all_at(&bytes, 0)
    }
}

/// Whether two descriptions of one name lay out and combine their series alike (what
/// the reader's `FamilyInfo::compatible` asks of two files); help text may differ.
fn same_shape(a: &FamilyDesc, b: &FamilyDesc) -> bool {
    a.kind == b.kind
        && a.gauge_mode == b.gauge_mode
        && a.cells_per_series == b.cells_per_series
        && a.label_names == b.label_names
        && a.buckets.as_ref().map(|b| b.bounds()) == b.buckets.as_ref().map(|b| b.bounds())
        && a.summary == b.summary
        && a.native == b.native
}

/// A family's shape in words, for the conflict error.
fn shape(f: &FamilyDesc) -> String {
    let labels: Vec<&str> = f.label_names.iter().map(|l| &**l).collect();
    let mut out = format!("a {} with labels {labels:?}", f.kind);
    if let Some(b) = &f.buckets {
        out.push_str(&format!(" and buckets {:?}", b.bounds()));
    }
    if let Some(n) = &f.native {
        out.push_str(&format!(" and native buckets {n:?}"));
    }
    if f.kind == herd_core::MetricKind::Gauge {
        out.push_str(&format!(" in mode {:?}", f.gauge_mode));
    }
    out
}

/// Makes `file` at least `len` bytes long with the blocks actually allocated.
fn reserve(file: &File, len: u64) -> std::io::Result<()> {
    rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len).map_err(Into::into)
}

impl Storage for MmapStorage {
    fn add_family(&self, family: &FamilyDesc) -> Result<(), StorageError> {
        let mut w = self.inner.lock();
        w.check_whole().map_err(StorageError::new)?;
        w.family_id(family).map(|_| ()).map_err(|e| StorageError::new(format!("{}: {e}", w.path.display())))
    }

    fn allocate(
        &self,
        family: &FamilyDesc,
        labels: &LabelSet,
        len: usize,
    ) -> Result<CellBlock, StorageError> {
        self.inner.lock().allocate(family, labels, len)
    }
}

impl fmt::Debug for MmapStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.inner.lock();
        f.debug_struct("MmapStorage").field("path", &w.path).field("bytes", &w.cursor).finish()
    }
}
