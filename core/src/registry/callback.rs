//! Callback metrics: a gauge or a counter whose value a function computes at every
//! scrape.

use std::sync::Arc;

use super::Registry;
use crate::collector::Collector;
use crate::error::RegistryError;
use crate::labels::LabelSet;
use crate::model::MetricKind;
use crate::snapshot::{CounterValue, FamilySnapshot, SeriesSnapshot, SeriesValue};

impl Registry {
    /// A gauge whose value `f` computes at every scrape.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] for an invalid or taken name.
    pub fn gauge_fn(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Result<(), RegistryError> {
        self.register_callback(name.into(), help.into(), MetricKind::Gauge, move || SeriesValue::Gauge(f()))
    }

    /// A counter whose total `f` computes at every scrape. A negative or NaN total is
    /// not a valid counter value and is left out of the scrape.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] for an invalid or taken name.
    pub fn counter_fn(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        f: impl Fn() -> f64 + Send + Sync + 'static,
    ) -> Result<(), RegistryError> {
        self.register_callback(name.into(), help.into(), MetricKind::Counter, move || {
            SeriesValue::Counter(CounterValue::from_f64(f()))
        })
    }

    fn register_callback(
        &self,
        name: String,
        help: String,
        kind: MetricKind,
        read: impl Fn() -> SeriesValue + Send + Sync + 'static,
    ) -> Result<(), RegistryError> {
        let (full, shown) = self.family_name(&name, kind)?;
        let mut state = self.inner.state.write();
        state.names.reserve(&full, &shown, kind)?;
        let labels = Arc::new(LabelSet::from_validated(self.inner.const_labels.to_vec()));
        let name: Arc<str> = full.into();
        let help: Arc<str> = help.into();
        state.collectors.push(Arc::new(Callback { name, help, kind, labels, read }));
        Ok(())
    }
}

struct Callback<F> {
    name: Arc<str>,
    help: Arc<str>,
    kind: MetricKind,
    labels: Arc<LabelSet>,
    read: F,
}

impl<F: Fn() -> SeriesValue + Send + Sync + 'static> Collector for Callback<F> {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        let value = (self.read)();
        let valid = match &value {
            SeriesValue::Counter(c) => c.total() >= 0.0,
            _ => true,
        };
        out.push(FamilySnapshot {
            name: self.name.clone(),
            help: self.help.clone(),
            unit: None,
            kind: self.kind,
            series: if valid {
                vec![SeriesSnapshot { labels: self.labels.clone(), value, created: None }]
            } else {
                Vec::new()
            },
        });
    }
}
