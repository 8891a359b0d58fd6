//! The write-once table behind herd's lock-free lookups: a family's series, the HTTP
//! series cache, herd-metrics' key cache.
//!
//! An open-addressing table of write-once slots, sized once to twice its limit. A
//! lookup probes slots with plain acquire loads: no lock, no reference-count traffic,
//! no allocation. Only an insert takes the table's mutex. Slots are never emptied and
//! the table is at most half full, so a reader that meets an empty slot knows the
//! entry is absent, and every probe ends.
//!
//! The table does not hash or compare: callers pass the hash and a `matches` closure,
//! so that an entry stores its key in whatever form compares fastest for its use.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use once_cell::race::OnceBox;
use parking_lot::Mutex;

/// The largest cardinality limit a family accepts, and the largest limit of any
/// [`WriteOnceTable`]; higher requests are clamped. A table costs 16 bytes per unit of
/// limit.
pub const MAX_CARDINALITY_LIMIT: usize = 1 << 24;

/// A write-once open-addressing table of at most `limit` entries of type `E`.
///
/// Entries are found without a lock ([`find`](Self::find)), inserted under a mutex
/// ([`insert`](Self::insert)), never removed, and addressed by a stable slot index
/// ([`get`](Self::get)) that a caller may keep instead of a reference.
///
/// # Examples
///
/// ```
/// use herd_core::table::WriteOnceTable;
///
/// let table = WriteOnceTable::<(u64, &str)>::new(2);
/// let hash = |k: u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
/// for (key, value) in [(1, "one"), (2, "two"), (3, "three")] {
///     let found = table.insert(hash(key), |e| e.0 == key, || (key, value));
///     // The third entry is past the limit: the caller decides what that means.
///     assert_eq!(found.is_some(), key <= 2);
/// }
/// let (index, entry) = table.find(hash(2), |e| e.0 == 2).ok_or("absent")?;
/// assert_eq!(entry.1, "two");
/// assert_eq!(table.get(index).map(|e| e.1), Some("two"));
/// assert!(table.find(hash(3), |e| e.0 == 3).is_none());
/// assert_eq!(table.len(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct WriteOnceTable<E> {
    slots: Box<[OnceBox<E>]>,
    mask: usize,
    limit: usize,
    len: AtomicUsize,
    // Slot indices in insertion order, for reproducible output. Its mutex is also the
    // insert lock.
    order: Mutex<Vec<usize>>,
}

impl<E> WriteOnceTable<E> {
    /// A table for at most `limit` entries, clamped to 1..=[`MAX_CARDINALITY_LIMIT`];
    /// it allocates `2 × limit` slots (rounded up to a power of two) at once.
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, MAX_CARDINALITY_LIMIT);
        let size = (limit * 2).next_power_of_two();
        Self {
            slots: (0..size).map(|_| OnceBox::new()).collect(),
            mask: size - 1,
            limit,
            len: AtomicUsize::new(0),
            order: Mutex::new(Vec::new()),
        }
    }

    /// The most entries the table holds.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry in slot `index`, as [`find`](Self::find) or [`insert`](Self::insert)
    /// returned it.
    #[inline]
    pub fn get(&self, index: usize) -> Option<&E> {
        self.slots.get(index).and_then(OnceBox::get)
    }

    /// The slot index and entry that `matches`, probing from `hash`; `None` when absent.
    /// Takes no lock.
    #[inline]
    pub fn find(&self, hash: u64, matches: impl Fn(&E) -> bool) -> Option<(usize, &E)> {
        let mut i = hash as usize & self.mask;
        loop {
            match self.slots.get(i).and_then(OnceBox::get) {
                Some(e) if matches(e) => return Some((i, e)),
                Some(_) => i = (i + 1) & self.mask,
                None => return None,
            }
        }
    }

    /// Inserts the entry `make` builds, unless one that `matches` appeared meanwhile
    /// (then that one is returned and `make` is not called); `None` when the table is
    /// full. `make` runs under the insert lock, so an entry is built once.
    #[cold]
    pub fn insert(
        &self,
        hash: u64,
        matches: impl Fn(&E) -> bool,
        make: impl FnOnce() -> E,
    ) -> Option<(usize, &E)> {
        if self.len() >= self.limit {
            return None;
        }
        let mut order = self.order.lock();
        // Probe again under the lock: another thread may have inserted it.
        let mut i = hash as usize & self.mask;
        while let Some(e) = self.slots.get(i).and_then(OnceBox::get) {
            if matches(e) {
                return Some((i, e));
            }
            i = (i + 1) & self.mask;
        }
        if order.len() >= self.limit {
            return None;
        }
        let slot = self.slots.get(i)?;
        // We hold the insert lock and saw the slot empty, so this initialises it.
        let entry = slot.get_or_init(|| Box::new(make()));
        order.push(i);
        // Relaxed: `len` only bounds the table; entries are published by the OnceBox.
        self.len.store(order.len(), Ordering::Relaxed);
        Some((i, entry))
    }

    /// Calls `f` on every entry in insertion order, holding the insert lock.
    pub fn for_each(&self, mut f: impl FnMut(&E)) {
        let order = self.order.lock();
        for e in order.iter().filter_map(|&i| self.get(i)) {
            f(e);
        }
    }

    /// Runs `f` holding the insert lock: for work that must not overlap an insert's
    /// `make` (a family allocates its overflow series' cells this way, once).
    pub fn with_insert_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _order = self.order.lock();
        f()
    }
}

impl<E> fmt::Debug for WriteOnceTable<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteOnceTable").field("len", &self.len()).field("limit", &self.limit).finish()
    }
}

/// Byte equality, eight bytes at a time, inlined: the keys tables compare are short,
/// so a `memcmp` call's overhead would be most of a lookup's time. The bytes past the
/// last whole word are compared as one more word that overlaps it (or, under eight
/// bytes, as two overlapping halves or three single bytes), not one by one: label
/// values are mostly a few bytes, and a byte loop was a tenth of a lookup.
#[inline]
pub fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let at = |s: &[u8], i: usize| s.get(i).copied();
    match n {
        0 => true,
        1..=3 => at(a, 0) == at(b, 0) && at(a, n / 2) == at(b, n / 2) && at(a, n - 1) == at(b, n - 1),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        _ => {
            let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
            a8.zip(b8).all(|(x, y)| word(x) == word(y)) && word_at(a, n - 8) == word_at(b, n - 8)
        }
    }
}

/// An eight-byte chunk as one integer, so equal chunks compare in one instruction.
#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    chunk.try_into().map_or(0, u64::from_ne_bytes)
}

/// The eight bytes of `s` from `i` as one integer (`None` past its end).
#[inline(always)]
fn word_at(s: &[u8], i: usize) -> Option<u64> {
    s.get(i..i + 8).map(word)
}

/// The four bytes of `s` from `i` as one integer (`None` past its end).
#[inline(always)]
fn half(s: &[u8], i: usize) -> Option<u32> {
    s.get(i..i + 4).and_then(|c| c.try_into().ok()).map(u32::from_ne_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_eq_compares_every_byte() {
        let full = b"0123456789abcdefXYZ";
        // Every length: each path (bytes, halves, words and the overlapping tail).
        for len in 0..=full.len() {
            let a = &full[..len];
            assert!(bytes_eq(a, a), "length {len}");
            for i in 0..len {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!bytes_eq(a, &b), "byte {i} of {len}");
            }
            assert!(len == 0 || !bytes_eq(a, &a[1..]));
        }
    }

    #[test]
    fn colliding_hashes_probe_on_and_the_limit_holds() {
        let table = WriteOnceTable::<u32>::new(3);
        assert_eq!(table.limit(), 3);
        for k in 0..5 {
            // Every key hashes alike: each insert probes past the earlier ones.
            let got = table.insert(7, |e| *e == k, || k).map(|(_, e)| *e);
            assert_eq!(got, (k < 3).then_some(k));
        }
        assert_eq!(table.len(), 3);
        for k in 0..3 {
            let (i, e) = table.find(7, |e| *e == k).unwrap_or((usize::MAX, &u32::MAX));
            assert_eq!((*e, table.get(i)), (k, Some(&k)));
        }
        assert!(table.find(7, |e| *e == 3).is_none());
        // A second insert of a present entry returns it without building another.
        let again = table.insert(7, |e| *e == 1, || unreachable!()).map(|(_, e)| *e);
        assert_eq!(again, None, "full: the insert is refused before probing");
        let mut seen = Vec::new();
        table.for_each(|e| seen.push(*e));
        assert_eq!(seen, [0, 1, 2]);
        let roomy = WriteOnceTable::<u32>::new(4);
        roomy.insert(1, |e| *e == 1, || 1);
        assert_eq!(roomy.insert(1, |e| *e == 1, || unreachable!()).map(|(_, e)| *e), Some(1));
        assert_eq!(roomy.len(), 1);
    }
}
