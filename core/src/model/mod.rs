//! The shared vocabulary: the leaf types that descriptions, handles, snapshots, errors
//! and encoders all speak, kept here so that none of those modules needs another for
//! them (and no two of them need each other).
//!
//! Nothing here depends on herd but [`labels`](crate::labels). The public paths are the
//! crate root's and [`metrics`](crate::metrics)'s re-exports.

mod buckets;
pub(crate) mod exemplar;
mod kind;
mod layout;
pub(crate) mod native;

pub use buckets::{Buckets, BucketsError};
pub use exemplar::{Exemplar, ExemplarError};
pub use kind::{GaugeMode, MetricKind};
pub use layout::SummaryLayout;
pub use native::NativeBuckets;
