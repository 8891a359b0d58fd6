//! Decoding a file from bytes in memory: a copy of a worker's file, a fixture, or a
//! fuzzer's input, through the same parsing code as the aggregator.

use std::sync::atomic::AtomicU64;

use herd_core::clock::Clock;
use herd_core::Snapshot;

use crate::format::{FormatError, Header, HEADER_LEN};
use crate::index::Index;
use crate::protocol;
use crate::reader::Parsed;

/// Decodes the bytes of one herd-mmap file (a worker's or an archive) into the snapshot
/// that file alone would contribute to a scrape (all processes' modes apply as if the
/// file were live).
///
/// # Errors
///
/// [`FormatError`] saying what is wrong with the bytes; never panics, whatever they are.
///
/// # Examples
///
/// ```
/// let err = herd_mmap::decode_file(b"HERDMMAP but far too short").err();
/// assert_eq!(err, Some(herd_mmap::FormatError::Truncated));
/// ```
pub fn decode_file(bytes: &[u8]) -> Result<Snapshot, FormatError> {
    if bytes.len() < HEADER_LEN {
        return Err(FormatError::Truncated);
    }
    let words: Vec<AtomicU64> = bytes
        .chunks(8)
        .map(|chunk| {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            AtomicU64::new(u64::from_le_bytes(word))
        })
        .collect();
    let header = Header::decode(&protocol::read_bytes(&words, 0, HEADER_LEN), bytes.len())?;
    let mut parsed = Parsed::new();
    let mut index = Index::default();
    parsed.parse(&words, &header, header.committed, Some(&mut index))?;
    index.begin();
    for series in parsed.series.iter() {
        if let Some(slot) = series.slot() {
            index.add(slot, Parsed::cells(&words, series));
        }
    }
    Ok(index.snapshot(herd_core::clock::CoarseClock.now()))
}
