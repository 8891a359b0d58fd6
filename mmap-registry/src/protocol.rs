//! The publication protocol (FORMAT.md, "Publication protocol") between a file's one
//! writer and its readers, over words that both sides touch only atomically.
//!
//! Generic over the word type so that the model check in this module's tests runs this
//! very code over loom's atomics, which explore every interleaving and every value the
//! memory model allows a load to see.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::format::{
    record_kind, record_len, FormatError, SeriesHead, SeriesShape, COMMITTED_OFFSET, KIND_SERIES,
};

/// An 8-byte word of a file, shared between processes.
pub(crate) trait Word {
    fn load(&self, order: Ordering) -> u64;
    fn store(&self, value: u64, order: Ordering);
}

impl Word for AtomicU64 {
    #[inline]
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
    #[inline]
    fn store(&self, value: u64, order: Ordering) {
        AtomicU64::store(self, value, order);
    }
}

/// Writer: stores `bytes` (a multiple of 8) from word `first` on. Relaxed: readers do
/// not look past the committed length, which [`publish`] moves only afterwards.
pub(crate) fn write_words<W: Word>(words: &[W], first: usize, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        let word = chunk.try_into().map_or(0, u64::from_le_bytes);
        if let Some(w) = words.get(first + i) {
            w.store(word, Ordering::Relaxed);
        }
    }
}

/// Writer: makes every record before `committed` visible. `words` starts at the file's
/// first byte.
pub(crate) fn publish<W: Word>(words: &[W], committed: u64) {
    if let Some(w) = words.get(COMMITTED_OFFSET / 8) {
        // Release: a reader that loads this length with Acquire sees every word stored
        // before it, i.e. every byte of every record below it.
        w.store(committed, Ordering::Release);
    }
}

/// Reader: the committed length.
pub(crate) fn committed<W: Word>(words: &[W]) -> u64 {
    // Acquire: pairs with `publish`'s Release.
    words.get(COMMITTED_OFFSET / 8).map_or(0, |w| w.load(Ordering::Acquire))
}

/// Reader: copies the record at byte `at`, which must end by `committed`, into `bytes`
/// (reused from record to record) and returns its kind and length, for the caller to
/// decode (see [`decode_record`](crate::format::decode_record)).
pub(crate) fn read_record_into<W: Word>(
    words: &[W],
    at: usize,
    committed: u64,
    bytes: &mut Vec<u8>,
) -> Result<(u16, usize), FormatError> {
    let (kind, len) = record_at(words, at, committed)?;
    bytes.clear();
    // Relaxed: only words below a committed length loaded with Acquire are read.
    for w in words.iter().skip(at / 8).take(len.div_ceil(8)) {
        bytes.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    Ok((kind, len))
}

/// Reader: the kind and length of the record at byte `at`, which must end by
/// `committed` and lie within `words`.
pub(crate) fn record_at<W: Word>(
    words: &[W],
    at: usize,
    committed: u64,
) -> Result<(u16, usize), FormatError> {
    let room = (committed as usize).checked_sub(at).ok_or(FormatError::Truncated)?;
    // Relaxed: only words below a committed length loaded with Acquire are read.
    let first =
        words.get(at / 8).map(|w| w.load(Ordering::Relaxed).to_le_bytes()).ok_or(FormatError::Truncated)?;
    let len = record_len(first, at, room)?;
    if (at + len).div_ceil(8) > words.len() {
        return Err(FormatError::BadRecord { offset: at, reason: "runs past the mapping" });
    }
    Ok((record_kind(first), len))
}

/// Reader: decodes the head of the series record at byte `at`, `len` bytes long (as
/// [`record_at`] found them), in place rather than from a copy: each word it needs is
/// loaded once, its cells not at all. Its string ids (the constant labels' name and
/// value ids, then the family's value ids) replace the contents of `ids`; `shape`
/// gives its family's shape. A cold scrape decodes hundreds of thousands of these.
pub(crate) fn read_series_head<W: Word>(
    words: &[W],
    at: usize,
    len: usize,
    shape: impl FnOnce(u32) -> Option<SeriesShape>,
    ids: &mut Vec<u32>,
) -> Result<SeriesHead, FormatError> {
    let bad = |reason| FormatError::BadRecord { offset: at, reason };
    // The record as little-endian u32 halves of its words: length, kind and flags,
    // family, then the ids.
    let record = words.get(at / 8..(at + len) / 8).ok_or(bad("runs past the mapping"))?;
    // Relaxed: only words below a committed length loaded with Acquire are read.
    let load = |i: usize| record.get(i).map(|w| w.load(Ordering::Relaxed));
    let head = load(0).ok_or(bad("truncated header"))?;
    if (head >> 32) as u16 != KIND_SERIES {
        return Err(bad("not a series record"));
    }
    let const_labels = usize::from((head >> 48) as u16);
    let second = load(1).ok_or(bad("truncated series record"))?;
    let family = second as u32;
    let shape = shape(family).ok_or(bad("series of an unknown family"))?;
    let count = 2 * const_labels + shape.labels;
    ids.clear();
    // Half 3 of the record is the first id.
    let mut word = second;
    for half in 3..3 + count {
        if half % 2 == 0 {
            word = load(half / 2).ok_or(bad("truncated series record"))?;
            ids.push(word as u32);
        } else {
            ids.push((word >> 32) as u32);
        }
    }
    // The header's two halves, the family, the ids, rounded up to a word.
    let cells_at = (3 + count).div_ceil(2) * 8;
    let cells_end = shape.cells.checked_mul(8).and_then(|n| n.checked_add(cells_at));
    if cells_end != Some(len) {
        return Err(bad("record length differs from its family's cells"));
    }
    Ok(SeriesHead { family, const_labels, cells_at })
}

/// Reader: copies `len` bytes at byte `at` out of the words (fewer if the words end).
pub(crate) fn read_bytes<W: Word>(words: &[W], at: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.min(words.len() * 8));
    // Relaxed: only words below a committed length loaded with Acquire are read.
    for w in words.iter().skip(at / 8).take(len.div_ceil(8)) {
        out.extend_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod model {
    //! A model check of the protocol with loom: one writer appends records while one
    //! reader reads up to the committed length it sees. In every interleaving, and
    //! whatever stale values the memory model lets a load return, the reader must only
    //! ever decode whole, correct records, and every string id of a series it decodes
    //! must name a string it has already read (strings records are published before the
    //! series that use them, FORMAT.md "Strings record").

    use std::sync::atomic::Ordering;

    use loom::sync::atomic::AtomicU64;
    use loom::sync::Arc;

    use super::*;
    use crate::format::{decode_record, Record, SeriesShape, StringTable, HEADER_LEN};

    impl Word for AtomicU64 {
        fn load(&self, order: Ordering) -> u64 {
            AtomicU64::load(self, order)
        }
        fn store(&self, value: u64, order: Ordering) {
            AtomicU64::store(self, value, order);
        }
    }

    /// One label, one cell: the shape of every family in the model.
    fn shape(_: u32) -> Option<SeriesShape> {
        Some(SeriesShape { labels: 1, cells: 1 })
    }

    /// A strings record and the series record that uses it, as the writer appends them
    /// (same interning, same encoding).
    fn records() -> Vec<Vec<u8>> {
        let mut table = StringTable::default();
        let interned = table.intern(["v"]).expect("one string");
        let strings = interned.record.clone().expect("a new string");
        let ids = table.commit(interned);
        let (series, _) = crate::format::encode_series(0, &ids, 0, 1).expect("a series");
        vec![strings, series]
    }

    /// Runs the model with `publish_with` standing in for the writer's publish step.
    fn check(publish_with: fn(&[AtomicU64], u64)) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(move || {
            let records = records();
            let total: usize = HEADER_LEN + records.iter().map(Vec::len).sum::<usize>();
            let words: Arc<Vec<AtomicU64>> = Arc::new((0..total / 8).map(|_| AtomicU64::new(0)).collect());
            publish_with(&words, HEADER_LEN as u64);

            let writer = {
                let words = words.clone();
                let records = records.clone();
                loom::thread::spawn(move || {
                    let mut cursor = HEADER_LEN;
                    for record in &records {
                        write_words(&words, cursor / 8, record);
                        cursor += record.len();
                        publish_with(&words, cursor as u64);
                    }
                })
            };

            let committed = committed(&words[..]);
            let mut at = HEADER_LEN;
            let mut strings: Vec<String> = Vec::new();
            while (at as u64) < committed {
                let mut bytes = Vec::new();
                let (_, len) =
                    read_record_into(&words[..], at, committed, &mut bytes).expect("a published record");
                let record = decode_record(&bytes, at, &shape).expect("a published record decodes");
                match record {
                    Record::Strings { first, strings: new } => {
                        assert_eq!(first as usize, strings.len(), "strings in order, whole");
                        strings.extend(new);
                    }
                    Record::Series(s) => {
                        let value = s.values.first().and_then(|&id| strings.get(id as usize));
                        assert_eq!(value.map(String::as_str), Some("v"), "its string read before it");
                    }
                    other => panic!("unexpected record {other:?}"),
                }
                at += len;
            }
            writer.join().expect("writer");
        });
    }

    #[test]
    fn a_reader_sees_only_whole_records() {
        check(publish);
    }

    #[test]
    #[should_panic]
    fn the_model_catches_a_relaxed_publish() {
        // The check has teeth: with a Relaxed store of the committed length, some
        // interleaving lets the reader see the length but not the record's words.
        check(|words, committed| {
            if let Some(w) = words.get(COMMITTED_OFFSET / 8) {
                w.store(committed, Ordering::Relaxed);
            }
        });
    }
}
