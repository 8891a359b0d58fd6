//! The bytes of a herd-mmap file, as `FORMAT.md` specifies them: encoding for the
//! writer, bounds-checked decoding for the reader. Pure functions over byte slices;
//! nothing here touches a mapping.

use std::fmt;

use herd_core::{GaugeMode, MetricKind, SummaryLayout};

/// `HERDMMAP`.
pub(crate) const MAGIC: [u8; 8] = *b"HERDMMAP";
/// The format version this code writes and reads.
pub(crate) const VERSION: u32 = 1;
/// Written natively; reads back as this value only on a little-endian host.
pub(crate) const ENDIAN_MARK: u32 = 0x0102_0304;
/// Records start here.
pub(crate) const HEADER_LEN: usize = 128;
/// Byte offset of the `committed` field.
pub(crate) const COMMITTED_OFFSET: usize = 40;

const KIND_FAMILY: u16 = 1;
const KIND_SERIES: u16 = 2;
const KIND_PADDING: u16 = 3;
const KIND_FOLDED: u16 = 4;
/// Header flag: the file is a compaction archive.
pub(crate) const FLAG_ARCHIVE: u32 = 1;
/// Family record flag (the u16 after the gauge mode): a summary sketch's parameters
/// follow the bucket bounds.
const FAMILY_HAS_SKETCH: u16 = 1;
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
        if version != VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        if u32_at(b, 16) as usize != HEADER_LEN {
            return Err(FormatError::BadHeader("header length"));
        }
        let committed = u64_at(b, 40);
        if committed < HEADER_LEN as u64 || committed > file_len as u64 || committed % 8 != 0 {
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
}

/// A series as a file records it; its cells follow at `cells_at` within the record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SeriesRecord {
    pub(crate) family: u32,
    pub(crate) cell_count: u32,
    /// The registry's constant labels, names and values.
    pub(crate) const_labels: Vec<(String, String)>,
    /// The values of the family's labels, in the order of its label names.
    pub(crate) values: Vec<String>,
    pub(crate) cells_at: usize,
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
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&[0; 4]);
        v.extend_from_slice(&kind.to_le_bytes());
        v.extend_from_slice(&[0; 2]);
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
        while self.0.len() % 8 != 0 {
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
    r.u16(if f.summary.is_some() { FAMILY_HAS_SKETCH } else { 0 });
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
    r.finish()
}

/// A series record with `cell_count` zeroed cells; returns the bytes and the offset of
/// the first cell within them. `labels` are the constant labels followed by the
/// family's, as herd-core hands them to a storage; the first `const_count` are written
/// with their names, the rest as values only.
pub(crate) fn encode_series<'a>(
    family: u32,
    labels: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    const_count: usize,
    cell_count: u32,
) -> (Vec<u8>, usize) {
    let mut r = RecordBuf::new(KIND_SERIES);
    let const_count = const_count.min(labels.len());
    r.u32(family);
    r.u32(cell_count);
    r.u32(const_count as u32);
    r.u32((labels.len() - const_count) as u32);
    for (i, (n, v)) in labels.enumerate() {
        if i < const_count {
            r.str(n);
        }
        r.str(v);
    }
    r.pad();
    let cells_at = r.0.len();
    r.0.resize(cells_at + cell_count as usize * 8, 0);
    (r.finish(), cells_at)
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
    if len < RECORD_HEADER || len % 8 != 0 {
        return Err(FormatError::BadRecord { offset, reason: "length is not a positive multiple of 8" });
    }
    if len > room {
        return Err(FormatError::BadRecord { offset, reason: "runs past the committed length" });
    }
    Ok(len)
}

/// Decodes one whole record (`bytes` is exactly its `len` bytes).
pub(crate) fn decode_record(bytes: &[u8], offset: usize) -> Result<Record, FormatError> {
    let bad = |reason| FormatError::BadRecord { offset, reason };
    let mut c = Cursor { b: bytes, at: 0 };
    let _len = c.u32().ok_or(bad("truncated header"))?;
    let kind = c.u16().ok_or(bad("truncated header"))?;
    let _flags = c.u16().ok_or(bad("truncated header"))?;
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
            }))
        }
        KIND_SERIES => {
            let short = || bad("truncated series record");
            let family = c.u32().ok_or_else(short)?;
            let cell_count = c.u32().ok_or_else(short)?;
            let consts = c.u32().ok_or_else(short)?;
            let values = c.u32().ok_or_else(short)?;
            let const_labels = (0..consts)
                .map(|_| Some((c.str()?, c.str()?)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(short)?;
            let values = (0..values).map(|_| c.str()).collect::<Option<Vec<_>>>().ok_or_else(short)?;
            let cells_at = c.at.div_ceil(8) * 8;
            let cells_end = (cell_count as usize).checked_mul(8).and_then(|n| n.checked_add(cells_at));
            if cells_end.is_none_or(|end| end > bytes.len()) {
                return Err(bad("cells run past the record"));
            }
            Ok(Record::Series(SeriesRecord { family, cell_count, const_labels, values, cells_at }))
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
        future[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(Header::decode(&future, 4096), Err(FormatError::UnsupportedVersion(2)));
        assert!(FormatError::UnsupportedVersion(2).to_string().contains("newer"));
        let mut big = b;
        big[12..16].copy_from_slice(&ENDIAN_MARK.to_be_bytes());
        assert_eq!(Header::decode(&big, 4096), Err(FormatError::WrongEndianness));
        let mut past = b;
        past[40..48].copy_from_slice(&8192u64.to_le_bytes());
        assert!(matches!(Header::decode(&past, 4096), Err(FormatError::BadHeader(_))));
    }

    #[test]
    fn records_round_trip() {
        let f = family();
        let bytes = encode_family(&f);
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(decode_record(&bytes, 128), Ok(Record::Family(f)));
        let f = summary_family();
        assert!(f.summary.is_some());
        assert_eq!(decode_record(&encode_family(&f), 128), Ok(Record::Family(f)));

        let labels = [("instance", "a"), ("route", "/a\"b"), ("méthode", "GET")];
        let (bytes, cells_at) = encode_series(3, labels.into_iter(), 1, 4);
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(cells_at % 8, 0);
        assert_eq!(bytes.len(), cells_at + 32);
        let want = SeriesRecord {
            family: 3,
            cell_count: 4,
            const_labels: vec![("instance".into(), "a".into())],
            values: vec!["/a\"b".into(), "GET".into()],
            cells_at,
        };
        assert_eq!(decode_record(&bytes, 0), Ok(Record::Series(want)));
        let folded = vec![Folded { id: u128::MAX - 1, at_ns: 7 }, Folded { id: 3, at_ns: 9 }];
        assert_eq!(decode_record(&encode_folded(&folded), 0), Ok(Record::Folded(folded)));
        assert_eq!(decode_record(&encode_padding(24), 0), Ok(Record::Padding));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let (series, _) = encode_series(1, [("a", "b"), ("c", "d")].into_iter(), 1, 2);
        let folded = encode_folded(&[Folded { id: 1, at_ns: 2 }]);
        for bytes in [encode_family(&family()), encode_family(&summary_family()), series, folded] {
            for cut in 0..bytes.len() {
                let _ = decode_record(&bytes[..cut], 0);
            }
        }
        assert!(record_len([0; 8], 0, 64).is_err());
        assert!(record_len([16, 0, 0, 0, 0, 0, 0, 0], 0, 8).is_err());
        assert_eq!(record_len([16, 0, 0, 0, 0, 0, 0, 0], 0, 16), Ok(16));
    }
}
