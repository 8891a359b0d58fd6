//! [`Aggregator`]: reads every process's file in a directory and combines them into
//! one snapshot.
//!
//! Each file is parsed once, incrementally: the aggregator remembers how far it has
//! read, and maps each of the file's series to a slot of its [`Index`] when it first
//! sees it. A repeated scrape lists the directory, loads each file's committed length,
//! parses only new records, and folds cells into the slots: its cost follows the number
//! of cells, not the bytes of history. A file that fails a check is skipped and
//! reported, never trusted and never fatal to the scrape.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use herd_core::clock::{Clock, CoarseClock};
use herd_core::snapshot::{CounterValue, FamilySnapshot, SeriesSnapshot, SeriesValue, Snapshot};
use herd_core::{CollectError, Collector, LabelSet, Lent, MetricKind};
use parking_lot::{Mutex, MutexGuard};

use crate::compact::{compact_if_needed, CompactReport, DEFAULT_COMPACT_THRESHOLD};
use crate::dir::{check_dir, is_worker_file, ARCHIVE};
use crate::error::MmapError;
use crate::format::FormatError;
use crate::index::Index;
use crate::reader::{FileReader, Refreshed};

/// Combines the files of every process that wrote to a metrics directory, live or dead,
/// and the archive that compaction folded dead ones into.
///
/// Counters, histograms and summaries are summed. Each gauge family is combined by its
/// [`GaugeMode`](herd_core::GaugeMode): per process with a `pid` label (`all`,
/// `liveall`), summed (`sum`, `livesum`), the smallest or largest value (`min`, `max`),
/// or the most recently written (`mostrecent`, `livemostrecent`); the `live` modes
/// leave out processes that have exited. Register it as a [`Collector`] in a registry,
/// or call [`snapshot`](Aggregator::snapshot) and encode the result.
///
/// When a scrape finds more than a threshold of dead processes' files (16 unless
/// [`compact_threshold`](Aggregator::compact_threshold) says otherwise), it then
/// [compacts](crate::compact) them, and later scrapes read the archive instead.
/// Writers never compact: a directory that nothing scrapes needs
/// [`compact_if_needed`](Aggregator::compact_if_needed) on a timer (as `herd serve`
/// does) or the free [`compact_if_needed`](crate::compact_if_needed).
pub struct Aggregator {
    dir: PathBuf,
    state: Mutex<State>,
    /// The snapshot [`try_encode`](Collector::try_encode) refills and encodes at each
    /// scrape.
    kept: Mutex<Snapshot>,
    compact_threshold: Option<usize>,
    process_metrics: bool,
    clock: Arc<dyn Clock>,
}

#[derive(Default)]
struct State {
    files: HashMap<PathBuf, Cached>,
    archive: Option<Cached>,
    index: Index,
    /// Files already reported as skipped, so each is logged once.
    logged: HashSet<(PathBuf, String)>,
    /// The pids of the live writers seen by the last scrape.
    live_pids: Vec<u32>,
    /// The dead files and archive (identity, length) the index's base was folded from;
    /// `None` when it must be folded again.
    base_of: Option<Vec<(u64, u64, u64)>>,
    /// Files found shrunk under this aggregator (truncated by another process).
    shrunk_files: u64,
}

/// How many times one scrape reads the directory again after finding a file that shrank
/// while it was read. Each retry leaves out one more file, so a retry is rare and two
/// are rarer; the bound only stops a directory truncated in a loop from holding a
/// scrape forever (it then fails, rather than answer with a file's zeroes).
const SHRINK_RETRIES: usize = 8;

/// A file (its series resolved to slots of the aggregator's index), and whether its
/// writer is known to be dead (then it never changes again).
struct Cached {
    reader: FileReader,
    dead: bool,
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
#[non_exhaustive]
pub struct ScrapeReport {
    /// Files whose writer is alive.
    pub live_files: usize,
    /// Files whose writer has exited and that are not yet folded into the archive.
    pub dead_files: usize,
    /// Whether an archive of folded dead processes was read.
    pub archive: bool,
    /// Bytes of records across the files read.
    pub bytes: u64,
    /// Files that were skipped.
    pub skipped: Vec<SkippedFile>,
    /// Files found shrunk (truncated by another process) since the aggregator started;
    /// they are skipped.
    pub shrunk_files: u64,
    /// Distinct series reported.
    pub series: usize,
    /// Series in the files read that the aggregate leaves out, because another file
    /// describes their family differently (another type, labels, buckets or native
    /// layout: two versions of a program in one directory); the first description
    /// read wins.
    pub left_out_series: usize,
}

impl Aggregator {
    /// An aggregator over `dir`.
    ///
    /// # Errors
    ///
    /// [`MmapError`] if the directory is missing or unsafe (see
    /// [`check_dir`](crate::check_dir)).
    pub fn new(dir: impl AsRef<Path>) -> Result<Self, MmapError> {
        let dir = dir.as_ref();
        check_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            state: Mutex::new(State::default()),
            kept: Mutex::new(Snapshot::default()),
            compact_threshold: Some(DEFAULT_COMPACT_THRESHOLD),
            process_metrics: false,
            clock: Arc::new(CoarseClock),
        })
    }

    /// Compacts before a scrape when more than `threshold` dead processes' files are
    /// waiting; `None` never compacts automatically (call [`compact`](crate::compact)).
    #[must_use]
    pub fn compact_threshold(mut self, threshold: Option<usize>) -> Self {
        self.compact_threshold = threshold;
        self
    }

    /// Also reports process metrics (CPU, memory, file descriptors, threads, start
    /// time) for the whole service, read from `/proc` at each scrape; CPU time stays
    /// counted after a worker exits. Off by default, so that a worker that already
    /// registers herd-core's `ProcessCollector` does not report them twice. The
    /// semantics are stated in the crate's README ("Process metrics").
    #[must_use]
    pub fn process_metrics(mut self, on: bool) -> Self {
        self.process_metrics = on;
        self
    }

    /// Reads time from `clock` to decide which summary age buckets are in the window;
    /// the coarse wall clock unless set. For tests, the clock the writers' summary
    /// families were given.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Compacts the directory if more dead processes' files than the
    /// [threshold](Aggregator::compact_threshold) are waiting, without scraping: for a
    /// timer beside a server whose scrapes may stop (a sidecar no one scrapes still
    /// keeps its directory at O(live processes) files). `None` as for
    /// [`compact_if_needed`](crate::compact_if_needed), or when the threshold is `None`.
    ///
    /// # Errors
    ///
    /// As [`compact_if_needed`](crate::compact_if_needed).
    pub fn compact_if_needed(&self) -> Result<Option<CompactReport>, MmapError> {
        match self.compact_threshold {
            Some(threshold) => compact_if_needed(&self.dir, threshold),
            None => Ok(None),
        }
    }

    /// The directory this aggregator reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads every file and combines them.
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
        let mut snapshot = Snapshot::default();
        let report = self.scrape_into(&mut snapshot)?;
        if self.process_metrics {
            snapshot.sort();
        }
        Ok((snapshot, report))
    }

    /// Like [`scrape`](Aggregator::scrape), into `snapshot`, which is refilled in place:
    /// the directory's families by name, then (with
    /// [`process_metrics`](Aggregator::process_metrics)) the process metrics. A family,
    /// a series or a histogram's counts already in `snapshot` is overwritten rather than
    /// made again, so a snapshot kept from scrape to scrape costs no allocation that
    /// grows with the directory's series once they stop changing (what herd's
    /// `/metrics` handlers do through [`Collector::try_encode`]). On an error `snapshot`
    /// holds what it held, or part of a scrape.
    ///
    /// # Errors
    ///
    /// [`MmapError`] if the directory cannot be listed.
    pub fn scrape_into(&self, snapshot: &mut Snapshot) -> Result<ScrapeReport, MmapError> {
        let mut state = self.state.lock();
        let report = state.scrape(&self.dir, self.clock.now(), snapshot)?;
        if self.process_metrics {
            snapshot.families.extend(crate::process::families(&state.live_pids));
        }
        if let Some(threshold) = self.compact_threshold {
            if report.dead_files > threshold {
                drop(state);
                // A failed compaction leaves every file in place; the next scrape, or
                // `herd compact`, reports the reason.
                let _ = compact_if_needed(&self.dir, threshold);
            }
        }
        Ok(report)
    }
}

impl State {
    /// One scrape: the directory read until no file shrinks while it is read.
    fn scrape(
        &mut self,
        dir: &Path,
        now: std::time::Duration,
        snapshot: &mut Snapshot,
    ) -> Result<ScrapeReport, MmapError> {
        for _ in 0..SHRINK_RETRIES {
            if let Some(report) = self.read_round(dir, now, snapshot)? {
                return Ok(report);
            }
        }
        Err(MmapError::io(
            dir,
            "cannot read",
            std::io::Error::other(format!("files shrank under every one of {SHRINK_RETRIES} reads in a row")),
        ))
    }

    /// Reads every file into a round of the index, and the round into `snapshot`.
    /// `None` if a file turned out to have shrunk while its cells were read: the round
    /// holds zeroes for it, so it must be read again, and the file (now marked) is
    /// skipped then.
    fn read_round(
        &mut self,
        dir: &Path,
        now: std::time::Duration,
        snapshot: &mut Snapshot,
    ) -> Result<Option<ScrapeReport>, MmapError> {
        let mut report = ScrapeReport::default();
        let paths = list(dir)?;
        self.files.retain(|p, _| paths.contains(p));
        // Live files are folded into this round as soon as they are read, while their
        // cells are still in the cache (on a cold scrape, right after their records
        // were parsed), from the base as it stands. Should the dead files or the
        // archive turn out to have changed, the base is folded again below and the
        // round with it.
        let speculative = self.base_of.is_some() || self.index.len() == 0;
        if speculative {
            if self.base_of.is_none() {
                // A new index: its base is that of no file at all.
                self.base_of = Some(Vec::new());
            }
            self.index.begin_from_base();
        }
        // Worker files first, the archive last (FORMAT.md, "Compaction"): a worker file
        // that vanishes in between was folded into the archive we then open.
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            let cached = match self.files.remove(&path) {
                // A dead file never changes again: no need to look at it, only to know
                // that it is still there (the listing says so).
                Some(dead) if dead.dead => dead,
                // A new file may hold the same records as the one read before it.
                cached => match self.refresh(
                    cached,
                    &path,
                    files.last().map(|(_, c): &(PathBuf, Cached)| &c.reader),
                ) {
                    Ok(Some(cached)) => cached,
                    Ok(None) => continue,
                    Err(reason) => {
                        report.skipped.push(SkippedFile { path, reason });
                        continue;
                    }
                },
            };
            let cached = if cached.dead || cached.reader.is_live() {
                cached
            } else {
                // Dead now, so complete now: read what it published between our read
                // and its death. Before the archive is opened, so that if it vanishes
                // meanwhile the archive we open holds it.
                match self.refresh(Some(cached), &path, None) {
                    Ok(Some(cached)) => Cached { dead: true, ..cached },
                    Ok(None) => continue,
                    Err(reason) => {
                        report.skipped.push(SkippedFile { path, reason });
                        continue;
                    }
                }
            };
            if let Some(reason) = skipped_reason(&cached.reader) {
                report.skipped.push(SkippedFile { path: path.clone(), reason });
                if !cached.reader.prefix_counts {
                    // Kept, so that it is neither opened nor logged afresh every scrape.
                    self.files.insert(path, cached);
                    continue;
                }
            }
            if speculative && !cached.dead {
                add(&mut self.index, &cached, true);
            }
            files.push((path, cached));
        }
        let archive_path = dir.join(ARCHIVE);
        let cached = self.archive.take();
        let mut archive = match self.refresh(cached, &archive_path, None) {
            Ok(Some(archive)) if archive.reader.error.is_some() => {
                // An archive read only in part would undercount every folded file; it
                // counts whole or not at all.
                let reason = skipped_reason(&archive.reader).unwrap_or_default();
                report.skipped.push(SkippedFile { path: archive_path, reason });
                None
            }
            Ok(archive) => archive,
            Err(reason) => {
                report.skipped.push(SkippedFile { path: archive_path, reason });
                None
            }
        };
        let empty = HashSet::new();
        let folded = archive.as_ref().map_or(&empty, |a| &a.reader.parsed.folded_ids);
        let before = files.len();
        files.retain(|(_, c)| !folded.contains(&c.reader.header.id));
        // A file folded into the round above and also into the archive since (its
        // writer died and another process compacted it meanwhile) would count twice.
        let mut round_valid = speculative && files.len() == before;

        self.live_pids.clear();
        for (_, cached) in &files {
            if cached.dead {
                report.dead_files += 1;
            } else {
                report.live_files += 1;
                self.live_pids.push(cached.reader.header.pid);
            }
            report.bytes += cached.reader.parsed.to;
            report.left_out_series += cached.reader.parsed.left_out;
        }

        // The dead files' and the archive's totals are final: fold them once into the
        // index's base, again only when that set changes, and start every round from it.
        let mut dead_set: Vec<(u64, u64, u64)> = files
            .iter()
            .filter(|(_, c)| c.dead)
            .map(|(_, c)| (c.reader.identity.0, c.reader.identity.1, c.reader.parsed.to))
            .collect();
        if let Some(a) = &archive {
            report.archive = true;
            report.bytes += a.reader.parsed.to;
            report.left_out_series += a.reader.parsed.left_out;
            dead_set.push((a.reader.identity.0, a.reader.identity.1, a.reader.parsed.to));
        }
        if self.base_of.as_ref() != Some(&dead_set) {
            self.index.begin();
            for (_, cached) in files.iter().filter(|(_, c)| c.dead) {
                add(&mut self.index, cached, false);
            }
            if let Some(archive) = &archive {
                add(&mut self.index, archive, false);
            }
            self.index.save_base();
            self.base_of = Some(dead_set);
            round_valid = false;
        }
        if !round_valid {
            self.index.begin_from_base();
            for (_, cached) in files.iter().filter(|(_, c)| !c.dead) {
                add(&mut self.index, cached, true);
            }
        }
        let shrank = self.mark_shrunk(&mut files, archive.as_mut());
        self.files.extend(files);
        self.archive = archive;
        if shrank {
            return Ok(None);
        }
        report.shrunk_files = self.shrunk_files;
        self.log_skipped(&report.skipped);

        self.index.snapshot_into(now, snapshot);
        report.series = snapshot.families.iter().map(|f| f.series.len()).sum();
        if self.index.len() > 2 * report.series + 4096 {
            // Slots of series that no file holds any more (per-process gauges of
            // compacted processes) outnumber the live ones: start over, so memory
            // follows the directory rather than its history.
            self.index = Index::default();
            self.files.clear();
            self.archive = None;
            self.base_of = None;
        }
        Ok(Some(report))
    }

    /// Marks the files whose mapping faulted past their end while this round read them
    /// (`FileReader::check_shrank`); returns whether any did. A dead one or the archive
    /// was part of the base, which is then folded again without it.
    fn mark_shrunk(&mut self, files: &mut [(PathBuf, Cached)], archive: Option<&mut Cached>) -> bool {
        let mut shrank = false;
        for cached in files.iter_mut().map(|(_, c)| c).chain(archive) {
            if cached.reader.prefix_counts && cached.reader.check_shrank() {
                self.shrunk_files += 1;
                shrank = true;
                if cached.dead || cached.reader.is_archive() {
                    self.base_of = None;
                }
            }
        }
        shrank
    }

    /// Reads what `path` published since the last scrape, resolving its new series to
    /// slots as it parses them (a different file at the path is parsed afresh).
    /// `Ok(None)`: the path is gone. `Err`: why the file is skipped.
    fn refresh(
        &mut self,
        cached: Option<Cached>,
        path: &Path,
        template: Option<&FileReader>,
    ) -> Result<Option<Cached>, String> {
        let (reader, dead) = match cached {
            Some(Cached { reader, dead }) => (Some(reader), dead),
            None => (None, false),
        };
        let identity = reader.as_ref().map(|r| r.identity);
        let had_error = reader.as_ref().is_some_and(|r| r.error.is_some());
        let reader = match FileReader::refresh(reader, path, Some(&mut self.index), template) {
            Ok(Refreshed::Read(reader)) => *reader,
            Ok(Refreshed::Vanished) => return Ok(None),
            Err(e) => return Err(e.reason()),
        };
        if !had_error && identity == Some(reader.identity) && reader.error == Some(FormatError::Shrank) {
            self.shrunk_files += 1;
        }
        Ok(Some(Cached { reader, dead }))
    }

    fn log_skipped(&mut self, skipped: &[SkippedFile]) {
        for s in skipped {
            if self.logged.insert((s.path.clone(), s.reason.clone())) {
                log::warn!("herd-mmap: skipping {}: {}", s.path.display(), s.reason);
            }
        }
    }
}

/// Why a file is skipped, in whole or in part; `None` if it is read whole.
fn skipped_reason(reader: &FileReader) -> Option<String> {
    let error = reader.error.as_ref()?;
    Some(if reader.prefix_counts {
        format!("partly read: {error}; the {} series before it count", reader.series().len())
    } else {
        error.to_string()
    })
}

/// Folds one file's series into the index; a dead file's series of `live` gauge modes
/// are left out.
fn add(index: &mut Index, cached: &Cached, live: bool) {
    index.add_file(&cached.reader.parsed, cached.reader.words(), live);
}

/// The worker files of `dir`, sorted.
pub(crate) fn list(dir: &Path) -> Result<Vec<PathBuf>, MmapError> {
    let entries = fs::read_dir(dir).map_err(|e| MmapError::io(dir, "cannot list", e))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| is_worker_file(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    paths.sort();
    Ok(paths)
}

impl Collector for Aggregator {
    /// Every file's families and herd-mmap's own; a directory that cannot be read is
    /// logged and reported as empty (use [`try_collect`](Collector::try_collect) to
    /// fail a scrape instead, as herd's `/metrics` handlers do).
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        if let Err(e) = self.try_collect(out) {
            log::warn!("herd-mmap: {e}");
        }
    }

    fn try_collect(&self, out: &mut Vec<FamilySnapshot>) -> Result<(), CollectError> {
        let started = Instant::now();
        let (snapshot, report) = self.scrape().map_err(|e| CollectError::new(e.to_string()))?;
        out.extend(snapshot.families);
        out.extend(own_families(&report, started));
        Ok(())
    }

    /// What [`try_collect`](Collector::try_collect) collects, lent from a snapshot
    /// that the aggregator keeps and refills in place ([`scrape_into`](Aggregator::scrape_into)),
    /// locked until the [`Lent`] is dropped: a steady scrape encoded from it
    /// ([`try_encode`](Collector::try_encode), a registry's `encode`) allocates the body
    /// and a few small things per family, nothing per series.
    fn try_lend(&self) -> Result<Lent<'_>, CollectError> {
        let started = Instant::now();
        let mut kept = self.kept.lock();
        let report = self.scrape_into(&mut kept).map_err(|e| CollectError::new(e.to_string()))?;
        Ok(Lent::kept(Box::new(Kept(kept)), own_families(&report, started).into()))
    }
}

/// The aggregator's kept snapshot, locked, as the families a [`Lent`] borrows.
struct Kept<'a>(MutexGuard<'a, Snapshot>);

impl std::ops::Deref for Kept<'_> {
    type Target = [FamilySnapshot];

    fn deref(&self) -> &[FamilySnapshot] {
        &self.0.families
    }
}

/// herd-mmap's own families: what a scrape that started at `started` saw.
fn own_families(report: &ScrapeReport, started: Instant) -> [FamilySnapshot; 7] {
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
    [
        gauge(
            "herd_mmap_live_processes",
            "Processes whose metrics file is locked by a live writer.",
            report.live_files as f64,
        ),
        gauge(
            "herd_mmap_files",
            "Metrics files read in the last scrape: live, dead and the archive.",
            (report.live_files + report.dead_files + usize::from(report.archive)) as f64,
        ),
        gauge("herd_mmap_bytes", "Bytes of records across the metrics files.", report.bytes as f64),
        gauge(
            "herd_mmap_skipped_files",
            "Files skipped in the last scrape because they could not be read.",
            report.skipped.len() as f64,
        ),
        gauge(
            "herd_mmap_left_out_series",
            "Series in the files read that the aggregate leaves out because another file describes their family differently.",
            report.left_out_series as f64,
        ),
        FamilySnapshot {
            name: "herd_mmap_shrunk_files".into(),
            help: "Metrics files found truncated by another process while being read; they are skipped."
                .into(),
            unit: None,
            kind: MetricKind::Counter,
            series: vec![SeriesSnapshot {
                labels: Arc::new(LabelSet::empty()),
                value: SeriesValue::Counter(CounterValue {
                    integer: report.shrunk_files,
                    fraction: 0.0,
                    exemplar: None,
                }),
                created: None,
            }],
        },
        gauge(
            "herd_mmap_scrape_duration_seconds",
            "Time the last aggregation took.",
            started.elapsed().as_secs_f64(),
        ),
    ]
}
