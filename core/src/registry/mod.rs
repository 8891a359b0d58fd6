//! The registry: where families are registered and snapshots are taken.
//!
//! [`Registry`] and its snapshot are here; the modules divide the rest: `builder`
//! ([`RegistryBuilder`], [`MetricBuilder`]), `families` (registering a family), `names`
//! (name reservation), `callback` (`gauge_fn`, `counter_fn`), `health` (the
//! self-metrics).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::collector::{CollectError, Collector, Lent};
use crate::encode::{encode_families, Format};
use crate::family::DEFAULT_CARDINALITY_LIMIT;
use crate::metrics::counter::CounterConfig;
use crate::metrics::gauge::GaugeConfig;
use crate::metrics::histogram::HistogramConfig;
use crate::metrics::summary::SummaryConfig;
#[cfg(doc)]
use crate::metrics::Buckets;
use crate::metrics::{Counter, Gauge, Histogram, Metric, Summary};
use crate::snapshot::{FamilySnapshot, Snapshot};
use crate::storage::Storage;

mod builder;
mod callback;
mod families;
mod health;
mod names;

pub use builder::{LabelNames, MetricBuilder, NoLabels, RegistryBuilder};
use health::HealthFamilies;
pub use health::{OVERFLOW_METRIC, STORAGE_ERRORS_METRIC};
use names::Names;

/// A set of metric families and collectors, and the settings they share.
///
/// Explicit and cheap to clone (clones share the families); nothing is global.
///
/// # Examples
///
/// ```
/// use herd_core::{Format, Registry};
/// let registry = Registry::builder().prefix("app").build()?;
/// let jobs = registry.counter("jobs_total", "Jobs processed.").register()?;
/// jobs.inc();
/// let text = String::from_utf8(registry.encode(Format::Text))?;
/// assert!(text.starts_with("# HELP app_jobs_total Jobs processed.\n# TYPE app_jobs_total counter\napp_jobs_total 1\n"));
/// // And herd's own counts for the family, at 0 until something goes wrong:
/// assert!(text.contains("herd_cardinality_overflow_total{family=\"app_jobs\"} 0\n"));
/// assert!(text.contains("herd_storage_errors_total{family=\"app_jobs\"} 0\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: Option<String>,
    const_labels: Arc<[(Arc<str>, Box<str>)]>,
    storage: Arc<dyn Storage>,
    cardinality_limit: usize,
    created_timestamps: bool,
    state: RwLock<State>,
}

struct State {
    names: Names,
    collectors: Vec<Arc<dyn Collector>>,
    /// The self-metric families, registered with the first family (`None` until then,
    /// and if their names were taken).
    health: Option<HealthFamilies>,
}

impl State {
    /// An empty state in which the self-metrics' names are already taken.
    fn new() -> Self {
        let names = Names::with_counters(&[OVERFLOW_METRIC, STORAGE_ERRORS_METRIC]);
        Self { names, collectors: Vec::new(), health: None }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("prefix", &self.inner.prefix)
            .field("storage", &self.inner.storage)
            .field("collectors", &self.inner.state.read().collectors.len())
            .finish()
    }
}

impl Registry {
    /// An in-process registry with no prefix and no constant labels.
    pub fn new() -> Self {
        Self::builder().assemble(Arc::new([]))
    }

    /// Settings for a registry.
    pub fn builder() -> RegistryBuilder {
        RegistryBuilder {
            prefix: None,
            const_labels: Vec::new(),
            storage: None,
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            created_timestamps: false,
        }
    }

    /// A counter named `name` (a trailing `_total` is optional: samples always end in
    /// `_total`).
    pub fn counter(&self, name: impl Into<String>, help: impl Into<String>) -> MetricBuilder<'_, Counter> {
        self.builder_for(name, help, CounterConfig::default())
    }

    /// A gauge.
    pub fn gauge(&self, name: impl Into<String>, help: impl Into<String>) -> MetricBuilder<'_, Gauge> {
        self.builder_for(name, help, GaugeConfig::default())
    }

    /// A histogram, with [`Buckets::DEFAULT`] unless `.buckets()` says otherwise.
    pub fn histogram(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
    ) -> MetricBuilder<'_, Histogram> {
        self.builder_for(name, help, HistogramConfig::default())
    }

    /// A summary: quantiles 0.5, 0.9 and 0.99 over a 10-minute window unless
    /// `.objectives()` and `.window()` say otherwise (see [`Summary`]).
    pub fn summary(&self, name: impl Into<String>, help: impl Into<String>) -> MetricBuilder<'_, Summary> {
        self.builder_for(name, help, SummaryConfig::default())
    }

    fn builder_for<M: Metric>(
        &self,
        name: impl Into<String>,
        help: impl Into<String>,
        config: M::Config,
    ) -> MetricBuilder<'_, M> {
        MetricBuilder {
            registry: self,
            name: name.into(),
            help: help.into(),
            unit: None,
            limit: None,
            config,
            labels: NoLabels,
            _metric: PhantomData,
        }
    }

    /// Adds a collector whose families appear in every snapshot. Its names are not
    /// checked against the registry's: the collector owns them.
    ///
    /// [`encode`](Registry::encode) borrows what a collector keeps from scrape to
    /// scrape ([`Collector::try_lend`]); [`snapshot`](Registry::snapshot) copies it.
    pub fn register_collector(&self, collector: Arc<dyn Collector>) {
        self.inner.state.write().collectors.push(collector);
    }

    /// Reads every family and collector, with families sorted by name.
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot_with(|c, out| {
            c.collect(out);
            Ok(())
        })
        .unwrap_or_else(|never: std::convert::Infallible| match never {})
    }

    /// Like [`snapshot`](Registry::snapshot), but fails when a collector cannot collect
    /// at all ([`Collector::try_collect`]): a registry holding herd-mmap's `Aggregator`
    /// over a directory that cannot be listed, say.
    ///
    /// # Errors
    ///
    /// The first failing collector's [`CollectError`].
    pub fn try_snapshot(&self) -> Result<Snapshot, CollectError> {
        self.snapshot_with(|c, out| c.try_collect(out))
    }

    /// Every collector's families as `collect` appends them, sorted by name.
    fn snapshot_with<E>(
        &self,
        collect: impl Fn(&dyn Collector, &mut Vec<FamilySnapshot>) -> Result<(), E>,
    ) -> Result<Snapshot, E> {
        // Cloned, as in `encode_lent`: no collector runs under the registry's lock.
        let collectors = self.inner.state.read().collectors.clone();
        let mut families = Vec::with_capacity(collectors.len() + 2);
        for c in &collectors {
            collect(&**c, &mut families)?;
        }
        let mut snapshot = Snapshot { families };
        snapshot.sort();
        Ok(snapshot)
    }

    /// What [`snapshot`](Registry::snapshot) reads, encoded in `format`.
    ///
    /// Each collector lends its families ([`Collector::try_lend`]), so that one that
    /// keeps them from scrape to scrape (herd-mmap's `Aggregator`) is encoded without
    /// a copy. A collector that cannot collect is encoded as its
    /// [`collect`](Collector::collect) leaves it, as in a snapshot; to fail instead,
    /// [`try_encode`](Registry::try_encode).
    pub fn encode(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_lent(format, &mut out, |c| {
            Ok(c.try_lend().unwrap_or_else(|_| {
                let mut families = Vec::new();
                c.collect(&mut families);
                Lent::owned(families)
            }))
        })
        .unwrap_or_else(|never: std::convert::Infallible| match never {});
        out
    }

    /// Appends [`encode`](Registry::encode)'s body to `out`, or fails when a collector
    /// cannot collect at all, as [`try_snapshot`](Registry::try_snapshot) does: what a
    /// `/metrics` endpoint serving this registry answers
    /// ([`MetricsSource::registry`](crate::http::MetricsSource::registry)), so that a
    /// scrape fails rather than store a body with a collector's series missing.
    ///
    /// # Errors
    ///
    /// The first failing collector's [`CollectError`]; `out` is then left as it was.
    pub fn try_encode(&self, format: Format, out: &mut Vec<u8>) -> Result<(), CollectError> {
        self.encode_lent(format, out, |c| c.try_lend())
    }

    /// Encodes every collector's families as `lend` lends them, sorted by name.
    fn encode_lent<E>(
        &self,
        format: Format,
        out: &mut Vec<u8>,
        lend: impl for<'c> Fn(&'c dyn Collector) -> Result<Lent<'c>, E>,
    ) -> Result<(), E> {
        // Cloned, so that no collector runs under the registry's lock (one that
        // registers a family while collecting would wait for ever).
        let collectors = self.inner.state.read().collectors.clone();
        let lent: Vec<Lent<'_>> = collectors.iter().map(|c| lend(&**c)).collect::<Result<_, E>>()?;
        let mut families: Vec<&FamilySnapshot> = lent.iter().flat_map(Lent::families).collect();
        families.sort_by(|a, b| a.name.cmp(&b.name));
        encode_families(&families, format, out);
        Ok(())
    }
}
