//! The series index: one accumulator per distinct series across all files, resolved
//! once per (file, series), so that a scrape is a walk over cells with no hashing.
//!
//! Each file's series are mapped to a slot the first time the file is parsed; a scrape
//! then starts a new round and folds every file's cells into the slots' accumulators.
//! A slot reached by no file in a round is not reported.

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

use crate::reader::{FamilyInfo, Merge, Parsed};

/// A slot's place in the index.
pub(crate) type SlotId = u32;

/// The series of one family reached in a round: labels and accumulated cells.
pub(crate) type Reached<'a> = (&'a Arc<FamilyInfo>, Vec<(&'a Arc<LabelSet>, &'a [u64])>);

/// What a slot is: read when a series is resolved and when the snapshot is built.
struct Slot {
    labels: Arc<LabelSet>,
    /// The hash of its labels, for the family's table to grow without rehashing them.
    hash: u64,
    /// Where its labels' key lies in the index's arena of keys.
    key_at: u32,
    key_len: u32,
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
    /// By family, as `families`.
    family_folds: Vec<FamilyFold>,
    by_name: HashMap<Arc<str>, u32>,
    slots: Vec<Slot>,
    /// By slot, as `slots`.
    folds: Vec<Fold>,
    /// Every slot's key (its labels as [`resolve`](Index::resolve) lays them out), one
    /// after another.
    keys: Vec<u8>,
    /// The key being resolved, reused.
    key: Vec<u8>,
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
    /// The slot of the series of `family` with these labels (checked: valid, distinct
    /// names), created on first sight; `None` if another file describes the family
    /// differently (the first description wins and the other's series are left out
    /// rather than mixed).
    pub(crate) fn resolve(&mut self, family: &Arc<FamilyInfo>, labels: &[(&str, &str)]) -> Option<SlotId> {
        let f = self.family_of(family)?;
        // The labels as one key (`name 0xFF value 0xFF ...`, 0xFF being a byte UTF-8
        // never holds, so no two label lists make the same key), hashed and compared
        // in one piece against the slots' keys, which sit side by side in one arena.
        let key = &mut self.key;
        key.clear();
        for (name, value) in labels {
            key.extend_from_slice(name.as_bytes());
            key.push(0xff);
            key.extend_from_slice(value.as_bytes());
            key.push(0xff);
        }
        let hash = self.hasher.hash_one(key.as_slice());
        let (families, slots, keys, folds) =
            (&mut self.families, &mut self.slots, &mut self.keys, &mut self.folds);
        let agg = families.get_mut(f as usize)?;
        let same = |id: &SlotId| {
            // The full hash first: the table's probe matches only 7 bits of it.
            slots.get(*id as usize).is_some_and(|s| {
                s.hash == hash
                    && keys.get(s.key_at as usize..(s.key_at + s.key_len) as usize) == Some(key.as_slice())
            })
        };
        if let Some(&slot) = agg.by_labels.find(hash, same) {
            return Some(slot);
        }
        // First sight in this index: the one allocation per distinct series.
        let labels = LabelSet::new(labels.iter().copied()).ok()?;
        let slot = SlotId::try_from(slots.len()).ok().filter(|&id| id != SlotId::MAX)?;
        let key_at = u32::try_from(keys.len()).ok()?;
        let key_len = u32::try_from(key.len()).ok().filter(|len| key_at.checked_add(*len).is_some())?;
        let at = u32::try_from(self.acc.len())
            .ok()
            .filter(|at| at.checked_add(agg.info.cells as u32).is_some())?;
        keys.extend_from_slice(key);
        slots.push(Slot { labels: Arc::new(labels), hash, key_at, key_len });
        folds.push(Fold { at, family: f, round: 0 });
        self.acc.resize(self.acc.len() + agg.info.cells, 0);
        agg.by_labels.insert_unique(hash, slot, |id| slots.get(*id as usize).map_or(0, |s| s.hash));
        agg.slots.push(slot);
        agg.sorted = false;
        Some(slot)
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
        for entry in &parsed.series {
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

    /// The slots reached in this round, with their accumulated cells, family by family.
    pub(crate) fn reached(&mut self) -> impl Iterator<Item = Reached<'_>> {
        self.sort();
        let round = self.round;
        let (slots, folds, acc) = (&self.slots, &self.folds, &self.acc);
        let mut order: Vec<&FamilyAgg> = self.families.iter().collect();
        order.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        order.into_iter().filter_map(move |family| {
            let series: Vec<_> = family
                .slots
                .iter()
                .filter_map(|&id| Some((slots.get(id as usize)?, folds.get(id as usize)?)))
                .filter(|(_, fold)| fold.round == round)
                .filter_map(|(s, fold)| {
                    let at = fold.at as usize;
                    Some((&s.labels, acc.get(at..at + family.info.cells)?))
                })
                .collect();
            (!series.is_empty()).then_some((&family.info, series))
        })
    }

    /// The round's totals as a snapshot, families by name, series by labels; summary
    /// quantiles cover the window that ends at `now`.
    pub(crate) fn snapshot(&mut self, now: Duration) -> Snapshot {
        let families = self
            .reached()
            .map(|(info, series)| FamilySnapshot {
                name: info.name.clone(),
                help: info.help.clone(),
                unit: info.unit.clone(),
                kind: info.kind,
                series: series
                    .into_iter()
                    .map(|(labels, cells)| SeriesSnapshot {
                        labels: labels.clone(),
                        value: value(info, cells, now),
                        created: None,
                    })
                    .collect(),
            })
            .collect();
        Snapshot { families }
    }

    /// How many slots the index holds, reached or not.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    fn sort(&mut self) {
        let slots = &self.slots;
        for family in self.families.iter_mut().filter(|f| !f.sorted) {
            family.slots.sort_by(|&a, &b| {
                let label = |id: SlotId| slots.get(id as usize).map(|s| s.labels.rendered());
                label(a).cmp(&label(b))
            });
            family.sorted = true;
        }
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
            // A native-only family has no classic counts: its sum is cell 0.
            let classic = info.float_cell != 0;
            let native = info.native.map(|n| n.buckets);
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
