//! Settings: which facade names get which buckets, summaries, gauge modes and label
//! names.

use herd_core::{Buckets, GaugeMode, NativeBuckets, Objectives, Registry};

use crate::recorder::HerdRecorder;

/// Selects facade names (as the code wrote them, before any renaming).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Matcher {
    /// The name, exactly.
    Full(String),
    /// Names starting with this.
    Prefix(String),
    /// Names ending with this.
    Suffix(String),
}

impl Matcher {
    /// Whether `name` is selected.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Full(m) => name == m,
            Self::Prefix(m) => name.starts_with(m.as_str()),
            Self::Suffix(m) => name.ends_with(m.as_str()),
        }
    }

    /// How specific the match is: a full name beats a prefix, which beats a suffix.
    fn rank(&self) -> u8 {
        match self {
            Self::Full(_) => 0,
            Self::Prefix(_) => 1,
            Self::Suffix(_) => 2,
        }
    }
}

/// Rules of one kind; the most specific match wins, and among equally specific ones
/// the first added.
#[derive(Debug, Clone)]
pub(crate) struct Rules<T>(Vec<(Matcher, T)>);

impl<T> Default for Rules<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T> Rules<T> {
    pub(crate) fn find(&self, name: &str) -> Option<&T> {
        self.0.iter().filter(|(m, _)| m.matches(name)).min_by_key(|(m, _)| m.rank()).map(|(_, t)| t)
    }
}

/// How a facade histogram is stored.
#[derive(Debug, Clone)]
pub(crate) enum HistogramShape {
    Buckets(Buckets),
    Summary(Objectives),
    Native(NativeBuckets),
}

/// Settings for a [`HerdRecorder`]; returned by [`HerdRecorder::builder`].
///
/// # Examples
///
/// ```
/// use herd_core::{Buckets, Registry};
/// use herd_metrics::{HerdRecorder, Matcher};
///
/// let recorder = HerdRecorder::builder(Registry::new())
///     .buckets(Matcher::Suffix("_seconds".into()), Buckets::new([0.01, 0.1, 1.0])?)
///     .summary(Matcher::Full("payload.size".into()), herd_core::Objectives::default())
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct Builder {
    pub(crate) registry: Registry,
    pub(crate) default_buckets: Buckets,
    pub(crate) histograms: Rules<HistogramShape>,
    pub(crate) gauge_modes: Rules<GaugeMode>,
    pub(crate) label_names: Rules<Vec<String>>,
    pub(crate) max_cached_keys: usize,
}

impl Builder {
    pub(crate) fn new(registry: Registry) -> Self {
        Self {
            registry,
            default_buckets: Buckets::default(),
            histograms: Rules::default(),
            gauge_modes: Rules::default(),
            label_names: Rules::default(),
            max_cached_keys: 1 << 15,
        }
    }

    /// The buckets of histograms no rule selects; [`Buckets::default()`] (Prometheus'
    /// default set) unless set.
    pub fn default_buckets(mut self, buckets: Buckets) -> Self {
        self.default_buckets = buckets;
        self
    }

    /// Histograms whose name `matcher` selects get these buckets.
    pub fn buckets(mut self, matcher: Matcher, buckets: Buckets) -> Self {
        self.histograms.0.push((matcher, HistogramShape::Buckets(buckets)));
        self
    }

    /// Histograms whose name `matcher` selects keep native (sparse exponential) buckets
    /// beside the default classic ones: a Prometheus scraping protobuf with native
    /// histograms enabled merges their quantiles exactly across processes and hosts
    /// (see herd-core's `NativeBuckets`); text scrapers read the classic buckets.
    pub fn native(mut self, matcher: Matcher, buckets: NativeBuckets) -> Self {
        self.histograms.0.push((matcher, HistogramShape::Native(buckets)));
        self
    }

    /// Histograms whose name `matcher` selects are kept as herd summaries with these
    /// quantiles: mergeable across processes, 2% relative error, a 10-minute window.
    pub fn summary(mut self, matcher: Matcher, objectives: Objectives) -> Self {
        self.histograms.0.push((matcher, HistogramShape::Summary(objectives)));
        self
    }

    /// Gauges whose name `matcher` selects are combined across processes this way
    /// (herd's default, [`GaugeMode::All`], keeps one series per process with a `pid`
    /// label).
    pub fn gauge_mode(mut self, matcher: Matcher, mode: GaugeMode) -> Self {
        self.gauge_modes.0.push((matcher, mode));
        self
    }

    /// Declares the label names that metrics selected by `matcher` may use, so that
    /// every label set of such a name lands in one family whatever order the code
    /// meets them in (labels a call does not give are written empty). Useful when one
    /// name is recorded with different label sets, above all in multi-process mode.
    pub fn label_names<I, S>(mut self, matcher: Matcher, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.label_names.0.push((matcher, names.into_iter().map(Into::into).collect()));
        self
    }

    /// How many distinct facade keys (name and labels) the lock-free cache keeps;
    /// 32,768 unless set. Keys past it still record, through the registration path.
    pub fn max_cached_keys(mut self, n: usize) -> Self {
        self.max_cached_keys = n;
        self
    }

    /// Builds the recorder; registers its self-metric in the registry.
    ///
    /// # Errors
    ///
    /// [`RegistryError`](herd_core::RegistryError) if the self-metric's name
    /// (`herd_metrics_rejected_total`) is taken.
    pub fn build(self) -> Result<HerdRecorder, herd_core::RegistryError> {
        HerdRecorder::from_builder(self)
    }
}
