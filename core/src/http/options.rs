//! [`RedOptions`]: how [`RedMetrics`](super::RedMetrics) registers its families, and
//! the default buckets.

use std::fmt;
use std::sync::Arc;

use super::names::Preset;
#[cfg(doc)]
use super::UNMATCHED_ROUTE;
#[cfg(doc)]
use crate::family::Family;
use crate::family::DEFAULT_CARDINALITY_LIMIT;
use crate::metrics::Buckets;
use crate::observe::Observer;

/// The bucket bounds of request durations, in seconds: the advice of OpenTelemetry's
/// `http.server.request.duration`.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The bucket bounds of body sizes, in bytes: powers of 4 from 64 B to 16 MiB.
pub const BODY_SIZE_BUCKETS: [f64; 10] =
    [64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262_144.0, 1_048_576.0, 4_194_304.0, 16_777_216.0];

/// How [`RedMetrics`](super::RedMetrics) registers its families.
#[derive(Clone)]
#[must_use]
pub struct RedOptions {
    pub(super) prefix: Option<String>,
    pub(super) preset: Preset,
    pub(super) duration_buckets: Option<Buckets>,
    pub(super) size_buckets: Option<Buckets>,
    pub(super) body_sizes: bool,
    pub(super) time_to_headers: bool,
    pub(super) excluded: Vec<Box<str>>,
    pub(super) cardinality_limit: usize,
    pub(super) observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for RedOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedOptions")
            .field("prefix", &self.prefix)
            .field("preset", &self.preset)
            .field("duration_buckets", &self.duration_buckets)
            .field("size_buckets", &self.size_buckets)
            .field("body_sizes", &self.body_sizes)
            .field("time_to_headers", &self.time_to_headers)
            .field("excluded", &self.excluded)
            .field("cardinality_limit", &self.cardinality_limit)
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl Default for RedOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl RedOptions {
    /// The defaults: Prometheus names, no prefix, [`DURATION_BUCKETS`], no body-size or
    /// time-to-headers histograms, no route excluded, a cardinality limit of 2,000
    /// series per family, no observer.
    pub fn new() -> Self {
        Self {
            prefix: None,
            preset: Preset::Prometheus,
            duration_buckets: None,
            size_buckets: None,
            body_sizes: false,
            time_to_headers: false,
            excluded: Vec::new(),
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            observer: None,
        }
    }

    /// Prepends `prefix_` to every family name (after the registry's own prefix).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The names to use; [`Preset::Prometheus`] unless set.
    pub fn preset(mut self, preset: Preset) -> Self {
        self.preset = preset;
        self
    }

    /// Bucket bounds of the duration and time-to-headers histograms, in seconds;
    /// [`DURATION_BUCKETS`] unless set.
    pub fn duration_buckets(mut self, buckets: Buckets) -> Self {
        self.duration_buckets = Some(buckets);
        self
    }

    /// Bucket bounds of the body-size histograms, in bytes; [`BODY_SIZE_BUCKETS`]
    /// unless set.
    pub fn size_buckets(mut self, buckets: Buckets) -> Self {
        self.size_buckets = Some(buckets);
        self
    }

    /// Records request and response body sizes in two histograms. Off by default.
    pub fn body_sizes(mut self, on: bool) -> Self {
        self.body_sizes = on;
        self
    }

    /// Records the time until the response headers were ready, beside the time until
    /// the body ended. Off by default.
    pub fn time_to_headers(mut self, on: bool) -> Self {
        self.time_to_headers = on;
        self
    }

    /// Records nothing for requests to this route template (for example `/metrics` or
    /// `/health`). [`UNMATCHED_ROUTE`] may be excluded too.
    pub fn exclude_route(mut self, route: impl Into<String>) -> Self {
        self.excluded.push(route.into().into_boxed_str());
        self
    }

    /// Series per family before new label sets fold into the family's overflow series
    /// (see [`Family`]); 2,000 unless set. Applies to every RED family, whatever the
    /// registry's default.
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit;
        self
    }

    /// Reports every update to `observer` as well (see [`Observer`]): a push sender
    /// such as herd-statsd mirrors the same series.
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }
}

pub(super) fn buckets(bounds: &[f64]) -> Buckets {
    // The presets are finite and increasing; the default is only a fallback for the
    // impossible.
    Buckets::new(bounds.iter().copied()).unwrap_or_default()
}
