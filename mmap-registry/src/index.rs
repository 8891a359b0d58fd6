//! The series index: one accumulator per distinct series across all files, resolved
//! once per (file, series), so that a scrape is a walk over cells with no hashing.
//!
//! Each file's series are mapped to a slot the first time the file is parsed; a scrape
//! then starts a new round and folds every file's cells into the slots' accumulators.
//! A slot reached by no file in a round is not reported.
//!
//! Resolving is most of a cold scrape (32 files of 11,000 series are 352,000
//! resolutions), so it works on integers: every string of every file is interned here
//! once, a file's string ids map to the index's ([`StrId`]), and a series' key is a few
//! of those ids, hashed and compared as integers. A file names a few hundred distinct
//! strings for its thousands of series, so a string is looked up by its text a few
//! hundred times per file, and a series never.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hashbrown::HashTable;
use herd_core::snapshot::{
    CounterValue, FamilySnapshot, HistogramValue, SeriesSnapshot, SeriesValue, Snapshot, SummaryValue,
};
use herd_core::{LabelSet, MetricKind};

use crate::format::string_at;
use crate::reader::{FamilyInfo, Merge, Parsed};

/// A slot's place in the index.
pub(crate) type SlotId = u32;

/// A string's place in the index's table of strings.
pub(crate) type StrId = u32;

/// What [`Index::resolve`] made of a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The series' slot.
    Slot(SlotId),
    /// Left out: another file describes its family differently (the first description
    /// wins, and the other's series are left out rather than mixed), or the index is
    /// full.
    LeftOut,
    /// Its labels are not a valid label set: an invalid or repeated name.
    BadLabels,
}

/// Which index a file's string ids were mapped into: a reader's map is only good for
/// the index that made it (the aggregator starts a new index when the old one holds
/// mostly departed series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexId(u64);

impl Default for IndexId {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Every string the index's files hold, each once, side by side in one arena.
#[derive(Default)]
struct Strings {
    text: String,
    /// String `i` ends at `ends[i]` of `text`, and starts where string `i - 1` ends.
    ends: Vec<u32>,
    by_text: HashTable<StrId>,
}

impl Strings {
    fn get(&self, id: StrId) -> Option<&str> {
        string_at(&self.text, &self.ends, id)
    }

    /// The id of `s`, added on first sight; `None` when the arena is full (4 GiB).
    fn intern(&mut self, s: &str, hasher: &foldhash::fast::RandomState) -> Option<StrId> {
        let hash = hasher.hash_one(s);
        let (text, ends) = (&self.text, &self.ends);
        if let Some(&id) = self.by_text.find(hash, |&id| string_at(text, ends, id) == Some(s)) {
            return Some(id);
        }
        let id = StrId::try_from(self.ends.len()).ok()?;
        let end = u32::try_from(self.text.len() + s.len()).ok()?;
        self.text.push_str(s);
        self.ends.push(end);
        let (text, ends) = (&self.text, &self.ends);
        self.by_text
            .insert_unique(hash, id, |&id| string_at(text, ends, id).map_or(0, |t| hasher.hash_one(t)));
        Some(id)
    }
}

/// The series of one family reached in a round: labels and accumulated cells.
pub(crate) type Reached<'a> = (&'a Arc<FamilyInfo>, Vec<(&'a Arc<LabelSet>, &'a [u64])>);

/// What a slot is: read when a series is resolved and when the snapshot is built.
struct Slot {
    labels: Arc<LabelSet>,
    /// The hash of its labels, for the family's table to grow without rehashing them.
    hash: u64,
    key: Key,
}

/// A slot's key ([`Index::resolve`]): in place when it is short, as nearly every key
/// is, so that checking a slot or a [`Guess`] reads one place; in the index's arena of
/// long keys otherwise.
#[derive(Clone, Copy)]
struct Key {
    len: u32,
    /// The ids, or, for a key longer than [`INLINE_KEY`], its place in the arena.
    ids: [StrId; INLINE_KEY],
}

/// The longest key kept in place: three labels and a `pid`.
const INLINE_KEY: usize = 5;

impl Key {
    /// `key`, in place or appended to `arena`; `None` if the arena is full.
    fn new(key: &[StrId], arena: &mut Vec<StrId>) -> Option<Self> {
        let len = u32::try_from(key.len()).ok()?;
        let mut ids = [0; INLINE_KEY];
        match ids.get_mut(..key.len()) {
            Some(prefix) => prefix.copy_from_slice(key),
            None => {
                let at = u32::try_from(arena.len()).ok().filter(|at| at.checked_add(len).is_some())?;
                ids[0] = at;
                arena.extend_from_slice(key);
            }
        }
        Some(Self { len, ids })
    }

    /// Whether this is `key`. Keys are a handful of ids: compared in line, not by a
    /// call to `memcmp`.
    #[inline]
    fn is(&self, key: &[StrId], arena: &[StrId]) -> bool {
        let ids = match self.ids.get(..self.len as usize) {
            Some(ids) => ids,
            None => {
                let at = self.ids[0] as usize;
                match arena.get(at..at + self.len as usize) {
                    Some(ids) => ids,
                    None => return false,
                }
            }
        };
        ids.len() == key.len() && ids.iter().zip(key).all(|(x, y)| x == y)
    }
}

/// The hash of a key: its ids fed one by one, which foldhash folds in a multiply
/// each, rather than as bytes through its general path for slices (a tenth of a cold
/// scrape of files in different orders). Keyed like every hash of the index.
#[inline]
fn hash_key(hasher: &foldhash::fast::RandomState, key: &[StrId]) -> u64 {
    use std::hash::Hasher;
    let mut h = hasher.build_hasher();
    for &id in key {
        h.write_u32(id);
    }
    h.finish()
}

/// What folding a file's cells into a slot reads and writes, apart from [`Slot`]: 16
/// bytes a slot, so that a scrape's walk over every (file, series) pair keeps them in
/// cache beside the accumulators.
struct Fold {
    /// Index of the slot's first accumulator cell.
    at: u32,
    family: u32,
    /// The round that last reached this slot.
    round: u64,
}

/// The slot resolved at one position of a file, with what it takes to check it for
/// the next file's series there: 32 bytes read one after another, for every (file,
/// series) pair of a cold scrape, rather than a slot elsewhere.
#[derive(Clone, Copy)]
struct Guess {
    slot: SlotId,
    family: u32,
    key: Key,
}

/// A family's way of folding cells, copied out of its [`FamilyInfo`] for the same
/// reason.
struct FamilyFold {
    cells: usize,
    float_cell: usize,
    merge: Merge,
}

struct FamilyAgg {
    info: Arc<FamilyInfo>,
    /// The family's slots by the hash of their labels, looked up with borrowed label
    /// strings: a file's series find their slot without building a label set.
    by_labels: HashTable<SlotId>,
    /// The family's slots, sorted by labels when `sorted` is set.
    slots: Vec<SlotId>,
    sorted: bool,
}

/// Every series seen in a directory, and the running totals of the current round.
#[derive(Default)]
pub(crate) struct Index {
    families: Vec<FamilyAgg>,
    /// The families' positions in name order.
    name_order: Vec<u32>,
    /// By family, as `families`.
    family_folds: Vec<FamilyFold>,
    by_name: HashMap<Arc<str>, u32>,
    slots: Vec<Slot>,
    /// By slot, as `slots`.
    folds: Vec<Fold>,
    /// The keys too long to keep in their slot ([`Key`]), one after another.
    long_keys: Vec<StrId>,
    strings: Strings,
    /// The slot resolved last at each position of a file: the first guess for the
    /// series at that position of the next file ([`resolve`](Index::resolve)).
    by_position: Vec<Guess>,
    id: IndexId,
    acc: Vec<u64>,
    round: u64,
    /// Totals that do not change between rounds (dead files, the archive), and the
    /// slots they reach; every round starts from them.
    base: Vec<u64>,
    base_slots: Vec<SlotId>,
    /// The family description resolved last, and its family (`None`: described
    /// differently from the first description). Series come family by family, so this
    /// spares a lookup by name for nearly every one.
    last: Option<(Arc<FamilyInfo>, Option<u32>)>,
    /// Keyed per index: label values come from requests, so their hashes must not be
    /// predictable.
    hasher: foldhash::fast::RandomState,
}

impl Index {
    /// Which index this is: a file's map from its string ids to [`StrId`]s is good for
    /// this one only.
    pub(crate) fn id(&self) -> IndexId {
        self.id
    }

    /// The index's id for the string `s`, added on first sight; `None` only when the
    /// index holds 4 GiB of strings.
    pub(crate) fn intern(&mut self, s: &str) -> Option<StrId> {
        self.strings.intern(s, &self.hasher)
    }

    /// The slot of the series of `family` whose labels `key` gives, created on first
    /// sight; `position` is the series' place in its file (0 for its first).
    ///
    /// Processes of one program mostly create their series in the same order, so the
    /// slot that the last file resolved at the same position is tried first: one key
    /// compared, with an address that does not wait for the previous series' answer,
    /// rather than a table probed at random. Any other order costs that one compare
    /// more.
    ///
    /// The key is [`StrId`]s: the number of constant labels `c`, their `c` (name,
    /// value) pairs, the values of the family's labels in order, then, for a family
    /// kept per process, the `pid` label's value. Within one of the index's families
    /// equal keys are equal labels, so a series is hashed and compared as a few
    /// integers, and its labels are checked (valid, distinct names) and built once,
    /// when first seen.
    pub(crate) fn resolve(&mut self, family: &Arc<FamilyInfo>, key: &[StrId], position: usize) -> Resolved {
        let Some(f) = self.family_of(family) else { return Resolved::LeftOut };
        if let Some(guess) = self.by_position.get(position) {
            if guess.family == f && guess.key.is(key, &self.long_keys) {
                return Resolved::Slot(guess.slot);
            }
        }
        let resolved = self.find_or_add(f, key);
        if let Resolved::Slot(slot) = resolved {
            if let Some(s) = self.slots.get(slot as usize) {
                let guess = Guess { slot, family: f, key: s.key };
                let known = self.by_position.len();
                match self.by_position.get_mut(position) {
                    Some(last) => *last = guess,
                    None if position == known => self.by_position.push(guess),
                    None => {}
                }
            }
        }
        resolved
    }

    /// [`resolve`](Index::resolve) by the family's table, once the index's family `f`
    /// is known.
    fn find_or_add(&mut self, f: u32, key: &[StrId]) -> Resolved {
        let (families, slots, long_keys, folds) =
            (&mut self.families, &mut self.slots, &mut self.long_keys, &mut self.folds);
        let hash = hash_key(&self.hasher, key);
        let Some(agg) = families.get_mut(f as usize) else { return Resolved::LeftOut };
        // The full hash first: the table's probe matches only 7 bits of it. (The
        // family's table holds only its own slots.)
        let same =
            |id: &SlotId| slots.get(*id as usize).is_some_and(|s| s.hash == hash && s.key.is(key, long_keys));
        if let Some(&slot) = agg.by_labels.find(hash, same) {
            return Resolved::Slot(slot);
        }
        // First sight in this index: the one allocation per distinct series.
        let Some(labels) = labels_of(&self.strings, &agg.info, key) else { return Resolved::BadLabels };
        let room = (|| {
            let slot = SlotId::try_from(slots.len()).ok().filter(|&id| id != SlotId::MAX)?;
            let at = u32::try_from(self.acc.len())
                .ok()
                .filter(|at| at.checked_add(agg.info.cells as u32).is_some())?;
            Some((slot, at, Key::new(key, long_keys)?))
        })();
        let Some((slot, at, key)) = room else { return Resolved::LeftOut };
        slots.push(Slot { labels: Arc::new(labels), hash, key });
        folds.push(Fold { at, family: f, round: 0 });
        self.acc.resize(self.acc.len() + agg.info.cells, 0);
        agg.by_labels.insert_unique(hash, slot, |id| slots.get(*id as usize).map_or(0, |s| s.hash));
        agg.slots.push(slot);
        agg.sorted = false;
        Resolved::Slot(slot)
    }

    /// The index's family for a file's description of it, created on first sight.
    fn family_of(&mut self, info: &Arc<FamilyInfo>) -> Option<u32> {
        if let Some((last, f)) = &self.last {
            if Arc::ptr_eq(last, info) {
                return *f;
            }
        }
        let f = match self.by_name.get(&info.name) {
            Some(&f) => self.families.get(f as usize).and_then(|agg| agg.info.compatible(info).then_some(f)),
            None => u32::try_from(self.families.len()).ok().inspect(|&f| {
                self.families.push(FamilyAgg {
                    info: info.clone(),
                    by_labels: HashTable::new(),
                    slots: Vec::new(),
                    sorted: true,
                });
                self.family_folds.push(FamilyFold {
                    cells: info.cells,
                    float_cell: info.float_cell,
                    merge: info.merge,
                });
                self.by_name.insert(info.name.clone(), f);
            }),
        };
        self.last = Some((info.clone(), f));
        f
    }

    /// Starts a round: every accumulator reads as empty until a file reaches it.
    pub(crate) fn begin(&mut self) {
        self.round += 1;
    }

    /// Keeps this round's totals as the base that [`begin_from_base`] starts from.
    ///
    /// [`begin_from_base`]: Index::begin_from_base
    pub(crate) fn save_base(&mut self) {
        self.base.clone_from(&self.acc);
        let round = self.round;
        self.base_slots =
            (0..self.folds.len()).filter(|&i| self.folds[i].round == round).map(|i| i as SlotId).collect();
    }

    /// Starts a round from the saved base: its slots are reached, with its totals.
    pub(crate) fn begin_from_base(&mut self) {
        self.round += 1;
        // The base is a prefix of the accumulators (slots are only ever appended):
        // one copy, then mark its slots reached.
        if let Some(acc) = self.acc.get_mut(..self.base.len()) {
            acc.copy_from_slice(&self.base);
        }
        for &id in &self.base_slots {
            if let Some(fold) = self.folds.get_mut(id as usize) {
                fold.round = self.round;
            }
        }
    }

    /// Folds one file's series (`parsed`, cells among `words`) into their slots; with
    /// `live` false (a dead file), the series of `live` gauge modes are left out. One
    /// call per file rather than per series: this loop is most of a steady scrape.
    pub(crate) fn add_file(&mut self, parsed: &Parsed, words: &[AtomicU64], live: bool) {
        for entry in parsed.series.iter() {
            let Some(slot) = entry.slot() else { continue };
            if !live && parsed.family(entry).is_none_or(|f| f.mode.live_only()) {
                continue;
            }
            self.add(slot, Parsed::cells(words, entry));
        }
    }

    /// Folds one file's cells of a series into its slot.
    #[inline]
    pub(crate) fn add(&mut self, slot: SlotId, cells: &[AtomicU64]) {
        let round = self.round;
        let Some(s) = self.folds.get_mut(slot as usize) else { return };
        let Some(info) = self.family_folds.get(s.family as usize) else { return };
        let at = s.at as usize;
        let Some(acc) = self.acc.get_mut(at..at + info.cells) else { return };
        if cells.len() != acc.len() {
            return;
        }
        // Relaxed: each cell is an independent total; a scrape is a moment's reading,
        // not a consistent cut across cells.
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let sketch = || self.families.get(s.family as usize).and_then(|f| f.info.summary.as_ref());
        if let (Merge::Sketch, Some(layout)) =
            (info.merge, (info.merge == Merge::Sketch).then(sketch).flatten())
        {
            // Age buckets are matched by epoch, not summed blindly; a slot first
            // reached in this round starts from nothing.
            if s.round != round {
                s.round = round;
                acc.fill(0);
            }
            layout.merge(acc, cells);
            return;
        }
        if s.round != round {
            s.round = round;
            for (a, c) in acc.iter_mut().zip(cells) {
                *a = load(c);
            }
            return;
        }
        match info.merge {
            // Per-process series meet only when one process had several storages, or
            // a pid was reused: their values add up.
            // (Sketches were merged above.)
            Merge::Sum | Merge::PerProcess | Merge::Sketch => {
                // The counts before and after the one float cell, each a plain loop.
                let float = info.float_cell.min(acc.len());
                let (ints, rest) = acc.split_at_mut(float);
                let (int_cells, rest_cells) = cells.split_at(float);
                for (a, c) in ints.iter_mut().zip(int_cells) {
                    *a = a.wrapping_add(load(c));
                }
                if let (Some((f, ints)), Some((fc, int_cells))) =
                    (rest.split_first_mut(), rest_cells.split_first())
                {
                    *f = (f64::from_bits(*f) + f64::from_bits(load(fc))).to_bits();
                    for (a, c) in ints.iter_mut().zip(int_cells) {
                        *a = a.wrapping_add(load(c));
                    }
                }
            }
            Merge::Min | Merge::Max => {
                let (old, new) = (f64::from_bits(acc[0]), f64::from_bits(load(&cells[0])));
                let replace = if info.merge == Merge::Min { new < old } else { new > old };
                if replace || old.is_nan() {
                    acc[0] = new.to_bits();
                }
            }
            Merge::Latest => {
                if acc.len() == 2 && load(&cells[1]) > acc[1] {
                    acc[0] = load(&cells[0]);
                    acc[1] = load(&cells[1]);
                }
            }
        }
    }

    /// The slots reached in this round, with their accumulated cells, family by family
    /// (by name), series by labels.
    pub(crate) fn reached(&mut self) -> impl Iterator<Item = Reached<'_>> {
        self.sort();
        let this = &*self;
        this.name_order.iter().filter_map(move |&f| {
            let family = this.families.get(f as usize)?;
            let series: Vec<_> = this.reached_in(family).collect();
            (!series.is_empty()).then_some((&family.info, series))
        })
    }

    /// The slots of `family` reached in this round, with their accumulated cells, in
    /// the family's order of slots (by labels, once [`sort`](Index::sort) ran).
    fn reached_in<'a>(
        &'a self,
        family: &'a FamilyAgg,
    ) -> impl Iterator<Item = (&'a Arc<LabelSet>, &'a [u64])> {
        let round = self.round;
        family.slots.iter().filter_map(move |&id| {
            let (slot, fold) = (self.slots.get(id as usize)?, self.folds.get(id as usize)?);
            if fold.round != round {
                return None;
            }
            let at = fold.at as usize;
            Some((&slot.labels, self.acc.get(at..at + family.info.cells)?))
        })
    }

    /// The round's totals as a snapshot, families by name, series by labels; summary
    /// quantiles cover the window that ends at `now`.
    pub(crate) fn snapshot(&mut self, now: Duration) -> Snapshot {
        let mut snapshot = Snapshot::default();
        self.snapshot_into(now, &mut snapshot);
        snapshot
    }

    /// [`snapshot`](Index::snapshot) into `out`, refilled in place: a family, a series
    /// or a histogram's counts that `out` already holds is overwritten rather than made
    /// again, so that a snapshot kept from scrape to scrape costs no allocation that
    /// grows with its series once the series stop changing.
    pub(crate) fn snapshot_into(&mut self, now: Duration, out: &mut Snapshot) {
        self.sort();
        let mut kept = 0;
        for &f in &self.name_order {
            let Some(family) = self.families.get(f as usize) else { continue };
            let info = &family.info;
            let mut series = self.reached_in(family).peekable();
            if series.peek().is_none() {
                continue;
            }
            if out.families.get(kept).is_none_or(|was| was.name != info.name) {
                let new = FamilySnapshot {
                    name: info.name.clone(),
                    help: info.help.clone(),
                    unit: info.unit.clone(),
                    kind: info.kind,
                    series: Vec::new(),
                };
                match out.families.get_mut(kept) {
                    Some(was) => *was = new,
                    None => out.families.push(new),
                }
            }
            let Some(into) = out.families.get_mut(kept) else { continue };
            // The index may have started over since `out` was filled, with another
            // file's description of the family first.
            into.help.clone_from(&info.help);
            into.unit.clone_from(&info.unit);
            into.kind = info.kind;
            let mut n = 0;
            for (labels, cells) in series {
                match into.series.get_mut(n) {
                    Some(s) => {
                        if !Arc::ptr_eq(&s.labels, labels) {
                            s.labels = Arc::clone(labels);
                        }
                        refill(&mut s.value, info, cells, now);
                        s.created = None;
                    }
                    None => into.series.push(SeriesSnapshot {
                        labels: Arc::clone(labels),
                        value: value(info, cells, now),
                        created: None,
                    }),
                }
                n += 1;
            }
            into.series.truncate(n);
            kept += 1;
        }
        out.families.truncate(kept);
    }

    /// How many slots the index holds, reached or not.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn sort(&mut self) {
        if self.name_order.len() != self.families.len() {
            // A family was added: families are only ever added, so this is rare.
            let families = &self.families;
            self.name_order = (0..families.len() as u32).collect();
            self.name_order.sort_by(|&a, &b| {
                let name = |f: u32| families.get(f as usize).map(|agg| &agg.info.name);
                name(a).cmp(&name(b))
            });
        }
        let slots = &self.slots;
        for family in self.families.iter_mut().filter(|f| !f.sorted) {
            // Sorted by the labels' text, fetched once per slot rather than twice per
            // comparison; slots are distinct, so no order between equals is needed.
            let mut by_label: Vec<(&str, SlotId)> = family
                .slots
                .iter()
                .map(|&id| (slots.get(id as usize).map_or("", |s| s.labels.rendered()), id))
                .collect();
            by_label.sort_unstable();
            family.slots.clear();
            family.slots.extend(by_label.into_iter().map(|(_, id)| id));
            family.sorted = true;
        }
    }
}

/// The labels a key of [`Index::resolve`] stands for, checked as [`LabelSet::new`]
/// checks them; `None` if the key is malformed or the labels invalid.
fn labels_of(strings: &Strings, family: &FamilyInfo, key: &[StrId]) -> Option<LabelSet> {
    let (&consts, rest) = key.split_first()?;
    let (const_pairs, rest) = rest.split_at_checked(2 * consts as usize)?;
    let (values, pid) = rest.split_at_checked(family.label_names.len())?;
    let per_process = family.merge == Merge::PerProcess;
    if pid.len() != usize::from(per_process) {
        return None;
    }
    // The family's names are shared, not copied, by each of its series.
    let mut pairs: Vec<(Arc<str>, &str)> = Vec::with_capacity(key.len());
    for pair in const_pairs.chunks_exact(2) {
        pairs.push((strings.get(pair[0])?.into(), strings.get(pair[1])?));
    }
    for (name, &value) in family.label_names.iter().zip(values) {
        pairs.push((name.clone(), strings.get(value)?));
    }
    for &value in pid {
        pairs.push(("pid".into(), strings.get(value)?));
    }
    LabelSet::new(pairs).ok()
}

/// Whether a histogram family's cells hold classic buckets, and its native ones.
fn histogram_layout(info: &FamilyInfo) -> (bool, Option<herd_core::NativeBuckets>) {
    // A native-only family has no classic counts: its sum is cell 0.
    (info.float_cell != 0, info.native.map(|n| n.buckets))
}

/// [`value`] into `into`, reusing a histogram's vectors when `into` holds one.
fn refill(into: &mut SeriesValue, info: &FamilyInfo, cells: &[u64], now: Duration) {
    match into {
        SeriesValue::Histogram(h) if info.kind == MetricKind::Histogram => {
            let (classic, native) = histogram_layout(info);
            h.refill_from_cells(info.bounds.clone(), classic, native, |i| cells.get(i).copied().unwrap_or(0));
        }
        _ => *into = value(info, cells, now),
    }
}

/// A series value from accumulated cells, in herd-core's layouts (FORMAT.md, "Cell
/// layouts").
fn value(info: &FamilyInfo, cells: &[u64], now: Duration) -> SeriesValue {
    let int = |i: usize| cells.get(i).copied().unwrap_or(0);
    let float = |i: usize| f64::from_bits(int(i));
    match info.kind {
        MetricKind::Counter => {
            SeriesValue::Counter(CounterValue { integer: int(0), fraction: float(1), exemplar: None })
        }
        MetricKind::Gauge => SeriesValue::Gauge(float(0)),
        MetricKind::Histogram => {
            let (classic, native) = histogram_layout(info);
            SeriesValue::Histogram(HistogramValue::from_cells(info.bounds.clone(), classic, native, int))
        }
        MetricKind::Summary => match &info.summary {
            Some(layout) => SeriesValue::Summary(layout.value(cells, now)),
            None => {
                SeriesValue::Summary(SummaryValue { count: int(0), sum: float(1), quantiles: Vec::new() })
            }
        },
        _ => SeriesValue::Unknown(float(0)),
    }
}
