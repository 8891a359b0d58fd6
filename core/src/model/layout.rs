//! [`SummaryLayout`]'s data: what a summary family's cells hold. Its methods (checking a
//! layout, recording, merging, reading quantiles) are the sketch's, in
//! [`metrics::sketch`](crate::metrics::sketch).

use std::sync::Arc;

/// How a summary family's cells are laid out and read: its objectives, time window and
/// sketch parameters. herd-mmap records it in the family record, so a reader in another
/// process decodes the cells without the writer's configuration.
#[derive(Clone, PartialEq)]
pub struct SummaryLayout {
    pub(crate) objectives: Arc<[f64]>,
    pub(crate) max_age_ns: u64,
    pub(crate) age_buckets: u32,
    pub(crate) bins: u32,
    pub(crate) relative_error: f64,
    pub(crate) lowest: f64,
    // Derived, for the hot path and the reader.
    pub(crate) mult: f64,
    pub(crate) base: f64,
    pub(crate) inv_epoch: f64,
}
