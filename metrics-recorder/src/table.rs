//! The recorder's key cache: facade key → herd handle, found without a lock.
//!
//! Over herd-core's [`WriteOnceTable`], the table a herd family keeps its series in:
//! write-once slots probed with acquire loads, a mutex only to insert, never more than
//! `capacity` entries in twice as many slots, so a probe always ends at the key or at an
//! empty slot. The key's own hash
//! (`metrics::Key` computes it once, when the macro builds the key) picks the slot,
//! mixed with a per-recorder random seed so that where a key lands cannot be predicted
//! from outside; the full key is compared on every hash match.

use std::hash::BuildHasher;

use herd_core::table::{bytes_eq, WriteOnceTable};
use metrics::Key;

struct Entry<H> {
    hash: u64,
    key: Key,
    handle: H,
}

/// Write-once map from facade keys to handles `H` (an `Arc` of a handle type).
pub(crate) struct KeyTable<H> {
    entries: WriteOnceTable<Entry<H>>,
    seed: u64,
}

impl<H: Clone> KeyTable<H> {
    /// A table for at most `capacity` keys (at least one, at most
    /// [`herd_core::MAX_CARDINALITY_LIMIT`]).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: WriteOnceTable::new(capacity),
            seed: foldhash::fast::RandomState::default().hash_one(0u64) | 1,
        }
    }

    /// The slot-picking hash: the key's hash through a seeded multiply, so the high
    /// bits of the product (which pick the slot) depend on every bit of both.
    #[inline]
    fn hash(&self, key: &Key) -> u64 {
        let h =
            (u128::from(key.get_hash() ^ self.seed)).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        (h >> 64) as u64 ^ h as u64
    }

    /// The handle cached for `key`, if any.
    #[inline]
    pub(crate) fn get(&self, key: &Key) -> Option<&H> {
        let hash = self.hash(key);
        self.entries.find(hash, |e| e.hash == hash && same_key(&e.key, key)).map(|(_, e)| &e.handle)
    }

    /// Caches `handle` for `key` unless the table is full; returns the handle now
    /// cached for `key` (another thread's, if it won a race).
    #[cold]
    pub(crate) fn insert(&self, key: &Key, handle: H) -> H {
        let hash = self.hash(key);
        let matches = |e: &Entry<H>| e.hash == hash && same_key(&e.key, key);
        // A full table refuses before probing: look first, so a cached key still wins.
        if let Some((_, e)) = self.entries.find(hash, matches) {
            return e.handle.clone();
        }
        let fallback = handle.clone();
        match self.entries.insert(hash, matches, || Entry { hash, key: key.clone(), handle }) {
            Some((_, e)) => e.handle.clone(),
            None => fallback,
        }
    }

    /// How many keys are cached.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Key equality, quick for the usual case of the same call site (labels in the same
/// order): `Key`'s own `==` sorts both label lists first, since a key is a label set.
#[inline]
fn same_key(stored: &Key, key: &Key) -> bool {
    if stored.get_hash() != key.get_hash() || !same_str(stored.name(), key.name()) {
        return false;
    }
    let in_order = stored.labels().len() == key.labels().len()
        && stored
            .labels()
            .zip(key.labels())
            .all(|(a, b)| same_str(a.key(), b.key()) && same_str(a.value(), b.value()));
    in_order || stored == key
}

/// String equality without a `memcmp` call: label keys and names are usually the same
/// `&'static str` on both sides (one pointer comparison), and values are short.
#[inline]
fn same_str(a: &str, b: &str) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if std::ptr::eq(a.as_ptr(), b.as_ptr()) {
        return true;
    }
    bytes_eq(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::Label;

    #[test]
    fn finds_what_it_cached_and_stops_at_capacity() {
        let table = KeyTable::<u32>::new(3);
        let key = |i: u32| Key::from_parts("k", vec![Label::new("i", i.to_string())]);
        for i in 0..5 {
            assert_eq!(table.insert(&key(i), i), i);
        }
        assert_eq!(table.len(), 3);
        for i in 0..3 {
            assert_eq!(table.get(&key(i)), Some(&i));
        }
        for i in 3..5 {
            assert_eq!(table.get(&key(i)), None);
        }
        // A second insert of a cached key returns the first handle.
        assert!(same_str("0123456789abcdefXY", &String::from("0123456789abcdefXY")));
        assert!(!same_str("0123456789abcdefXY", "0123456789abcdefXZ"));
        assert!(!same_str("0123456789abcdefXY", "1123456789abcdefXY"));
        assert_eq!(table.insert(&key(1), 99), 1);
        // metrics' keys are label sets: the order of the labels is not part of them.
        let ab = Key::from_parts("k", vec![Label::new("a", "1"), Label::new("b", "2")]);
        let ba = Key::from_parts("k", vec![Label::new("b", "2"), Label::new("a", "1")]);
        let table = KeyTable::<u32>::new(4);
        table.insert(&ab, 1);
        assert_eq!(table.get(&ba), Some(&1));
    }
}
