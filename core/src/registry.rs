//! The registry: where families are registered and snapshots are taken.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::clock::Clock;
use crate::desc::{FamilyDesc, GaugeMode, MetricKind};
use crate::encode::{encode, Format};
use crate::error::RegistryError;
use crate::family::{Family, FamilyCore, FamilyParams, Health, DEFAULT_CARDINALITY_LIMIT};
use crate::labels::{validate_label_name, validate_metric_name, LabelSet, NameError};
use crate::metrics::counter::CounterConfig;
use crate::metrics::gauge::GaugeConfig;
use crate::metrics::histogram::HistogramConfig;
use crate::metrics::summary::SummaryConfig;
use crate::metrics::{Buckets, Counter, Gauge, Histogram, Metric, Objectives, Summary, Window};
use crate::snapshot::{CounterValue, FamilySnapshot, SeriesSnapshot, SeriesValue, Snapshot};
use crate::storage::{HeapStorage, Storage};

/// Produces families for a snapshot: the registry's own families, callback metrics, or
/// anything else that can report values (a directory of worker files, say).
pub trait Collector: Send + Sync + 'static {
    /// Appends this collector's families to `out`.
    fn collect(&self, out: &mut Vec<FamilySnapshot>);

    /// Like [`collect`](Collector::collect), but says when the collector could not
    /// read its source at all (a metrics directory that cannot be listed, say), so that
    /// a `/metrics` endpoint answers with an error rather than a body that silently
    /// lacks series. A partial read that the collector reports in its own families is
    /// not an error. By default, `collect` and `Ok`.
    ///
    /// # Errors
    ///
    /// [`CollectError`] saying, in one line, why nothing could be collected.
    fn try_collect(&self, out: &mut Vec<FamilySnapshot>) -> Result<(), CollectError> {
        self.collect(out);
        Ok(())
    }
}

/// Why a [`Collector`] could not collect anything: one line, for a scrape's error
/// response and a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectError {
    message: String,
}

impl CollectError {
    /// An error with this one-line message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into().replace(['\n', '\r'], " ") }
    }
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CollectError {}

/// Self-metric: lookups folded into a family's overflow series.
pub const OVERFLOW_METRIC: &str = "herd_cardinality_overflow";
/// Self-metric: series whose storage failed and that fell back to private cells.
pub const STORAGE_ERRORS_METRIC: &str = "herd_storage_errors";

/// The self-metric families' cap: one series per family of a registry.
const HEALTH_CARDINALITY_LIMIT: usize = 4096;

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
    // Every family name and sample name, mapped to the family that owns it.
    names: HashMap<String, (String, MetricKind)>,
    collectors: Vec<Arc<dyn Collector>>,
    /// The self-metric families, registered with the first family (`None` until then,
    /// and if their names were taken).
    health: Option<HealthFamilies>,
}

/// `herd_cardinality_overflow` and `herd_storage_errors`: counter families like any
/// other, in this registry's storage, with a series per family of the registry. So in
/// multi-process mode they are in every process's file and the aggregate sums them.
struct HealthFamilies {
    overflowed: Arc<FamilyCore<Counter>>,
    storage_errors: Arc<FamilyCore<Counter>>,
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

/// Settings for a [`Registry`].
#[derive(Debug)]
#[must_use]
pub struct RegistryBuilder {
    prefix: Option<String>,
    const_labels: Vec<(String, String)>,
    storage: Option<Arc<dyn Storage>>,
    cardinality_limit: usize,
    created_timestamps: bool,
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
    fn assemble(self, const_labels: Arc<[(Arc<str>, Box<str>)]>) -> Registry {
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

impl State {
    /// An empty state in which the self-metrics' names are already taken.
    fn new() -> Self {
        let mut names = HashMap::new();
        for name in [OVERFLOW_METRIC, STORAGE_ERRORS_METRIC] {
            for n in owned_names(name, MetricKind::Counter) {
                names.insert(n, (name.to_owned(), MetricKind::Counter));
            }
        }
        Self { names, collectors: Vec::new(), health: None }
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
    registry: &'r Registry,
    name: String,
    help: String,
    unit: Option<String>,
    limit: Option<usize>,
    config: M::Config,
    labels: L,
    _metric: PhantomData<M>,
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

    /// Adds a collector whose families appear in every snapshot. Its names are not
    /// checked against the registry's: the collector owns them.
    pub fn register_collector(&self, collector: Arc<dyn Collector>) {
        self.inner.state.write().collectors.push(collector);
    }

    /// Reads every family and collector, with families sorted by name.
    pub fn snapshot(&self) -> Snapshot {
        let state = self.inner.state.read();
        let mut families = Vec::with_capacity(state.collectors.len() + 2);
        for c in &state.collectors {
            c.collect(&mut families);
        }
        drop(state);
        let mut snapshot = Snapshot { families };
        snapshot.sort();
        snapshot
    }

    /// A snapshot encoded in `format`.
    pub fn encode(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&self.snapshot(), format, &mut out);
        out
    }

    /// The family name a registration of `name` gets (the registry's prefix added, a
    /// counter's `_total` removed: its samples add it back), checked; and the name as
    /// registered (prefix added, nothing removed), which is what errors echo.
    fn family_name(&self, name: &str, kind: MetricKind) -> Result<(String, String), RegistryError> {
        let shown = match &self.inner.prefix {
            Some(p) => format!("{p}_{name}"),
            None => name.to_owned(),
        };
        validate_metric_name(&shown)?;
        let mut full = shown.clone();
        if kind == MetricKind::Counter && full.ends_with("_total") {
            full.truncate(full.len() - "_total".len());
        }
        validate_metric_name(&full)?;
        Ok((full, shown))
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
        reserve(&mut state, &full, &shown, kind)?;
        let labels = Arc::new(LabelSet::from_validated(self.inner.const_labels.to_vec()));
        let name: Arc<str> = full.into();
        let help: Arc<str> = help.into();
        state.collectors.push(Arc::new(Callback { name, help, kind, labels, read }));
        Ok(())
    }

    fn register_family<M: Metric>(
        &self,
        name: String,
        help: String,
        unit: Option<String>,
        label_names: Vec<Arc<str>>,
        config: M::Config,
        limit: Option<usize>,
    ) -> Result<Arc<FamilyCore<M>>, RegistryError> {
        let (full, shown) = self.family_name(&name, M::KIND)?;
        self.check_labels::<M>(&shown, &label_names, M::gauge_mode(&config))?;
        if let Some(unit) = &unit {
            let valid = !unit.is_empty()
                && unit.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid || !full.ends_with(&format!("_{unit}")) {
                return Err(RegistryError::Unit { name: shown, unit: unit.clone() });
            }
        }
        let limit = limit.unwrap_or(self.inner.cardinality_limit);
        if limit == 0 {
            return Err(RegistryError::ZeroCardinalityLimit { name: shown });
        }
        let desc = describe::<M>(&full, help, unit, label_names, &config);
        let mut state = self.inner.state.write();
        reserve(&mut state, &full, &shown, M::KIND)?;
        if let Err(e) = self.inner.storage.add_family(&desc) {
            unreserve(&mut state, &full, M::KIND);
            return Err(RegistryError::Storage(e));
        }
        let health = self.health_of(&mut state, &full);
        let core = self.family_core(desc, config, limit, health);
        state.collectors.push(core.clone());
        Ok(core)
    }

    fn family_core<M: Metric>(
        &self,
        desc: Arc<FamilyDesc>,
        config: M::Config,
        limit: usize,
        health: Health,
    ) -> Arc<FamilyCore<M>> {
        Arc::new(FamilyCore::new(FamilyParams {
            desc,
            config,
            const_labels: self.inner.const_labels.clone(),
            storage: self.inner.storage.clone(),
            limit,
            created_timestamps: self.inner.created_timestamps,
            health,
        }))
    }

    /// The self-metric series of the family `name`, made now, at 0: in storage before
    /// anything can go wrong (a full disk later can still be counted), and at 0 so that
    /// `increase()` sees the first overflow.
    fn health_of(&self, state: &mut State, name: &str) -> Health {
        if state.health.is_none() {
            state.health = self.health_families(state);
        }
        match &state.health {
            Some(h) => Health {
                overflowed: h.overflowed.get(&[name]).clone(),
                storage_errors: h.storage_errors.get(&[name]).clone(),
            },
            None => Health::private(),
        }
    }

    /// Registers the two self-metric families (their names are reserved from the
    /// start); `None` if the storage refuses them, and the counts stay in memory.
    fn health_families(&self, state: &mut State) -> Option<HealthFamilies> {
        let mut family = |name: &str, help: &str| {
            let config = CounterConfig::default();
            let desc = describe::<Counter>(name, help.into(), None, vec![Arc::from("family")], &config);
            self.inner.storage.add_family(&desc).ok()?;
            // One series per family of the registry: a cap no registry reaches.
            let core = self.family_core(desc, config, HEALTH_CARDINALITY_LIMIT, Health::private());
            state.collectors.push(core.clone());
            Some(core)
        };
        Some(HealthFamilies {
            overflowed: family(
                OVERFLOW_METRIC,
                "Label-set lookups folded into the overflow series because a family reached its cardinality limit.",
            )?,
            storage_errors: family(
                STORAGE_ERRORS_METRIC,
                "Series whose storage failed to provide cells; their values stay in this process only.",
            )?,
        })
    }

    fn check_labels<M: Metric>(
        &self,
        name: &str,
        labels: &[Arc<str>],
        mode: GaugeMode,
    ) -> Result<(), RegistryError> {
        let reserved = match M::KIND {
            MetricKind::Histogram => Some(("le", "is reserved for histogram buckets")),
            MetricKind::Summary => Some(("quantile", "is reserved for summary quantiles")),
            MetricKind::Gauge if mode.per_process() => {
                Some(("pid", "is added by multiprocess aggregation in this gauge mode"))
            }
            _ => None,
        };
        for (i, label) in labels.iter().enumerate() {
            validate_label_name(label)?;
            if labels[..i].contains(label) {
                return Err(NameError::DuplicateLabelName(label.to_string()).into());
            }
            if let Some((word, reason)) = reserved.filter(|(w, _)| **label == **w) {
                return Err(RegistryError::ReservedLabel { name: name.into(), label: word.into(), reason });
            }
            if self.inner.const_labels.iter().any(|(n, _)| n == label) {
                return Err(RegistryError::ReservedLabel {
                    name: name.into(),
                    label: label.to_string(),
                    reason: "is already a constant label of the registry",
                });
            }
        }
        Ok(())
    }
}

impl FamilyDesc {
    /// A counter family without labels, for a storage that keeps counts of its own in
    /// its cells (herd-mmap's `herd_mmap_fork_file_failures`). `name` is the family name,
    /// without `_total`; it is not checked here.
    pub fn counter(name: &str, help: &str) -> Self {
        let desc = describe::<Counter>(name, help.into(), None, Vec::new(), &CounterConfig::default());
        Arc::unwrap_or_clone(desc)
    }
}

/// The description of a family of `M` named `name` (already full and checked).
fn describe<M: Metric>(
    name: &str,
    help: String,
    unit: Option<String>,
    label_names: Vec<Arc<str>>,
    config: &M::Config,
) -> Arc<FamilyDesc> {
    Arc::new(FamilyDesc {
        name: name.into(),
        help: help.into(),
        unit: unit.map(Into::into),
        kind: M::KIND,
        label_names: label_names.into(),
        buckets: M::buckets(config),
        gauge_mode: M::gauge_mode(config),
        summary: M::summary(config),
        cells_per_series: M::cell_count(config),
    })
}

/// The names a family owns: its own name and every sample name it writes. Two families
/// may share none of them, so that no parser can attribute a sample to the wrong family.
fn owned_names(name: &str, kind: MetricKind) -> BTreeSet<String> {
    std::iter::once(name.to_owned()).chain(kind.suffixes().iter().map(|s| format!("{name}{s}"))).collect()
}

/// Claims the names a family of `kind` called `name` owns, or says who owns one already.
/// Takes every name the family `name` writes; `shown` is the name as registered, which
/// messages echo, then and when a later registration collides with this one.
fn reserve(state: &mut State, name: &str, shown: &str, kind: MetricKind) -> Result<(), RegistryError> {
    let names = owned_names(name, kind);
    if let Some((sample, (existing, existing_kind))) =
        names.iter().find_map(|n| state.names.get(n).map(|owner| (n, owner)))
    {
        return Err(RegistryError::AlreadyRegistered {
            name: shown.into(),
            sample: sample.clone(),
            existing: existing.clone(),
            existing_kind: *existing_kind,
        });
    }
    for n in names {
        state.names.insert(n, (shown.to_owned(), kind));
    }
    Ok(())
}

fn unreserve(state: &mut State, name: &str, kind: MetricKind) {
    for n in owned_names(name, kind) {
        state.names.remove(&n);
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
