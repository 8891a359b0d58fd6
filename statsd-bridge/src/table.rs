//! The series table: every mirrored series' pre-rendered line, appended once and
//! never moved, found by index without a lock.
//!
//! A queued update names its series by index rather than holding a reference count on
//! its line: a count would be written by the caller on every update and again by the
//! sender thread on every drain, and that cache line would travel between their
//! cores each time.

use std::collections::HashMap;

use once_cell::race::OnceBox;
use parking_lot::Mutex;

use crate::render::SeriesLine;

/// Entries in the first chunk; chunk `k` holds `FIRST << k`.
pub(crate) const FIRST: usize = 64;
/// Chunks: room for `FIRST * (2^CHUNKS - 1)` series, about 67 million.
pub(crate) const CHUNKS: usize = 20;

type Chunk = Box<[OnceBox<SeriesLine>]>;

pub(crate) struct SeriesTable {
    chunks: [OnceBox<Chunk>; CHUNKS],
    /// The index of every line appended, so that a series asked for twice (a handle
    /// mirrored again) takes one slot.
    index: Mutex<HashMap<SeriesLine, u32>>,
}

/// Chunk and offset of entry `i`.
pub(crate) fn locate(i: usize) -> (usize, usize) {
    let chunk = (usize::BITS - 1 - (i / FIRST + 1).leading_zeros()) as usize;
    (chunk, i - FIRST * ((1 << chunk) - 1))
}

impl SeriesTable {
    pub(crate) fn new() -> Self {
        Self { chunks: std::array::from_fn(|_| OnceBox::new()), index: Mutex::new(HashMap::new()) }
    }

    /// The index of `line`, appended if new; `None` once the table is full.
    pub(crate) fn insert(&self, line: SeriesLine) -> Option<u32> {
        let mut index = self.index.lock();
        if let Some(&i) = index.get(&line) {
            return Some(i);
        }
        let i = index.len();
        let (chunk, offset) = locate(i);
        let chunk = self.chunks.get(chunk)?.get_or_init(|| {
            let len = FIRST << chunk;
            Box::new((0..len).map(|_| OnceBox::new()).collect::<Vec<_>>().into_boxed_slice())
        });
        // Filled under the index lock, so the slot is empty.
        chunk.get(offset)?.set(Box::new(line.clone())).ok()?;
        let i = u32::try_from(i).ok()?;
        index.insert(line, i);
        Some(i)
    }

    /// The line at `i`: two acquire loads.
    #[inline]
    pub(crate) fn get(&self, i: u32) -> Option<&SeriesLine> {
        let (chunk, offset) = locate(i as usize);
        self.chunks.get(chunk)?.get()?.get(offset)?.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> SeriesLine {
        SeriesLine { head: format!("s{i}:").into(), tail: "|c".into() }
    }

    #[test]
    fn chunks_tile_the_indices() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(63), (0, 63));
        assert_eq!(locate(64), (1, 0));
        assert_eq!(locate(191), (1, 127));
        assert_eq!(locate(192), (2, 0));
        let last = FIRST * ((1 << CHUNKS) - 1) - 1;
        assert_eq!(locate(last), (CHUNKS - 1, (FIRST << (CHUNKS - 1)) - 1));
    }

    #[test]
    fn lines_are_found_by_index_and_appended_once() {
        let table = SeriesTable::new();
        for i in 0..1000 {
            assert_eq!(table.insert(line(i)), Some(i as u32));
        }
        assert_eq!(table.insert(line(7)), Some(7));
        for i in 0..1000 {
            assert_eq!(table.get(i as u32), Some(&line(i)));
        }
        assert_eq!(table.get(1000), None);
    }
}
