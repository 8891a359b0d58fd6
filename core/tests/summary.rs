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
        *self.layout.lock() = family.summary.clone();
        Ok(())
    }

    fn allocate(
        &self,
        family: &FamilyDesc,
        labels: &LabelSet,
        len: usize,
    ) -> Result<CellBlock, StorageError> {
        let block = self.heap.allocate(family, labels, len)?;
        self.blocks.lock().push(block.clone());
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
