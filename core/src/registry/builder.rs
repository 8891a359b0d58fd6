//! [`RegistryBuilder`] and [`MetricBuilder`]: a registry's and a metric's settings
//! before they exist.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Inner, Registry, State};
use crate::clock::Clock;
use crate::error::RegistryError;
use crate::family::Family;
use crate::labels::{validate_metric_name, LabelSet};
use crate::metrics::{
    Buckets, Counter, Gauge, Histogram, Metric, NativeBuckets, Objectives, Summary, Window,
};
use crate::model::GaugeMode;
use crate::storage::{HeapStorage, Storage};

/// Settings for a [`Registry`].
#[derive(Debug)]
#[must_use]
pub struct RegistryBuilder {
    pub(super) prefix: Option<String>,
    pub(super) const_labels: Vec<(String, String)>,
    pub(super) storage: Option<Arc<dyn Storage>>,
    pub(super) cardinality_limit: usize,
    pub(super) created_timestamps: bool,
}

impl RegistryBuilder {
    /// Prepends `prefix_` to every family name (a namespace such as `myapp`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Adds a label with a fixed value to every series (for example `service="api"`).
    pub fn const_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.const_labels.push((name.into(), value.into()));
        self
    }

    /// Where cells come from; [`HeapStorage`] unless set.
    pub fn storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The default per-family cardinality limit (2,000 unless set); families may
    /// override it.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit;
        self
    }

    /// Writes OpenMetrics `_created` samples for counters, histograms and summaries.
    /// Off by default: Prometheus 2.x stores each one as an extra series.
    pub fn created_timestamps(mut self, on: bool) -> Self {
        self.created_timestamps = on;
        self
    }

    /// Builds the registry.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] for an invalid prefix or constant label, or a limit of zero.
    pub fn build(self) -> Result<Registry, RegistryError> {
        if let Some(prefix) = &self.prefix {
            validate_metric_name(prefix)?;
        }
        if self.cardinality_limit == 0 {
            return Err(RegistryError::ZeroCardinalityLimit { name: "<registry default>".into() });
        }
        let const_labels = LabelSet::new(self.const_labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
        let const_labels = const_labels.pairs().map(|(n, v)| (Arc::from(n), Box::from(v))).collect();
        Ok(self.assemble(const_labels))
    }

    /// Builds the registry from settings already checked.
    pub(super) fn assemble(self, const_labels: Arc<[(Arc<str>, Box<str>)]>) -> Registry {
        Registry {
            inner: Arc::new(Inner {
                prefix: self.prefix,
                const_labels,
                storage: self.storage.unwrap_or_else(|| Arc::new(HeapStorage::new())),
                cardinality_limit: self.cardinality_limit,
                created_timestamps: self.created_timestamps,
                state: RwLock::new(State::new()),
            }),
        }
    }
}

/// Marks a [`MetricBuilder`] for a metric without labels.
#[derive(Debug)]
pub struct NoLabels;

/// Marks a [`MetricBuilder`] for a family with `N` label names.
#[derive(Debug)]
pub struct LabelNames<const N: usize>(Vec<Arc<str>>);

/// Describes a metric before it is registered; returned by [`Registry::counter`] and
/// its siblings.
#[must_use = "nothing is registered until .register() is called"]
pub struct MetricBuilder<'r, M: Metric, L = NoLabels> {
    pub(super) registry: &'r Registry,
    pub(super) name: String,
    pub(super) help: String,
    pub(super) unit: Option<String>,
    pub(super) limit: Option<usize>,
    pub(super) config: M::Config,
    pub(super) labels: L,
    pub(super) _metric: PhantomData<M>,
}

impl<M: Metric, L: fmt::Debug> fmt::Debug for MetricBuilder<'_, M, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricBuilder")
            .field("kind", &M::KIND)
            .field("name", &self.name)
            .field("labels", &self.labels)
            .finish()
    }
}

impl<'r, M: Metric, L> MetricBuilder<'r, M, L> {
    /// Sets the unit (for example `seconds`). The name must end with `_<unit>`
    /// (before `_total` for counters); OpenMetrics writes it on a `# UNIT` line.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// Overrides the registry's cardinality limit for this family.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

impl<'r, M: Metric> MetricBuilder<'r, M, NoLabels> {
    /// Gives the family label names; the result registers a [`Family`].
    pub fn labels<const N: usize>(self, names: [&str; N]) -> MetricBuilder<'r, M, LabelNames<N>> {
        MetricBuilder {
            registry: self.registry,
            name: self.name,
            help: self.help,
            unit: self.unit,
            limit: self.limit,
            config: self.config,
            labels: LabelNames(names.iter().map(|n| Arc::from(*n)).collect()),
            _metric: PhantomData,
        }
    }

    /// Registers a metric without labels and returns its handle.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] for an invalid name or unit, or a name already taken.
    pub fn register(self) -> Result<M, RegistryError> {
        let core = self.registry.register_family::<M>(
            self.name,
            self.help,
            self.unit,
            Vec::new(),
            self.config,
            self.limit,
        )?;
        Ok(core.get(&[]).clone())
    }
}

impl<M: Metric, const N: usize> MetricBuilder<'_, M, LabelNames<N>> {
    /// Registers the family.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] for an invalid name, unit or label name, a label the type
    /// reserves, or a name already taken.
    pub fn register(self) -> Result<Family<M, N>, RegistryError> {
        let core = self.registry.register_family::<M>(
            self.name,
            self.help,
            self.unit,
            self.labels.0,
            self.config,
            self.limit,
        )?;
        Ok(Family::new(core))
    }
}

impl<L> MetricBuilder<'_, Counter, L> {
    /// Keeps the latest exemplar of each series (see
    /// [`Counter::inc_by_with_exemplar`]); written in OpenMetrics only.
    pub fn exemplars(mut self) -> Self {
        self.config.exemplars = true;
        self
    }
}

impl<L> MetricBuilder<'_, Gauge, L> {
    /// How a multiprocess aggregator combines this gauge across processes;
    /// [`GaugeMode::All`] (one series per process) unless set. The most-recent modes
    /// also record when each write happened, which costs a clock read per write.
    pub fn multiprocess_mode(mut self, mode: GaugeMode) -> Self {
        self.config.mode = mode;
        self
    }
}

impl<L> MetricBuilder<'_, Histogram, L> {
    /// Sets the bucket bounds; [`Buckets::DEFAULT`] unless set.
    pub fn buckets(mut self, buckets: Buckets) -> Self {
        self.config.buckets = buckets;
        self
    }

    /// Keeps the latest exemplar of each bucket (see
    /// [`Histogram::observe_with_exemplar`]); written in OpenMetrics only.
    pub fn exemplars(mut self) -> Self {
        self.config.exemplars = true;
        self
    }

    /// Keeps native (sparse exponential) buckets too, beside the classic ones: the
    /// protobuf exposition carries both, and a Prometheus with native histograms enabled
    /// stores the native ones, whose quantiles merge exactly across processes and hosts;
    /// the text formats carry the classic ones.
    ///
    /// # Examples
    ///
    /// ```
    /// use herd_core::{NativeBuckets, Registry};
    /// let registry = Registry::new();
    /// let latency = registry
    ///     .histogram("request_duration_seconds", "Time per request.")
    ///     .native(NativeBuckets::default())
    ///     .register()?;
    /// latency.observe(0.042);
    /// assert_eq!(latency.count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn native(mut self, buckets: NativeBuckets) -> Self {
        self.config.native = Some(buckets);
        self.config.classic = true;
        self
    }

    /// Keeps native buckets and no classic ones: one increment fewer per observation,
    /// and the text formats show only the `+Inf` bucket, `_sum` and `_count`.
    pub fn native_only(mut self, buckets: NativeBuckets) -> Self {
        self.config.native = Some(buckets);
        self.config.classic = false;
        self
    }
}

impl<L> MetricBuilder<'_, Summary, L> {
    /// Sets the quantiles reported; [`Objectives::DEFAULT`] (0.5, 0.9, 0.99) unless set.
    /// [`Objectives::none`] keeps `_count` and `_sum` only.
    pub fn objectives(mut self, objectives: Objectives) -> Self {
        self.config.objectives = objectives;
        self
    }

    /// Sets the quantiles' sliding window; 10 minutes in 3 age buckets unless set.
    pub fn window(mut self, window: Window) -> Self {
        self.config.window = window;
        self
    }

    /// Reads time from `clock` instead of the coarse wall clock, for tests of the
    /// window. Every process of a service must use the same time for windows to merge.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config.clock = Some(clock);
        self
    }
}
