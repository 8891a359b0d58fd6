//! Client-side aggregation: per series and per flush interval, counters summed,
//! gauges kept last, observations counted exactly with a bounded sample of their
//! values. The caller's update is one or two atomic operations on the series' slot;
//! the sender thread takes each slot's interval at every cycle and renders it.
//!
//! Slots belong to one process's pipe, so a forked child never sends what its parent
//! had aggregated but not yet sent (its pipe, and so its slots, are new).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use once_cell::race::OnceBox;

use crate::table::{locate, CHUNKS, FIRST};

/// What a series aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggKind {
    Counter,
    Gauge,
    Observations,
}

/// One series' interval. Field use by kind:
///
/// | kind | `a` | `b` | `set` |
/// |---|---|---|---|
/// | counter | whole increments, summed | other increments, `f64` bits, summed | |
/// | gauge | last `set`, `f64` bits | relative changes since, `f64` bits, summed | a `set` happened |
/// | observations | observations made | | |
pub(crate) struct Slot {
    kind: AggKind,
    a: AtomicU64,
    b: AtomicU64,
    set: AtomicBool,
    /// A reservoir of the interval's observed values (`f64` bits): the first ones,
    /// then each later one replaces a random kept one with the probability that keeps
    /// the sample uniform (Vitter's algorithm R). Empty for other kinds.
    samples: Box<[AtomicU64]>,
}

/// Adds `v` to the `f64` stored in `cell`: a compare-and-swap loop, lock-free.
#[inline]
fn add_f64(cell: &AtomicU64, v: f64) {
    let mut old = cell.load(Ordering::Relaxed);
    loop {
        let new = (f64::from_bits(old) + v).to_bits();
        match cell.compare_exchange_weak(old, new, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => old = now,
        }
    }
}

/// Below this, a whole increment is exact in a `u64` sum and as an `f64`.
const WHOLE_BELOW: f64 = 9_007_199_254_740_992.0;

impl Slot {
    fn new(kind: AggKind, samples: usize) -> Self {
        let samples = if kind == AggKind::Observations { samples } else { 0 };
        Self {
            kind,
            a: AtomicU64::new(0),
            b: AtomicU64::new(0),
            set: AtomicBool::new(false),
            samples: (0..samples).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// A counter increment, positive and finite.
    #[inline]
    pub(crate) fn count(&self, delta: f64) {
        // `as` saturates; the round trip is exact only for whole values.
        let whole = delta as u64;
        if whole as f64 == delta && delta < WHOLE_BELOW {
            self.a.fetch_add(whole, Ordering::Relaxed);
        } else {
            add_f64(&self.b, delta);
        }
    }

    /// A gauge `set`: it supersedes the relative changes made before it.
    #[inline]
    pub(crate) fn gauge_set(&self, value: f64) {
        self.a.store(value.to_bits(), Ordering::Relaxed);
        self.b.store(0, Ordering::Relaxed);
        // Release: the sender that sees the flag sees the value.
        self.set.store(true, Ordering::Release);
    }

    /// A relative gauge change.
    #[inline]
    pub(crate) fn gauge_add(&self, delta: f64) {
        add_f64(&self.b, delta);
    }

    /// One observation; `draw` is a uniform random `u64`, asked for only once the
    /// reservoir is full.
    #[inline]
    pub(crate) fn observe(&self, value: f64, draw: impl FnOnce() -> u64) {
        let seen = self.a.fetch_add(1, Ordering::Relaxed);
        let keep = self.samples.len() as u64;
        let at = if seen < keep {
            seen
        } else {
            // A uniform index in 0..=seen, by multiply-shift (no division).
            ((u128::from(draw()) * (u128::from(seen) + 1)) >> 64) as u64
        };
        if let Some(cell) = self.samples.get(at as usize) {
            cell.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    /// Takes the interval's aggregate, leaving the slot empty for the next one.
    pub(crate) fn take(&self) -> Taken {
        match self.kind {
            AggKind::Counter => {
                let whole = self.a.swap(0, Ordering::Relaxed);
                let other = f64::from_bits(self.b.swap(0, Ordering::Relaxed));
                Taken::Counter(whole as f64 + other)
            }
            AggKind::Gauge => {
                let set = self
                    .set
                    .swap(false, Ordering::Acquire)
                    .then(|| f64::from_bits(self.a.load(Ordering::Relaxed)));
                let add = f64::from_bits(self.b.swap(0, Ordering::Relaxed));
                Taken::Gauge { set, add }
            }
            AggKind::Observations => {
                let count = self.a.swap(0, Ordering::Relaxed);
                // Values a caller of the next interval writes while this is read may
                // mix in: the count stays exact, the sample stays a sample.
                let kept = count.min(self.samples.len() as u64) as usize;
                let values =
                    self.samples.iter().take(kept).map(|c| f64::from_bits(c.load(Ordering::Relaxed)));
                Taken::Observations { count, values: values.collect() }
            }
        }
    }
}

/// An interval's aggregate of one series.
#[derive(Debug, PartialEq)]
pub(crate) enum Taken {
    /// The sum of increments (0: nothing to send).
    Counter(f64),
    /// The last `set` if there was one, then the relative changes after it.
    Gauge { set: Option<f64>, add: f64 },
    /// How many observations were made, and a uniform sample of their values (all of
    /// them when they are no more than the sample size).
    Observations { count: u64, values: Vec<f64> },
}

type Chunk = Box<[OnceBox<Slot>]>;

/// One process's slots, indexed as the series table is (a series mirrored twice has
/// one line, so one slot), created on the first update of each series in the process.
pub(crate) struct AggTable {
    chunks: [OnceBox<Chunk>; CHUNKS],
    samples: usize,
}

impl AggTable {
    pub(crate) fn new(samples: usize) -> Self {
        Self { chunks: std::array::from_fn(|_| OnceBox::new()), samples }
    }

    /// The slot of series `i`: two acquire loads; the first update of a series in
    /// this process allocates it (and the chunk it falls in, the first time).
    #[inline]
    pub(crate) fn slot(&self, i: u32, kind: AggKind) -> Option<&Slot> {
        let (chunk, offset) = locate(i as usize);
        let chunk = self.chunks.get(chunk)?.get_or_init(|| {
            let len = FIRST << chunk;
            Box::new((0..len).map(|_| OnceBox::new()).collect::<Vec<_>>().into_boxed_slice())
        });
        Some(chunk.get(offset)?.get_or_init(|| Box::new(Slot::new(kind, self.samples))))
    }

    /// Whether no slot was ever made.
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.first().is_none_or(|c| c.get().is_none())
    }

    /// Every slot created so far, with its series index.
    pub(crate) fn each(&self, mut f: impl FnMut(u32, &Slot)) {
        let mut index = 0u32;
        for chunk in &self.chunks {
            let Some(chunk) = chunk.get() else { return };
            for slot in chunk.iter() {
                if let Some(slot) = slot.get() {
                    f(index, slot);
                }
                index = index.wrapping_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_whole_and_fractional_increments() {
        let slot = Slot::new(AggKind::Counter, 4);
        slot.count(1.0);
        slot.count(2.0);
        slot.count(0.5);
        assert_eq!(slot.take(), Taken::Counter(3.5));
        assert_eq!(slot.take(), Taken::Counter(0.0));
    }

    #[test]
    fn a_gauge_set_supersedes_earlier_changes() {
        let slot = Slot::new(AggKind::Gauge, 4);
        slot.gauge_add(3.0);
        slot.gauge_set(5.0);
        slot.gauge_add(1.0);
        slot.gauge_add(-0.5);
        assert_eq!(slot.take(), Taken::Gauge { set: Some(5.0), add: 0.5 });
        assert_eq!(slot.take(), Taken::Gauge { set: None, add: 0.0 });
    }

    #[test]
    fn observations_are_counted_exactly_and_sampled() {
        let slot = Slot::new(AggKind::Observations, 4);
        for v in [1.0, 2.0, 3.0] {
            slot.observe(v, || 0);
        }
        assert_eq!(slot.take(), Taken::Observations { count: 3, values: vec![1.0, 2.0, 3.0] });
        let mut draws = 0u64;
        for v in 0..1000 {
            slot.observe(f64::from(v), || {
                draws = draws.wrapping_add(0x9E37_79B9_7F4A_7C15);
                draws
            });
        }
        let Taken::Observations { count, values } = slot.take() else { panic!("not observations") };
        assert_eq!((count, values.len()), (1000, 4));
    }

    #[test]
    fn each_visits_the_slots_made() {
        let table = AggTable::new(2);
        for i in [0u32, 5, 64, 300] {
            assert!(table.slot(i, AggKind::Counter).is_some());
        }
        let mut seen = Vec::new();
        table.each(|i, _| seen.push(i));
        assert_eq!(seen, [0, 5, 64, 300]);
    }
}
