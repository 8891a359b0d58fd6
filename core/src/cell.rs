//! Cells: the 8-byte atomics every metric value lives in.
//!
//! A metric handle never knows where its cells are. A [`Storage`](crate::storage::Storage)
//! hands out a [`CellBlock`]: a contiguous run of `AtomicU64` borrowed from a
//! [`CellSource`] that the block keeps alive. For the in-process storage the source is a
//! heap chunk; for herd-mmap it is a segment of a shared file mapping. The block
//! resolves its slice once, at creation, so the hot path is a field load and one atomic
//! read-modify-write whichever storage is in use: no dispatch, no lookup.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use yoke::erased::ErasedArcCart;
use yoke::Yoke;

/// Memory that holds cells and never moves them while it is alive.
///
/// Implementors promise that [`cells`](CellSource::cells) returns the same slice, at the
/// same address, for the whole life of `self`: handles keep a borrowed slice, not an
/// index, and write through it without asking the source again.
pub trait CellSource: Send + Sync + 'static {
    /// The cells this source owns.
    fn cells(&self) -> &[AtomicU64];
}

/// A contiguous block of cells that one series writes to, with the memory that holds it.
///
/// Cloning a block clones an `Arc` (the keep-alive), never the cells: all clones write to
/// the same memory.
#[derive(Clone)]
pub struct CellBlock {
    // The slice is resolved once and carried beside the `Arc` that keeps it valid; yoke
    // proves the borrow safe without `unsafe` in this crate. The cart's type is erased
    // so that every storage's blocks are one type.
    cells: Yoke<&'static [AtomicU64], ErasedArcCart>,
}

impl CellBlock {
    /// Borrows `range` of `source`'s cells.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] if `range` does not lie inside the source's cells.
    pub fn new<S: CellSource>(source: Arc<S>, range: Range<usize>) -> Result<Self, OutOfRange> {
        let len = source.cells().len();
        let cells = Yoke::try_attach_to_cart(source, |src: &S| {
            src.cells().get(range.clone()).ok_or(OutOfRange { range: range.clone(), len })
        })?;
        Ok(Self { cells: cells.erase_arc_cart() })
    }

    /// A block of `len` zeroed cells on the heap, owned by nobody else.
    pub fn detached(len: usize) -> Self {
        let cells = Yoke::attach_to_cart(Arc::new(HeapCells::zeroed(len)), |src: &HeapCells| src.cells());
        Self { cells: cells.erase_arc_cart() }
    }

    /// The cells of this block.
    #[inline(always)]
    pub fn cells(&self) -> &[AtomicU64] {
        self.cells.get()
    }
}

impl fmt::Debug for CellBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CellBlock").field("len", &self.cells().len()).finish()
    }
}

/// Exactly `N` cells, for metrics whose layout has a fixed size: indexing a fixed-size
/// array needs no bounds check, which keeps `inc` and `set` to the atomic operation.
#[derive(Clone)]
pub(crate) struct Cells<const N: usize>(Yoke<&'static [AtomicU64; N], ErasedArcCart>);

impl<const N: usize> Cells<N> {
    /// The block's cells as an array, if it holds exactly `N`.
    pub(crate) fn from_block(block: CellBlock) -> Option<Self> {
        block.cells.try_map_project(|cells, _| <&[AtomicU64; N]>::try_from(cells)).ok().map(Self)
    }

    /// The `N` cells of `block` that start at `start`, if the block has them.
    pub(crate) fn from_block_at(block: &CellBlock, start: usize) -> Option<Self> {
        let cells = block.cells.clone().try_map_project(|cells, _| {
            cells.get(start..start + N).and_then(|c| <&[AtomicU64; N]>::try_from(c).ok()).ok_or(())
        });
        cells.ok().map(Self)
    }

    /// `N` zeroed cells on the heap, owned by nobody else.
    pub(crate) fn detached() -> Self {
        let cells = Yoke::attach_to_cart(Arc::new(HeapArray::<N>::default()), |a: &HeapArray<N>| &a.0);
        Self(cells.erase_arc_cart())
    }

    #[inline(always)]
    pub(crate) fn get(&self) -> &[AtomicU64; N] {
        self.0.get()
    }
}

struct HeapArray<const N: usize>([AtomicU64; N]);

impl<const N: usize> Default for HeapArray<N> {
    fn default() -> Self {
        Self([const { AtomicU64::new(0) }; N])
    }
}

/// A requested cell range lies outside its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRange {
    /// The range that was asked for.
    pub range: Range<usize>,
    /// How many cells the source has.
    pub len: usize,
}

impl fmt::Display for OutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cells {:?} lie outside a source of {} cells", self.range, self.len)
    }
}

impl std::error::Error for OutOfRange {}

/// Zeroed cells on the heap.
pub(crate) struct HeapCells(Box<[AtomicU64]>);

impl HeapCells {
    pub(crate) fn zeroed(len: usize) -> Self {
        Self((0..len).map(|_| AtomicU64::new(0)).collect())
    }
}

impl CellSource for HeapCells {
    fn cells(&self) -> &[AtomicU64] {
        &self.0
    }
}

/// Adds `v` to the `f64` stored as bits in `cell`.
///
/// Relaxed is enough: a cell is an independent running total, and no reader infers
/// anything about other memory from its value.
#[inline]
pub(crate) fn add_f64(cell: &AtomicU64, v: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + v).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

/// Reads the `f64` stored as bits in `cell`.
#[inline]
pub(crate) fn load_f64(cell: &AtomicU64, order: Ordering) -> f64 {
    f64::from_bits(cell.load(order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_outside_its_source_is_an_error_not_a_panic() {
        let src = Arc::new(HeapCells::zeroed(4));
        let err = CellBlock::new(src.clone(), 2..6).err();
        assert_eq!(err, Some(OutOfRange { range: 2..6, len: 4 }));
        let block = CellBlock::new(src.clone(), 1..3).ok();
        assert_eq!(block.map(|b| b.cells().len()), Some(2));
    }

    #[test]
    fn fixed_size_views_check_the_length() {
        assert!(Cells::<2>::from_block(CellBlock::detached(2)).is_some());
        assert!(Cells::<2>::from_block(CellBlock::detached(3)).is_none());
        assert_eq!(Cells::<3>::detached().get().len(), 3);
    }

    #[test]
    fn clones_share_cells() {
        let a = CellBlock::detached(2);
        let b = a.clone();
        a.cells()[1].fetch_add(5, Ordering::Relaxed);
        assert_eq!(b.cells()[1].load(Ordering::Relaxed), 5);
    }

    #[test]
    fn add_f64_accumulates() {
        let c = AtomicU64::new(0);
        add_f64(&c, 0.25);
        add_f64(&c, 1.5);
        assert_eq!(load_f64(&c, Ordering::Relaxed), 1.75);
    }
}
