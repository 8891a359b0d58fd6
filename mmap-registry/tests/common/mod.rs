//! Helpers shared by herd-mmap's integration tests.

use herd_core::snapshot::SeriesValue;
use herd_core::Snapshot;

/// The sum of every series of the counter family `name` (0 if it is absent).
pub(crate) fn counter_total(snapshot: &Snapshot, name: &str) -> f64 {
    snapshot
        .family(name)
        .map(|f| {
            f.series
                .iter()
                .map(|s| if let SeriesValue::Counter(c) = &s.value { c.total() } else { 0.0 })
                .sum()
        })
        .unwrap_or(0.0)
}
