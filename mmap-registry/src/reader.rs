//! [`Aggregator`]: reads every process's file in a directory and sums them into one
//! snapshot.
//!
//! Each file is parsed once, incrementally: the aggregator remembers how far it has
//! read and where every series' cells are, so a repeated scrape only loads cells and
//! whatever records were published since. A file that fails a check is skipped and
//! reported, never trusted and never fatal to the scrape.

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use herd_core::snapshot::{
    CounterValue, FamilySnapshot, HistogramValue, SeriesSnapshot, SeriesValue, Snapshot, SummaryValue,
};
use herd_core::{Collector, LabelSet, MetricKind};
use parking_lot::Mutex;

use crate::dir::{check_dir, is_worker_file};
use crate::error::MmapError;
use crate::format::{decode_record, record_len, FormatError, Header, Record, COMMITTED_OFFSET, HEADER_LEN};
use crate::sys::Mapping;

/// Sums the files of every process that wrote to a metrics directory, live or dead.
///
/// Counters, histograms and summaries are summed. Gauges are reported per process,
/// with a `pid` label. Register it as a [`Collector`] in a registry, or call
/// [`snapshot`](Aggregator::snapshot) and encode the result.
pub struct Aggregator {
    dir: PathBuf,
    files: Mutex<HashMap<PathBuf, FileReader>>,
}

/// A file that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFile {
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub reason: String,
}

/// What one scrape saw of the directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeReport {
    /// Files whose writer is alive.
    pub live_files: usize,
    /// Files whose writer has exited.
    pub dead_files: usize,
    /// Bytes of records across the files read.
    pub bytes: u64,
    /// Files that were skipped.
    pub skipped: Vec<SkippedFile>,
}

struct Family {
    name: Arc<str>,
    help: Arc<str>,
    unit: Option<Arc<str>>,
    kind: MetricKind,
    bounds: Arc<[f64]>,
    cells: usize,
}

struct Series {
    family: Arc<Family>,
    labels: Arc<LabelSet>,
    /// The labels plus `pid`, for gauges reported per process.
    labels_with_pid: Option<Arc<LabelSet>>,
    first_word: usize,
}

struct FileReader {
    identity: (u64, u64),
    file: File,
    map: Mapping,
    header: Header,
    parsed_to: u64,
    families: HashMap<u32, Arc<Family>>,
    series: Vec<Series>,
    error: Option<FormatError>,
}

impl Aggregator {
    /// An aggregator over `dir`.
    ///
    /// # Errors
    ///
    /// [`MmapError`] if the directory is missing or unsafe (see
    /// [`check_dir`](crate::check_dir)).
    pub fn new(dir: &Path) -> Result<Self, MmapError> {
        check_dir(dir)?;
        Ok(Self { dir: dir.to_path_buf(), files: Mutex::new(HashMap::new()) })
    }

    /// Reads every file and sums them.
    ///
    /// # Errors
    ///
    /// [`MmapError`] only if the directory itself cannot be listed; bad files are
    /// skipped (see [`scrape`](Aggregator::scrape) for the report).
    pub fn snapshot(&self) -> Result<Snapshot, MmapError> {
        self.scrape().map(|(snapshot, _)| snapshot)
    }

    /// Like [`snapshot`](Aggregator::snapshot), with a report of the files read.
    ///
    /// # Errors
    ///
    /// [`MmapError`] if the directory cannot be listed.
    pub fn scrape(&self) -> Result<(Snapshot, ScrapeReport), MmapError> {
        let mut report = ScrapeReport::default();
        let paths = self.list()?;
        let mut files = self.files.lock();
        files.retain(|p, _| paths.contains(p));
        let mut sum = Sum::default();
        for path in paths {
            let reader = match refresh(files.remove(&path), &path) {
                Ok(r) => r,
                Err(e) => {
                    report.skipped.push(SkippedFile { path, reason: e.to_string() });
                    continue;
                }
            };
            if let Some(e) = &reader.error {
                report.skipped.push(SkippedFile { path: path.clone(), reason: e.to_string() });
            } else {
                let live = is_live(&reader.file);
                if live {
                    report.live_files += 1;
                } else {
                    report.dead_files += 1;
                }
                report.bytes += reader.parsed_to;
                sum.add(&reader);
            }
            files.insert(path, reader);
        }
        drop(files);
        let mut snapshot = sum.finish();
        snapshot.sort();
        Ok((snapshot, report))
    }

    fn list(&self) -> Result<Vec<PathBuf>, MmapError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| MmapError::io(&self.dir, "cannot list", e))?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| is_worker_file(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        paths.sort();
        Ok(paths)
    }
}

impl Collector for Aggregator {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        let started = Instant::now();
        let Ok((snapshot, report)) = self.scrape() else { return };
        out.extend(snapshot.families);
        let gauge = |name: &str, help: &str, v: f64| FamilySnapshot {
            name: name.into(),
            help: help.into(),
            unit: None,
            kind: MetricKind::Gauge,
            series: vec![SeriesSnapshot {
                labels: Arc::new(LabelSet::empty()),
                value: SeriesValue::Gauge(v),
                created: None,
            }],
        };
        out.push(gauge(
            "herd_mmap_live_processes",
            "Processes whose metrics file is locked by a live writer.",
            report.live_files as f64,
        ));
        out.push(gauge(
            "herd_mmap_files",
            "Metrics files read in the last scrape, live and dead.",
            (report.live_files + report.dead_files) as f64,
        ));
        out.push(gauge("herd_mmap_bytes", "Bytes of records across the metrics files.", report.bytes as f64));
        out.push(gauge(
            "herd_mmap_skipped_files",
            "Files skipped in the last scrape because they could not be read.",
            report.skipped.len() as f64,
        ));
        out.push(gauge(
            "herd_mmap_scrape_duration_seconds",
            "Time the last aggregation took.",
            started.elapsed().as_secs_f64(),
        ));
    }
}

/// Whether a writer still holds its lock on `file`. The writer's exclusive lock blocks
/// our shared one; the kernel drops it when the writer dies, however it dies.
fn is_live(file: &File) -> bool {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

/// Opens (or reuses) the reader of `path` and reads what was published since.
fn refresh(cached: Option<FileReader>, path: &Path) -> Result<FileReader, MmapError> {
    let meta = fs::symlink_metadata(path).map_err(|e| MmapError::io(path, "cannot inspect", e))?;
    let identity = (meta.dev(), meta.ino());
    let mut reader = match cached {
        Some(r) if r.identity == identity => r,
        _ => open(path, &meta)?,
    };
    if reader.error.is_none() {
        if let Err(e) = reader.read_new() {
            reader.error = Some(e);
        }
    }
    Ok(reader)
}

fn open(path: &Path, meta: &fs::Metadata) -> Result<FileReader, MmapError> {
    let (identity, len) = ((meta.dev(), meta.ino()), meta.len());
    if !meta.file_type().is_file() {
        return Err(MmapError::Format {
            path: path.into(),
            error: FormatError::BadHeader("not a regular file"),
        });
    }
    let file = File::open(path).map_err(|e| MmapError::io(path, "cannot open", e))?;
    if len < HEADER_LEN as u64 {
        return Err(MmapError::Format { path: path.into(), error: FormatError::Truncated });
    }
    let map = Mapping::read_only(&file, len as usize).map_err(|e| MmapError::io(path, "cannot map", e))?;
    let header = Header::decode(&read_bytes(map.words(), 0, HEADER_LEN), len as usize)
        .map_err(|error| MmapError::Format { path: path.into(), error })?;
    Ok(FileReader {
        identity,
        file,
        map,
        header,
        parsed_to: HEADER_LEN as u64,
        families: HashMap::new(),
        series: Vec::new(),
        error: None,
    })
}

impl FileReader {
    /// Parses the records published since the last call.
    fn read_new(&mut self) -> Result<(), FormatError> {
        let committed = self.committed();
        if committed as usize > self.map.words().len() * 8 {
            // The writer grew the file: map it again, whole.
            let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
            if len < committed {
                return Err(FormatError::BadHeader("committed length outside the file"));
            }
            self.map = Mapping::read_only(&self.file, len as usize)
                .map_err(|_| FormatError::BadHeader("cannot map the grown file"))?;
        }
        let committed = self.committed();
        if committed < self.parsed_to || committed % 8 != 0 || committed as usize > self.map.words().len() * 8
        {
            return Err(FormatError::BadHeader("committed length outside the file"));
        }
        while self.parsed_to < committed {
            let at = self.parsed_to as usize;
            let first = read_bytes(self.map.words(), at, 8);
            let first: [u8; 8] = first.as_slice().try_into().map_err(|_| FormatError::Truncated)?;
            let len = record_len(first, at, (committed - self.parsed_to) as usize)?;
            let bytes = read_bytes(self.map.words(), at, len);
            match decode_record(&bytes, at)? {
                Record::Padding => {}
                Record::Family(f) => {
                    let family = Family {
                        name: f.name.into(),
                        help: f.help.into(),
                        unit: (!f.unit.is_empty()).then(|| f.unit.into()),
                        kind: f.kind,
                        bounds: f.buckets.into(),
                        cells: f.cells_per_series as usize,
                    };
                    self.families.insert(f.id, Arc::new(family));
                }
                Record::Series(s) => {
                    let bad = |reason| FormatError::BadRecord { offset: at, reason };
                    let family =
                        self.families.get(&s.family).ok_or(bad("series of an unknown family"))?.clone();
                    if s.cell_count as usize != family.cells {
                        return Err(bad("cell count differs from the family's"));
                    }
                    let labels = LabelSet::new(s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                        .map_err(|_| bad("invalid label name"))?;
                    let labels_with_pid = (family.kind == MetricKind::Gauge)
                        .then(|| {
                            let pid = self.header.pid.to_string();
                            LabelSet::new(
                                s.labels
                                    .iter()
                                    .map(|(n, v)| (n.as_str(), v.as_str()))
                                    .chain([("pid", pid.as_str())]),
                            )
                        })
                        .transpose()
                        .map_err(|_| bad("a gauge already has a pid label"))?
                        .map(Arc::new);
                    self.series.push(Series {
                        family,
                        labels: Arc::new(labels),
                        labels_with_pid,
                        first_word: (at + s.cells_at) / 8,
                    });
                }
            }
            self.parsed_to += len as u64;
        }
        Ok(())
    }

    fn committed(&self) -> u64 {
        // Acquire: pairs with the writer's Release store, so every record before this
        // length is complete when we read it.
        self.map.words().get(COMMITTED_OFFSET / 8).map_or(0, |w| w.load(Ordering::Acquire))
    }

    fn cells(&self, s: &Series) -> &[AtomicU64] {
        self.map.words().get(s.first_word..s.first_word + s.family.cells).unwrap_or(&[])
    }
}

/// Copies `len` bytes at `at` out of shared words, loading each word atomically.
fn read_bytes(words: &[AtomicU64], at: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let first = at / 8;
    for w in words.iter().skip(first).take(len.div_ceil(8)) {
        out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Running sums across files, keyed by family name and rendered labels.
#[derive(Default)]
struct Sum {
    families: HashMap<Arc<str>, FamilySum>,
}

struct FamilySum {
    family: Arc<Family>,
    index: HashMap<Arc<LabelSet>, usize>,
    series: Vec<(Arc<LabelSet>, SeriesValue)>,
}

impl Sum {
    fn add(&mut self, file: &FileReader) {
        for s in &file.series {
            let cells = file.cells(s);
            if cells.len() != s.family.cells {
                continue;
            }
            let fam = self.families.entry(s.family.name.clone()).or_insert_with(|| FamilySum {
                family: s.family.clone(),
                index: HashMap::new(),
                series: Vec::new(),
            });
            if fam.family.kind != s.family.kind || fam.family.bounds != s.family.bounds {
                // Two versions of a program disagree about this family; the first one
                // read wins and the other's series are left out rather than mixed.
                continue;
            }
            let labels = s.labels_with_pid.as_ref().unwrap_or(&s.labels);
            let i = *fam.index.entry(labels.clone()).or_insert_with(|| {
                fam.series.push((labels.clone(), zero(&s.family)));
                fam.series.len() - 1
            });
            if let Some((_, value)) = fam.series.get_mut(i) {
                accumulate(value, cells);
            }
        }
    }

    fn finish(self) -> Snapshot {
        let families = self
            .families
            .into_values()
            .map(|f| FamilySnapshot {
                name: f.family.name.clone(),
                help: f.family.help.clone(),
                unit: f.family.unit.clone(),
                kind: f.family.kind,
                series: f
                    .series
                    .into_iter()
                    .map(|(labels, value)| SeriesSnapshot { labels, value, created: None })
                    .collect(),
            })
            .collect();
        Snapshot { families }
    }
}

fn zero(family: &Family) -> SeriesValue {
    match family.kind {
        MetricKind::Counter => SeriesValue::Counter(CounterValue::default()),
        MetricKind::Gauge => SeriesValue::Gauge(0.0),
        MetricKind::Histogram => SeriesValue::Histogram(HistogramValue {
            bounds: family.bounds.clone(),
            counts: vec![0; family.bounds.len() + 1],
            sum: 0.0,
            exemplars: Vec::new(),
        }),
        MetricKind::Summary => {
            SeriesValue::Summary(SummaryValue { count: 0, sum: 0.0, quantiles: Vec::new() })
        }
        _ => SeriesValue::Unknown(0.0),
    }
}

/// Adds one file's cells of a series to the running value. Layouts follow herd-core's
/// metric types (see FORMAT.md, "Cell layouts").
fn accumulate(value: &mut SeriesValue, cells: &[AtomicU64]) {
    let int = |i: usize| cells.get(i).map_or(0, |c| c.load(Ordering::Acquire));
    let float = |i: usize| f64::from_bits(cells.get(i).map_or(0, |c| c.load(Ordering::Relaxed)));
    match value {
        SeriesValue::Counter(c) => {
            c.integer = c.integer.wrapping_add(int(0));
            c.fraction += float(1);
        }
        SeriesValue::Gauge(g) | SeriesValue::Unknown(g) => *g += float(0),
        SeriesValue::Histogram(h) => {
            let n = h.counts.len();
            for (i, count) in h.counts.iter_mut().enumerate() {
                *count = count.wrapping_add(int(i));
            }
            h.sum += float(n);
        }
        SeriesValue::Summary(s) => {
            s.count = s.count.wrapping_add(int(0));
            s.sum += float(1);
        }
    }
}
