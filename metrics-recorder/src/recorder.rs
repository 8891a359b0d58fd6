//! The recorder: the facade's keys resolved to herd families and handles.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use herd_core::snapshot::FamilySnapshot;
use herd_core::{Collector, Family, Format, GaugeMode, MetricKind, Registry, RegistryError, Snapshot};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use parking_lot::{Mutex, RwLock};

use crate::config::{Builder, HistogramShape, Rules};
use crate::family::{self, AnyFamily, Fold, MAX_LABELS};
use crate::handles::{CounterHandle, GaugeHandle, HistogramHandle};
use crate::names::{label_name, metric_name, name_carries_unit, unit_name};
use crate::table::KeyTable;

/// Self-metric: facade calls that could not be recorded, by reason
/// (`herd_metrics_rejected_total{reason}`; every reason's series exists from the start,
/// at 0).
pub const REJECTED_METRIC: &str = "herd_metrics_rejected";

/// What a family registered before its description arrived carries as HELP, after the
/// facade name; [`Described`] replaces it once the description is known.
pub const UNDESCRIBED: &str = " (no description given)";

/// The separator of a family for a second label-name set of one name:
/// `<name>_by_<label>_<label>...`.
const BY: &str = "_by_";

/// Why a facade call was not recorded; the `reason` label of [`REJECTED_METRIC`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// The name maps to nothing (it is empty).
    InvalidName,
    /// The Prometheus name is taken by a family of another type, or by one of its
    /// sample names (a gauge `x_count` beside a histogram `x`).
    NameConflict,
    /// Two label keys map to one label name (`a.b` and `a_b`), or a key repeats.
    DuplicateLabel,
    /// More than [`MAX_LABELS`] labels.
    TooManyLabels,
}

impl Reason {
    const ALL: [Reason; 4] =
        [Self::InvalidName, Self::NameConflict, Self::DuplicateLabel, Self::TooManyLabels];

    fn label(self) -> &'static str {
        match self {
            Self::InvalidName => "invalid_name",
            Self::NameConflict => "name_conflict",
            Self::DuplicateLabel => "duplicate_label",
            Self::TooManyLabels => "too_many_labels",
        }
    }
}

/// The facade's three metric kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    /// Whether a family of herd type `kind` can be this facade kind's family.
    fn stored_as(self, kind: MetricKind) -> bool {
        matches!(
            (self, kind),
            (Self::Counter, MetricKind::Counter)
                | (Self::Gauge, MetricKind::Gauge)
                | (Self::Histogram, MetricKind::Histogram | MetricKind::Summary)
        )
    }

    /// The family name of facade name `name`, before the registry's prefix: counters
    /// lose a trailing `_total`, as herd names them.
    fn base_name(self, name: &str) -> String {
        let mut base = metric_name(name);
        if self == Self::Counter && base.ends_with("_total") && base.len() > "_total".len() {
            base.truncate(base.len() - "_total".len());
        }
        base
    }
}

/// A `metrics::Recorder` that records into a herd [`Registry`].
///
/// Cheap to clone: clones share everything. See the crate documentation for the
/// mapping rules.
#[derive(Clone)]
pub struct HerdRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    /// The registry's prefix with its `_`, learnt from the self-metric's family name.
    prefix: String,
    counters: KeyTable<Cached<Arc<CounterHandle>>>,
    gauges: KeyTable<Cached<Arc<GaugeHandle>>>,
    histograms: KeyTable<Cached<Arc<HistogramHandle>>>,
    resolver: Mutex<Resolver>,
    /// Descriptions by family name (prefix included), read at scrape time.
    help: RwLock<HashMap<String, Description>>,
    rejected: Family<herd_core::Counter, 1>,
    default_buckets: herd_core::Buckets,
    histogram_rules: Rules<HistogramShape>,
    gauge_modes: Rules<GaugeMode>,
    label_names: Rules<Vec<String>>,
}

#[derive(Debug, Clone)]
struct Description {
    kind: Kind,
    help: Arc<str>,
    unit: Option<&'static str>,
}

/// The registration path's state; only touched when a key is not cached.
#[derive(Default)]
struct Resolver {
    /// Families and descriptions by facade kind and family name (before the prefix).
    names: HashMap<(Kind, String), Vec<Variant>>,
    described: HashMap<(Kind, String), Description>,
}

/// What the key cache holds for a key: its handle, and for a key that herd folded
/// into a family's overflow series, the family's overflow count to bump at each use
/// (herd counts every lookup it folds; a cached key is still one).
#[derive(Clone)]
struct Cached<H> {
    handle: H,
    fold: Option<Arc<dyn Fold>>,
}

impl<H> Cached<H> {
    #[inline]
    fn get(&self) -> &H {
        if let Some(fold) = &self.fold {
            fold.fold();
        }
        &self.handle
    }
}

/// One family of a facade name: for one label-name set, or a declared superset.
struct Variant {
    /// Facade label names (mapped), in the family's order.
    names: Vec<String>,
    family: Result<Bound, Reason>,
    /// Handles by label values, so that every key reaching a series shares one handle
    /// (and one `absolute` baseline).
    series: HashMap<Vec<String>, Handle>,
    /// The handle of the family's overflow series, once reached.
    overflow: Option<Handle>,
}

/// A registered family and its overflow count.
type Bound = (Fam, Arc<dyn Fold>);

enum Fam {
    Counter(Box<dyn AnyFamily<herd_core::Counter>>),
    Gauge(Box<dyn AnyFamily<herd_core::Gauge>>),
    Histogram(Box<dyn AnyFamily<herd_core::Histogram>>),
    Summary(Box<dyn AnyFamily<herd_core::Summary>>),
}

impl Fam {
    fn overflowed(&self) -> u64 {
        match self {
            Self::Counter(f) => f.overflowed(),
            Self::Gauge(f) => f.overflowed(),
            Self::Histogram(f) => f.overflowed(),
            Self::Summary(f) => f.overflowed(),
        }
    }

    fn handle(&self, values: &[&str]) -> Option<Handle> {
        Some(match self {
            Self::Counter(f) => Handle::Counter(Arc::new(CounterHandle::new(f.get(values)?.clone()))),
            Self::Gauge(f) => Handle::Gauge(Arc::new(GaugeHandle(f.get(values)?.clone()))),
            Self::Histogram(f) => {
                Handle::Histogram(Arc::new(HistogramHandle::Histogram(f.get(values)?.clone())))
            }
            Self::Summary(f) => Handle::Histogram(Arc::new(HistogramHandle::Summary(f.get(values)?.clone()))),
        })
    }
}

#[derive(Clone)]
enum Handle {
    Counter(Arc<CounterHandle>),
    Gauge(Arc<GaugeHandle>),
    Histogram(Arc<HistogramHandle>),
}

/// What the registration path found for a key.
struct Resolved {
    handle: Handle,
    /// For a key folded into the overflow series: the family's overflow count.
    fold: Option<Arc<dyn Fold>>,
}

impl fmt::Debug for HerdRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HerdRecorder")
            .field("registry", &self.inner.registry)
            .field("cached_counters", &self.inner.counters.len())
            .field("cached_gauges", &self.inner.gauges.len())
            .field("cached_histograms", &self.inner.histograms.len())
            .finish()
    }
}

/// The global recorder was already set (by herd-metrics or any other recorder).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstallError;

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a global metrics recorder is already installed")
    }
}

impl std::error::Error for InstallError {}

impl HerdRecorder {
    /// Settings for a recorder over `registry` (which decides storage, prefix, constant
    /// labels and the cardinality limit).
    pub fn builder(registry: Registry) -> Builder {
        Builder::new(registry)
    }

    /// A recorder over `registry` with default settings.
    ///
    /// # Errors
    ///
    /// As [`Builder::build`].
    pub fn new(registry: Registry) -> Result<Self, RegistryError> {
        Self::builder(registry).build()
    }

    pub(crate) fn from_builder(b: Builder) -> Result<Self, RegistryError> {
        let rejected = b
            .registry
            .counter(REJECTED_METRIC, "Facade metric calls that could not be recorded, by reason.")
            .labels(["reason"])
            .register()?;
        for reason in Reason::ALL {
            // Created at 0, so /metrics shows the series before anything goes wrong.
            let _ = rejected.with_labels([reason.label()]);
        }
        let prefix = rejected.desc().name.strip_suffix(REJECTED_METRIC).unwrap_or_default().to_owned();
        Ok(Self {
            inner: Arc::new(Inner {
                registry: b.registry,
                prefix,
                counters: KeyTable::new(b.max_cached_keys),
                gauges: KeyTable::new(b.max_cached_keys),
                histograms: KeyTable::new(b.max_cached_keys),
                resolver: Mutex::new(Resolver::default()),
                help: RwLock::new(HashMap::new()),
                rejected,
                default_buckets: b.default_buckets,
                histogram_rules: b.histograms,
                gauge_modes: b.gauge_modes,
                label_names: b.label_names,
            }),
        })
    }

    /// Installs a clone of this recorder as the process's global recorder; keep `self`
    /// to read what it records. In a pre-fork server, install it in the master before
    /// forking: the workers inherit it.
    ///
    /// # Errors
    ///
    /// [`InstallError`] if a global recorder is already set; nothing changes then.
    pub fn install(&self) -> Result<(), InstallError> {
        metrics::set_global_recorder(self.clone()).map_err(|_| InstallError)
    }

    /// The registry the recorder writes into.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The registry's snapshot, with descriptions that arrived after first use filled
    /// in.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.inner.registry.snapshot();
        for family in &mut snapshot.families {
            self.inner.describe_family(family);
        }
        snapshot
    }

    /// [`snapshot`](Self::snapshot) encoded in `format`.
    pub fn encode(&self, format: Format) -> Vec<u8> {
        let mut out = Vec::new();
        herd_core::encode(&self.snapshot(), format, &mut out);
        out
    }

    /// The registry as a [`Collector`] with late descriptions filled in: what to serve
    /// on `/metrics` in a single process (herd-axum's `MetricsHandler::from_collector`).
    pub fn collector(&self) -> Described<RegistryCollector> {
        self.describing(RegistryCollector(self.inner.registry.clone()))
    }

    /// `inner` (herd-mmap's `Aggregator`, say) with this recorder's descriptions filled
    /// into the families that lack them: what to serve in multi-process mode.
    pub fn describing<C: Collector>(&self, inner: C) -> Described<C> {
        Described { inner, recorder: self.clone() }
    }

    fn describe(&self, kind: Kind, name: &KeyName, unit: Option<Unit>, help: &SharedString) {
        let base = kind.base_name(name.as_str());
        if base.is_empty() {
            return;
        }
        let description =
            Description { kind, help: Arc::from(help.as_ref()), unit: unit.and_then(unit_name) };
        // The first description of a name wins, as with metrics-exporter-prometheus.
        self.inner.resolver.lock().described.entry((kind, base.clone())).or_insert(description.clone());
        self.inner.help.write().entry(format!("{}{base}", self.inner.prefix)).or_insert(description);
    }

    #[cold]
    fn resolve_counter(&self, key: &Key) -> Counter {
        match self.inner.resolve(Kind::Counter, key) {
            Some(Resolved { handle: Handle::Counter(handle), fold }) => {
                Counter::from_arc(self.inner.counters.insert(key, Cached { handle, fold }).handle)
            }
            _ => Counter::noop(),
        }
    }

    #[cold]
    fn resolve_gauge(&self, key: &Key) -> Gauge {
        match self.inner.resolve(Kind::Gauge, key) {
            Some(Resolved { handle: Handle::Gauge(handle), fold }) => {
                Gauge::from_arc(self.inner.gauges.insert(key, Cached { handle, fold }).handle)
            }
            _ => Gauge::noop(),
        }
    }

    #[cold]
    fn resolve_histogram(&self, key: &Key) -> Histogram {
        match self.inner.resolve(Kind::Histogram, key) {
            Some(Resolved { handle: Handle::Histogram(handle), fold }) => {
                Histogram::from_arc(self.inner.histograms.insert(key, Cached { handle, fold }).handle)
            }
            _ => Histogram::noop(),
        }
    }
}

impl Inner {
    fn reject(&self, reason: Reason) {
        self.rejected.with_labels([reason.label()]).inc();
    }

    /// Finds or creates the family and series of `key`; `None` (counted) when the key
    /// cannot be recorded.
    fn resolve(&self, kind: Kind, key: &Key) -> Option<Resolved> {
        let found = self.resolve_locked(kind, key);
        if let Err(reason) = &found {
            self.reject(*reason);
        }
        found.ok()
    }

    fn resolve_locked(&self, kind: Kind, key: &Key) -> Result<Resolved, Reason> {
        let mut labels: Vec<(String, &str)> =
            key.labels().map(|l| (label_name(l.key()), l.value())).collect();
        if labels.len() > MAX_LABELS {
            return Err(Reason::TooManyLabels);
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        if labels.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(Reason::DuplicateLabel);
        }
        let base = kind.base_name(key.name());
        if base.is_empty() {
            return Err(Reason::InvalidName);
        }
        let mut resolver = self.resolver.lock();
        let resolver = &mut *resolver;
        // Keyed by the Prometheus name: facade names that map to one (`jobs` and
        // `jobs_total`, `a.b` and `a_b`) share its families.
        let id = (kind, base);
        let description = resolver.described.get(&id).cloned();
        let variants = resolver.names.entry(id).or_default();
        let i = match find_variant(variants, &labels) {
            Some(i) => i,
            None => {
                let first = variants.is_empty();
                variants.push(self.new_variant(kind, key.name(), &labels, first, description));
                variants.len() - 1
            }
        };
        let variant = &mut variants[i];
        let (family, fold) = variant.family.as_ref().map_err(|r| *r)?;
        let values: Vec<&str> = variant
            .names
            .iter()
            .map(|n| labels.iter().find(|(l, _)| l == n).map_or("", |(_, v)| *v))
            .collect();
        // Only this path (under the resolver's lock) looks series up in the recorder's
        // families, so a change of the overflow count is this lookup's.
        let before = family.overflowed();
        let handle = family.handle(&values).ok_or(Reason::TooManyLabels)?;
        if family.overflowed() != before {
            let handle = variant.overflow.get_or_insert(handle).clone();
            return Ok(Resolved { handle, fold: Some(fold.clone()) });
        }
        let owned = values.iter().map(|v| (*v).to_owned()).collect();
        let handle = variant.series.entry(owned).or_insert(handle).clone();
        Ok(Resolved { handle, fold: None })
    }

    fn new_variant(
        &self,
        kind: Kind,
        facade: &str,
        labels: &[(String, &str)],
        first: bool,
        description: Option<Description>,
    ) -> Variant {
        let declared = self.label_names.find(facade).map(|d| {
            let mut names: Vec<String> = Vec::with_capacity(d.len());
            for n in d.iter().map(|n| label_name(n)) {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
            names
        });
        let names = match declared {
            Some(d) if labels.iter().all(|(l, _)| d.contains(l)) => d,
            _ => labels.iter().map(|(l, _)| l.clone()).collect(),
        };
        let base = kind.base_name(facade);
        let name = if first { base } else { format!("{base}{BY}{}", names.join("_")) };
        let family = self.register(kind, facade, &name, &names, description);
        Variant { names, family, series: HashMap::new(), overflow: None }
    }

    /// Registers the family `name` with label `names`; a label name the registry
    /// reserves (`le`, `quantile`, `pid`, a constant label) is renamed `exported_<name>`.
    fn register(
        &self,
        kind: Kind,
        facade: &str,
        name: &str,
        names: &[String],
        description: Option<Description>,
    ) -> Result<Bound, Reason> {
        let help = match &description {
            Some(d) => d.help.to_string(),
            None => format!("{facade}{UNDESCRIBED}"),
        };
        let unit = description.and_then(|d| d.unit).filter(|u| name_carries_unit(name, u));
        let mut names: Vec<String> = names.to_vec();
        for _ in 0..=names.len() {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            match self.register_once(kind, facade, name, &help, unit, &refs) {
                Some(Ok(family)) => return Ok(family),
                Some(Err(RegistryError::ReservedLabel { label, .. })) => {
                    match names.iter_mut().find(|n| **n == label) {
                        Some(n) => *n = format!("exported_{label}"),
                        None => return Err(Reason::NameConflict),
                    }
                }
                Some(Err(RegistryError::AlreadyRegistered { .. })) => return Err(Reason::NameConflict),
                Some(Err(RegistryError::Name(herd_core::labels::NameError::DuplicateLabelName(_)))) => {
                    return Err(Reason::DuplicateLabel)
                }
                Some(Err(_)) => return Err(Reason::InvalidName),
                None => return Err(Reason::TooManyLabels),
            }
        }
        Err(Reason::NameConflict)
    }

    fn register_once(
        &self,
        kind: Kind,
        facade: &str,
        name: &str,
        help: &str,
        unit: Option<&str>,
        names: &[&str],
    ) -> Option<Result<Bound, RegistryError>> {
        let r = &self.registry;
        macro_rules! with_unit {
            ($b:expr) => {
                match unit {
                    Some(u) => $b.unit(u),
                    None => $b,
                }
            };
        }
        match kind {
            Kind::Counter => family::register(with_unit!(r.counter(name, help)), names)
                .map(|f| f.map(|r| (Fam::Counter(r.family), r.fold))),
            Kind::Gauge => {
                let mode = self.gauge_modes.find(facade).copied().unwrap_or_default();
                family::register(with_unit!(r.gauge(name, help).multiprocess_mode(mode)), names)
                    .map(|f| f.map(|r| (Fam::Gauge(r.family), r.fold)))
            }
            Kind::Histogram => match self.histogram_rules.find(facade) {
                Some(HistogramShape::Summary(objectives)) => {
                    family::register(with_unit!(r.summary(name, help).objectives(objectives.clone())), names)
                        .map(|f| f.map(|r| (Fam::Summary(r.family), r.fold)))
                }
                shape => {
                    let buckets = match shape {
                        Some(HistogramShape::Buckets(b)) => b.clone(),
                        _ => self.default_buckets.clone(),
                    };
                    let builder = r.histogram(name, help).buckets(buckets);
                    let builder = match shape {
                        Some(HistogramShape::Native(native)) => builder.native(*native),
                        _ => builder,
                    };
                    family::register(with_unit!(builder), names)
                        .map(|f| f.map(|r| (Fam::Histogram(r.family), r.fold)))
                }
            },
        }
    }

    /// Fills in the HELP (and UNIT, where the name carries it) of a family registered
    /// before its description arrived.
    fn describe_family(&self, family: &mut FamilySnapshot) {
        let help = self.help.read();
        let name = &*family.name;
        let found = help.get(name).or_else(|| {
            // A family for a second label-name set: `<name>_by_<labels>`.
            name.match_indices(BY).find_map(|(at, _)| help.get(&name[..at]))
        });
        let Some(d) = found.filter(|d| d.kind.stored_as(family.kind)) else { return };
        if family.help.is_empty() || family.help.ends_with(UNDESCRIBED) {
            family.help = d.help.clone();
        }
        if family.unit.is_none() {
            family.unit = d.unit.filter(|u| name_carries_unit(name, u)).map(Arc::from);
        }
    }
}

/// The variant a call with `labels` (sorted by name) records into: the one with
/// exactly these label names, else the first (working) one whose names include them.
fn find_variant(variants: &[Variant], labels: &[(String, &str)]) -> Option<usize> {
    let covers = |v: &Variant| labels.iter().all(|(l, _)| v.names.contains(l));
    variants
        .iter()
        .position(|v| v.names.len() == labels.len() && covers(v))
        .or_else(|| variants.iter().position(|v| v.family.is_ok() && covers(v)))
}

impl Recorder for HerdRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(Kind::Counter, &key, unit, &description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(Kind::Gauge, &key, unit, &description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(Kind::Histogram, &key, unit, &description);
    }

    #[inline]
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        match self.inner.counters.get(key) {
            Some(cached) => Counter::from_arc(cached.get().clone()),
            None => self.resolve_counter(key),
        }
    }

    #[inline]
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        match self.inner.gauges.get(key) {
            Some(cached) => Gauge::from_arc(cached.get().clone()),
            None => self.resolve_gauge(key),
        }
    }

    #[inline]
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        match self.inner.histograms.get(key) {
            Some(cached) => Histogram::from_arc(cached.get().clone()),
            None => self.resolve_histogram(key),
        }
    }
}

/// A [`Registry`] as a [`Collector`]: its snapshot's families.
#[derive(Debug, Clone)]
pub struct RegistryCollector(pub Registry);

impl Collector for RegistryCollector {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        out.extend(self.0.snapshot().families);
    }
}

/// A collector whose families get the recorder's descriptions where they lack them;
/// made by [`HerdRecorder::describing`] and [`HerdRecorder::collector`].
#[derive(Debug, Clone)]
pub struct Described<C> {
    inner: C,
    recorder: HerdRecorder,
}

impl<C> Described<C> {
    /// The wrapped collector.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }
}

impl<C: Collector> Collector for Described<C> {
    fn collect(&self, out: &mut Vec<FamilySnapshot>) {
        let start = out.len();
        self.inner.collect(out);
        for family in &mut out[start..] {
            self.recorder.inner.describe_family(family);
        }
    }
}
