//! Summary quantiles merged across simulated processes stay within the stated relative
//! error of the exact quantiles of the union.
//!
//! Each simulated process is a registry of its own, with a storage that keeps the cell
//! blocks it hands out; merging them is `SummaryLayout::merge`, the very function
//! herd-mmap's aggregator folds files with.

use std::sync::Arc;
use std::time::Duration;

use herd_core::cell::CellBlock;
use herd_core::clock::{Clock, ManualClock};
use herd_core::metrics::sketch::RELATIVE_ERROR;
use herd_core::storage::StorageError;
use herd_core::{FamilyDesc, HeapStorage, LabelSet, Objectives, Registry, Storage, SummaryLayout};
use parking_lot::Mutex;
use proptest::prelude::*;

/// Heap cells, remembered so the test can merge them as an aggregator would.
#[derive(Debug, Default)]
struct Recording {
    heap: HeapStorage,
    blocks: Mutex<Vec<CellBlock>>,
    layout: Mutex<Option<SummaryLayout>>,
}

impl Storage for Recording {
    fn add_family(&self, family: &FamilyDesc) -> Result<(), StorageError> {
        if family.summary.is_some() {
            *self.layout.lock() = family.summary.clone();
        }
        Ok(())
    }

    fn allocate(
        &self,
        family: &FamilyDesc,
        labels: &LabelSet,
        len: usize,
    ) -> Result<CellBlock, StorageError> {
        let block = self.heap.allocate(family, labels, len)?;
        // Only the summary's: the registry's self-metric counters are allocated here too.
        if family.summary.is_some() {
            self.blocks.lock().push(block.clone());
        }
        Ok(block)
    }
}

const OBJECTIVES: [f64; 9] = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0];

/// Values in `[1e-3, 1e6]`: nine orders of magnitude, all inside the sketch's range.
fn data() -> impl Strategy<Value = Vec<f64>> {
    let log_uniform = (-3.0f64..6.0).prop_map(|e| 10f64.powf(e));
    // Pareto with shape 1.1 from 1e-3: most values small, a few enormous.
    let heavy_tail = (1e-9f64..1.0).prop_map(|u| (1e-3 * u.powf(-1.0 / 1.1)).min(1e6));
    let spread = prop_oneof![log_uniform.clone(), heavy_tail];
    prop_oneof![
        prop::collection::vec(spread, 1..1500),
        // Duplicates: a handful of distinct values, each repeated many times.
        (
            prop::collection::vec(log_uniform, 1..6),
            prop::collection::vec(any::<prop::sample::Index>(), 1..1500)
        )
            .prop_map(|(vals, picks)| picks.iter().map(|i| vals[i.index(vals.len())]).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn merged_quantiles_are_within_the_relative_error_of_the_union(
        values in data(),
        processes in 1usize..7,
        split in prop::collection::vec(any::<prop::sample::Index>(), 1500),
    ) {
        let clock = Arc::new(ManualClock::new(Duration::from_secs(1_800_000_000)));
        let mut storages = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..processes {
            let storage = Arc::new(Recording::default());
            let registry = Registry::builder().storage(storage.clone()).build().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let summary = registry
                .summary("latency_seconds", "L.")
                .objectives(Objectives::new(OBJECTIVES).map_err(|e| TestCaseError::fail(e.to_string()))?)
                .clock(clock.clone() as Arc<dyn Clock>)
                .register()
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            storages.push(storage);
            handles.push(summary);
        }
        for (i, &v) in values.iter().enumerate() {
            handles[split[i].index(processes)].observe(v);
        }

        let layout = storages[0].layout.lock().clone().ok_or_else(|| TestCaseError::fail("no layout"))?;
        let mut acc = vec![0u64; layout.cells()];
        for s in &storages {
            for block in s.blocks.lock().iter() {
                layout.merge(&mut acc, block.cells());
            }
        }
        let merged = layout.value(&acc, clock.now());
        prop_assert_eq!(merged.count, values.len() as u64);

        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for &(q, got) in &merged.quantiles {
            let exact = sorted[(q * (sorted.len() - 1) as f64).floor() as usize];
            prop_assert!(
                (got - exact).abs() <= RELATIVE_ERROR * exact * (1.0 + 1e-9),
                "q={} got {} exact {} (n={}, k={})", q, got, exact, values.len(), processes
            );
        }
    }
}

/// Threads observe while the clock crosses epochs (each crossing resets an age bucket
/// under their feet): every observation counts once in `_count`, and the age buckets
/// never hold more than were made (a reset may drop a racing observation from the
/// quantiles, never count one twice).
#[test]
fn rotations_racing_observers_never_count_twice() -> Result<(), Box<dyn std::error::Error>> {
    let clock = Arc::new(ManualClock::new(Duration::from_secs(1_800_000_000)));
    let storage = Arc::new(Recording::default());
    let registry = Registry::builder().storage(storage.clone()).build()?;
    let summary = registry
        .summary("s_seconds", "S.")
        .window(herd_core::Window::new(Duration::from_secs(3), 3)?)
        .clock(clock.clone() as Arc<dyn Clock>)
        .register()?;
    let (threads, per_thread) = (4u64, 50_000u64);
    std::thread::scope(|s| {
        for t in 0..threads {
            let summary = summary.clone();
            s.spawn(move || {
                for i in 0..per_thread {
                    summary.observe((t * per_thread + i) as f64 / 1000.0 + 0.001);
                }
            });
        }
        for _ in 0..200 {
            clock.advance(Duration::from_millis(500));
            std::thread::yield_now();
        }
    });
    assert_eq!(summary.count(), threads * per_thread);
    let layout = storage.layout.lock().clone().ok_or("no layout")?;
    let blocks = storage.blocks.lock();
    let cells = blocks.first().ok_or("no cells")?.cells();
    let stride = 2 + layout.bins() as usize;
    let held: u64 = cells[2..]
        .chunks_exact(stride)
        .map(|b| b[1..].iter().map(|c| c.load(std::sync::atomic::Ordering::Relaxed)).sum::<u64>())
        .sum();
    assert!(held <= threads * per_thread, "{held} held in age buckets, {} observed", threads * per_thread);
    // With the clock still, everything observed now is in the window.
    let before = held;
    for _ in 0..1000 {
        summary.observe(1.0);
    }
    let merged = {
        let mut acc = vec![0u64; layout.cells()];
        layout.merge(&mut acc, cells);
        layout.value(&acc, clock.now())
    };
    assert_eq!(merged.count, threads * per_thread + 1000);
    assert!(merged.quantiles.iter().all(|(_, v)| v.is_finite()), "{merged:?} (held {before})");
    Ok(())
}
