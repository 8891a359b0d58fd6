//! A handle and the observer that mirrors its updates: what the HTTP and gRPC series
//! caches hold per series.

use std::sync::Arc;

use crate::family::Family;
use crate::labels::LabelSet;
use crate::metrics::{Counter, Gauge, Histogram};
use crate::observe::{Observer, SeriesObserver};

/// A handle and the observer that mirrors its updates, if any (shared with
/// [`crate::grpc`]). A clone records into the same series and observer series.
#[derive(Clone)]
pub(crate) struct Tracked<M> {
    pub(crate) metric: M,
    pub(crate) observer: Option<Arc<dyn SeriesObserver>>,
}

impl<M: Clone> Tracked<M> {
    /// The series of `family` with `values`, mirrored to `observer`'s series if any.
    pub(crate) fn new<const N: usize>(
        family: &Family<M, N>,
        values: [&str; N],
        observer: Option<&Arc<dyn Observer>>,
    ) -> Self
    where
        M: crate::metrics::Metric,
    {
        Self {
            metric: family.with_labels(values).clone(),
            observer: observe(observer, family.desc(), &values),
        }
    }
}

/// Asks `observer`, if any, for the series of `family` with these label values.
pub(crate) fn observe(
    observer: Option<&Arc<dyn Observer>>,
    family: &crate::FamilyDesc,
    values: &[&str],
) -> Option<Arc<dyn SeriesObserver>> {
    let labels = LabelSet::new(family.label_names.iter().cloned().zip(values.iter().copied())).ok()?;
    observer?.series(family, &labels)
}

/// Borrowed [`Tracked`]: what recording works on, whether the series is cached or was
/// looked up for this request only.
#[derive(Clone, Copy)]
pub(crate) struct Rec<'a, M> {
    pub(super) metric: &'a M,
    pub(super) observer: Option<&'a dyn SeriesObserver>,
}

impl<M> Tracked<M> {
    pub(crate) fn borrow(&self) -> Rec<'_, M> {
        Rec { metric: &self.metric, observer: self.observer.as_deref() }
    }
}

impl Rec<'_, Counter> {
    #[inline]
    pub(crate) fn inc(self) {
        self.add(1);
    }

    #[inline]
    pub(crate) fn add(self, n: u64) {
        self.metric.inc_by(n);
        if let Some(o) = self.observer {
            o.counter(n as f64);
        }
    }
}

impl Rec<'_, Histogram> {
    #[inline]
    pub(crate) fn observe(self, v: f64) {
        self.metric.observe(v);
        if let Some(o) = self.observer {
            o.observe(v);
        }
    }
}

impl Rec<'_, Gauge> {
    #[inline]
    pub(super) fn add(self, v: f64) {
        self.metric.add(v);
        if let Some(o) = self.observer {
            o.gauge_add(v);
        }
    }
}
