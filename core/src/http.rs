//! RED metrics for HTTP servers: what herd's web adapters (herd-axum, herd-actix) share.
//!
//! Both adapters record the same families with the same names and labels, fold
//! unbounded inputs into the same fixed values, and resolve series through the same
//! cache, so one dashboard serves both and neither copies the other:
//!
//! - **Names** ([`Preset`], [`RedNames`]): Prometheus-style names by default
//!   (`http_requests_total`, `http_request_duration_seconds`, `http_requests_in_flight`,
//!   ...), or OpenTelemetry's semantic-convention names as Prometheus exports them
//!   (`http_server_request_duration_seconds{http_request_method,http_route,http_response_status_code}`).
//! - **Label values bounded by construction**: the route is the router's template, or
//!   [`UNMATCHED_ROUTE`] when no route matched, never the raw path; methods outside the
//!   nine of RFC 9110 fold into [`OTHER_METHOD`] ([`fold_method`]); the status is the
//!   numeric code from a static table ([`status_label`]).
//! - **Buckets** ([`DURATION_BUCKETS`], [`BODY_SIZE_BUCKETS`]).
//! - **`/metrics`** ([`MetricsSource`]): a registry or a collector (herd-mmap's
//!   aggregator), the format negotiated from `Accept`, gzip when `Accept-Encoding`
//!   allows; an adapter's handler only copies headers in and out.
//! - **[`RedMetrics`]** registers the families once and hands out a [`RequestTimer`]
//!   per request. The timer resolves its series through two lock-free, write-once
//!   tables (one keyed by method and route, looked up once per request; one keyed by
//!   that entry and the status), so that after the first request of a kind a request
//!   costs two table probes, two clock reads and a handful of atomic operations, and
//!   allocates nothing.
//!
//! # When a request is counted
//!
//! A request is counted, its duration observed and its in-flight series decremented
//! **once**, when the first of these happens:
//!
//! | what happened | `status` label | also |
//! | --- | --- | --- |
//! | the response body ended ([`RequestTimer::finish`]) | the response's code | |
//! | the response body was dropped before its end (the client went away) | the response's code | `http_requests_aborted_total` +1, unless the response has no content by definition (a `HEAD` request, 1xx, 204, 304) |
//! | the service returned an error instead of a response ([`RequestTimer::fail`]) | [`ERROR_STATUS`] | |
//! | the request was dropped before any response (cancelled, or a panic that unwound through the adapter) | [`CANCELLED_STATUS`] | |
//!
//! # Examples
//!
//! ```
//! use herd_core::http::{RedMetrics, RedOptions};
//! use herd_core::{Format, Registry};
//!
//! let registry = Registry::new();
//! let red = RedMetrics::register(&registry, RedOptions::new())?;
//!
//! // What an adapter does for each request:
//! let mut timer = red.start("GET", Some("/users/{id}"), None).ok_or("route excluded")?;
//! timer.headers(200);
//! timer.add_body_bytes(512);
//! timer.finish();
//!
//! // A scanner's probe and an extension method stay bounded:
//! let mut probe = red.start("PROPFIND", None, None).ok_or("route excluded")?;
//! probe.headers(404);
//! probe.finish();
//!
//! let text = String::from_utf8(registry.encode(Format::Text))?;
//! let counts: Vec<&str> = text.lines().filter(|l| l.starts_with("http_requests_total")).collect();
//! assert_eq!(counts, [
//!     r#"http_requests_total{method="GET",route="/users/{id}",status="200"} 1"#,
//!     r#"http_requests_total{method="_OTHER",route="unmatched",status="404"} 1"#,
//! ]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use once_cell::race::OnceBox;
use parking_lot::Mutex;

use crate::desc::GaugeMode;
use crate::error::RegistryError;
use crate::family::{Family, DEFAULT_CARDINALITY_LIMIT, MAX_CARDINALITY_LIMIT, OVERFLOW_LABEL_VALUE};
use crate::labels::LabelSet;
use crate::metrics::{Buckets, Counter, Gauge, Histogram};
use crate::observe::{Observer, SeriesObserver};
use crate::registry::Registry;

mod scrape;

pub use scrape::{accepts_gzip, MetricsSource, ScrapeResponse, SCRAPE_VARY};

/// The `route` of a request that matched no route (a 404, a scanner's probe): one fixed
/// value, so that random paths cannot create series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The `method` of a request whose method is not one of [`KNOWN_METHODS`], as
/// OpenTelemetry's semantic conventions spell it.
pub const OTHER_METHOD: &str = "_OTHER";

/// The methods recorded as themselves: those RFC 9110 defines, and PATCH (RFC 5789).
/// Matching is exact, since methods are case-sensitive: `get` is an extension method.
pub const KNOWN_METHODS: [&str; 9] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];

/// The `status` of a request whose service returned an error instead of a response.
pub const ERROR_STATUS: &str = "error";

/// The `status` of a request dropped before its service produced a response: the
/// connection closed first, an outer timeout fired, or a panic unwound through the
/// adapter.
pub const CANCELLED_STATUS: &str = "cancelled";

/// The `status` of a code outside 100–999, which no HTTP library lets a response carry.
pub const OTHER_STATUS: &str = "_OTHER";

/// The bucket bounds of request durations, in seconds: the advice of OpenTelemetry's
/// `http.server.request.duration`.
pub const DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The bucket bounds of body sizes, in bytes: powers of 4 from 64 B to 16 MiB.
pub const BODY_SIZE_BUCKETS: [f64; 10] =
    [64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262_144.0, 1_048_576.0, 4_194_304.0, 16_777_216.0];

/// The method label of `method`: itself if it is one of [`KNOWN_METHODS`], else
/// [`OTHER_METHOD`].
///
/// ```
/// use herd_core::http::fold_method;
/// assert_eq!(fold_method("PATCH"), "PATCH");
/// assert_eq!(fold_method("PROPFIND"), "_OTHER");
/// assert_eq!(fold_method("get"), "_OTHER");
/// ```
#[inline]
pub fn fold_method(method: &str) -> &'static str {
    METHOD_LABELS[method_index(method)]
}

/// [`KNOWN_METHODS`], then [`OTHER_METHOD`]: indexed by `method_index`.
const METHOD_LABELS: [&str; 10] =
    ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", OTHER_METHOD];
const HEAD_INDEX: u8 = 1;

#[inline]
fn method_index(method: &str) -> usize {
    KNOWN_METHODS.iter().position(|m| *m == method).unwrap_or(KNOWN_METHODS.len())
}

/// Every code from 100 to 999 as three ASCII digits, so that a status label is a slice
/// of a static, never a formatted string.
static STATUS_DIGITS: [u8; 2700] = {
    let mut out = [0u8; 2700];
    let mut i = 0;
    while i < 900 {
        let code = 100 + i;
        out[3 * i] = b'0' + (code / 100) as u8;
        out[3 * i + 1] = b'0' + (code / 10 % 10) as u8;
        out[3 * i + 2] = b'0' + (code % 10) as u8;
        i += 1;
    }
    out
};

/// The status label of a response code: its three digits, or [`OTHER_STATUS`] outside
/// 100–999. Never allocates.
///
/// ```
/// use herd_core::http::status_label;
/// assert_eq!(status_label(200), "200");
/// assert_eq!(status_label(599), "599");
/// assert_eq!(status_label(42), "_OTHER");
/// ```
#[inline]
pub fn status_label(code: u16) -> &'static str {
    if !(100..=999).contains(&code) {
        return OTHER_STATUS;
    }
    let i = usize::from(code - 100) * 3;
    STATUS_DIGITS.get(i..i + 3).and_then(|d| std::str::from_utf8(d).ok()).unwrap_or(OTHER_STATUS)
}

/// One family's name and HELP text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricSpec {
    /// The name as registered (a counter's with `_total`), before any prefix.
    pub name: &'static str,
    /// The HELP text.
    pub help: &'static str,
}

/// The names of every family and label a [`Preset`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedNames {
    /// Requests counted, by method, route and status; `None` in presets whose request
    /// count is the duration histogram's `_count`.
    pub requests: Option<MetricSpec>,
    /// Request duration histogram, by method, route and status.
    pub duration: MetricSpec,
    /// Requests in flight, by method and route.
    pub in_flight: MetricSpec,
    /// Responses whose body was dropped before its end, by method, route and status.
    pub aborted: MetricSpec,
    /// Request body sizes (optional), by method, route and status.
    pub request_size: MetricSpec,
    /// Response body sizes (optional), by method, route and status.
    pub response_size: MetricSpec,
    /// Time until the response headers (optional), by method, route and status.
    pub time_to_headers: MetricSpec,
    /// The label holding the method.
    pub method_label: &'static str,
    /// The label holding the route template.
    pub route_label: &'static str,
    /// The label holding the status.
    pub status_label: &'static str,
}

const HELP_REQUESTS: &str = "HTTP requests, by method, route template and response status; counted when the response body ends or is dropped.";
const HELP_DURATION: &str =
    "Time from a request's arrival until its response body ended or was dropped, in seconds.";
const HELP_IN_FLIGHT: &str = "HTTP requests received whose response body has not ended yet.";
const HELP_ABORTED: &str =
    "HTTP responses whose body was dropped before its end, usually because the client disconnected.";
const HELP_REQUEST_SIZE: &str =
    "Size of request bodies in bytes, when known before reading them (Content-Length).";
const HELP_RESPONSE_SIZE: &str = "Bytes of response body sent, until its end or until it was dropped.";
const HELP_TIME_TO_HEADERS: &str =
    "Time from a request's arrival until its response headers were ready, in seconds.";

/// Which names the families get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Preset {
    /// Prometheus-style names: `http_requests_total`, `http_request_duration_seconds`,
    /// `http_requests_in_flight`, `http_requests_aborted_total`,
    /// `http_request_size_bytes`, `http_response_size_bytes`,
    /// `http_time_to_headers_seconds`; labels `method`, `route`, `status`.
    #[default]
    Prometheus,
    /// OpenTelemetry's HTTP server semantic conventions as a Prometheus exporter names
    /// them: `http_server_request_duration_seconds`, `http_server_active_requests`,
    /// `http_server_request_body_size_bytes`, `http_server_response_body_size_bytes`;
    /// labels `http_request_method`, `http_route`, `http_response_status_code`. There
    /// is no request counter: the conventions count requests as the duration
    /// histogram's `_count`. The conventions define no aborted-response or
    /// time-to-headers metric; herd adds `http_server_requests_aborted_total` and
    /// `http_server_time_to_headers_seconds`.
    OpenTelemetry,
}

const PROMETHEUS_NAMES: RedNames = RedNames {
    requests: Some(MetricSpec { name: "http_requests_total", help: HELP_REQUESTS }),
    duration: MetricSpec { name: "http_request_duration_seconds", help: HELP_DURATION },
    in_flight: MetricSpec { name: "http_requests_in_flight", help: HELP_IN_FLIGHT },
    aborted: MetricSpec { name: "http_requests_aborted_total", help: HELP_ABORTED },
    request_size: MetricSpec { name: "http_request_size_bytes", help: HELP_REQUEST_SIZE },
    response_size: MetricSpec { name: "http_response_size_bytes", help: HELP_RESPONSE_SIZE },
    time_to_headers: MetricSpec { name: "http_time_to_headers_seconds", help: HELP_TIME_TO_HEADERS },
    method_label: "method",
    route_label: "route",
    status_label: "status",
};

const OPENTELEMETRY_NAMES: RedNames = RedNames {
    requests: None,
    duration: MetricSpec { name: "http_server_request_duration_seconds", help: HELP_DURATION },
    in_flight: MetricSpec { name: "http_server_active_requests", help: HELP_IN_FLIGHT },
    aborted: MetricSpec { name: "http_server_requests_aborted_total", help: HELP_ABORTED },
    request_size: MetricSpec { name: "http_server_request_body_size_bytes", help: HELP_REQUEST_SIZE },
    response_size: MetricSpec { name: "http_server_response_body_size_bytes", help: HELP_RESPONSE_SIZE },
    time_to_headers: MetricSpec { name: "http_server_time_to_headers_seconds", help: HELP_TIME_TO_HEADERS },
    method_label: "http_request_method",
    route_label: "http_route",
    status_label: "http_response_status_code",
};

impl Preset {
    /// The names this preset gives families and labels.
    pub const fn names(self) -> &'static RedNames {
        match self {
            Self::Prometheus => &PROMETHEUS_NAMES,
            Self::OpenTelemetry => &OPENTELEMETRY_NAMES,
        }
    }
}

/// How [`RedMetrics`] registers its families.
#[derive(Clone)]
#[must_use]
pub struct RedOptions {
    prefix: Option<String>,
    preset: Preset,
    duration_buckets: Option<Buckets>,
    size_buckets: Option<Buckets>,
    body_sizes: bool,
    time_to_headers: bool,
    excluded: Vec<Box<str>>,
    cardinality_limit: usize,
    observer: Option<Arc<dyn Observer>>,
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

/// A handle and the observer that mirrors its updates, if any (shared with
/// [`crate::grpc`]).
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
    metric: &'a M,
    observer: Option<&'a dyn SeriesObserver>,
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
    fn add(self, v: f64) {
        self.metric.add(v);
        if let Some(o) = self.observer {
            o.gauge_add(v);
        }
    }
}

/// The registered families.
struct Families {
    names: &'static RedNames,
    requests: Option<Family<Counter, 3>>,
    duration: Family<Histogram, 3>,
    in_flight: Family<Gauge, 2>,
    aborted: Family<Counter, 3>,
    request_size: Option<Family<Histogram, 3>>,
    response_size: Option<Family<Histogram, 3>>,
    time_to_headers: Option<Family<Histogram, 3>>,
}

/// Series observers for label sets past a table's capacity: each family's updates go
/// to one series of the observer whose labels are all [`OVERFLOW_LABEL_VALUE`], asked
/// for once.
#[derive(Default)]
struct SpillObservers {
    requests: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    duration: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    in_flight: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    aborted: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    request_size: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    response_size: OnceBox<Option<Arc<dyn SeriesObserver>>>,
    time_to_headers: OnceBox<Option<Arc<dyn SeriesObserver>>>,
}

struct Inner {
    families: Families,
    observer: Option<Arc<dyn Observer>>,
    excluded: Box<[Box<str>]>,
    routes: Table<RouteEntry>,
    responses: Table<ResponseEntry>,
    spill: SpillObservers,
    hasher: foldhash::fast::RandomState,
}

/// The families of RED metrics, registered once, and the cache that resolves each
/// request's series. Cheap to clone: clones share everything.
///
/// See the [module documentation](self) for the names, labels and when a request is
/// counted.
#[derive(Clone)]
pub struct RedMetrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedMetrics")
            .field("duration", &self.inner.families.duration)
            .field("routes", &self.inner.routes.len.load(Ordering::Relaxed))
            .field("responses", &self.inner.responses.len.load(Ordering::Relaxed))
            .finish()
    }
}

impl RedMetrics {
    /// Registers the families `options` describe into `registry`.
    ///
    /// To record from several adapters into one registry, register once and clone the
    /// result: a second registration of the same names is an error, not a panic.
    ///
    /// # Errors
    ///
    /// [`RegistryError`] when a name is taken or invalid (a bad prefix), or the
    /// cardinality limit is zero.
    pub fn register(registry: &Registry, options: RedOptions) -> Result<Self, RegistryError> {
        let names = options.preset.names();
        let name = |spec: &MetricSpec| match &options.prefix {
            Some(p) => format!("{p}_{}", spec.name),
            None => spec.name.to_owned(),
        };
        let limit = options.cardinality_limit;
        let series = [names.method_label, names.route_label, names.status_label];
        let durations = options.duration_buckets.clone().unwrap_or_else(|| buckets(&DURATION_BUCKETS));
        let sizes = options.size_buckets.clone().unwrap_or_else(|| buckets(&BODY_SIZE_BUCKETS));
        let histogram = |spec: &MetricSpec, unit: &str, bounds: &Buckets| {
            registry
                .histogram(name(spec), spec.help)
                .unit(unit)
                .buckets(bounds.clone())
                .cardinality_limit(limit)
                .labels(series)
                .register()
        };
        let duration_histogram = |spec: &MetricSpec| histogram(spec, "seconds", &durations);
        let size_histogram = |spec: &MetricSpec| histogram(spec, "bytes", &sizes);
        let counter = |spec: &MetricSpec| {
            registry.counter(name(spec), spec.help).cardinality_limit(limit).labels(series).register()
        };
        let families = Families {
            names,
            requests: names.requests.as_ref().map(counter).transpose()?,
            duration: duration_histogram(&names.duration)?,
            in_flight: registry
                .gauge(name(&names.in_flight), names.in_flight.help)
                .multiprocess_mode(GaugeMode::LiveSum)
                .cardinality_limit(limit)
                .labels([names.method_label, names.route_label])
                .register()?,
            aborted: counter(&names.aborted)?,
            request_size: options.body_sizes.then(|| size_histogram(&names.request_size)).transpose()?,
            response_size: options.body_sizes.then(|| size_histogram(&names.response_size)).transpose()?,
            time_to_headers: options
                .time_to_headers
                .then(|| duration_histogram(&names.time_to_headers))
                .transpose()?,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                families,
                observer: options.observer,
                excluded: options.excluded.into_boxed_slice(),
                routes: Table::new(limit),
                responses: Table::new(limit),
                spill: SpillObservers::default(),
                hasher: foldhash::fast::RandomState::default(),
            }),
        })
    }

    /// The names in use.
    pub fn names(&self) -> &'static RedNames {
        self.inner.families.names
    }

    /// Whether body sizes are recorded, so an adapter knows to measure them.
    pub fn records_body_sizes(&self) -> bool {
        self.inner.families.request_size.is_some()
    }

    /// Starts recording a request: counts it in flight and starts its clock.
    ///
    /// `method` is the request's method as sent (it is folded here); `route` the
    /// route template that matched, `None` when none did; `request_size` the body
    /// size when known up front (its `Content-Length`). Returns `None` for an excluded
    /// route: nothing is recorded.
    ///
    /// After the first request with the same method and route this takes no lock and
    /// allocates nothing.
    #[inline]
    pub fn start(
        &self,
        method: &str,
        route: Option<&str>,
        request_size: Option<u64>,
    ) -> Option<RequestTimer> {
        let start = Instant::now();
        let method = method_index(method) as u8;
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        let inner = &*self.inner;
        let route = match inner.route_entry(method, route) {
            Some((index, entry)) => {
                let in_flight = entry.in_flight.as_ref()?;
                in_flight.borrow().add(1.0);
                RouteRef::Cached(index as u32)
            }
            None => {
                if inner.excluded.iter().any(|e| **e == *route) {
                    return None;
                }
                inner.spilled_in_flight(method, route).add(1.0);
                RouteRef::Spilled(Box::new(SpilledRoute { method, route: route.into() }))
            }
        };
        Some(RequestTimer {
            metrics: self.inner.clone(),
            route,
            response: Response::Pending,
            method,
            start,
            request_size,
            body_bytes: 0,
            done: false,
        })
    }
}

fn buckets(bounds: &[f64]) -> Buckets {
    // The presets are finite and increasing; the default is only a fallback for the
    // impossible.
    Buckets::new(bounds.iter().copied()).unwrap_or_default()
}

/// Where a request's route entry is.
enum RouteRef {
    /// Slot index in the route table.
    Cached(u32),
    /// The route table is full: the labels, to look series up per request.
    Spilled(Box<SpilledRoute>),
}

struct SpilledRoute {
    method: u8,
    route: Box<str>,
}

/// The state of a request's response.
#[derive(Clone, Copy)]
enum Response {
    /// No response yet.
    Pending,
    /// Headers produced; slot index in the response table.
    Cached(u32, u16),
    /// Headers produced, the response table is full: the status key, to look series up
    /// per use.
    Spilled(u16),
}

/// Status keys: the code itself for 100–999, these below 100 for the rest.
const KEY_OTHER: u16 = 0;
const KEY_ERROR: u16 = 1;
const KEY_CANCELLED: u16 = 2;

fn status_key(code: u16) -> u16 {
    if (100..=999).contains(&code) {
        code
    } else {
        KEY_OTHER
    }
}

fn key_label(key: u16) -> &'static str {
    match key {
        KEY_ERROR => ERROR_STATUS,
        KEY_CANCELLED => CANCELLED_STATUS,
        code => status_label(code),
    }
}

/// Whether a response with this status key carries no content by definition, so that
/// dropping its body unread is no abort.
fn no_content(key: u16) -> bool {
    matches!(key, 100..=199 | 204 | 304)
}

/// One request being recorded, from [`RedMetrics::start`] until its response ends.
///
/// An adapter carries it from the request into its response future and then into its
/// response body, and calls [`headers`](Self::headers) when the service produced a
/// response, [`add_body_bytes`](Self::add_body_bytes) per body chunk, and
/// [`finish`](Self::finish) at the end of the body, or [`fail`](Self::fail) when the
/// service returned an error. Dropping it earlier records the request as aborted (after
/// `headers`) or cancelled (before): see the [module documentation](self).
#[must_use = "a request is recorded when its timer is finished or dropped"]
pub struct RequestTimer {
    metrics: Arc<Inner>,
    route: RouteRef,
    response: Response,
    method: u8,
    start: Instant,
    request_size: Option<u64>,
    body_bytes: u64,
    done: bool,
}

impl fmt::Debug for RequestTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (method, route) = self.metrics.route_labels(&self.route);
        f.debug_struct("RequestTimer")
            .field("method", &method)
            .field("route", &route)
            .field("start", &self.start)
            .field("body_bytes", &self.body_bytes)
            .finish()
    }
}

impl RequestTimer {
    /// The service produced a response with status `code`: resolves the request's
    /// series and observes the time to headers, if enabled. Only the first call
    /// counts.
    #[inline]
    pub fn headers(&mut self, code: u16) {
        if !matches!(self.response, Response::Pending) {
            return;
        }
        let key = status_key(code);
        self.response = self.metrics.response(&self.route, key);
        let handles = self.metrics.handles(&self.route, self.response);
        if let Some(h) = handles.time_to_headers {
            h.observe(self.start.elapsed().as_secs_f64());
        }
    }

    /// `n` more bytes of response body were sent.
    #[inline]
    pub fn add_body_bytes(&mut self, n: u64) {
        self.body_bytes = self.body_bytes.saturating_add(n);
    }

    /// The response body ended: records the request.
    #[inline]
    pub fn finish(mut self) {
        self.record(false);
    }

    /// The service returned an error instead of a response: records the request with
    /// status [`ERROR_STATUS`].
    pub fn fail(mut self) {
        if matches!(self.response, Response::Pending) {
            self.response = self.metrics.response(&self.route, KEY_ERROR);
        }
        self.record(false);
    }

    fn record(&mut self, dropped: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let seconds = self.start.elapsed().as_secs_f64();
        let inner = &*self.metrics;
        match &self.route {
            RouteRef::Cached(i) => {
                if let Some(g) = inner.routes.get(*i as usize).and_then(|e| e.in_flight.as_ref()) {
                    g.borrow().add(-1.0);
                }
            }
            RouteRef::Spilled(s) => inner.spilled_in_flight(s.method, &s.route).add(-1.0),
        }
        if matches!(self.response, Response::Pending) {
            self.response = inner.response(&self.route, KEY_CANCELLED);
        }
        let key = match self.response {
            Response::Cached(_, key) | Response::Spilled(key) => key,
            Response::Pending => KEY_CANCELLED,
        };
        let h = inner.handles(&self.route, self.response);
        if let Some(c) = h.requests {
            c.inc();
        }
        h.duration.observe(seconds);
        if let (Some(size), Some(hist)) = (self.request_size, h.request_size) {
            hist.observe(size as f64);
        }
        if let Some(hist) = h.response_size {
            hist.observe(self.body_bytes as f64);
        }
        let answered = key >= 100;
        if dropped && answered && self.method != HEAD_INDEX && !no_content(key) {
            inner.aborted(&self.route, self.response).inc();
        }
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        self.record(true);
    }
}

/// A cached (method, route): its labels and in-flight series, or the mark that the
/// route is excluded.
struct RouteEntry {
    hash: u64,
    method: u8,
    route: Box<str>,
    /// `None` for an excluded route.
    in_flight: Option<Tracked<Gauge>>,
}

/// A cached (route entry, status): the series a response records into.
struct ResponseEntry {
    key: u64,
    requests: Option<Tracked<Counter>>,
    duration: Tracked<Histogram>,
    request_size: Option<Tracked<Histogram>>,
    response_size: Option<Tracked<Histogram>>,
    time_to_headers: Option<Tracked<Histogram>>,
    // Resolved on the first abort only, so that routes never aborted have no series.
    aborted: OnceBox<Tracked<Counter>>,
}

/// The handles one recording uses.
struct Handles<'a> {
    requests: Option<Rec<'a, Counter>>,
    duration: Rec<'a, Histogram>,
    request_size: Option<Rec<'a, Histogram>>,
    response_size: Option<Rec<'a, Histogram>>,
    time_to_headers: Option<Rec<'a, Histogram>>,
}

impl ResponseEntry {
    fn handles(&self) -> Handles<'_> {
        Handles {
            requests: self.requests.as_ref().map(Tracked::borrow),
            duration: self.duration.borrow(),
            request_size: self.request_size.as_ref().map(Tracked::borrow),
            response_size: self.response_size.as_ref().map(Tracked::borrow),
            time_to_headers: self.time_to_headers.as_ref().map(Tracked::borrow),
        }
    }
}

fn response_key(route: u32, status: u16) -> u64 {
    (u64::from(route) << 16) | u64::from(status)
}

/// A fixed mix of an integer key (the keys are ours, not a client's, so no seed is
/// needed): splitmix64's finalizer.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Inner {
    /// The route entry of (method, route), created on first sight; `None` when the
    /// table is full.
    #[inline]
    fn route_entry(&self, method: u8, route: &str) -> Option<(usize, &RouteEntry)> {
        let mut h = self.hasher.build_hasher();
        h.write_u8(method);
        h.write(route.as_bytes());
        let hash = h.finish();
        let matches = |e: &RouteEntry| e.hash == hash && e.method == method && *e.route == *route;
        match self.routes.find(hash, matches) {
            Ok(found) => Some(found),
            Err(()) => self.routes.insert(hash, matches, || self.new_route(hash, method, route)),
        }
    }

    #[cold]
    fn new_route(&self, hash: u64, method: u8, route: &str) -> RouteEntry {
        let excluded = self.excluded.iter().any(|e| **e == *route);
        let in_flight = (!excluded).then(|| {
            let family = &self.families.in_flight;
            let label = METHOD_LABELS[usize::from(method)];
            Tracked {
                metric: family.with_labels([label, route]).clone(),
                observer: self.observe(family.desc(), &[label, route]),
            }
        });
        RouteEntry { hash, method, route: route.into(), in_flight }
    }

    /// Asks the observer, if any, for the series of `family` with these label values.
    fn observe(&self, family: &crate::FamilyDesc, values: &[&str]) -> Option<Arc<dyn SeriesObserver>> {
        observe(self.observer.as_ref(), family, values)
    }

    /// The in-flight series of a request whose route entry did not fit in the table.
    #[cold]
    fn spilled_in_flight(&self, method: u8, route: &str) -> Rec<'_, Gauge> {
        let family = &self.families.in_flight;
        Rec {
            metric: family.with_labels([METHOD_LABELS[usize::from(method)], route]),
            observer: self.spill_observer(&self.spill.in_flight, family.desc()),
        }
    }

    fn spill_observer<'a>(
        &'a self,
        slot: &'a OnceBox<Option<Arc<dyn SeriesObserver>>>,
        family: &crate::FamilyDesc,
    ) -> Option<&'a dyn SeriesObserver> {
        self.observer.as_ref()?;
        let values = vec![OVERFLOW_LABEL_VALUE; family.label_names.len()];
        slot.get_or_init(|| Box::new(self.observe(family, &values))).as_deref()
    }

    fn route_labels<'a>(&'a self, route: &'a RouteRef) -> (&'static str, &'a str) {
        match route {
            RouteRef::Cached(i) => match self.routes.get(*i as usize) {
                Some(e) => (METHOD_LABELS[usize::from(e.method)], &e.route),
                None => (OTHER_METHOD, UNMATCHED_ROUTE),
            },
            RouteRef::Spilled(s) => (METHOD_LABELS[usize::from(s.method)], &s.route),
        }
    }

    /// Resolves the response series of `route` with status key `status`.
    #[inline]
    fn response(&self, route: &RouteRef, status: u16) -> Response {
        let RouteRef::Cached(route_index) = route else { return Response::Spilled(status) };
        let key = response_key(*route_index, status);
        let hash = mix(key);
        let matches = |e: &ResponseEntry| e.key == key;
        let found = match self.responses.find(hash, matches) {
            Ok(found) => Some(found),
            Err(()) => self.responses.insert(hash, matches, || self.new_response(route, key, status)),
        };
        match found {
            Some((index, _)) => Response::Cached(index as u32, status),
            None => Response::Spilled(status),
        }
    }

    #[cold]
    fn new_response(&self, route: &RouteRef, key: u64, status: u16) -> ResponseEntry {
        let (method, route) = self.route_labels(route);
        let labels = [method, route, key_label(status)];
        let f = &self.families;
        let track_counter = |family: &Family<Counter, 3>| Tracked {
            metric: family.with_labels(labels).clone(),
            observer: self.observe(family.desc(), &labels),
        };
        let track = |family: &Family<Histogram, 3>| Tracked {
            metric: family.with_labels(labels).clone(),
            observer: self.observe(family.desc(), &labels),
        };
        ResponseEntry {
            key,
            requests: f.requests.as_ref().map(track_counter),
            duration: track(&f.duration),
            request_size: f.request_size.as_ref().map(track),
            response_size: f.response_size.as_ref().map(track),
            time_to_headers: f.time_to_headers.as_ref().map(track),
            aborted: OnceBox::new(),
        }
    }

    /// The handles of a response, cached or looked up for this use only.
    #[inline]
    fn handles<'a>(&'a self, route: &'a RouteRef, response: Response) -> Handles<'a> {
        if let Response::Cached(i, _) = response {
            if let Some(e) = self.responses.get(i as usize) {
                return e.handles();
            }
        }
        self.spilled_handles(route, response)
    }

    #[cold]
    fn spilled_handles<'a>(&'a self, route: &'a RouteRef, response: Response) -> Handles<'a> {
        let key = match response {
            Response::Cached(_, key) | Response::Spilled(key) => key,
            Response::Pending => KEY_CANCELLED,
        };
        let (method, route) = self.route_labels(route);
        let labels = [method, route, key_label(key)];
        let f = &self.families;
        let s = &self.spill;
        let rec = |family: &'a Family<Histogram, 3>, slot: &'a OnceBox<Option<Arc<dyn SeriesObserver>>>| {
            Rec { metric: family.with_labels(labels), observer: self.spill_observer(slot, family.desc()) }
        };
        Handles {
            requests: f.requests.as_ref().map(|family| Rec {
                metric: family.with_labels(labels),
                observer: self.spill_observer(&s.requests, family.desc()),
            }),
            duration: rec(&f.duration, &s.duration),
            request_size: f.request_size.as_ref().map(|h| rec(h, &s.request_size)),
            response_size: f.response_size.as_ref().map(|h| rec(h, &s.response_size)),
            time_to_headers: f.time_to_headers.as_ref().map(|h| rec(h, &s.time_to_headers)),
        }
    }

    /// The aborted-responses series of a response.
    #[cold]
    fn aborted<'a>(&'a self, route: &'a RouteRef, response: Response) -> Rec<'a, Counter> {
        let (method, route_label) = self.route_labels(route);
        let family = &self.families.aborted;
        let key = match response {
            Response::Cached(_, key) | Response::Spilled(key) => key,
            Response::Pending => KEY_CANCELLED,
        };
        let labels = [method, route_label, key_label(key)];
        if let Response::Cached(i, _) = response {
            if let Some(e) = self.responses.get(i as usize) {
                return e
                    .aborted
                    .get_or_init(|| {
                        Box::new(Tracked {
                            metric: family.with_labels(labels).clone(),
                            observer: self.observe(family.desc(), &labels),
                        })
                    })
                    .borrow();
            }
        }
        Rec {
            metric: family.with_labels(labels),
            observer: self.spill_observer(&self.spill.aborted, family.desc()),
        }
    }
}

/// A write-once open-addressing table: entries are found with acquire loads and no
/// lock, inserted under a mutex, never removed, and never more than `limit`, in twice
/// as many slots, so that a probe always ends at its entry or an empty slot. The same
/// design as a [`Family`]'s series table, with entries of our own.
struct Table<E> {
    slots: Box<[OnceBox<E>]>,
    mask: usize,
    limit: usize,
    len: AtomicUsize,
    insert: Mutex<()>,
}

impl<E> Table<E> {
    fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, MAX_CARDINALITY_LIMIT);
        let size = (limit * 2).next_power_of_two();
        Self {
            slots: (0..size).map(|_| OnceBox::new()).collect(),
            mask: size - 1,
            limit,
            len: AtomicUsize::new(0),
            insert: Mutex::new(()),
        }
    }

    #[inline]
    fn get(&self, index: usize) -> Option<&E> {
        self.slots.get(index).and_then(OnceBox::get)
    }

    /// The entry that `matches`, or `Err` when absent.
    #[inline]
    fn find(&self, hash: u64, matches: impl Fn(&E) -> bool) -> Result<(usize, &E), ()> {
        let mut i = hash as usize & self.mask;
        loop {
            match self.slots.get(i).and_then(OnceBox::get) {
                Some(e) if matches(e) => return Ok((i, e)),
                Some(_) => i = (i + 1) & self.mask,
                None => return Err(()),
            }
        }
    }

    /// Inserts the entry `make` builds unless one that `matches` appeared meanwhile;
    /// `None` when the table is full.
    #[cold]
    fn insert(
        &self,
        hash: u64,
        matches: impl Fn(&E) -> bool,
        make: impl FnOnce() -> E,
    ) -> Option<(usize, &E)> {
        if self.len.load(Ordering::Relaxed) >= self.limit {
            return None;
        }
        let _lock = self.insert.lock();
        // Probe again under the lock: another thread may have inserted it.
        let mut i = hash as usize & self.mask;
        while let Some(e) = self.slots.get(i).and_then(OnceBox::get) {
            if matches(e) {
                return Some((i, e));
            }
            i = (i + 1) & self.mask;
        }
        if self.len.load(Ordering::Relaxed) >= self.limit {
            return None;
        }
        let slot = self.slots.get(i)?;
        // We hold the insert lock and saw the slot empty, so this initialises it.
        let entry = slot.get_or_init(|| Box::new(make()));
        // Relaxed: `len` only bounds the table; entries are published by the OnceBox.
        self.len.fetch_add(1, Ordering::Relaxed);
        Some((i, entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Format;

    fn scrape(registry: &Registry) -> String {
        String::from_utf8(registry.encode(Format::Text)).unwrap_or_default()
    }

    fn lines<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn every_status_renders_as_its_digits() {
        for code in 100..=999u16 {
            assert_eq!(status_label(code), code.to_string());
        }
        for code in [0, 1, 99, 1000, u16::MAX] {
            assert_eq!(status_label(code), OTHER_STATUS);
        }
    }

    #[test]
    fn methods_fold_into_a_closed_set() {
        for m in KNOWN_METHODS {
            assert_eq!(fold_method(m), m);
        }
        for m in ["", "get", "PROPFIND", "BREW", "GET ", "G\u{e9}T"] {
            assert_eq!(fold_method(m), OTHER_METHOD, "{m:?}");
        }
    }

    #[test]
    fn the_presets_buckets_are_valid() {
        assert_eq!(buckets(&DURATION_BUCKETS).bounds(), DURATION_BUCKETS);
        assert_eq!(buckets(&BODY_SIZE_BUCKETS).bounds(), BODY_SIZE_BUCKETS);
    }

    #[test]
    fn outcomes_are_counted_once_each_as_documented() {
        let registry = Registry::new();
        let red = RedMetrics::register(&registry, RedOptions::new()).unwrap();
        let mut ok = red.start("GET", Some("/a"), None).unwrap();
        ok.headers(200);
        ok.headers(500); // only the first call counts
        ok.finish();
        let mut aborted = red.start("GET", Some("/a"), None).unwrap();
        aborted.headers(200);
        drop(aborted);
        let mut head = red.start("HEAD", Some("/a"), None).unwrap();
        head.headers(200);
        drop(head);
        let mut no_content = red.start("GET", Some("/a"), None).unwrap();
        no_content.headers(204);
        drop(no_content);
        red.start("POST", Some("/a"), None).unwrap().fail();
        drop(red.start("POST", Some("/a"), None));
        let in_flight = red.start("GET", Some("/a"), None);

        let text = scrape(&registry);
        assert_eq!(
            lines(&text, "http_requests_total"),
            [
                r#"http_requests_total{method="GET",route="/a",status="200"} 2"#,
                r#"http_requests_total{method="HEAD",route="/a",status="200"} 1"#,
                r#"http_requests_total{method="GET",route="/a",status="204"} 1"#,
                r#"http_requests_total{method="POST",route="/a",status="error"} 1"#,
                r#"http_requests_total{method="POST",route="/a",status="cancelled"} 1"#,
            ]
        );
        assert_eq!(
            lines(&text, "http_requests_aborted_total"),
            [r#"http_requests_aborted_total{method="GET",route="/a",status="200"} 1"#]
        );
        assert_eq!(
            lines(&text, "http_requests_in_flight"),
            [
                r#"http_requests_in_flight{method="GET",route="/a"} 1"#,
                r#"http_requests_in_flight{method="HEAD",route="/a"} 0"#,
                r#"http_requests_in_flight{method="POST",route="/a"} 0"#,
            ]
        );
        assert_eq!(
            lines(&text, "http_request_duration_seconds_count"),
            [
                r#"http_request_duration_seconds_count{method="GET",route="/a",status="200"} 2"#,
                r#"http_request_duration_seconds_count{method="HEAD",route="/a",status="200"} 1"#,
                r#"http_request_duration_seconds_count{method="GET",route="/a",status="204"} 1"#,
                r#"http_request_duration_seconds_count{method="POST",route="/a",status="error"} 1"#,
                r#"http_request_duration_seconds_count{method="POST",route="/a",status="cancelled"} 1"#,
            ]
        );
        drop(in_flight);
    }

    #[test]
    fn excluded_routes_record_nothing() {
        let registry = Registry::new();
        let red = RedMetrics::register(&registry, RedOptions::new().exclude_route("/metrics")).unwrap();
        for _ in 0..3 {
            assert!(red.start("GET", Some("/metrics"), None).is_none());
        }
        assert!(red.start("GET", Some("/other"), None).is_some());
        let text = scrape(&registry);
        assert!(!text.contains("/metrics"), "{text}");
        assert!(text.contains(r#"route="/other""#), "{text}");
    }

    #[test]
    fn sizes_and_time_to_headers_are_optional() {
        let registry = Registry::new();
        let red = RedMetrics::register(&registry, RedOptions::new().body_sizes(true).time_to_headers(true))
            .unwrap();
        let mut t = red.start("POST", Some("/echo"), Some(300)).unwrap();
        t.headers(200);
        t.add_body_bytes(100);
        t.add_body_bytes(200);
        t.finish();
        let text = scrape(&registry);
        let labels = r#"{method="POST",route="/echo",status="200"}"#;
        for sample in [
            format!("http_request_size_bytes_sum{labels} 300"),
            format!("http_response_size_bytes_sum{labels} 300"),
            format!("http_time_to_headers_seconds_count{labels} 1"),
            r#"http_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="256.0"} 0"#.into(),
            r#"http_request_size_bytes_bucket{method="POST",route="/echo",status="200",le="1024.0"} 1"#
                .into(),
        ] {
            assert!(text.contains(&sample), "{sample} missing in\n{text}");
        }
        let plain = Registry::new();
        RedMetrics::register(&plain, RedOptions::new())
            .unwrap()
            .start("GET", None, Some(5))
            .unwrap()
            .headers(200);
        let text = scrape(&plain);
        assert!(!text.contains("size_bytes") && !text.contains("time_to_headers"), "{text}");
    }

    #[test]
    fn the_opentelemetry_preset_renames_everything() {
        let registry = Registry::new();
        let red = RedMetrics::register(&registry, RedOptions::new().preset(Preset::OpenTelemetry)).unwrap();
        let mut t = red.start("GET", Some("/a"), None).unwrap();
        t.headers(200);
        t.finish();
        let text = scrape(&registry);
        assert!(text.contains(
            r#"http_server_request_duration_seconds_count{http_request_method="GET",http_route="/a",http_response_status_code="200"} 1"#
        ), "{text}");
        assert!(text.contains(r#"http_server_active_requests{http_request_method="GET",http_route="/a"} 0"#));
        assert!(!text.contains("http_requests_total"), "{text}");
    }

    #[test]
    fn a_second_registration_is_an_error_and_prefixes_separate_them() {
        let registry = Registry::new();
        let _first = RedMetrics::register(&registry, RedOptions::new()).unwrap();
        assert!(matches!(
            RedMetrics::register(&registry, RedOptions::new()),
            Err(RegistryError::AlreadyRegistered { .. })
        ));
        let second = RedMetrics::register(&registry, RedOptions::new().prefix("admin")).unwrap();
        second.start("GET", None, None).unwrap().headers(200);
        assert!(scrape(&registry)
            .contains(r#"admin_http_requests_total{method="GET",route="unmatched",status="200"} 1"#));
    }

    #[test]
    fn past_the_limit_requests_still_count_and_series_stay_bounded() {
        let registry = Registry::new();
        let red = RedMetrics::register(&registry, RedOptions::new().cardinality_limit(4)).unwrap();
        let routes: Vec<String> = (0..20).map(|i| format!("/r{i}")).collect();
        for route in &routes {
            for code in [200, 500] {
                let mut t = red.start("GET", Some(route), None).unwrap();
                t.headers(code);
                t.finish();
            }
        }
        let text = scrape(&registry);
        let counts = lines(&text, "http_requests_total{");
        assert_eq!(counts.len(), 5, "{text}");
        let total: f64 = counts.iter().filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum();
        assert_eq!(total, 40.0);
        assert!(
            text.contains(
                r#"http_requests_total{method="__overflow__",route="__overflow__",status="__overflow__"} 36"#
            ),
            "{text}"
        );
        let gauges = lines(&text, "http_requests_in_flight{");
        assert_eq!(gauges.len(), 5, "{text}");
        assert!(gauges.iter().all(|l| l.ends_with(" 0")), "{text}");
    }

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    struct SeriesLog {
        name: String,
        log: Arc<Log>,
    }

    impl Observer for Arc<Log> {
        fn series(&self, family: &crate::FamilyDesc, labels: &LabelSet) -> Option<Arc<dyn SeriesObserver>> {
            self.0.lock().push(format!("series {}{{{}}}", family.name, labels.rendered()));
            Some(Arc::new(SeriesLog { name: family.name.to_string(), log: self.clone() }))
        }
    }

    impl SeriesObserver for SeriesLog {
        fn counter(&self, delta: f64) {
            self.log.0.lock().push(format!("{} +{delta}", self.name));
        }
        fn gauge_set(&self, value: f64) {
            self.log.0.lock().push(format!("{} ={value}", self.name));
        }
        fn gauge_add(&self, delta: f64) {
            self.log.0.lock().push(format!("{} {delta:+}", self.name));
        }
        fn observe(&self, value: f64) {
            self.log.0.lock().push(format!("{} observe {}", self.name, value >= 0.0));
        }
    }

    #[test]
    fn the_observer_is_asked_once_per_series_and_sees_every_update() {
        let log = Arc::new(Log::default());
        let registry = Registry::new();
        let red = RedMetrics::register(&registry, RedOptions::new().observer(Arc::new(log.clone()))).unwrap();
        for _ in 0..2 {
            let mut t = red.start("GET", Some("/a"), None).unwrap();
            t.headers(200);
            t.finish();
        }
        let got = log.0.lock().clone();
        assert_eq!(
            got,
            [
                r#"series http_requests_in_flight{method="GET",route="/a"}"#,
                "http_requests_in_flight +1",
                r#"series http_requests{method="GET",route="/a",status="200"}"#,
                r#"series http_request_duration_seconds{method="GET",route="/a",status="200"}"#,
                "http_requests_in_flight -1",
                "http_requests +1",
                "http_request_duration_seconds observe true",
                "http_requests_in_flight +1",
                "http_requests_in_flight -1",
                "http_requests +1",
                "http_request_duration_seconds observe true",
            ]
        );
    }
}
