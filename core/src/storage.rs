//! The storage seam: where cells come from.
//!
//! Handles are the same whatever the storage; only [`Storage::allocate`] differs. The
//! default [`HeapStorage`] keeps cells in process memory. herd-mmap's storage keeps them
//! in a per-process file mapping, so that another process can aggregate them.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::cell::{CellBlock, CellSource, HeapCells};
use crate::desc::FamilyDesc;
use crate::labels::LabelSet;

/// A source of cells for metric series.
///
/// Called only when a family is registered or a new label set is first seen, never on
/// the hot path, so implementations may lock, allocate and do I/O.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Told once per family, before any of its series is allocated.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] if the storage cannot record the family; registration fails.
    fn add_family(&self, family: &FamilyDesc) -> Result<(), StorageError> {
        let _ = family;
        Ok(())
    }

    /// Returns `len` zeroed cells for the series `labels` of `family`.
    ///
    /// The cells must stay at the same address for as long as any clone of the returned
    /// block is alive.
    ///
    /// # Errors
    ///
    /// A [`StorageError`] when no cells can be had (a full disk, a failed growth). The
    /// family then gives the series detached heap cells, counts the failure and carries
    /// on: a metric never fails a request.
    fn allocate(&self, family: &FamilyDesc, labels: &LabelSet, len: usize)
        -> Result<CellBlock, StorageError>;
}

/// A storage could not provide cells.
#[derive(Debug)]
pub struct StorageError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl StorageError {
    /// Wraps the underlying cause.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self { source: source.into() }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage: {}", self.source)
    }
}

impl std::error::Error for StorageError {
    /// The cause is part of this error's message; the chain goes on with the cause's
    /// own source, so no message is printed twice.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.source()
    }
}

/// Cells in process memory: the default storage.
///
/// Cells are carved from 4,096-cell (32 KiB) chunks; a chunk is freed when the last
/// handle into it is dropped.
#[derive(Debug, Default)]
pub struct HeapStorage {
    current: Mutex<Option<(Arc<HeapCells>, usize)>>,
}

const CHUNK_CELLS: usize = 4096;

impl HeapStorage {
    /// A new, empty heap storage.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for HeapStorage {
    fn allocate(&self, _: &FamilyDesc, _: &LabelSet, len: usize) -> Result<CellBlock, StorageError> {
        if len > CHUNK_CELLS / 4 {
            return Ok(CellBlock::detached(len));
        }
        let mut current = self.current.lock();
        let (chunk, used) = match &mut *current {
            Some((chunk, used)) if *used + len <= CHUNK_CELLS => (chunk.clone(), used),
            slot => {
                let fresh = slot.insert((Arc::new(HeapCells::zeroed(CHUNK_CELLS)), 0));
                (fresh.0.clone(), &mut fresh.1)
            }
        };
        let start = *used;
        *used += len;
        CellBlock::new(chunk, start..start + len).map_err(StorageError::new)
    }
}

impl fmt::Debug for HeapCells {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapCells").field("len", &self.cells().len()).finish()
    }
}
