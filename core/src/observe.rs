//! Observers: a way for a sender of pushed metrics (herd-statsd) to see the updates an
//! adapter makes, without the adapter depending on it.
//!
//! An adapter that records metrics (herd-axum, herd-actix) accepts an optional
//! [`Observer`]. When it resolves a series handle, which it does once and caches, it
//! also asks the observer for a [`SeriesObserver`] and keeps it beside the handle;
//! every later update of that series is then reported to it as well. Whatever a
//! series observer needs per update (a pre-rendered line prefix, a queue) is prepared
//! in [`Observer::series`], so that reporting an update costs what the observer makes
//! it cost, and nothing at all when no observer is set.

use std::sync::Arc;

use crate::desc::FamilyDesc;
use crate::labels::LabelSet;

/// Receives the series an adapter records, once each.
pub trait Observer: Send + Sync + 'static {
    /// Called once when an adapter resolves the series `labels` of `family` (constant
    /// labels of the registry not included); returns what receives its updates, or
    /// `None` to ignore this series.
    fn series(&self, family: &FamilyDesc, labels: &LabelSet) -> Option<Arc<dyn SeriesObserver>>;
}

/// Receives the updates of one series. Must not block: it runs on the thread that
/// serves a request.
pub trait SeriesObserver: Send + Sync + 'static {
    /// A counter grew by `delta`.
    fn counter(&self, delta: f64);
    /// A gauge was set to `value`.
    fn gauge_set(&self, value: f64);
    /// A gauge moved by `delta` (negative to go down).
    fn gauge_add(&self, delta: f64);
    /// A histogram or summary observed `value` (in the family's unit).
    fn observe(&self, value: f64);
}
