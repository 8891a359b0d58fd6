//! Reading one file: open and check it, map it read-only, and parse the records
//! published since the last look. The aggregator and the compactor both read through
//! here; nothing in this module trusts a byte of the file.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use herd_core::labels::{validate_label_name, validate_metric_name};
use herd_core::{GaugeMode, MetricKind, SummaryLayout};

use crate::error::MmapError;
use crate::format::{
    decode_record, decode_strings_into, gauge_mode_from_code, string_at, Folded, FormatError, Header,
    NativeLayout, Record, SeriesHead, SeriesShape, FLAG_ARCHIVE, HEADER_LEN, KIND_SERIES, KIND_STRINGS,
};
use crate::index::{Index, IndexId, Resolved, SlotId, StrId};
use crate::protocol::{self, Word};
use crate::sys::Mapping;

/// More cells than any of herd-core's layouts takes for one series (a histogram with
/// 65,534 buckets); a family record claiming more is corrupt.
const MAX_CELLS_PER_SERIES: usize = 1 << 16;

/// How the cells of one series from several files combine into one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// Add every cell (counters, histograms, summaries, `sum` gauges).
    Sum,
    /// Keep the smallest value.
    Min,
    /// Keep the largest value.
    Max,
    /// Keep the value with the latest timestamp (cell 1).
    Latest,
    /// Never combined: each process has its own series, labelled with its pid.
    PerProcess,
    /// A summary's quantile sketch: count and sum add up, each age bucket keeps its
    /// newest epoch and adds the bins of equal epochs (`SummaryLayout::merge`).
    Sketch,
}

/// A family as one file describes it.
#[derive(Debug, PartialEq)]
pub(crate) struct FamilyInfo {
    pub(crate) name: Arc<str>,
    pub(crate) help: Arc<str>,
    pub(crate) unit: Option<Arc<str>>,
    pub(crate) kind: MetricKind,
    pub(crate) mode: GaugeMode,
    pub(crate) label_names: Vec<Arc<str>>,
    pub(crate) bounds: Arc<[f64]>,
    pub(crate) cells: usize,
    pub(crate) merge: Merge,
    /// The one cell that holds `f64` bits (summed as a float); every other cell is a
    /// `u64` count (or, for most-recent gauges, a timestamp).
    pub(crate) float_cell: usize,
    /// A summary's sketch layout, when it reports quantiles.
    pub(crate) summary: Option<Arc<SummaryLayout>>,
    /// A histogram's native buckets, when it keeps them.
    pub(crate) native: Option<NativeLayout>,
}

impl FamilyInfo {
    /// Whether two files describe the family the same way, so their series can be
    /// combined.
    pub(crate) fn compatible(&self, other: &FamilyInfo) -> bool {
        self.kind == other.kind
            && self.mode == other.mode
            && self.cells == other.cells
            && self.bounds == other.bounds
            && self.label_names == other.label_names
            && self.summary == other.summary
            && self.native == other.native
    }
}

/// A series as one file holds it: 16 bytes, held for every (file, series) pair of a
/// directory, so the labels are not here but in the index slot they resolved to once,
/// and the family is a position in the file's list rather than a reference count to
/// bump for every series parsed.
#[derive(Clone)]
pub(crate) struct SeriesEntry {
    /// Its family's position in [`Parsed::family`]'s list.
    family: u32,
    /// Its slot in the index the file was parsed into; [`NO_SLOT`] when left out.
    slot: SlotId,
    /// Index of its first cell among the mapping's words.
    first_word: u32,
    /// How many cells it has (its family's).
    cells: u32,
}

/// The slot of a series parsed without an index, or left out by it.
const NO_SLOT: SlotId = SlotId::MAX;

/// A file's string not yet mapped to the index's.
const NO_STR: StrId = StrId::MAX;

/// How a file's series become keys of the index it is parsed into.
#[derive(Default)]
struct Keys {
    /// The index's id of each of the file's strings ([`NO_STR`] until a series uses
    /// it), and of the writer's pid, for the index that `of` names.
    strs: Vec<StrId>,
    pid: Option<StrId>,
    of: Option<IndexId>,
    /// The key being built, reused.
    key: Vec<StrId>,
}

impl Keys {
    /// The slot in `index` of `family`'s series whose string ids are `ids` (its head is
    /// `head`), the file's series number `position`: its key, as [`Index::resolve`]
    /// takes it, is built from the index's ids of the file's strings (`text`, `ends`),
    /// each interned the first time a series uses it. `None` if an id names a string
    /// the file has not written.
    #[allow(clippy::too_many_arguments)]
    fn resolve(
        &mut self,
        (text, ends): (&str, &[u32]),
        ids: &[u32],
        head: &SeriesHead,
        family: &Arc<FamilyInfo>,
        pid: &str,
        position: usize,
        index: &mut Index,
    ) -> Option<Resolved> {
        if self.of != Some(index.id()) {
            // Mapped into another index (or none yet): map afresh.
            self.strs.clear();
            self.pid = None;
            self.of = Some(index.id());
        }
        self.strs.resize(ends.len(), NO_STR);
        let strs = &mut self.strs;
        let mut str_id = |id: u32| -> Option<StrId> {
            let mapped = strs.get_mut(id as usize)?;
            if *mapped == NO_STR {
                *mapped = index.intern(string_at(text, ends, id)?)?;
            }
            Some(*mapped)
        };
        self.key.clear();
        self.key.push(u32::try_from(head.const_labels).ok()?);
        for &id in ids {
            self.key.push(str_id(id)?);
        }
        if family.merge == Merge::PerProcess {
            let pid = match self.pid {
                Some(pid) => pid,
                None => *self.pid.insert(index.intern(pid)?),
            };
            self.key.push(pid);
        }
        Some(index.resolve(family, &self.key, position))
    }
}

impl SeriesEntry {
    /// The index slot its cells fold into; `None` if it was left out (its family is
    /// described differently by another file) or parsed without an index.
    pub(crate) fn slot(&self) -> Option<SlotId> {
        (self.slot != NO_SLOT).then_some(self.slot)
    }
}

/// Labels of one series, on the stack for the usual handful.
const INLINE_LABELS: usize = 16;

/// One open file, parsed up to `parsed.to`.
pub(crate) struct FileReader {
    pub(crate) identity: (u64, u64),
    file: File,
    map: Mapping,
    pub(crate) header: Header,
    pub(crate) parsed: Parsed,
    /// Set once the file fails a check; it is then read no further until it changes
    /// identity.
    pub(crate) error: Option<FormatError>,
    /// Whether the series parsed before `error` still count: a bad record costs only
    /// itself and what follows it. False when the file as a whole cannot be trusted (it
    /// shrank, or its header contradicts its length).
    pub(crate) prefix_counts: bool,
}

/// What has been parsed of a file's records so far.
pub(crate) struct Parsed {
    /// Bytes parsed (the header included).
    pub(crate) to: u64,
    /// A family's position in `family_list` by its id in the file. Looked up for
    /// every series record: foldhash, not SipHash (keyed per reader, as the ids come
    /// from the file).
    families: HashMap<u32, u32, foldhash::fast::RandomState>,
    family_list: Vec<Arc<FamilyInfo>>,
    /// The last family a series named (id, position): series come family by family, so
    /// this spares the lookup for nearly every one.
    last_family: Option<(u32, u32)>,
    /// The file's strings, by id, in one arena: string `i` ends at `ends[i]` of `text`
    /// (and starts where string `i - 1` ends). Kept for the series published later: a
    /// string is written once per file and referred to by every series that repeats it.
    text: String,
    ends: Vec<u32>,
    /// Shared with the files that took this one's parse ([`copy_parse`](Parsed::copy_parse))
    /// until one of them reads a series more: alike files cost their series once.
    pub(crate) series: Arc<Vec<SeriesEntry>>,
    /// Reused for every record: the record's bytes, a series' string ids.
    scratch: Vec<u8>,
    ids: Vec<u32>,
    keys: Keys,
    /// For an archive: the worker files it holds.
    pub(crate) folded: Vec<Folded>,
    /// The same ids, for lookups on every scrape.
    pub(crate) folded_ids: HashSet<u128>,
    /// Series parsed into an index that did not take them: their family is described
    /// differently by a file read before (type, labels, buckets), so they are left out
    /// rather than mixed, and counted so that the loss shows.
    pub(crate) left_out: usize,
}

impl Parsed {
    pub(crate) fn new() -> Self {
        Self {
            to: HEADER_LEN as u64,
            families: HashMap::default(),
            family_list: Vec::new(),
            last_family: None,
            text: String::new(),
            ends: Vec::new(),
            series: Arc::new(Vec::new()),
            scratch: Vec::new(),
            ids: Vec::new(),
            keys: Keys::default(),
            folded: Vec::new(),
            folded_ids: HashSet::new(),
            left_out: 0,
        }
    }

    /// Parses the records between `self.to` and `committed` (already checked to lie
    /// inside `words`), resolving each new series to its slot in `index` (none given:
    /// the series are only located). Each record is decoded from a copy, so a writer
    /// cannot change it under us; cells are only located, never read, here.
    pub(crate) fn parse<W: Word>(
        &mut self,
        words: &[W],
        header: &Header,
        committed: u64,
        mut index: Option<&mut Index>,
    ) -> Result<(), FormatError> {
        let mut pid = itoa::Buffer::new();
        let pid = pid.format(header.pid);
        let first = self.series.is_empty();
        if first {
            // Room for as many series as the records could hold (the smallest series
            // record is 24 bytes), given back below: growing by doubling instead copied
            // the list a dozen times and faulted in memory for each copy.
            Arc::make_mut(&mut self.series)
                .reserve(usize::try_from(committed.saturating_sub(self.to) / 24).unwrap_or(0));
        }
        while self.to < committed {
            let at = self.to as usize;
            let (kind, len) = protocol::record_at(words, at, committed)?;
            if kind == KIND_SERIES {
                // Most records are series: decoded in place, their cells left alone.
                self.series_record(words, at, len, pid, index.as_deref_mut())?;
                self.to += len as u64;
                continue;
            }
            protocol::read_record_into(words, at, committed, &mut self.scratch)?;
            let bad = |reason| FormatError::BadRecord { offset: at, reason };
            match kind {
                KIND_STRINGS => {
                    let before = self.ends.len();
                    let first = decode_strings_into(&self.scratch, at, &mut self.text, &mut self.ends)?;
                    if first as usize != before {
                        let start = self.start_of(before);
                        self.text.truncate(start);
                        self.ends.truncate(before);
                        return Err(bad("strings record out of order"));
                    }
                }
                _ => {
                    let (families, list) = (&self.families, &self.family_list);
                    let shape = |id| {
                        let f = families.get(&id).and_then(|&at| list.get(at as usize))?;
                        Some(SeriesShape { labels: f.label_names.len(), cells: f.cells })
                    };
                    match decode_record(&self.scratch, at, &shape)? {
                        Record::Padding => {}
                        Record::Family(f) => {
                            // Names and units go into the exposition verbatim: a file
                            // must not be able to put a newline, a brace or a space there.
                            if validate_metric_name(&f.name).is_err() {
                                return Err(bad("invalid metric name"));
                            }
                            let unit_ok = f
                                .unit
                                .bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                            if !unit_ok {
                                return Err(bad("invalid unit"));
                            }
                            let names = &f.label_names;
                            let names_ok = names
                                .iter()
                                .enumerate()
                                .all(|(i, n)| validate_label_name(n).is_ok() && !names[..i].contains(n));
                            if !names_ok {
                                return Err(bad("invalid or repeated label name"));
                            }
                            let mode = gauge_mode_from_code(f.gauge_mode).ok_or(bad("unknown gauge mode"))?;
                            let (id, info) = family_info(f, mode).ok_or(bad("impossible cell layout"))?;
                            let at = u32::try_from(self.family_list.len())
                                .map_err(|_| bad("too many families"))?;
                            self.family_list.push(Arc::new(info));
                            self.families.insert(id, at);
                            self.last_family = None;
                        }
                        Record::Folded(ids) => {
                            if header.flags & FLAG_ARCHIVE == 0 {
                                return Err(bad("folded ids outside an archive"));
                            }
                            self.folded_ids.extend(ids.iter().map(|f| f.id));
                            self.folded.extend(ids);
                        }
                        // Decoded above, by kind.
                        Record::Series(_) | Record::Strings { .. } => {}
                    }
                }
            }
            self.to += len as u64;
        }
        if first {
            // A file's first parse holds nearly all its series: exactly their room is
            // kept for the life of the reader. (Counting them first, to reserve no more,
            // would walk the records twice: a chain of dependent loads that cost a sixth
            // of a cold scrape.)
            Arc::make_mut(&mut self.series).shrink_to_fit();
        }
        Ok(())
    }

    /// The series record at byte `at` of `words`, `len` bytes long: resolved to a slot
    /// of `index` (its labels checked when the index first sees them), or only located
    /// and checked without one.
    fn series_record<W: Word>(
        &mut self,
        words: &[W],
        at: usize,
        len: usize,
        pid: &str,
        index: Option<&mut Index>,
    ) -> Result<(), FormatError> {
        let bad = |reason| FormatError::BadRecord { offset: at, reason };
        let (families, list, last) = (&self.families, &self.family_list, self.last_family);
        let mut position = None;
        let shape = |id| {
            let at = match last {
                Some((last, at)) if last == id => at,
                _ => *families.get(&id)?,
            };
            let f = list.get(at as usize)?;
            position = Some((id, at));
            Some(SeriesShape { labels: f.label_names.len(), cells: f.cells })
        };
        let head = protocol::read_series_head(words, at, len, shape, &mut self.ids)?;
        let (_, position) = position.ok_or(bad("series of an unknown family"))?;
        self.last_family = Some((head.family, position));
        let family = list.get(position as usize).ok_or(bad("series of an unknown family"))?;
        let cells = u32::try_from(family.cells).map_err(|_| bad("impossible cell layout"))?;
        let first_word = u32::try_from((at + head.cells_at) / 8).map_err(|_| bad("file too large"))?;
        let slot = match index {
            Some(index) => {
                let strings = (self.text.as_str(), self.ends.as_slice());
                let position = self.series.len();
                let resolved = self.keys.resolve(strings, &self.ids, &head, family, pid, position, index);
                match resolved.ok_or(bad("label refers to an unwritten string"))? {
                    Resolved::Slot(slot) => slot,
                    Resolved::LeftOut => {
                        self.left_out += 1;
                        NO_SLOT
                    }
                    Resolved::BadLabels => return Err(bad("invalid or repeated label name")),
                }
            }
            None => {
                self.check_labels(&head, family, pid).map_err(bad)?;
                NO_SLOT
            }
        };
        // Unshared, a check of the count; shared, the copy this file now needs.
        Arc::make_mut(&mut self.series).push(SeriesEntry { family: position, slot, first_word, cells });
        Ok(())
    }

    /// Checks the labels of the series whose string ids are in `ids` as
    /// [`LabelSet::new`](herd_core::LabelSet::new) would, without building them: for
    /// a file parsed without an index, which checks every series.
    fn check_labels(&self, head: &SeriesHead, family: &FamilyInfo, pid: &str) -> Result<(), &'static str> {
        let per_process = family.merge == Merge::PerProcess;
        let string =
            |id: u32| string_at(&self.text, &self.ends, id).ok_or("label refers to an unwritten string");
        let count = head.const_labels + family.label_names.len() + usize::from(per_process);
        let mut inline = [("", ""); INLINE_LABELS];
        let mut spilled = Vec::new();
        let pairs: &mut [(&str, &str)] = if count <= INLINE_LABELS {
            &mut inline[..count]
        } else {
            spilled.resize(count, ("", ""));
            &mut spilled
        };
        let (const_ids, value_ids) = self.ids.split_at(2 * head.const_labels);
        let names = const_ids
            .chunks_exact(2)
            .map(|p| Ok((string(p[0])?, string(p[1])?)))
            .chain(family.label_names.iter().zip(value_ids).map(|(n, &v)| Ok((&**n, string(v)?))))
            .chain(per_process.then_some(Ok(("pid", pid))));
        for (slot, pair) in pairs.iter_mut().zip(names) {
            *slot = pair?;
        }
        // The family's names were checked with its record; a constant label's name, and
        // every name's uniqueness, are checked here, as `LabelSet::new` would.
        for (i, &(name, _)) in pairs.iter().enumerate() {
            let checked = i >= head.const_labels && i < head.const_labels + family.label_names.len();
            if (!checked && validate_label_name(name).is_err()) || pairs[..i].iter().any(|&(n, _)| n == name)
            {
                return Err("invalid or repeated label name");
            }
        }
        Ok(())
    }

    /// The family of `s`, a series parsed here.
    pub(crate) fn family(&self, s: &SeriesEntry) -> Option<&Arc<FamilyInfo>> {
        self.family_list.get(s.family as usize)
    }

    /// Whether this file (not parsed yet) holds the same records as `template` (parsed
    /// from `template_words` into `index`) but for their cells and header: the same
    /// strings, families and series, in the same places, so that it may take
    /// `template`'s parse ([`copy_parse`](Parsed::copy_parse)).
    ///
    /// Workers of one program that create the same series in the same order (label
    /// sets made at start, a benchmark's workers) write such files, and a cold scrape
    /// then parses the first and compares the rest word for word (the records' words
    /// between the cells, at addresses known in advance, so read at the memory's pace
    /// rather than one record after another). Nothing is assumed: any other file, or
    /// one that differs anywhere, is parsed as usual. A family kept per process (its
    /// series carry the writer's pid) makes its files differ by definition.
    pub(crate) fn same_records<W: Word>(
        &self,
        words: &[W],
        committed: u64,
        template: &Parsed,
        template_words: &[W],
        index: &Index,
    ) -> bool {
        let fresh = self.to == HEADER_LEN as u64 && self.series.is_empty() && self.ends.is_empty();
        let eligible = fresh
            && template.to == committed
            && template.keys.of == Some(index.id())
            && template.left_out == 0
            && template.folded.is_empty()
            && !template.series.is_empty()
            && template.family_list.iter().all(|f| f.merge != Merge::PerProcess);
        if !eligible {
            return false;
        }
        let end = (committed / 8) as usize;
        let (Some(mine), Some(theirs)) = (words.get(..end), template_words.get(..end)) else { return false };
        // Relaxed: only words below a committed length loaded with Acquire are read.
        let same = |from: usize, to: usize| {
            mine.get(from..to).zip(theirs.get(from..to)).is_some_and(|(a, b)| {
                a.iter().zip(b).all(|(x, y)| x.load(Ordering::Relaxed) == y.load(Ordering::Relaxed))
            })
        };
        // The header's version, byte order and flags; its pid, id, times and length
        // are the file's own.
        if !same(1, 3) {
            return false;
        }
        let mut from = HEADER_LEN / 8;
        for s in template.series.iter() {
            let first = s.first_word as usize;
            if first < from || !same(from, first) {
                return false;
            }
            from = first + s.cells as usize;
        }
        same(from, end)
    }

    /// Takes `template`'s parse as this file's: see [`same_records`](Parsed::same_records).
    fn copy_parse(&mut self, template: &Parsed) {
        self.to = template.to;
        self.families.clone_from(&template.families);
        self.family_list.clone_from(&template.family_list);
        self.last_family = template.last_family;
        self.text.clone_from(&template.text);
        self.ends.clone_from(&template.ends);
        self.series = Arc::clone(&template.series);
        self.keys.strs.clone_from(&template.keys.strs);
        self.keys.of = template.keys.of;
    }

    /// Where string `id` starts in the arena.
    fn start_of(&self, id: usize) -> usize {
        id.checked_sub(1).and_then(|i| self.ends.get(i)).map_or(0, |&end| end as usize)
    }

    /// The cells of `s` among `words`; empty if they lie outside (never, for a series
    /// parsed from these words).
    #[inline]
    pub(crate) fn cells<'w, W>(words: &'w [W], s: &SeriesEntry) -> &'w [W] {
        let first = s.first_word as usize;
        words.get(first..first + s.cells as usize).unwrap_or(&[])
    }
}

/// What [`FileReader::refresh`] found at a path.
pub(crate) enum Refreshed {
    /// The file, read up to its committed length (or marked with its error).
    Read(Box<FileReader>),
    /// The path no longer exists.
    Vanished,
}

impl FileReader {
    /// Opens `path`, or reuses `cached` if it is still the same file, and parses what
    /// was published since.
    /// New series resolve to slots of `index`, if given; a new file that holds the
    /// same records as `template` (read into the same index) takes its parse
    /// ([`Parsed::same_records`]).
    pub(crate) fn refresh(
        cached: Option<FileReader>,
        path: &Path,
        index: Option<&mut Index>,
        template: Option<&FileReader>,
    ) -> Result<Refreshed, MmapError> {
        let meta = match fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Refreshed::Vanished),
            Err(e) => return Err(MmapError::io(path, "cannot inspect", e)),
        };
        let identity = (meta.dev(), meta.ino());
        let mut reader = match cached {
            Some(r) if r.identity == identity => r,
            _ => match Self::open(path, &meta) {
                Ok(r) => r,
                Err(MmapError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    return Ok(Refreshed::Vanished)
                }
                Err(e) => return Err(e),
            },
        };
        if reader.error.is_none() {
            reader.read_new(index, template);
            // Checked after the error above: a record that read as zeroes past the
            // file's new end is reported as what it was.
            reader.check_shrank();
        }
        Ok(Refreshed::Read(Box::new(reader)))
    }

    fn open(path: &Path, meta: &fs::Metadata) -> Result<Self, MmapError> {
        let format = |error| MmapError::Format { path: path.into(), error };
        if !meta.file_type().is_file() {
            return Err(format(FormatError::BadHeader("not a regular file")));
        }
        // O_NOFOLLOW and O_NONBLOCK: a symlink or a FIFO swapped in after the check
        // above is refused or fails the check below, never followed or waited on.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| MmapError::io(path, "cannot open", e))?;
        // The open file's own identity and size: the path may have been replaced since
        // `meta` (an archive renamed over), and a cached reader must never be taken for
        // a later file that reuses the old inode number.
        let opened = file.metadata().map_err(|e| MmapError::io(path, "cannot inspect", e))?;
        if !opened.file_type().is_file() {
            return Err(format(FormatError::BadHeader("not a regular file")));
        }
        // Only this user's processes can write a file in a checked directory, so a file
        // owned by anyone else was planted (by root, or while the directory was open to
        // others): its numbers are not ours to serve.
        let me = rustix::process::geteuid().as_raw();
        if opened.uid() != me {
            let why = format!("owned by uid {}, not by this process's uid {me}", opened.uid());
            return Err(MmapError::io(
                path,
                "refusing to read",
                io::Error::new(io::ErrorKind::PermissionDenied, why),
            ));
        }
        let len = opened.len();
        if len < HEADER_LEN as u64 {
            return Err(format(FormatError::Truncated));
        }
        let len = usize::try_from(len).map_err(|_| format(FormatError::BadHeader("file too large")))?;
        let map = Mapping::read_only(&file, len).map_err(|e| MmapError::io(path, "cannot map", e))?;
        let header =
            Header::decode(&protocol::read_bytes(map.words(), 0, HEADER_LEN), len).map_err(format)?;
        if map.faults() != 0 {
            return Err(format(FormatError::Shrank));
        }
        Ok(Self {
            identity: (opened.dev(), opened.ino()),
            file,
            map,
            header,
            parsed: Parsed::new(),
            error: None,
            prefix_counts: true,
        })
    }

    /// Marks the file as shrunk if any page of its mapping was found past the file's
    /// end since it was mapped (`sys.rs`, "Files that shrink under a mapping"); returns
    /// whether it did. Call after reading cells: what was read then is not to be used.
    pub(crate) fn check_shrank(&mut self) -> bool {
        if self.map.faults() == 0 {
            return false;
        }
        self.fail(FormatError::Shrank);
        true
    }

    /// Marks the whole file as untrustworthy.
    fn fail(&mut self, error: FormatError) {
        self.error = Some(error);
        self.prefix_counts = false;
    }

    /// Whether this is a compaction archive.
    pub(crate) fn is_archive(&self) -> bool {
        self.header.flags & FLAG_ARCHIVE != 0
    }

    /// Whether a writer still holds its lock on the file. The writer's exclusive lock
    /// blocks our shared one; the kernel drops it when the writer dies, however it
    /// dies, and a process that later reuses the pid cannot hold it.
    pub(crate) fn is_live(&self) -> bool {
        is_locked(&self.file)
    }

    /// Parses the records published since the last call. A record that cannot be read
    /// stops the parse there (`error`), keeping what came before; a file that shrank or
    /// whose committed length lies outside it is untrustworthy as a whole.
    fn read_new(&mut self, index: Option<&mut Index>, template: Option<&FileReader>) {
        // One fstat per file and scrape: a file shorter than our mapping was truncated,
        // and is known for what it is before a single mapped page past its end is
        // touched. (A truncation after this check is caught by the fault guard.)
        let len = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.map.words().len() as u64 * 8 {
            return self.fail(FormatError::Shrank);
        }
        let committed = self.committed();
        if committed > len {
            // A writer publishes only what its file holds: this file lost its end.
            return self.fail(FormatError::Shrank);
        }
        if committed as usize > self.map.words().len() * 8 {
            // The writer grew the file: map it again, whole.
            let Ok(len) = usize::try_from(len) else {
                return self.fail(FormatError::BadHeader("file too large"));
            };
            match Mapping::read_only(&self.file, len) {
                Ok(map) => self.map = map,
                Err(_) => return self.fail(FormatError::BadHeader("cannot map the grown file")),
            }
        }
        let committed = self.committed();
        if committed < self.parsed.to
            || !committed.is_multiple_of(8)
            || committed as usize > self.map.words().len() * 8
        {
            return self.fail(FormatError::BadHeader("committed length outside the file"));
        }
        if let (Some(index), Some(t)) = (&index, template) {
            // What the template's mapping read past its file's end (it shrank meanwhile)
            // is zeroes, not records: a comparison that read any is not trusted.
            let faults = t.map.faults();
            if t.error.is_none()
                && self.parsed.same_records(self.map.words(), committed, &t.parsed, t.map.words(), index)
                && t.map.faults() == faults
            {
                return self.parsed.copy_parse(&t.parsed);
            }
        }
        if let Err(e) = self.parsed.parse(self.map.words(), &self.header, committed, index) {
            self.error = Some(e);
        }
    }

    fn committed(&self) -> u64 {
        protocol::committed(self.map.words())
    }

    /// The cells of `s`.
    pub(crate) fn cells(&self, s: &SeriesEntry) -> &[AtomicU64] {
        Parsed::cells(self.map.words(), s)
    }

    /// The mapped file, as words: where [`Parsed::cells`] finds a series' cells.
    pub(crate) fn words(&self) -> &[AtomicU64] {
        self.map.words()
    }

    /// The series parsed so far.
    pub(crate) fn series(&self) -> &[SeriesEntry] {
        &self.parsed.series
    }
}

/// Whether someone holds an exclusive `flock` on `file`.
pub(crate) fn is_locked(file: &File) -> bool {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

/// The family a record describes, with how its cells combine; `None` if the cell
/// count cannot be that of its type.
fn family_info(f: crate::format::FamilyRecord, mode: GaugeMode) -> Option<(u32, FamilyInfo)> {
    let cells = f.cells_per_series as usize;
    if cells > MAX_CELLS_PER_SERIES {
        return None;
    }
    let buckets = f.buckets.len();
    // The float cell of each layout (FORMAT.md, "Cell layouts"); the rest are counts.
    let (expected, float_cell) = match f.kind {
        MetricKind::Counter => (cells == 2, 1),
        MetricKind::Gauge => (cells == if mode.timestamped() { 2 } else { 1 }, 0),
        // Classic counts (unless native-only), the sum, then the native block.
        MetricKind::Histogram => {
            let classic = if f.native.is_some_and(|n| !n.classic) { 0 } else { buckets + 1 };
            let native = f.native.map_or(0, |n| 1 + 2 * n.buckets.len());
            (cells == classic + 1 + native, classic)
        }
        // A summary without a sketch is count and sum (and, from a file written before
        // sketches, possibly cells this reader leaves alone).
        MetricKind::Summary => match &f.summary {
            Some(layout) => (cells == layout.cells(), 1),
            None => (cells >= 2, 1),
        },
        _ => (cells == 1, 0),
    };
    if !expected {
        return None;
    }
    let merge = match (f.kind, mode) {
        (MetricKind::Gauge, GaugeMode::All | GaugeMode::LiveAll) => Merge::PerProcess,
        (MetricKind::Gauge, GaugeMode::Min) => Merge::Min,
        (MetricKind::Gauge, GaugeMode::Max) => Merge::Max,
        (MetricKind::Gauge, GaugeMode::MostRecent | GaugeMode::LiveMostRecent) => Merge::Latest,
        (MetricKind::Summary, _) if f.summary.is_some() => Merge::Sketch,
        _ => Merge::Sum,
    };
    let info = FamilyInfo {
        name: f.name.into(),
        help: f.help.into(),
        unit: (!f.unit.is_empty()).then(|| f.unit.into()),
        kind: f.kind,
        mode: if f.kind == MetricKind::Gauge { mode } else { GaugeMode::All },
        label_names: f.label_names.into_iter().map(Into::into).collect(),
        bounds: f.buckets.into(),
        cells,
        merge,
        float_cell,
        summary: f.summary.map(Arc::new),
        native: f.native,
    };
    Some((f.id, info))
}
