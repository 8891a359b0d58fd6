//! The bytes of a herd-mmap file, as `FORMAT.md` specifies them: encoding for the
//! writer, bounds-checked decoding for the reader. Pure functions over byte slices;
//! nothing here touches a mapping.

use std::collections::HashMap;
use std::fmt;

use herd_core::{GaugeMode, MetricKind, NativeBuckets, SummaryLayout};

/// `HERDMMAP`.
pub(crate) const MAGIC: [u8; 8] = *b"HERDMMAP";
/// The format version this code writes; it reads this one and every earlier one.
pub(crate) const VERSION: u32 = 2;
/// The oldest version this code reads: version 2 only added the native histogram
/// block, so a version 1 file reads as it always did.
const OLDEST_VERSION: u32 = 1;
/// Written natively; reads back as this value only on a little-endian host.
pub(crate) const ENDIAN_MARK: u32 = 0x0102_0304;
/// Records start here.
pub(crate) const HEADER_LEN: usize = 128;
/// Byte offset of the `committed` field.
pub(crate) const COMMITTED_OFFSET: usize = 40;

const KIND_FAMILY: u16 = 1;
pub(crate) const KIND_SERIES: u16 = 2;
const KIND_PADDING: u16 = 3;
const KIND_FOLDED: u16 = 4;
pub(crate) const KIND_STRINGS: u16 = 5;
/// Header flag: the file is a compaction archive.
pub(crate) const FLAG_ARCHIVE: u32 = 1;
/// Family record flag (the u16 after the gauge mode): a summary sketch's parameters
/// follow the bucket bounds.
const FAMILY_HAS_SKETCH: u16 = 1;
/// Family record flag (version 2): a histogram's native buckets follow the bucket
/// bounds.
const FAMILY_HAS_NATIVE: u16 = 2;
/// Record header: `len` (u32), `kind` (u16), `flags` (u16).
const RECORD_HEADER: usize = 8;

/// Why a file, or a record in it, could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Shorter than a header.
    Truncated,
    /// Not a herd-mmap file.
    BadMagic,
    /// Written big-endian, or corrupt.
    WrongEndianness,
    /// A version this code does not read.
    UnsupportedVersion(u32),
    /// A header field that cannot be right.
    BadHeader(&'static str),
    /// A record that runs past the committed length, or is malformed.
    BadRecord {
        /// Byte offset of the record in the file.
        offset: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The file shrank while it was being read: another process truncated it. What was
    /// read of it may be zeroes that were never written, so none of it counts.
    Shrank,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("shorter than a herd-mmap header"),
            Self::BadMagic => f.write_str("not a herd-mmap file (bad magic)"),
            Self::WrongEndianness => f.write_str("written with another byte order"),
            Self::UnsupportedVersion(v) if *v > VERSION => {
                write!(f, "format version {v} is newer than this reader's {VERSION}")
            }
            Self::UnsupportedVersion(v) => write!(f, "unknown format version {v}"),
            Self::BadHeader(why) => write!(f, "bad header: {why}"),
            Self::BadRecord { offset, reason } => write!(f, "bad record at byte {offset}: {reason}"),
            Self::Shrank => f.write_str("the file shrank while it was read (truncated by another process)"),
        }
    }
}

impl std::error::Error for FormatError {}

/// The fixed fields of a file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) flags: u32,
    pub(crate) pid: u32,
    pub(crate) created_ns: u64,
    pub(crate) committed: u64,
    pub(crate) id: u128,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&ENDIAN_MARK.to_le_bytes());
        b[16..20].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        b[20..24].copy_from_slice(&self.flags.to_le_bytes());
        b[24..28].copy_from_slice(&self.pid.to_le_bytes());
        b[32..40].copy_from_slice(&self.created_ns.to_le_bytes());
        b[40..48].copy_from_slice(&self.committed.to_le_bytes());
        b[48..64].copy_from_slice(&self.id.to_le_bytes());
        b
    }

    /// Decodes and checks a header. `file_len` bounds `committed`.
    pub(crate) fn decode(b: &[u8], file_len: usize) -> Result<Self, FormatError> {
        let b: &[u8; HEADER_LEN] =
            b.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(FormatError::Truncated)?;
        if b[0..8] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let version = u32_at(b, 8);
        if u32_at(b, 12) != ENDIAN_MARK {
            return Err(if u32::from_be_bytes([b[12], b[13], b[14], b[15]]) == ENDIAN_MARK {
                FormatError::WrongEndianness
            } else {
                FormatError::BadHeader("endianness marker")
            });
        }
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(FormatError::UnsupportedVersion(version));
        }
        if u32_at(b, 16) as usize != HEADER_LEN {
            return Err(FormatError::BadHeader("header length"));
        }
        let committed = u64_at(b, 40);
        if committed < HEADER_LEN as u64 || committed > file_len as u64 || !committed.is_multiple_of(8) {
            return Err(FormatError::BadHeader("committed length outside the file"));
        }
        Ok(Self {
            flags: u32_at(b, 20),
            pid: u32_at(b, 24),
            created_ns: u64_at(b, 32),
            committed,
            id: u128::from_le_bytes(b[48..64].try_into().map_err(|_| FormatError::Truncated)?),
        })
    }
}

/// A family as a file records it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FamilyRecord {
    pub(crate) id: u32,
    pub(crate) kind: MetricKind,
    pub(crate) gauge_mode: u8,
    pub(crate) cells_per_series: u32,
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) unit: String,
    pub(crate) label_names: Vec<String>,
    pub(crate) buckets: Vec<f64>,
    /// A summary's sketch layout, when it reports quantiles.
    pub(crate) summary: Option<SummaryLayout>,
    /// A histogram's native buckets, when it keeps them.
    pub(crate) native: Option<NativeLayout>,
}

/// A histogram family's native buckets, and whether classic counts lead its cells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NativeLayout {
    pub(crate) buckets: NativeBuckets,
    /// Whether the cells start with one count per classic bucket; without them the
    /// family has no bucket bounds and its sum is cell 0.
    pub(crate) classic: bool,
}

/// A series as a file records it: string ids for its labels; its cells follow at
/// `cells_at` within the record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesRecord {
    pub(crate) family: u32,
    /// The registry's constant labels: (name id, value id).
    pub(crate) const_labels: Vec<(u32, u32)>,
    /// The ids of the values of the family's labels, in the order of its label names.
    pub(crate) values: Vec<u32>,
    pub(crate) cells_at: usize,
}

/// What decoding a series record takes from its family, which the record does not
/// repeat: how many label values and cells it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SeriesShape {
    pub(crate) labels: usize,
    pub(crate) cells: usize,
}

/// One entry of an archive's folded-ids record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Folded {
    pub(crate) id: u128,
    pub(crate) at_ns: u64,
}

/// One decoded record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Record {
    Family(FamilyRecord),
    Series(SeriesRecord),
    Padding,
    Folded(Vec<Folded>),
    /// A strings record: the id of its first string, and the strings.
    Strings {
        first: u32,
        strings: Vec<String>,
    },
}

fn kind_code(kind: MetricKind) -> u8 {
    match kind {
        MetricKind::Counter => 1,
        MetricKind::Gauge => 2,
        MetricKind::Histogram => 3,
        MetricKind::Summary => 4,
        _ => 5,
    }
}

fn kind_from_code(code: u8) -> Option<MetricKind> {
    Some(match code {
        1 => MetricKind::Counter,
        2 => MetricKind::Gauge,
        3 => MetricKind::Histogram,
        4 => MetricKind::Summary,
        5 => MetricKind::Unknown,
        _ => return None,
    })
}

/// The gauge-mode byte of a family record.
pub(crate) fn gauge_mode_code(mode: GaugeMode) -> u8 {
    GaugeMode::ALL.iter().position(|m| *m == mode).map_or(0, |i| i as u8)
}

/// The gauge mode a family record's byte names; `None` for an unknown code.
pub(crate) fn gauge_mode_from_code(code: u8) -> Option<GaugeMode> {
    GaugeMode::ALL.get(usize::from(code)).copied()
}

/// Builds a record: header, body, padding to 8.
struct RecordBuf(Vec<u8>);

impl RecordBuf {
    fn new(kind: u16) -> Self {
        Self::with_flags(kind, 0)
    }
    fn with_flags(kind: u16, flags: u16) -> Self {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&flags.to_le_bytes());
        Self(v)
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        // Lengths past u32 cannot be stored; such strings are cut at a char boundary.
        let mut end = s.len().min(u32::MAX as usize);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.u32(end as u32);
        self.0.extend_from_slice(&s.as_bytes()[..end]);
    }
    fn pad(&mut self) {
        while !self.0.len().is_multiple_of(8) {
            self.0.push(0);
        }
    }
    fn finish(mut self) -> Vec<u8> {
        self.pad();
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_le_bytes());
        self.0
    }
}

pub(crate) fn encode_family(f: &FamilyRecord) -> Vec<u8> {
    let mut r = RecordBuf::new(KIND_FAMILY);
    r.u32(f.id);
    r.u8(kind_code(f.kind));
    r.u8(f.gauge_mode);
    let flags = if f.summary.is_some() { FAMILY_HAS_SKETCH } else { 0 }
        | if f.native.is_some() { FAMILY_HAS_NATIVE } else { 0 };
    r.u16(flags);
    r.u32(f.cells_per_series);
    r.str(&f.name);
    r.str(&f.help);
    r.str(&f.unit);
    r.u32(f.label_names.len() as u32);
    for n in &f.label_names {
        r.str(n);
    }
    r.u32(f.buckets.len() as u32);
    for b in &f.buckets {
        r.0.extend_from_slice(&b.to_le_bytes());
    }
    if let Some(l) = &f.summary {
        r.u32(l.objectives().len() as u32);
        for q in l.objectives() {
            r.0.extend_from_slice(&q.to_le_bytes());
        }
        let max_age_ns = u64::try_from(l.max_age().as_nanos()).unwrap_or(u64::MAX);
        r.0.extend_from_slice(&max_age_ns.to_le_bytes());
        r.u32(l.age_buckets());
        r.u32(l.bins());
        r.0.extend_from_slice(&l.relative_error().to_le_bytes());
        r.0.extend_from_slice(&l.lowest().to_le_bytes());
    }
    if let Some(n) = &f.native {
        r.u32(i32::from(n.buckets.schema()) as u32);
        r.u32(n.buckets.first_index() as u32);
        r.u32(n.buckets.len() as u32);
        r.u32(u32::from(n.classic));
        r.0.extend_from_slice(&n.buckets.zero_threshold().to_le_bytes());
    }
    r.finish()
}

/// A series record with `cell_count` zeroed cells; returns the bytes and the offset of
/// the first cell within them. `ids` are the string ids of the labels as herd-core hands
/// them to a storage, constant labels first: the first `const_count` labels as (name,
/// value) pairs, then the family's values.
///
/// # Errors
///
/// More than `u16::MAX` constant labels, which the record header cannot count.
pub(crate) fn encode_series(
    family: u32,
    ids: &[u32],
    const_count: usize,
    cell_count: usize,
) -> Result<(Vec<u8>, usize), &'static str> {
    let flags = u16::try_from(const_count).map_err(|_| "more than 65,535 constant labels")?;
    if ids.len() < 2 * const_count {
        return Err("fewer label ids than constant labels");
    }
    let mut r = RecordBuf::with_flags(KIND_SERIES, flags);
    r.u32(family);
    for &id in ids {
        r.u32(id);
    }
    r.pad();
    let cells_at = r.0.len();
    r.0.resize(cells_at + cell_count * 8, 0);
    Ok((r.finish(), cells_at))
}

/// The strings of a series' labels in the order its record refers to them: the name
/// and value of each of the first `const_count` (constant) labels, then the values of
/// the rest (the family's).
pub(crate) fn label_strings<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    const_count: usize,
) -> impl Iterator<Item = &'a str> {
    pairs
        .enumerate()
        .flat_map(move |(i, (name, value))| (i < const_count).then_some(name).into_iter().chain([value]))
}

/// A strings record: `strings`, whose ids start at `first`.
pub(crate) fn encode_strings<S: AsRef<str>>(first: u32, strings: &[S]) -> Vec<u8> {
    let mut r = RecordBuf::new(KIND_STRINGS);
    r.u32(first);
    r.u32(strings.len() as u32);
    for s in strings {
        r.str(s.as_ref());
    }
    r.finish()
}

/// The strings written to one file, by value, so that each is written once
/// (FORMAT.md, "Strings record"). The writer and the compactor each keep one per file
/// they write.
#[derive(Debug, Default, Clone)]
pub(crate) struct StringTable {
    ids: HashMap<Box<str>, u32>,
}

/// The ids of some strings, and the strings record to write before any record that
/// uses them (`None` when the file already holds them all).
#[derive(Debug)]
pub(crate) struct Interned {
    pub(crate) ids: Vec<u32>,
    pub(crate) record: Option<Vec<u8>>,
    new: Vec<Box<str>>,
}

impl StringTable {
    /// The ids of `strings`, in order; those the file lacks get the next free ids (a
    /// string repeated among them, one). The table is unchanged until
    /// [`commit`](Self::commit), which the caller does once the record is written.
    ///
    /// # Errors
    ///
    /// When the ids would pass `u32::MAX`.
    pub(crate) fn intern<'a>(
        &self,
        strings: impl IntoIterator<Item = &'a str>,
    ) -> Result<Interned, &'static str> {
        let first = u32::try_from(self.ids.len()).map_err(|_| "more than 2^32 strings in one file")?;
        let mut ids = Vec::new();
        let mut new: Vec<Box<str>> = Vec::new();
        for s in strings {
            let id = match self.ids.get(s) {
                Some(&id) => id,
                None => {
                    // A series has a handful of labels: a linear search beats a map here.
                    let at = new.iter().position(|n| **n == *s).unwrap_or_else(|| {
                        new.push(s.into());
                        new.len() - 1
                    });
                    u32::try_from(at)
                        .ok()
                        .and_then(|at| first.checked_add(at))
                        .ok_or("more than 2^32 strings in one file")?
                }
            };
            ids.push(id);
        }
        let record = (!new.is_empty()).then(|| encode_strings(first, &new));
        Ok(Interned { ids, record, new })
    }

    /// Records that the strings of `interned` are in the file; returns their ids.
    pub(crate) fn commit(&mut self, interned: Interned) -> Vec<u32> {
        let first = self.ids.len();
        for (i, s) in interned.new.into_iter().enumerate() {
            self.ids.insert(s, (first + i) as u32);
        }
        interned.ids
    }
}

/// A folded-ids record.
pub(crate) fn encode_folded(ids: &[Folded]) -> Vec<u8> {
    let mut r = RecordBuf::new(KIND_FOLDED);
    r.u32(ids.len() as u32);
    r.u32(0);
    for f in ids {
        r.0.extend_from_slice(&f.id.to_le_bytes());
        r.0.extend_from_slice(&f.at_ns.to_le_bytes());
    }
    r.finish()
}

/// A padding record of exactly `len` bytes (a multiple of 8, at least 8).
pub(crate) fn encode_padding(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    v[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    v[4..6].copy_from_slice(&KIND_PADDING.to_le_bytes());
    v
}

/// The length a record starting with these 8 bytes claims, checked against `room`.
pub(crate) fn record_len(first_word: [u8; 8], offset: usize, room: usize) -> Result<usize, FormatError> {
    let len = u32::from_le_bytes([first_word[0], first_word[1], first_word[2], first_word[3]]) as usize;
    if len < RECORD_HEADER || !len.is_multiple_of(8) {
        return Err(FormatError::BadRecord { offset, reason: "length is not a positive multiple of 8" });
    }
    if len > room {
        return Err(FormatError::BadRecord { offset, reason: "runs past the committed length" });
    }
    Ok(len)
}

/// The kind of the record whose first 8 bytes these are.
pub(crate) fn record_kind(first_word: [u8; 8]) -> u16 {
    u16::from_le_bytes([first_word[4], first_word[5]])
}

/// Where a series record's parts are, decoded by
/// [`read_series_head`](crate::protocol::read_series_head).
pub(crate) struct SeriesHead {
    /// The family's id in its file.
    pub(crate) family: u32,
    /// How many constant labels come first, as (name id, value id) pairs.
    pub(crate) const_labels: usize,
    /// The offset of the first cell within the record.
    pub(crate) cells_at: usize,
}

/// Decodes a strings record like [`decode_record`], appending its strings to one
/// arena (`text`, with each string's end in `ends`) instead of allocating one each.
/// Returns the id of its first string. Nothing is appended if the record is bad.
pub(crate) fn decode_strings_into(
    bytes: &[u8],
    offset: usize,
    text: &mut String,
    ends: &mut Vec<u32>,
) -> Result<u32, FormatError> {
    let bad = |reason| FormatError::BadRecord { offset, reason };
    let short = || bad("truncated strings record");
    let mut c = Cursor { b: bytes, at: 0 };
    let _len = c.u32().ok_or(bad("truncated header"))?;
    let kind = c.u16().ok_or(bad("truncated header"))?;
    let _flags = c.u16().ok_or(bad("truncated header"))?;
    if kind != KIND_STRINGS {
        return Err(bad("not a strings record"));
    }
    let first = c.u32().ok_or_else(short)?;
    let n = c.u32().ok_or_else(short)?;
    let (text_len, ends_len) = (text.len(), ends.len());
    let mut append = || -> Result<(), FormatError> {
        for _ in 0..n {
            let len = c.u32().ok_or_else(short)? as usize;
            let s = std::str::from_utf8(c.take(len).ok_or_else(short)?).map_err(|_| short())?;
            text.push_str(s);
            ends.push(u32::try_from(text.len()).map_err(|_| bad("more than 4 GiB of strings in one file"))?);
        }
        Ok(())
    };
    let appended = append();
    if appended.is_err() {
        text.truncate(text_len);
        ends.truncate(ends_len);
    }
    appended.map(|()| first)
}

/// String `id` of an arena that [`decode_strings_into`] filled: string `i` ends at
/// `ends[i]` of `text` and starts where string `i - 1` ends. `None` for an id past the
/// arena.
pub(crate) fn string_at<'a>(text: &'a str, ends: &[u32], id: u32) -> Option<&'a str> {
    let id = id as usize;
    let start = id.checked_sub(1).map_or(Some(0), |i| ends.get(i).copied())?;
    text.get(start as usize..*ends.get(id)? as usize)
}

/// Decodes one whole record (`bytes` is exactly its `len` bytes). `shape` gives the
/// shape of a family's series, from the family records read before (`None` for a
/// family not yet seen).
pub(crate) fn decode_record(
    bytes: &[u8],
    offset: usize,
    shape: &dyn Fn(u32) -> Option<SeriesShape>,
) -> Result<Record, FormatError> {
    let bad = |reason| FormatError::BadRecord { offset, reason };
    let mut c = Cursor { b: bytes, at: 0 };
    let _len = c.u32().ok_or(bad("truncated header"))?;
    let kind = c.u16().ok_or(bad("truncated header"))?;
    let flags = c.u16().ok_or(bad("truncated header"))?;
    match kind {
        KIND_PADDING => Ok(Record::Padding),
        KIND_FAMILY => {
            let short = || bad("truncated family record");
            let id = c.u32().ok_or_else(short)?;
            let kind = kind_from_code(c.u8().ok_or_else(short)?).ok_or(bad("unknown metric kind"))?;
            let gauge_mode = c.u8().ok_or_else(short)?;
            let family_flags = c.u16().ok_or_else(short)?;
            let cells_per_series = c.u32().ok_or_else(short)?;
            let name = c.str().ok_or_else(short)?;
            let help = c.str().ok_or_else(short)?;
            let unit = c.str().ok_or_else(short)?;
            let n = c.u32().ok_or_else(short)?;
            let label_names = (0..n).map(|_| c.str()).collect::<Option<Vec<_>>>().ok_or_else(short)?;
            let n = c.u32().ok_or_else(short)?;
            let buckets = (0..n).map(|_| c.f64()).collect::<Option<Vec<_>>>().ok_or_else(short)?;
            let summary = if family_flags & FAMILY_HAS_SKETCH != 0 {
                let n = c.u32().ok_or_else(short)?;
                // Bounded before collecting: the count comes from the file.
                if n > 1024 {
                    return Err(bad("too many summary objectives"));
                }
                let objectives = (0..n).map(|_| c.f64()).collect::<Option<Vec<_>>>().ok_or_else(short)?;
                let max_age_ns = c.u64().ok_or_else(short)?;
                let age_buckets = c.u32().ok_or_else(short)?;
                let bins = c.u32().ok_or_else(short)?;
                let relative_error = c.f64().ok_or_else(short)?;
                let lowest = c.f64().ok_or_else(short)?;
                let layout = SummaryLayout::from_parts(
                    &objectives,
                    max_age_ns,
                    age_buckets,
                    bins,
                    relative_error,
                    lowest,
                )
                .ok_or(bad("invalid summary sketch parameters"))?;
                Some(layout)
            } else {
                None
            };
            let native = if family_flags & FAMILY_HAS_NATIVE != 0 {
                let schema = c.u32().ok_or_else(short)? as i32;
                let first = c.u32().ok_or_else(short)? as i32;
                let len = c.u32().ok_or_else(short)?;
                let classic = match c.u32().ok_or_else(short)? {
                    0 => false,
                    1 => true,
                    _ => return Err(bad("invalid native histogram parameters")),
                };
                let zero_threshold = c.f64().ok_or_else(short)?;
                let buckets = i8::try_from(schema)
                    .ok()
                    .and_then(|schema| NativeBuckets::from_parts(schema, zero_threshold, first, len))
                    .filter(|_| kind == MetricKind::Histogram && (classic || buckets.is_empty()))
                    .ok_or(bad("invalid native histogram parameters"))?;
                Some(NativeLayout { buckets, classic })
            } else {
                None
            };
            Ok(Record::Family(FamilyRecord {
                id,
                kind,
                gauge_mode,
                cells_per_series,
                name,
                help,
                unit,
                label_names,
                buckets,
                summary,
                native,
            }))
        }
        KIND_SERIES => {
            let short = || bad("truncated series record");
            let family = c.u32().ok_or_else(short)?;
            let shape = shape(family).ok_or(bad("series of an unknown family"))?;
            let const_labels = (0..flags)
                .map(|_| Some((c.u32()?, c.u32()?)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(short)?;
            let values = (0..shape.labels).map(|_| c.u32()).collect::<Option<Vec<_>>>().ok_or_else(short)?;
            let cells_at = c.at.div_ceil(8) * 8;
            let cells_end = shape.cells.checked_mul(8).and_then(|n| n.checked_add(cells_at));
            if cells_end != Some(bytes.len()) {
                return Err(bad("record length differs from its family's cells"));
            }
            Ok(Record::Series(SeriesRecord { family, const_labels, values, cells_at }))
        }
        KIND_STRINGS => {
            let short = || bad("truncated strings record");
            let first = c.u32().ok_or_else(short)?;
            let n = c.u32().ok_or_else(short)?;
            let strings = (0..n).map(|_| c.str()).collect::<Option<Vec<_>>>().ok_or_else(short)?;
            Ok(Record::Strings { first, strings })
        }
        KIND_FOLDED => {
            let short = || bad("truncated folded-ids record");
            let n = c.u32().ok_or_else(short)?;
            let _ = c.u32().ok_or_else(short)?;
            let ids = (0..n)
                .map(|_| {
                    let id = u128::from_le_bytes(c.take(16)?.try_into().ok()?);
                    let at_ns = u64::from_le_bytes(c.take(8)?.try_into().ok()?);
                    Some(Folded { id, at_ns })
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(short)?;
            Ok(Record::Folded(ids))
        }
        _ => Err(bad("unknown record kind")),
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn f64(&mut self) -> Option<f64> {
        self.take(8)?.try_into().ok().map(f64::from_le_bytes)
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn u32_at(b: &[u8; HEADER_LEN], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8; HEADER_LEN], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family() -> FamilyRecord {
        FamilyRecord {
            id: 3,
            kind: MetricKind::Histogram,
            gauge_mode: 0,
            cells_per_series: 4,
            name: "latency_seconds".into(),
            help: "Latency \"of\" things.\n".into(),
            unit: "seconds".into(),
            label_names: vec!["route".into(), "méthode".into()],
            buckets: vec![0.1, 1.0],
            summary: None,
            native: None,
        }
    }

    fn summary_family() -> FamilyRecord {
        let layout = SummaryLayout::from_parts(&[0.5, 0.99], 60_000_000_000, 3, 8, 0.02, 1e-3);
        FamilyRecord {
            kind: MetricKind::Summary,
            cells_per_series: 32,
            buckets: Vec::new(),
            summary: layout,
            ..family()
        }
    }

    #[test]
    fn header_round_trips_and_is_checked() {
        let h = Header { flags: 1, pid: 42, created_ns: 7, committed: 128, id: 0xfeed };
        let b = h.encode();
        assert_eq!(Header::decode(&b, 4096), Ok(h));
        assert_eq!(Header::decode(&b[..100], 4096), Err(FormatError::Truncated));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Header::decode(&bad, 4096), Err(FormatError::BadMagic));
        let mut future = b;
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(Header::decode(&future, 4096), Err(FormatError::UnsupportedVersion(3)));
        assert!(FormatError::UnsupportedVersion(3).to_string().contains("newer"));
        let mut first = b;
        first[8..12].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(Header::decode(&first, 4096), Ok(h), "version 1 still reads");
        let mut big = b;
        big[12..16].copy_from_slice(&ENDIAN_MARK.to_be_bytes());
        assert_eq!(Header::decode(&big, 4096), Err(FormatError::WrongEndianness));
        let mut past = b;
        past[40..48].copy_from_slice(&8192u64.to_le_bytes());
        assert!(matches!(Header::decode(&past, 4096), Err(FormatError::BadHeader(_))));
    }

    /// Family 3 has two labels and four cells per series; no other family exists.
    fn shape(family: u32) -> Option<SeriesShape> {
        (family == 3).then_some(SeriesShape { labels: 2, cells: 4 })
    }

    #[test]
    fn native_blocks_round_trip_and_are_checked() {
        let buckets = NativeBuckets::default();
        for classic in [true, false] {
            let f = FamilyRecord {
                buckets: if classic { vec![0.1, 1.0] } else { Vec::new() },
                native: Some(NativeLayout { buckets, classic }),
                ..family()
            };
            assert_eq!(decode_record(&encode_family(&f), 128, &shape), Ok(Record::Family(f)));
        }
        // A native block whose first index does not follow from its threshold, or on a
        // native-only family with classic bounds, is corrupt.
        let f = FamilyRecord { native: Some(NativeLayout { buckets, classic: false }), ..family() };
        assert!(matches!(decode_record(&encode_family(&f), 128, &shape), Err(FormatError::BadRecord { .. })));
        let f = FamilyRecord { native: Some(NativeLayout { buckets, classic: true }), ..family() };
        let mut bytes = encode_family(&f);
        let first = buckets.first_index().to_le_bytes();
        let at = bytes.windows(4).rposition(|w| w == first).unwrap();
        bytes[at..at + 4].copy_from_slice(&7i32.to_le_bytes());
        assert!(matches!(decode_record(&bytes, 128, &shape), Err(FormatError::BadRecord { .. })));
    }

    #[test]
    fn records_round_trip() {
        let f = family();
        let bytes = encode_family(&f);
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(decode_record(&bytes, 128, &shape), Ok(Record::Family(f)));
        let f = summary_family();
        assert!(f.summary.is_some());
        assert_eq!(decode_record(&encode_family(&f), 128, &shape), Ok(Record::Family(f)));

        let (bytes, cells_at) = encode_series(3, &[0, 1, 2, 3], 1, 4).unwrap();
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(cells_at % 8, 0);
        assert_eq!(bytes.len(), cells_at + 32);
        let want = SeriesRecord { family: 3, const_labels: vec![(0, 1)], values: vec![2, 3], cells_at };
        assert_eq!(decode_record(&bytes, 0, &shape), Ok(Record::Series(want)));
        let strings = encode_strings(7, &["/a\"b", "méthode", ""]);
        let want =
            Record::Strings { first: 7, strings: vec!["/a\"b".into(), "méthode".into(), String::new()] };
        assert_eq!(decode_record(&strings, 0, &shape), Ok(want));
        let folded = vec![Folded { id: u128::MAX - 1, at_ns: 7 }, Folded { id: 3, at_ns: 9 }];
        assert_eq!(decode_record(&encode_folded(&folded), 0, &shape), Ok(Record::Folded(folded)));
        assert_eq!(decode_record(&encode_padding(24), 0, &shape), Ok(Record::Padding));
    }

    #[test]
    fn a_series_is_ids_and_cells() {
        // Three labels and a counter's two cells: the record header, the family id,
        // three ids, the cells. The byte budget of FORMAT.md.
        let (bytes, cells_at) = encode_series(0, &[0, 1, 2], 0, 2).unwrap();
        assert_eq!((bytes.len(), cells_at), (40, 24));
        // The same record against a family of another shape is refused, not misread.
        let other = |_| Some(SeriesShape { labels: 3, cells: 3 });
        assert!(matches!(decode_record(&bytes, 0, &other), Err(FormatError::BadRecord { .. })));
        let none = |_| None;
        assert_eq!(
            decode_record(&bytes, 0, &none),
            Err(FormatError::BadRecord { offset: 0, reason: "series of an unknown family" })
        );
        assert!(encode_series(0, &[0], 1, 2).is_err());
    }

    #[test]
    fn strings_are_interned_once_and_only_after_commit() {
        let mut table = StringTable::default();
        let first = table.intern(["GET", "/a", "GET", "200"]).unwrap();
        assert_eq!(first.ids, vec![0, 1, 0, 2]);
        let record = first.record.clone().unwrap();
        let want = Record::Strings { first: 0, strings: vec!["GET".into(), "/a".into(), "200".into()] };
        assert_eq!(decode_record(&record, 0, &shape), Ok(want));
        // Not committed (its record was never written): the same strings are new again.
        assert_eq!(table.intern(["200"]).unwrap().ids, vec![0]);
        assert_eq!(table.commit(first), vec![0, 1, 0, 2]);
        let second = table.intern(["200", "/b", "GET"]).unwrap();
        assert_eq!(second.ids, vec![2, 3, 0]);
        let want = Record::Strings { first: 3, strings: vec!["/b".into()] };
        assert_eq!(decode_record(second.record.as_deref().unwrap(), 0, &shape), Ok(want));
        table.commit(second);
        assert!(table.intern(["/b", "GET"]).unwrap().record.is_none());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let (series, _) = encode_series(3, &[0, 1, 2, 3], 1, 4).unwrap();
        let folded = encode_folded(&[Folded { id: 1, at_ns: 2 }]);
        let strings = encode_strings(0, &["a", "bc"]);
        for bytes in [encode_family(&family()), encode_family(&summary_family()), series, folded, strings] {
            for cut in 0..bytes.len() {
                let _ = decode_record(&bytes[..cut], 0, &shape);
            }
        }
        assert!(record_len([0; 8], 0, 64).is_err());
        assert!(record_len([16, 0, 0, 0, 0, 0, 0, 0], 0, 8).is_err());
        assert_eq!(record_len([16, 0, 0, 0, 0, 0, 0, 0], 0, 16), Ok(16));
    }
}
